#!/usr/bin/env bash
# One command from a fresh clone to a passing test run: sets up, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k vault -x).
#   bash scripts/test.sh --fast    the fast lane: no Dovecot, no demo flow, no Node.js clients,
#                                  no multi-process or slow tests (skips the set-up when .venv exists)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  [ -x .venv/bin/python ] || bash scripts/setup.sh --test
  exec .venv/bin/python -m pytest -m "not (slow or dovecot or processes or node or demo)" "$@"
fi
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"
