"""`mailgent-mcp demo`: a sample web service with sign-up, e-mail verification and 2FA
(service.py), and an agent that signs up and logs in through the MCP tools alone (agent.py),
run together in a throw-away data folder (run.py). Not used by the server itself."""
