#!/usr/bin/env bash
# Creates .venv with mailgent-mcp installed (editable). With --test, also the test tools,
# the Debian packages the tests run against (oathtool, Dovecot's IMAP and LMTP servers,
# Node.js) and the MCP Inspector CLI from npm.
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

if [ "${1:-}" = "--test" ] && [ ! -x tests/inspector/node_modules/.bin/mcp-inspector ]; then
  echo "setup: installing the MCP Inspector CLI (npm) into tests/inspector" >&2
  if ! npm ci --prefix tests/inspector --no-audit --no-fund >tests/inspector/npm.log 2>&1; then
    cat tests/inspector/npm.log >&2
    echo "setup: npm ci failed (log above)" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}" >.venv/pip.log 2>&1; then
  cat .venv/pip.log >&2
  echo "setup: pip install failed (log above)" >&2
  exit 1
fi
.venv/bin/python -c 'import mailgent_mcp' # fail here, not later, when the install did not take
