"""The run store (shell): run directories, the SQLite ledger, metrics, budget guard."""
