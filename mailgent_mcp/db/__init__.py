"""The database layer: the one file (vault.db), its connections, the writer thread, transactions
and the migration runner. It knows no table of its own: the vault and the inbox each bring
their SQL and their named migration set (vault/store.py, inbox/store.py)."""
