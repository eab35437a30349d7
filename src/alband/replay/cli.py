"""``alband route replay``: replay every router over an outcome matrix and print a JSON report.

Usage (the CLI wires ``alband route replay`` to :func:`replay_main`)::

    replay --data WIDE.csv --items ITEMS.csv --budget USD [--seeds N] [--json]
           [--embeddings E.npy --ids IDS.txt] [--human-price USD] [--plot PNG]
           [--out REPORT.json] [--auditor NAME] [--audit-rate Q] [--audit-share S] [--panel-share P]
           [--cascade-target A] [--feature-dim D] [--routers r1,r2,...]
           [--apgr-points M] [--frontier-points F] [--keep-contaminated] [--quiet]

Without ``--json`` a short table is printed instead of the JSON. Bad input
raises :class:`alband.errors.AlbandError` (the caller prints it and exits 2).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

from alband.errors import AlbandError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits; a library function raises instead
        raise AlbandError(f"route replay: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="alband route replay", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="wide.csv outcome matrix")
    p.add_argument("--items", required=True, help="items.csv (item_id, gold/gold_code, text/prompt)")
    p.add_argument("--budget", required=True, type=float, help="dollar budget for the stream")
    p.add_argument("--seeds", type=int, default=5, help="random stream orders (default 5)")
    p.add_argument("--embeddings", help="item embeddings (.npy, one row per id in --ids)")
    p.add_argument("--ids", help="ids of the embedding rows, one per line")
    p.add_argument("--human-price", type=float, help="add a 'human' arm (the gold label) at this $/label")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--plot", help="write the accuracy-vs-cost frontier PNG here")
    p.add_argument("--out", "--output", dest="output", metavar="REPORT.json",
                   help="also write the JSON report to this file (--output: the former spelling)")
    p.add_argument("--auditor", help="arm taken as truth for audits (default: human if present, else strongest)")
    p.add_argument("--audit-rate", type=float, default=0.1,
                   help="largest audit probability per item of the learning routers (default 0.1)")
    p.add_argument("--audit-share", type=float, default=0.2,
                   help="largest expected share of the per-item pace spent on audits (default 0.2)")
    p.add_argument("--cascade-target", type=float, default=None,
                   help="accuracy required of answers the cascade accepts (default: 0.95 x the strongest "
                        "model's accuracy with a human auditor, 0.95 agreement with a model auditor)")
    p.add_argument("--panel-share", type=float, default=0.1,
                   help="arms quoted at most this share of the auditor's price join each audit (default 0.1)")
    p.add_argument("--feature-dim", type=int, default=32,
                   help="dimension of the contextual routers' item features (default 32)")
    p.add_argument("--apgr-points", type=int, default=11,
                   help="budgets on the APGR grid, weak to strong full-stream cost (default 11)")
    p.add_argument("--frontier-points", type=int, default=10,
                   help="extra log-spaced budgets for the frontier and the cost to 95%% (default 10)")
    p.add_argument("--routers", help="comma-separated registered router names (alband.routing.registry; "
                                     "default: random,cascade,contextual_ts,bts,ucb_bv,oracle)")
    p.add_argument("--quiet", action="store_true", help="no 'compiling ...' line and no progress bar")
    p.add_argument("--keep-contaminated", action="store_true",
                   help="keep rows with routellm_contaminated == 1 (dropped by default, as in RouteLLM)")
    return p


def _validate(args) -> None:
    """Check every option and input path before anything is loaded (loading takes seconds to minutes)."""
    if (args.embeddings is None) != (args.ids is None):
        raise AlbandError("route replay: --embeddings and --ids go together")
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise AlbandError(f"route replay: --budget must be a positive number of dollars, got {args.budget:g}")
    if args.human_price is not None and not (math.isfinite(args.human_price) and args.human_price > 0):
        raise AlbandError(f"route replay: --human-price must be a positive number of dollars, "
                          f"got {args.human_price:g}")
    for option, value in (("--data", args.data), ("--items", args.items), ("--embeddings", args.embeddings),
                          ("--ids", args.ids)):
        if value is not None and not Path(value).is_file():
            raise AlbandError(f"route replay: {option} {value}: "
                              + ("is a folder, not a file" if Path(value).is_dir() else "file not found"))
    for option, value in (("--plot", args.plot), ("--out", args.output)):
        if value is not None and not Path(value).parent.is_dir():
            raise AlbandError(f"route replay: {option} {value}: folder {Path(value).parent} does not exist")
    if args.seeds < 1:
        raise AlbandError(f"route replay: --seeds must be >= 1, got {args.seeds}")
    if not (0 <= args.audit_rate <= 1):
        raise AlbandError(f"route replay: --audit-rate must be in [0, 1], got {args.audit_rate}")
    if not (0 <= args.audit_share <= 1):
        raise AlbandError(f"route replay: --audit-share must be in [0, 1], got {args.audit_share}")
    if not (0 <= args.panel_share <= 1):
        raise AlbandError(f"route replay: --panel-share must be in [0, 1], got {args.panel_share}")
    if args.cascade_target is not None and not (0 < args.cascade_target <= 1):
        raise AlbandError(f"route replay: --cascade-target must be in (0, 1], got {args.cascade_target}")
    if args.feature_dim < 1:
        raise AlbandError(f"route replay: --feature-dim must be >= 1, got {args.feature_dim}")
    if args.apgr_points < 2:
        raise AlbandError(f"route replay: --apgr-points must be >= 2, got {args.apgr_points}")
    if args.frontier_points < 0:
        raise AlbandError(f"route replay: --frontier-points must be >= 0, got {args.frontier_points}")


def run_from_args(args) -> dict:
    """Load, featurise, replay, report (and plot): the work behind :func:`replay_main`."""
    from alband.replay.data import load_embeddings, load_outcome_matrix
    from alband.replay.features import item_features
    from alband.replay.report import build_report
    from alband.plugins import ROUTERS, resolve_plugin
    from alband.replay.runner import LEARNED_ROUTERS, ReplaySettings, run_replay

    _validate(args)
    routers = tuple(r.strip() for r in args.routers.split(",") if r.strip()) if args.routers else LEARNED_ROUTERS
    try:
        routers = tuple(resolve_plugin(r, ROUTERS) for r in routers)  # a plug-in router is imported here
    except AlbandError as err:
        raise AlbandError(f"route replay: --routers: {err}") from None
    if "fixed" in routers:  # before loading, and before any progress line
        raise AlbandError("router 'fixed' is replayed for every arm already (fixed:<arm>); leave it out of --routers")
    matrix = load_outcome_matrix(args.data, args.items, human_price_usd=args.human_price,
                                 drop_contaminated=not args.keep_contaminated)
    emb = load_embeddings(args.embeddings, args.ids, matrix.item_ids) if args.embeddings else None
    features, how = item_features(matrix.texts, matrix.tasks, emb, dim=args.feature_dim)
    settings = ReplaySettings(seeds=args.seeds, auditor=args.auditor, audit_rate=args.audit_rate,
                              audit_share=args.audit_share, panel_share=args.panel_share,
                              cascade_target=args.cascade_target,
                              apgr_points=args.apgr_points, frontier_points=args.frontier_points,
                              routers=routers)
    with _progress_bar(len(matrix.arms) + len(routers), quiet=getattr(args, "quiet", True)) as step:
        result = run_replay(matrix, features, args.budget, settings, feature_description=how, progress=step)
    report = build_report(result)
    if args.plot:
        from alband.replay.plot import plot_frontier

        plot_frontier(report, args.plot)
        report["plot"] = str(args.plot)
    if args.output:
        out = Path(args.output)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


@contextmanager
def _progress_bar(total: int, *, quiet: bool):
    """A "compiling and replaying ..." line, then a bar advanced once per router (each compiles its own program)."""
    from tqdm.auto import tqdm

    if not quiet:
        print(f"route replay: compiling and replaying {total} routers (each compiles once) ...", file=sys.stderr,
              flush=True)
    with tqdm(total=total, unit="router", desc="route replay", disable=quiet, file=sys.stderr, leave=False) as bar:
        def step(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update(1)

        yield step


def format_table(report: dict) -> str:
    lines = [f"budget ${report['budget_usd']:.4g}, {report['data']['n_items']} items, "
             f"{report['seeds']} seeds; strongest {report['strongest']['name']} "
             f"acc {report['strongest']['accuracy']:.3f} at ${report['strongest']['cost_usd']:.4g}",
             f"{'router':<18}{'accuracy':>9}{'stream':>8}{'cost $':>11}{'labeled':>9}{'APGR':>7}{'$ to 95%':>10}"]
    for r in report["routers"]:
        def f(x, spec):
            return format(x, spec) if x is not None else "-"
        lines.append(f"{r['name']:<18}{f(r['accuracy'], '9.3f')}{f(r['stream_accuracy'], '8.3f')}"
                     f"{f(r['cost_usd'], '11.4g')}{f(r['n_labeled'], '9.0f')}{f(r['apgr'], '7.2f')}"
                     f"{f(r['cost_to_95pct_strongest'], '10.4g')}")
    return "\n".join(lines)


def replay_main(args: list[str]) -> int:
    """Parse ``args`` (without the program name), run the replay, print the report; returns 0.

    Raises :class:`AlbandError` on bad input (missing columns, unknown files,
    mismatched ids, bad options).
    """
    parsed = build_parser().parse_args(args)
    report = run_from_args(parsed)
    if parsed.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(report))
    return 0
