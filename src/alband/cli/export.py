"""``alband export RUN_DIR --format jsonl|csv|dpo``: a run's paid annotations, or DPO rows of its judged pairs.

See :mod:`alband.export` for what each format holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    """Add the ``export`` command to the ``alband`` subcommands ``sub``."""
    parser = sub.add_parser("export", help="write a run's settled annotations (jsonl, csv) or DPO pairs (dpo)")
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--format", dest="fmt", choices=("jsonl", "csv", "dpo"), default="jsonl",
                        help="jsonl or csv: every settled annotation; dpo: TRL prompt/chosen/rejected rows and a "
                             "reward-model pairs file (default: jsonl)")
    parser.add_argument("--out", help="output file (jsonl, csv; default RUN_DIR/annotations.FORMAT) or folder "
                                      "(dpo; default RUN_DIR/export)")
    parser.add_argument("--no-text", action="store_true",
                        help="leave the text column empty (does not reload the run's data; jsonl and csv)")
    parser.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from alband.export import export_annotations, export_dpo

    run_dir = Path(args.run_dir)
    if args.fmt == "dpo":
        result = export_dpo(run_dir, Path(args.out) if args.out else run_dir / "export")
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped_reasons.items()))
        print(f"{result.dpo_path}: {result.written} pairs; {result.reward_pairs_path}; "
              f"skipped {result.skipped}" + (f" ({reasons})" if reasons else ""))
        return 0
    out = Path(args.out) if args.out else run_dir / f"annotations.{args.fmt}"
    n = export_annotations(run_dir, out, args.fmt, texts=not args.no_text)
    print(f"{out}: {n} settled annotations")
    return 0
