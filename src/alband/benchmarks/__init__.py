"""Benchmarks of alband's engines, timed against reference implementations."""
