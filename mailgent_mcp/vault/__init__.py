"""The vault: named entries whose every field is sealed (AES-256-GCM), TOTP codes handed out
once each, recovery codes, the master key and its changes, and the hash-chained audit log.
entries.py is the service the tools and the CLI call; otp.py makes the codes; crypto.py is
the only user of `cryptography`."""
