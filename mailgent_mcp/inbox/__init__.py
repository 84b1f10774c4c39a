"""The inbox: mail from IMAP accounts (sync and IDLE push) and the embedded SMTP inbox, parsed
in worker processes, with codes, links and sender trust extracted, kept in a searchable cache.
cache.py is the service the tools and the CLI call; service.py runs the sources in a server;
untrusted.py is how a sender's text is shown to an agent."""
