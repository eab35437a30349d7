"""Registration of the commands other rooms contribute: ``bench`` and ``route``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    """Add the extra sub-commands to the ``alband`` parser."""
    del sub
