#!/usr/bin/env bash
# Creates .venv with mailgent-mcp installed (editable). With --test, also the test tools,
# the Debian packages the tests run against (oathtool, Dovecot's IMAP and LMTP servers,
# npm) and, with one `npm ci` into tests/node, the Node.js tools the tests use: the MCP
# Inspector CLI and the TypeScript SDK (clients they drive the server with), the mcpb CLI (it
# checks the Claude Desktop bundle), and the Node.js runtime they run on (all pinned by
# tests/node/package.json and package-lock.json). The install itself is pure Python: no
# compiler, Python headers or mypy.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: mailgent-mcp needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

extras=""
if [ "${1:-}" = "--test" ]; then
  extras="[test]"
  missing=()
  command -v oathtool >/dev/null 2>&1 || missing+=(oathtool)
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
  [ -x /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ "${1:-}" = "--test" ]; then
  # Installed again whenever package-lock.json differs from the one last installed.
  lock=tests/node/package-lock.json
  installed=tests/node/node_modules/.mailgent-installed-lock.json
  if ! cmp -s "$lock" "$installed"; then
    echo "setup: installing the Node.js MCP clients (npm ci) into tests/node" >&2
    if ! npm ci --prefix tests/node --no-audit --no-fund >tests/node/npm.log 2>&1; then
      cat tests/node/npm.log >&2
      echo "setup: npm ci failed (log above)" >&2
      exit 1
    fi
    cp "$lock" "$installed"
  fi
  # The Inspector 2.x needs Node.js 22.19 or newer: the runtime npm installed for this
  # platform (linux x64 or arm64; not always linked as .bin/node), else the node on PATH.
  node="$(command -v node || true)"
  for pinned in tests/node/node_modules/node-linux-*/bin/node; do
    [ -x "$pinned" ] && node="$pinned"
  done
  if ! "$node" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 19) ? 0 : 1)'; then
    echo "setup: the MCP Inspector needs Node.js 22.19 or newer, and $node is $("$node" --version);" \
      "npm has no Node.js runtime package for this platform: install Node.js 22.19+ and put it on PATH" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The editable install follows code changes by itself; it is redone only when pyproject.toml
# changed (dependencies, entry points, version) or more extras are asked for, so that running
# a script again (scripts/run.sh from a test) does not reinstall the package under a running suite.
stamp=.venv/.mailgent-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$have" != "$want${extras}" ] && [ "$have" != "$want[test]" ] || ! .venv/bin/python -c 'import mailgent_mcp' 2>/dev/null; then
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "setup: pip install failed (log above)" >&2
    exit 1
  fi
  echo "$want${extras}" >"$stamp"
fi
.venv/bin/python -c 'import mailgent_mcp' # fail here, not later, when the install did not take
