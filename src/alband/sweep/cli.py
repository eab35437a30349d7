"""``alband sweep SPEC.toml``, ``alband sweep report DIR`` and ``alband sweep bench`` (shell).

The sub-command parses its own arguments, so the sweep room owns its options;
``register`` is the one hook in :mod:`alband.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import sys

from alband.errors import AlbandError

EXIT_FAILED_CELLS = 1


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


def sweep_main(argv: list[str]) -> int:
    """Dispatch ``alband sweep ...``: ``report DIR``, ``bench``, or a spec to run."""
    if argv and argv[0] == "report":
        return report_main(argv[1:])
    if argv and argv[0] == "bench":
        from alband.sweep.benchmark import bench_main

        return bench_main(argv[1:])
    return run_main(argv)


def run_main(argv: list[str]) -> int:
    from alband.sweep.local_backend import LocalBackend
    from alband.sweep.ray_backend import RayBackend, ray_requested
    from alband.sweep.run import run_sweep
    from alband.sweep.spec import load_spec

    p = _RaisingParser(prog="alband sweep",
                       description="Run a grid of simulate calls (one per cell, every seed inside it); cells "
                                   "already stored are skipped. Also: alband sweep report DIR, alband sweep bench.")
    p.add_argument("spec", help="SPEC.toml (README, 'Sweeps')")
    p.add_argument("--out", help="results folder (default: the spec's out, else <spec stem>.sweep beside it)")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1: run in this process)")
    p.add_argument("--ray", action="store_true", help="run cells as Ray tasks (also when RAY_ADDRESS is set)")
    p.add_argument("--retries", type=int, default=2, help="Ray: retries of a task whose worker died (default 2)")
    p.add_argument("--dry-run", action="store_true", help="print the cells and whether each is stored; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.retries < 0:
        raise AlbandError("alband sweep: --jobs must be >= 1 and --retries >= 0")
    spec = load_spec(args.spec, out=args.out)
    backend = RayBackend(retries=args.retries) if ray_requested(args.ray) else LocalBackend(args.jobs)
    outcome = run_sweep(spec, backend, dry_run=args.dry_run, progress=not (args.quiet or args.dry_run))
    if args.dry_run:
        return 0
    print(f"{spec.out}: {outcome.cells} cells; {outcome.skipped} already stored, {outcome.ran} run now "
          f"in {outcome.seconds:.1f} s, {len(outcome.failed)} failed")
    if outcome.failed:
        for row in outcome.failed:
            print(f"alband sweep: cell '{row['name']}' ({row['cell']}) failed: "
                  f"{row['error']['type']}: {row['error']['message']}", file=sys.stderr)
        print(f"alband sweep: {len(outcome.failed)} cells failed; their rows hold the errors and the next "
              f"'alband sweep {args.spec}' runs them again", file=sys.stderr)
        return EXIT_FAILED_CELLS
    return 0


def report_main(argv: list[str]) -> int:
    from alband.sweep.report import format_report, plot_report, sweep_report

    p = _RaisingParser(prog="alband sweep report",
                       description="Tables (labels and dollars to a target accuracy, AUC, final accuracy, stop "
                                   "regret) with paired intervals against a baseline, and plots, from stored rows.")
    p.add_argument("dir", help="the sweep's results folder")
    p.add_argument("--baseline", help="AXIS=VALUE: compare each cell with the cell that has VALUE on AXIS and the "
                                      "same other values (default: the spec's [report] baseline)")
    p.add_argument("--target", type=float, help="target test accuracy (default: the spec's [report] target, else "
                                                "95%% of the best final mean accuracy in the cell's panel)")
    p.add_argument("--rule", help="stopping rule whose regret is reported (default: the config's [stopping] rule, "
                                  "else stabilizing_predictions)")
    p.add_argument("--panel", help="axis with one plot panel per value (default: the first axis setting data.*)")
    p.add_argument("--plot", help="write accuracy against labels and against dollars to this PNG")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    report = sweep_report(args.dir, baseline=args.baseline, target=args.target, rule=args.rule, panel=args.panel)
    print(json.dumps(report, indent=2, default=float) if args.json else format_report(report))
    if args.plot:
        plot_report(args.dir, report, args.plot)
    return 0


def register(sub) -> None:
    """Add ``sweep`` to the ``alband`` parser."""
    sweep = sub.add_parser("sweep", help="grids of simulate calls: resumable, local processes or Ray; "
                                         "'sweep report DIR' for tables and plots", add_help=False)
    sweep.add_argument("rest", nargs=argparse.REMAINDER)
    sweep.set_defaults(func=lambda a: sweep_main(a.rest))


__all__ = ["register", "sweep_main"]
