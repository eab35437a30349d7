"""Escalation study: coverage and agreement of certified trust-or-escalate thresholds on real LLM answers.

Reproduces the table of ``README.md`` beside this file::

    .venv/bin/python experiments/escalation/run.py              # 50 seeds, a few seconds
    .venv/bin/python experiments/escalation/run.py --seeds 20

Data: ``router/llms_for_css`` (Ziems et al. 2024): 7,863 items of 17 computational social
science classification tasks, each answered zero-shot by 13 LLMs, with the human (gold)
annotation. The strongest annotator is the human; "agreement" is agreement with the human label.

* Cheap judge: ``flan-ul2``. Its confidence on an item is the agreement over variants: the
  share of a fixed panel of six FLAN models (``flan-t5-small`` ... ``flan-t5-xxl``, ``flan-ul2``)
  whose answer equals ``flan-ul2``'s (an unavailable answer counts as disagreeing). The panel
  is what the cheap stage pays for (its six answers), so its price is the panel's cost.
* ``chatgpt`` (gpt-3.5-turbo) as the judge, with the same panel agreement as its confidence
  (it pays the panel and its own answer), and a two-stage cascade ``flan-ul2`` then ``chatgpt``
  then the human (one threshold per judge, each certified at ``delta / 2``).
* The human costs ``--human-usd`` per label (default $0.10: the dataset has no human price).

Per seed, ``--calibration`` items (default 500) are drawn uniformly as the audited sample (the
human and the judges answer them); the thresholds are certified on them by fixed-sequence
testing (:mod:`alband.routing.escalation`, grid 0.99, 0.98, ..., 0) and applied to every other
item (the test items). Reported per (alpha, delta): coverage (share of test items the judges
keep), agreement of the kept labels with the human, agreement of all labels (kept, or the
human's), dollars per test item, and the share of seeds whose kept test items disagree with
the human at most alpha (the guarantee says at least 1 - delta up to the finite test set).
Intervals: Student-t over seeds for means (:func:`alband.stats.mean_interval`), Wilson for the
share of seeds (:func:`alband.stats.wilson_interval`), paired over seeds for differences
(:func:`alband.stats.paired_interval`). Outputs ``results/summary.md`` and ``results/escalation.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
SHARED = Path(os.environ.get("ALBAND_SHARED_DATA", PROJECT.parent / "shared" / "data"))
sys.path.insert(0, str(PROJECT / "src"))

from alband.routing.escalation import calibrate_cascade, default_grid, keeping_stage  # noqa: E402
from alband.stats import mean_interval, paired_interval, wilson_interval  # noqa: E402

PANEL = ("flan-t5-small", "flan-t5-base", "flan-t5-large", "flan-t5-xl", "flan-t5-xxl", "flan-ul2")
JUDGES = ("flan-ul2", "chatgpt")
LEVELS = ((0.1, 0.1), (0.2, 0.1), (0.3, 0.05), (0.3, 0.1), (0.4, 0.1))
#: (name, judge columns in JUDGES order): the cheap stages of each router, cheapest first.
ROUTES = (("flan-ul2 -> human", (0,)), ("chatgpt -> human", (1,)), ("flan-ul2 -> chatgpt -> human", (0, 1)))


def load(folder: Path):
    """``(answers, correct, cost)``: dicts model -> arrays over items (answers '' where unavailable)."""
    path = folder / "wide.csv"
    if not path.exists():
        sys.exit(f"{path}: not found (set ALBAND_SHARED_DATA to the shared data folder)")
    models = sorted(set(PANEL) | set(JUDGES))
    answers = {m: [] for m in models}
    correct = {m: [] for m in models}
    cost = {m: [] for m in models}
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            for m in models:
                try:
                    answers[m].append(row[f"{m}__answer"])
                    correct[m].append(row[f"{m}__correct"] == "1")
                    cost[m].append(float(row[f"{m}__cost_usd"] or 0.0))
                except KeyError as err:
                    print(f"{path}: line {line}: missing column {err}", file=sys.stderr)
                    sys.exit(2)
                except ValueError:
                    print(f"{path}: line {line}: field {m}__cost_usd is not a number", file=sys.stderr)
                    sys.exit(2)
    return ({m: np.array(v, object) for m, v in answers.items()}, {m: np.array(v) for m, v in correct.items()},
            {m: np.array(v) for m, v in cost.items()})


def panel_agreement(answers, judge: str) -> np.ndarray:
    """Share of the panel whose answer equals ``judge``'s (0 where the judge gave none)."""
    mine = answers[judge]
    votes = np.stack([(answers[m] == mine) & (answers[m] != "") for m in PANEL], 1)
    return np.where(mine != "", votes.mean(1), 0.0)


def run(seeds: int, n_cal: int, human_usd: float) -> dict:
    answers, correct, cost = load(SHARED / "router" / "llms_for_css")
    n = len(answers["flan-ul2"])
    conf = np.stack([panel_agreement(answers, j) for j in JUDGES], 1)
    agree = np.stack([correct[j] for j in JUDGES], 1)
    panel_usd = sum(cost[m] for m in PANEL)
    # dollars paid up to each judge of each route (the panel's answers, then each judge's own)
    judge_usd = {0: panel_usd, 1: panel_usd + cost["chatgpt"]}
    grid = default_grid(100)
    rows = {}

    def record(name, seed_values):
        rows.setdefault(name, []).append(seed_values)

    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        cal, test = order[:n_cal], order[n_cal:]
        record("always strong (human)", dict(coverage=0.0, kept_agreement=np.nan, agreement=1.0, usd=human_usd,
                                             held=True))
        record("always cheap (flan-ul2 + panel)", dict(
            coverage=1.0, kept_agreement=agree[test, 0].mean(), agreement=agree[test, 0].mean(),
            usd=panel_usd[test].mean(), held=False))
        for route, cols in ROUTES:
            stages = len(cols)
            stage_usd = np.stack([judge_usd[c] for c in cols], 1)
            stage_usd = np.maximum.accumulate(stage_usd, 1)  # later stages include what earlier ones paid
            for alpha, delta in LEVELS:
                thr = calibrate_cascade(conf[cal][:, cols], agree[cal][:, cols], alpha, delta, grid)
                stage = keeping_stage(conf[test][:, cols], thr)
                kept = stage < stages
                last = np.minimum(stage, stages - 1)
                kept_agree = agree[test][:, cols][kept, stage[kept]]
                labels_ok = np.where(kept, agree[test][:, cols][np.arange(len(test)), last], True)
                # each item pays the judges up to where it stops; escalated ones also the human
                paid = np.where(kept, stage_usd[test][np.arange(len(test)), last], stage_usd[test][:, -1] + human_usd)
                record(f"{route}, alpha {alpha}, delta {delta}", dict(
                    coverage=kept.mean(), kept_agreement=kept_agree.mean() if kept.any() else np.nan,
                    agreement=labels_ok.mean(), usd=paid.mean(),
                    held=bool(not kept.any() or 1 - kept_agree.mean() <= alpha),
                    thresholds=[float(t) for t in thr]))
    return dict(seeds=seeds, calibration=n_cal, items=n, human_usd=human_usd, rows=rows)


def table(result: dict) -> str:
    rows = result["rows"]
    cheap = rows["always cheap (flan-ul2 + panel)"]
    lines = ["| annotation | coverage | agreement of kept labels | agreement of all labels | $ per item | "
             "seeds with kept disagreement <= alpha | all-label agreement vs always cheap |",
             "|---|---|---|---|---|---|---|"]
    for name, seeds in rows.items():
        def iv(key, fmt="{:.3f}"):
            v = mean_interval([s[key] for s in seeds])
            if not np.isfinite(v.estimate):
                return "-"
            if not np.isfinite(v.low):
                return f"{fmt.format(v.estimate)} (one seed)"
            return f"{fmt.format(v.estimate)} [{fmt.format(v.low)}, {fmt.format(v.high)}]"
        held = "-"
        if not name.startswith("always"):
            w = wilson_interval(sum(s["held"] for s in seeds), len(seeds))
            held = f"{w.estimate:.2f} [{w.low:.2f}, {w.high:.2f}]"
        d = paired_interval([s["agreement"] for s in seeds], [s["agreement"] for s in cheap])
        diff = "-" if name.startswith("always cheap") else f"{d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
        lines.append(f"| {name} | {iv('coverage')} | {iv('kept_agreement')} | {iv('agreement')} | "
                     f"{iv('usd', '{:.4f}')} | {held} | {diff} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--calibration", type=int, default=500)
    parser.add_argument("--human-usd", type=float, default=0.10)
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.calibration < 1:
        print("--seeds must be >= 2 and --calibration >= 1", file=sys.stderr)
        return 2
    start = time.perf_counter()
    result = run(args.seeds, args.calibration, args.human_usd)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "escalation.json").write_text(json.dumps(result, indent=1, default=float))
    text = (f"{args.seeds} seeds, {args.calibration} audited calibration items per seed, "
            f"{result['items'] - args.calibration} test items, human ${args.human_usd}/label; 95% intervals.\n\n"
            + table(result) + "\n")
    (out / "summary.md").write_text(text)
    print(text)
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
