#!/usr/bin/env bash
# One command from a fresh clone to a passing test run: sets up, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k vault -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest "$@"
