"""The paid side of a live run: the protocol every paid call follows (reserve, attempts, settle)."""
