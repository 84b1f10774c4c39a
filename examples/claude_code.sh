#!/usr/bin/env sh
# Add mailgent-mcp to Claude Code (stdio; the server uses the default data folder and master.key).
claude mcp add mailgent -- mailgent-mcp serve

# With a default entry for vault_totp, for this user across projects:
#   claude mcp add --scope user mailgent -e MAILGENT_DEFAULT_ENTRY=github -- mailgent-mcp serve
#
# Over streamable HTTP instead (start `mailgent-mcp serve --transport http` first; the token
# comes from `mailgent-mcp token`):
#   claude mcp add --transport http mailgent http://127.0.0.1:8765/mcp --header "Authorization: Bearer $MAILGENT_TOKEN"
