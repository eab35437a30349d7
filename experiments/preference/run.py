"""Active preference learning on HH-RLHF pairs and a synthetic K-candidate world: every pair policy vs random.

Settings (``SETTINGS``):

* ``hh_rlhf``: the 2,307 HH-RLHF harmless test pairs of ``../shared/data``
  (MiniLM embeddings of prompt + response, ``[data] kind = "pairs"`` source
  ``hh_rlhf``), 20% of the prompts held out (461 pairs); the judge returns the
  human label (so the human labels' own noise is the noise), priced like a
  mid-size LLM judge from the pair's text ($3 / $15 per million input / output
  tokens, 200 prompt tokens, 20 output tokens); 20 random pairs, then 20
  rounds of 20.
* ``candidates``: a synthetic Plackett-Luce world (300 prompts, K = 4
  responses each, d = 16, ``||theta|| = 1.5``; every prompt's 6 pairs in the
  pool), the judge sampling from the world's Bradley-Terry model (beta = 1),
  $0.01 a pair; 20 random pairs, then 40 rounds of 20.

The reward model is the Bradley-Terry learner (L2 = 1, scikit-learn's C = 1)
in both. Per policy and seed (``--seeds``, paired: the same initial pairs and
the same judge answers for every policy of a seed): held-out pairwise accuracy
after every round, valid labels, dollars, from the project's simulator
(:mod:`study`: :func:`alband.simulate.simulate_many`, the rounds ``alband run``
runs). Measured:

* accuracy at fixed label counts and at fixed dollars, paired difference to
  random (mean, Student-t 95% interval, :func:`alband.stats.paired_interval`);
* pairs needed to first reach 95% of the full-data accuracy (the same learner
  on every pool pair's gold label); a seed that never reaches it counts the
  run's last label count plus one batch (censored; counted in the table);
  the issue's goal, half of random's pairs, is met when the paired interval
  of ``pairs(policy) - pairs(random) / 2`` lies below 0;
* the gated policy: the asking price of the pairs it pseudo-labelled, and the
  dollars random needs to reach the gated policy's final accuracy minus what
  the gated policy spent (dollars saved at equal accuracy).

Writes ``results/<setting>.json`` (per-seed curves, timings),
``results/summary.json``, ``results/tables.md`` and ``plots/*.png``. One
command reproduces everything::

    PYTHONPATH=src .venv/bin/python experiments/preference/run.py [--seeds 20] [--settings hh_rlhf candidates]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from study import BradleyTerry, full_data_accuracy, run_policy  # noqa: E402

from alband.costs.prices import Price  # noqa: E402
from alband.data.pair_spec import load_pair_task  # noqa: E402
from alband.simulate.judge_model import make_pair_judge  # noqa: E402
from alband.stats import mean_interval, paired_interval  # noqa: E402

SHARED = HERE.parents[2] / "shared" / "data"
POLICIES = [
    ("random_pairs", {}), ("pair_uncertainty", {}), ("pair_bald", {}), ("apo", {}), ("pair_d_design", {}),
    ("pair_g_design", {}), ("dope", {}), ("double_ts", {}), ("bal_pm", {}),
    ("gated", {"threshold": 2.0}), ("gated", {"threshold": 1.0}),
]
SETTINGS = {
    "hh_rlhf": dict(data={"kind": "pairs", "source": "hh_rlhf", "path": str(SHARED / "hh_rlhf_harmless_test")},
                    price=Price(3.0, 15.0, 0.0), judge=dict(prompt_tokens=200, output_tokens=20), margins=False,
                    n_initial=20, batch=20, rounds=20, label_points=(60, 120, 220, 420), dollar_points=(0.15, 0.3, 0.6)),
    "candidates": dict(data={"kind": "pairs", "source": "synthetic_candidates", "n_prompts": 300, "k": 4, "dims": 16,
                             "theta_norm": 1.5}, price=Price(0.0, 0.0, 0.01), judge=dict(beta=1.0), margins=True,
                       n_initial=20, batch=20, rounds=40, label_points=(60, 120, 220, 420, 820),
                       dollar_points=(0.6, 1.2, 2.2, 4.2, 8.2)),
}


def label(name: str, options: dict) -> str:
    return name + "".join(f"({k}={v})" for k, v in options.items())


def build_data(setting: dict):
    """The task's episode arrays (pool, gold, held-out pairs, PairAux, true margins) and the judge."""
    task = load_pair_task(setting["data"], base_dir=HERE)
    judge = make_pair_judge(setting["price"], **setting["judge"])
    data = task.episode_data()
    if not setting["margins"]:
        data = data._replace(true_margin=None)
    return data, judge


def at_labels(curve: dict, n: int) -> float:
    """Accuracy after the first round with at least ``n`` valid labels (NaN if never)."""
    hits = np.flatnonzero(np.asarray(curve["n_labels"]) >= n)
    return float(curve["accuracy"][hits[0]]) if hits.size else float("nan")


def at_dollars(curve: dict, usd: float) -> float:
    """Accuracy of the last round whose spend is at most ``usd`` (NaN if the first already spent more)."""
    hits = np.flatnonzero(np.asarray(curve["dollars"]) <= usd + 1e-12)
    return float(curve["accuracy"][hits[-1]]) if hits.size else float("nan")


def first_reaching(curve: dict, target: float, axis: str, batch: int) -> tuple[float, bool]:
    """``axis`` (n_labels or dollars) at the first round reaching ``target``; censored: last + one batch."""
    acc = np.asarray(curve["accuracy"])
    hits = np.flatnonzero(acc >= target)
    values = np.asarray(curve[axis], float)
    if hits.size:
        return float(values[hits[0]]), False
    step = batch if axis == "n_labels" else (values[-1] - values[0]) / max(len(values) - 1, 1)
    return float(values[-1] + step), True


def interval_json(iv) -> dict:
    return {"mean": iv.estimate, "low": iv.low, "high": iv.high, "n": iv.n}


def analyse(name: str, setting: dict, result: dict) -> dict:
    curves = result["curves"]
    base = curves["random_pairs"]
    target = 0.95 * result["full_data_accuracy"]
    summary = {"full_data_accuracy": result["full_data_accuracy"], "target": target, "policies": {}}
    random_pairs_needed = [first_reaching(c, target, "n_labels", setting["batch"])[0] for c in base]
    for policy, seeds in curves.items():
        row: dict = {"seconds": result["seconds"][policy]}
        for n in setting["label_points"]:
            a = [at_labels(c, n) for c in seeds]
            row[f"acc@{n}"] = interval_json(mean_interval(a))
            row[f"diff@{n}"] = interval_json(paired_interval(a, [at_labels(c, n) for c in base]))
        for usd in setting["dollar_points"]:
            a = [at_dollars(c, usd) for c in seeds]
            row[f"acc@${usd}"] = interval_json(mean_interval(a))
            row[f"diff@${usd}"] = interval_json(paired_interval(a, [at_dollars(c, usd) for c in base]))
        reached = [first_reaching(c, target, "n_labels", setting["batch"]) for c in seeds]
        pairs = [r[0] for r in reached]
        row["pairs_to_target"] = interval_json(mean_interval(pairs))
        row["censored"] = int(sum(r[1] for r in reached))
        row["pairs_minus_random"] = interval_json(paired_interval(pairs, random_pairs_needed))
        half = paired_interval(pairs, [0.5 * p for p in random_pairs_needed])
        row["pairs_minus_half_random"] = interval_json(half)
        row["half_of_random_met"] = bool(half.high < 0)
        if policy.startswith("gated"):
            final_acc = [c["accuracy"][-1] for c in seeds]
            spent = [c["dollars"][-1] for c in seeds]
            random_dollars = [first_reaching(c, a, "dollars", setting["batch"]) for c, a in zip(base, final_acc)]
            row["dollars_spent"] = interval_json(mean_interval(spent))
            row["random_dollars_to_same_accuracy"] = interval_json(mean_interval([r[0] for r in random_dollars]))
            row["random_censored"] = int(sum(r[1] for r in random_dollars))
            row["dollars_saved_at_equal_accuracy"] = interval_json(
                paired_interval([r[0] for r in random_dollars], spent))
            row["asked_final"] = interval_json(mean_interval([c["n_asked"][-1] for c in seeds]))
            row["not_asked_final"] = interval_json(mean_interval(
                [setting["n_initial"] + setting["batch"] * setting["rounds"] - c["n_asked"][-1] for c in seeds]))
        summary["policies"][policy] = row
    return summary


def fmt(iv: dict, digits: int = 3) -> str:
    if iv["mean"] is None or not np.isfinite(iv["mean"]):
        return "n/a"
    return f"{iv['mean']:+.{digits}f} [{iv['low']:+.{digits}f}, {iv['high']:+.{digits}f}]"


def tables(summaries: dict, settings: dict) -> str:
    lines = []
    for name, summary in summaries.items():
        setting = settings[name]
        lines += [f"### {name}", "",
                  f"Full-data accuracy {summary['full_data_accuracy']:.4f}; target (95%) {summary['target']:.4f}.", "",
                  "Held-out accuracy minus random's, paired by seed (mean [95% interval]), at valid labels:", "",
                  "| policy | " + " | ".join(f"{n} pairs" for n in setting["label_points"]) + " |",
                  "|---|" + "---|" * len(setting["label_points"])]
        for policy, row in summary["policies"].items():
            lines.append(f"| {policy} | " + " | ".join(fmt(row[f"diff@{n}"]) for n in setting["label_points"]) + " |")
        lines += ["", "At dollars spent:", "",
                  "| policy | " + " | ".join(f"${d}" for d in setting["dollar_points"]) + " |",
                  "|---|" + "---|" * len(setting["dollar_points"])]
        for policy, row in summary["policies"].items():
            lines.append(f"| {policy} | " + " | ".join(fmt(row[f"diff@${d}"]) for d in setting["dollar_points"]) + " |")
        lines += ["", "Pairs to reach the target (censored seeds count the last label count + one batch):", "",
                  "| policy | pairs (mean [95%]) | censored | minus random | minus half of random | half met |",
                  "|---|---|---|---|---|---|"]
        for policy, row in summary["policies"].items():
            p = row["pairs_to_target"]
            lines.append(f"| {policy} | {p['mean']:.0f} [{p['low']:.0f}, {p['high']:.0f}] | {row['censored']} | "
                         f"{fmt(row['pairs_minus_random'], 0)} | {fmt(row['pairs_minus_half_random'], 0)} | "
                         f"{'yes' if row['half_of_random_met'] else 'no'} |")
        gated = {k: v for k, v in summary["policies"].items() if k.startswith("gated")}
        if gated:
            lines += ["", "Gated querying: dollars at the end, and what random spends to reach the same accuracy:", "",
                      "| policy | pairs asked | slots left empty | spent $ | random $ to same accuracy (censored) | "
                      "saved $ at equal accuracy |", "|---|---|---|---|---|---|"]
            for policy, row in gated.items():
                lines.append(f"| {policy} | {row['asked_final']['mean']:.0f} | {row['not_asked_final']['mean']:.0f} | "
                             f"{row['dollars_spent']['mean']:.3f} | {row['random_dollars_to_same_accuracy']['mean']:.3f} "
                             f"({row['random_censored']}) | {fmt(row['dollars_saved_at_equal_accuracy'])} |")
        lines.append("")
    return "\n".join(lines)


def plot(name: str, result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for policy, seeds in result["curves"].items():
        acc = np.mean([c["accuracy"] for c in seeds], axis=0)
        n = np.mean([c["n_labels"] for c in seeds], axis=0)
        usd = np.mean([c["dollars"] for c in seeds], axis=0)
        style = dict(lw=2.5, color="k") if policy == "random_pairs" else dict(lw=1.2)
        axes[0].plot(n, acc, label=policy, **style)
        axes[1].plot(usd, acc, label=policy, **style)
    for ax, xlabel in zip(axes, ("valid judged pairs", "dollars")):
        ax.axhline(0.95 * result["full_data_accuracy"], ls=":", color="grey")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("held-out pairwise accuracy")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{name}: mean of {len(result['curves']['random_pairs'])} seeds (dotted: 95% of full data)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--report-only", action="store_true", help="redo tables and plots from results/")
    args = parser.parse_args(argv)
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    summaries = {}
    for name, setting in SETTINGS.items():
        path = results_dir / f"{name}.json"
        if args.report_only or name not in args.settings:
            if not path.exists():
                continue
            result = json.loads(path.read_text())
        else:
            data, judge = build_data(setting)
            result = {"full_data_accuracy": full_data_accuracy(data, BradleyTerry(l2=1.0)), "seeds": args.seeds,
                      "curves": {}, "seconds": {}}
            for policy, options in POLICIES:
                curves, seconds = run_policy(data, judge, policy, options, range(args.seeds), l2=1.0,
                                             n_initial=setting["n_initial"], batch=setting["batch"],
                                             rounds=setting["rounds"])
                key = label(policy, options)
                result["curves"][key] = [{k: v.tolist() for k, v in c._asdict().items()} for c in curves]
                result["seconds"][key] = seconds
                print(f"{name}: {key}: {seconds:.1f} s, final accuracy "
                      f"{np.mean([c.accuracy[-1] for c in curves]):.4f}", flush=True)
            path.write_text(json.dumps(result))
        summaries[name] = analyse(name, setting, result)
        plot(name, result, HERE / "plots" / f"{name}.png")
    (results_dir / "summary.json").write_text(json.dumps(summaries, indent=1))
    (results_dir / "tables.md").write_text(tables(summaries, SETTINGS))
    print((results_dir / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
