#!/usr/bin/env bash
# One command from a fresh clone to the main job on embedded defaults: sets up, then runs
# `mailgent-mcp demo` in a throw-away data folder. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mailgent-mcp demo "$@"
