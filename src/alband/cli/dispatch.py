"""Commands with actions (``alband bench design``, ``alband route replay``) whose actions parse their own options.

``alband bench --help`` (or ``alband bench`` alone) lists the actions;
``alband bench design --help`` shows the action's own options.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from alband.errors import AlbandError

Action = Callable[[list[str]], int]


def register_actions(sub, name: str, help: str, actions: dict[str, tuple[Action, str]]) -> None:
    """Add ``name ACTION [OPTIONS]`` to the ``alband`` parser; each action gets the options after it."""
    lines = "\n".join(f"  {action:<12} {text}" for action, (_, text) in sorted(actions.items()))
    epilog = f"actions:\n{lines}\n\n'alband {name} ACTION --help' shows an action's options."
    parser = sub.add_parser(name, help=help, description=help, epilog=epilog, add_help=False,
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            usage=f"alband {name} {{{','.join(sorted(actions))}}} [OPTIONS]")
    parser.add_argument("action", nargs="?", choices=sorted(actions), help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        if args.action is None:
            if args.rest and args.rest[0] in ("-h", "--help"):
                parser.print_help(sys.stdout)
                return 0
            raise AlbandError(f"alband {name}: name an action ({', '.join(sorted(actions))}); "
                              f"see alband {name} --help")
        return actions[args.action][0](args.rest)

    parser.set_defaults(func=run)


__all__ = ["register_actions"]
