"""``alband bench design | acquisition | embed | learners | preference | simulate``: the benchmarks, each printing its figures and the machine.

Each benchmark parses its own arguments (``argparse.REMAINDER``), so
``alband bench design --help`` shows its options; the code they time lives in
:mod:`alband.benchmarks`.
"""

from __future__ import annotations

import argparse
import json

from alband.cli.progress import stage_bar
from alband.errors import AlbandError


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


def _bench_design(argv: list[str]) -> int:
    from alband.benchmarks.design import bench_design

    p = _RaisingParser(prog="alband bench design",
                       description="Frank-Wolfe D/G-optimal design vs cvxpy (Clarabel): seconds, gap, certificate.")
    p.add_argument("--n", type=int, action="append", help="pool size (repeatable; default 1000 5000 20000)")
    p.add_argument("--d", type=int, action="append", help="dimension (repeatable; default 16 64)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per size; the median is reported (default 5)")
    p.add_argument("--eps", type=float, default=1e-3, help="certificate: max leverage <= d (1 + eps) (default 1e-3)")
    p.add_argument("--no-cvxpy", action="store_true", help="skip the cvxpy reference")
    p.add_argument("--cvxpy-timeout", type=float, default=None,
                   help="wall-clock limit of each cvxpy run in seconds (default 600); past it the speedup is a lower bound")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no stage lines and no progress bar")
    args = p.parse_args(argv)
    timeout = {} if args.cvxpy_timeout is None else {"cvxpy_timeout_seconds": args.cvxpy_timeout}
    sizes = [(n, d) for n in (args.n or [1000, 5000, 20000]) for d in (args.d or [16, 64])]
    if any(n < 2 or d < 1 for n, d in sizes) or args.repeats < 1:
        raise AlbandError("bench design: --n must be >= 2, --d >= 1 and --repeats >= 1")
    if any(n < d for n, d in sizes):
        raise AlbandError("bench design: every --n must be at least every --d (a nonsingular design)")
    if args.cvxpy_timeout is not None and not args.cvxpy_timeout > 0:  # checked before any progress line
        raise AlbandError(f"bench design: --cvxpy-timeout: cvxpy_timeout_seconds must be a number > 0, "
                          f"got {args.cvxpy_timeout!r}")
    results = []
    with stage_bar("bench design", len(sizes), quiet=args.quiet, unit="size") as step:
        for n, d in sizes:
            step(f"n={n} d={d}: compiling, then {args.repeats} timed runs")
            results.append(bench_design(n, d, repeats=args.repeats, eps=args.eps, with_cvxpy=not args.no_cvxpy,
                                        **timeout))
    _emit({"benchmark": "design", "results": results}, args.json)
    return 0


def _bench_acquisition(argv: list[str]) -> int:
    from alband.benchmarks.acquisition import bench_acquisition
    from alband.benchmarks.bandits import bench_linucb_widths

    p = _RaisingParser(prog="alband bench acquisition",
                       description="Pool scoring vs the read roof; LinUCB widths (rank-1 vs full); "
                                   "BADGE, coreset and G-design batches; peers when the bench extra is installed.")
    p.add_argument("--n", type=int, action="append", help="pool size (repeatable; default 100000 1000000)")
    p.add_argument("--d", type=int, default=384, help="embedding dimension (default 384)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; medians are reported (default 5)")
    p.add_argument("--batch", type=int, default=100, help="batch size of the diversity policies (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no stage lines and no progress bar")
    args = p.parse_args(argv)
    sizes = args.n or [100_000, 1_000_000]
    if any(n < args.batch for n in sizes) or args.d < 1 or args.repeats < 1:
        raise AlbandError("bench acquisition: need --n >= --batch, --d >= 1, --repeats >= 1")
    results, widths = [], []
    with stage_bar("bench acquisition", 2 * len(sizes), quiet=args.quiet, unit="stage") as step:
        for n in sizes:
            step(f"n={n}: scoring and batches (compiling, then {args.repeats} timed runs)")
            results.append(bench_acquisition(n, args.d, repeats=args.repeats, batch=args.batch))
        for n in sizes:
            step(f"n={n}: LinUCB widths")
            widths.append(bench_linucb_widths(n, args.d, repeats=args.repeats))
    _emit({"benchmark": "acquisition", "results": results, "linucb_widths": widths}, args.json)
    return 0


def _emit(payload: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload, indent=2, default=float))
        return
    for row in payload["results"]:
        print("  ".join(f"{k}={v}" for k, v in row.items() if not isinstance(v, dict)))


def _bench_simulate(argv: list[str]) -> int:
    from alband.benchmarks.simulate import bench_simulate_main

    return bench_simulate_main(argv)


def _bench_embed(argv: list[str]) -> int:
    from alband.benchmarks.embed import bench_embed_main

    return bench_embed_main(argv)


def _bench_learners(argv: list[str]) -> int:
    from alband.benchmarks.learners import bench_learners_main

    return bench_learners_main(argv)


def _bench_preference(argv: list[str]) -> int:
    from alband.benchmarks.preference import preference_main

    return preference_main(argv)


_BENCHES = {
    "acquisition": (_bench_acquisition, "pool scoring vs the read roof, LinUCB widths, diversity batches"),
    "design": (_bench_design, "Frank-Wolfe D/G-optimal design vs cvxpy"),
    "embed": (_bench_embed, "text encoders' throughput (texts per second)"),
    "learners": (_bench_learners, "the JAX learner vs a scikit-learn estimator: seconds per round"),
    "preference": (_bench_preference, "preference learners, pair policies and designs"),
    "simulate": (_bench_simulate, "the jitted simulator vs the live loop (and modAL when installed)"),
}


def register(sub) -> None:
    """Add ``bench`` to the ``alband`` parser."""
    from alband.cli.dispatch import register_actions

    register_actions(sub, "bench", "benchmarks that print their figures and the machine (JSON with --json)",
                     _BENCHES)


__all__ = ["register"]
