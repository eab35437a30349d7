"""``alband``: demo, run, resume, report (and simulate, bench and route, in their own modules).

Every error the user can fix is one readable line on stderr and exit code 2;
an interrupted run says how to resume it. Nothing paid for is lost either
way: the ledger is committed annotation by annotation.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from alband.demo import run_demo

    if args.seeds < 1:
        raise _usage("--seeds must be >= 1")
    if args.rounds < 1:
        raise _usage("--rounds must be >= 1")
    run_demo(Path(args.out), seeds=args.seeds, rounds=args.rounds, quiet=args.quiet)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from alband.config import load_config
    from alband.runner import start_run

    config = load_config(args.config)
    events = start_run(config, args.out, quiet=args.quiet)
    _print_summary(args.out, events)
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from alband.runner import resume_run

    events = resume_run(args.run_dir, quiet=args.quiet)
    _print_summary(args.run_dir, events)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from alband.report import report

    print(report([Path(p) for p in args.run_dirs], as_json=args.json, plot=args.plot))
    return 0


def _print_summary(run_dir, events) -> None:
    if not events:
        print(f"{run_dir}: nothing to do")
        return
    last = events[-1]
    bought = sum(len(e.bought) for e in events)
    reused = sum(e.reused for e in events)
    print(
        f"{run_dir}: {last.round} rounds, {last.n_labeled} labels, ${last.spent_usd:.6f} spent, "
        f"test accuracy {last.test_accuracy:.4f}; bought {bought} annotations now"
        + (f", {reused} taken from the ledger" if reused else "")
        + f"; stopped: {last.stop_reason}"
    )


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    from alband.cli.simulate import DEFAULT_SEEDS

    parser = argparse.ArgumentParser(
        prog="alband",
        description="Active learning as sequential decision making, under a real dollar budget.",
    )
    parser.add_argument("--version", action="version", version=f"alband {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="random vs entropy sampling on BBC News with three priced annotators")
    demo.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    demo.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                      help=f"episodes per policy and annotator (default: {DEFAULT_SEEDS}, as simulate)")
    demo.add_argument("--rounds", type=int, default=15, help="query rounds of 10 labels (default: 15)")
    demo.add_argument("--quiet", action="store_true", help="print nothing but errors")
    demo.set_defaults(func=_cmd_demo)

    run = sub.add_parser("run", help="run the loop of a config file into a new run directory (a human "
                         "annotator or pair judge answers at this terminal)")
    run.add_argument("config", help="CONFIG.toml (see README, 'Config reference')")
    run.add_argument("--out", required=True, help="run directory to create")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser("resume", help="continue a killed or quit run from its ledger (nothing bought twice)")
    resume.add_argument("run_dir")
    resume.add_argument("--quiet", action="store_true", help="no progress bar")
    resume.set_defaults(func=_cmd_resume)

    report = sub.add_parser("report", help="summarise run directories (table, JSON, plot)")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.add_argument("--plot", help="also write a PNG of accuracy vs dollars for the runs")
    report.set_defaults(func=_cmd_report)

    _add_optional_commands(sub)
    return parser


def _add_optional_commands(sub) -> None:
    """The commands whose options live with them: ``simulate``, ``bench ...``, ``route replay``, ``llm ...``."""
    from alband.cli import bench, export, listing, llm, route, simulate

    listing.register(sub)
    simulate.register(sub)
    bench.register(sub)
    route.register(sub)
    export.register(sub)
    llm.register(sub)
    from alband.sweep.cli import register as register_sweep

    register_sweep(sub)


def _version() -> str:
    from alband import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    from alband.errors import AlbandError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "rest"):  # only pass-through commands take options of their own
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = unknown + list(args.rest)
    try:
        from alband.jax_cache import enable_compilation_cache

        enable_compilation_cache()  # cheap: jax loads anyway for every command that compiles
        return int(args.func(args) or 0)
    except (AlbandError, _UsageError) as err:
        print(f"alband: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        hint = f" (continue with: alband resume {args.run_dir if hasattr(args, 'run_dir') else args.out})" if (
            getattr(args, "command", "") in {"run", "resume"}) else ""
        print(f"alband: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as err:  # an internal error still gets one line, not a bare traceback
        if os.environ.get("ALBAND_DEBUG"):
            raise
        print(f"alband: internal error: {type(err).__name__}: {err} (set ALBAND_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
