"""The MCP server: the vault and inbox tools over stdio, streamable HTTP and SSE, behind one
error boundary (boundary.py) that answers with safe text only; bearer tokens for HTTP
(tokens.py); tool schemas every client accepts (schemas.py)."""
