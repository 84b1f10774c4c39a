#!/usr/bin/env sh
# Add mailgent-mcp to Claude Code for every project of this user. Run it from the mailgent-mcp
# checkout after `bash scripts/setup.sh`: the shell expands "$PWD" now, so Claude Code keeps the
# absolute path of the console script and finds it whatever its PATH. The server uses the
# default data folder and its master.key.
claude mcp add --scope user mailgent -- "$PWD/.venv/bin/mailgent-mcp" serve

# With a default entry for vault_totp (options go before the server's name):
#   claude mcp add --scope user --env MAILGENT_DEFAULT_ENTRY=github mailgent -- "$PWD/.venv/bin/mailgent-mcp" serve
#
# Over streamable HTTP instead: start `mailgent-mcp serve --transport http`, export the token that
# `mailgent-mcp token` prints (export MAILGENT_TOKEN=$(mailgent-mcp token)) in the shell that
# starts Claude Code, and copy examples/.mcp.json to your project's root: Claude Code expands
# ${MAILGENT_TOKEN} in its headers when it connects, so the file holds no secret. Adding it with
#   claude mcp add --scope user --transport http mailgent http://127.0.0.1:8765/mcp --header "Authorization: Bearer $MAILGENT_TOKEN"
# works too, but stores the token itself in ~/.claude.json.
