"""``alband route replay``: every router over an outcome matrix, offline (:mod:`alband.replay`).

The replay parses its own arguments (``argparse.REMAINDER``), so
``alband route replay --help`` shows its options (:mod:`alband.replay.cli`).
"""

from __future__ import annotations

import argparse


def _route_replay(argv: list[str]) -> int:
    from alband.replay.cli import replay_main

    return replay_main(argv)


def register(sub) -> None:
    """Add ``route`` to the ``alband`` parser."""
    route = sub.add_parser("route", help="annotator routing: offline replay over outcome matrices", add_help=False)
    route.add_argument("action", choices=["replay"])
    route.add_argument("rest", nargs=argparse.REMAINDER)
    route.set_defaults(func=lambda a: _route_replay(a.rest))


__all__ = ["register"]
