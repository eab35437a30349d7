"""``alband route replay``: every router over an outcome matrix, offline (:mod:`alband.replay`).

The replay parses its own arguments (``argparse.REMAINDER``), so
``alband route replay --help`` shows its options (:mod:`alband.replay.cli`).
"""

from __future__ import annotations


def _route_replay(argv: list[str]) -> int:
    from alband.replay.cli import replay_main

    return replay_main(argv)


def register(sub) -> None:
    """Add ``route`` to the ``alband`` parser."""
    from alband.cli.dispatch import register_actions

    register_actions(sub, "route", "annotator routing: offline replay of every router over outcome matrices",
                     {"replay": (_route_replay, "every router over an outcome matrix: accuracy, dollars, APGR")})


__all__ = ["register"]
