"""The ``alband`` command line (shell)."""
