"""The `mailgent-mcp` command line for the people who set the server up: main.py parses the
commands (serve, vault, audit, token, demo) and inbox.py the `inbox` ones. Secrets are read
from a hidden prompt or standard input, never from argv."""
