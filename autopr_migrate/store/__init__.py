"""What the tool keeps: the ledger table, backups with their sidecars, retention."""
