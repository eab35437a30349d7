"""Stopping under heterogeneous annotator costs: every rule, one simulator call per (dataset, mix).

For each dataset (AG News, TREC, Subj: MiniLM embeddings from ../shared/data),
each annotator mix (strong LLM only, human only, a 60/30/10 cheap-LLM /
strong-LLM / human mix) and ``--seeds`` seeds, one call of
:func:`alband.simulate.simulate_many` runs margin sampling for ``--rounds``
rounds of 10 labels. The mixes are price-blind share routers and the budget
never binds, so the purchases do not depend on prices: each episode is
re-priced (:func:`alband.simulate.repriced_spend`) for every human:strong-LLM
price ratio (10:1 .. 1000:1), and every stopping rule is evaluated under every
cost model (``m`` dollars per error x ``n`` future predictions) in one jitted
vmap (:func:`alband.stopping.outcome_statistics.ordered_outcomes`).

Writes to ``--out`` (default: ``results/`` beside this script): ``cells.json.gz``
(per cell: per-seed stopping rounds, labels, dollars, accuracy, regret, the
hindsight optimum), ``summary.json``, ``tables.md`` and the plots.

Run: ``.venv/bin/python experiments/stopping_study/run_study.py`` (about 15
minutes on 2 shared cores with the defaults).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"

DATASETS = ("ag_news", "trec", "subj")
MIXES = {  # shares of (cheap LLM, strong LLM, human)
    "strong-llm": (0.0, 1.0, 0.0),
    "human": (0.0, 0.0, 1.0),
    "mixed": (0.6, 0.3, 0.1),
}
RATIOS = (10.0, 30.0, 100.0, 300.0, 1000.0)  # human price per label / strong LLM's mean price per item
COSTS_PER_ERROR = (0.01, 0.1, 1.0)  # dollars per misclassification m
FUTURE_PREDICTIONS = (1e3, 1e4, 1e5)  # n
VALIDATION_ROWS = 500  # held out of the test rows (half of them when the test set is smaller than 1000)


def build_arms(n_classes: int, human_usd: float):
    from alband.costs.prices import Price
    from alband.simulate import make_simulated_annotator, stack_annotators

    cheap = make_simulated_annotator(n_classes, Price(0.15, 0.60), flip_rate=0.20, prompt_tokens=120,
                                     output_tokens=8, max_output_tokens=32)
    strong = make_simulated_annotator(n_classes, Price(3.0, 15.0), flip_rate=0.05, prompt_tokens=120,
                                      output_tokens=8, max_output_tokens=32)
    human = make_simulated_annotator(n_classes, Price(usd_per_label=human_usd), flip_rate=0.0)
    return stack_annotators([cheap, strong, human])


def study_rules(max_labels: float):
    from alband.stopping import default_rules

    return default_rules(max_labels_=max_labels)


def run(args) -> dict:
    import jax
    import jax.numpy as jnp

    from alband.benchmarks.simulate import load_folder_task
    from alband.models.softmax_regression import SoftmaxRegression
    from alband.policies import make_policy
    from alband.simulate import EpisodeConfig, annotation_cost_usd, episode_history, repriced_spend, share_router, simulate_many
    from alband.stopping.outcome_statistics import ordered_outcomes
    from alband.stopping import CostModel, validation_split

    grid_m, grid_n = np.meshgrid(COSTS_PER_ERROR, FUTURE_PREDICTIONS, indexing="ij")
    costs = CostModel(jnp.asarray(grid_m.ravel(), jnp.float32), jnp.asarray(grid_n.ravel(), jnp.float32))
    routers = {mix: share_router(shares, name=mix) for mix, shares in MIXES.items()}
    seeds = jnp.arange(args.seeds, dtype=jnp.uint32)
    cells, curves, timing = [], {}, {}
    for name in args.datasets:
        task = load_folder_task(DATA / name)
        n_val = min(VALIDATION_ROWS, len(task.y_test) // 2)
        held, kept = validation_split(len(task.y_test), n_val)
        data = task.episode_data()._replace(
            x_test=jnp.asarray(task.x_test[kept]), y_test=jnp.asarray(task.y_test[kept]),
            x_val=jnp.asarray(task.x_test[held]), y_val=jnp.asarray(task.y_test[held]),
        )
        learner = SoftmaxRegression(task.n_classes, 1.0, args.max_iter, args.tol)
        arms = build_arms(task.n_classes, 1.0)
        strong = jax.tree_util.tree_map(lambda leaf: leaf[1], arms)
        strong_mean = float(np.mean(np.asarray(annotation_cost_usd(strong, data.text_chars))))
        rules = study_rules(max_labels=float(args.max_labels))
        for mix, router in routers.items():
            config = EpisodeConfig(learner, make_policy(args.policy), args.initial, args.batch_size, args.rounds,
                                   stop_set_size=500, router=router)
            t0 = time.perf_counter()
            traces = jax.block_until_ready(simulate_many(config, data, arms, 1e9, seeds))
            seconds = time.perf_counter() - t0
            timing[f"{name}/{mix}"] = seconds
            print(f"{name:8s} {mix:10s} {args.seeds} seeds x {args.rounds} rounds: {seconds:6.1f} s "
                  f"(final accuracy {float(np.mean(traces.test_accuracy[:, -1])):.3f})", flush=True)
            assert not bool(np.any(traces.exhausted)), "the study's budget must never bind (re-pricing needs it)"
            acc = traces.test_accuracy
            curves[f"{name}/{mix}"] = {
                "labels": np.asarray(traces.n_labeled, np.float64).mean(0).tolist(),
                "accuracy_mean": np.asarray(acc, np.float64).mean(0).tolist(),
                "stop_confidence_mean": np.asarray(traces.stop_confidence, np.float64).mean(0).tolist(),
                "kappa_mean": [None] + np.asarray(traces.stop_kappa, np.float64)[:, 1:].mean(0).tolist(),
            }
            ratios = RATIOS if MIXES[mix][2] > 0 else (None,)
            for ratio in ratios:
                human_usd = (ratio or 1.0) * strong_mean
                priced = build_arms(task.n_classes, human_usd)
                spent = jax.vmap(lambda tr: repriced_spend(tr, data, priced, True))(traces)
                histories = episode_history(traces)._replace(spent_usd=spent)
                outcomes = ordered_outcomes(rules, histories, acc, costs)
                for g in range(len(grid_m.ravel())):
                    cells.append({
                        "dataset": name, "mix": mix, "ratio": ratio, "human_usd_per_label": human_usd if ratio else None,
                        "cost_per_error": float(grid_m.ravel()[g]), "n_future": float(grid_n.ravel()[g]),
                        "rules": {
                            rule: {field: np.asarray(getattr(out, field)[g]).astype(float).tolist()
                                   for field in ("round", "fired", "n_labeled", "spent_usd", "accuracy",
                                                 "total_cost", "optimal_round", "optimal_cost", "regret")}
                            for rule, out in outcomes.items()
                        },
                    })
        curves[name] = {"pool": task.n_items, "classes": task.n_classes, "test_rows": int(len(kept)),
                        "validation_rows": int(n_val), "strong_llm_mean_usd": strong_mean}
    return {"cells": cells, "curves": curves, "timing_seconds": timing}


# ----------------------------------------------------------------------------- analysis


def _rows(cells, keep=lambda c: True):
    """Per rule: regret, relative regret, stop labels and optimal labels pooled over the kept cells."""
    pooled: dict[str, dict[str, list]] = {}
    for cell in cells:
        if not keep(cell):
            continue
        for rule, v in cell["rules"].items():
            p = pooled.setdefault(rule, {"regret": [], "relative": [], "labels": [], "optimal_round": [],
                                         "round": [], "fired": [], "accuracy": [], "spent": []})
            regret = np.asarray(v["regret"])
            p["regret"].extend(regret)
            p["relative"].extend(regret / np.maximum(np.asarray(v["optimal_cost"]), 1e-12))
            p["labels"].extend(v["n_labeled"])
            p["round"].extend(v["round"])
            p["optimal_round"].extend(v["optimal_round"])
            p["fired"].extend(v["fired"])
            p["accuracy"].extend(v["accuracy"])
            p["spent"].extend(v["spent_usd"])
    return pooled


def median_ci(values, n_resamples: int = 9999) -> tuple[float, float, float]:
    """Median and its BCa bootstrap 95% interval (:func:`alband.stats.bootstrap_interval`)."""
    from alband.stats import bootstrap_interval

    interval = bootstrap_interval(values, np.median, n_resamples=n_resamples)
    return interval.estimate, interval.low, interval.high


def summarize_cells(cells) -> dict:

    def table(keep):
        out = {}
        for rule, p in _rows(cells, keep).items():
            rel = median_ci(p["relative"])
            reg = median_ci(p["regret"])
            out[rule] = {"n": len(p["regret"]), "relative_regret_median": rel[0], "relative_regret_ci95": rel[1:],
                         "regret_usd_median": reg[0], "regret_usd_ci95": reg[1:],
                         "regret_usd_mean": float(np.mean(p["regret"])),
                         "fired_share": float(np.mean(p["fired"])),
                         "stop_round_median": float(np.median(p["round"])),
                         "optimal_round_median": float(np.median(p["optimal_round"])),
                         "stop_minus_optimal_median": float(np.median(np.subtract(p["round"], p["optimal_round"])))}
        return out

    summary = {"overall": table(lambda c: True)}
    for name in sorted({c["dataset"] for c in cells}):
        summary[f"dataset={name}"] = table(lambda c, n=name: c["dataset"] == n)
    for mix in MIXES:
        summary[f"mix={mix}"] = table(lambda c, m=mix: c["mix"] == m)
    for ratio in RATIOS:
        summary[f"ratio={ratio:g}"] = table(lambda c, r=ratio: c["ratio"] == r)
    for m in COSTS_PER_ERROR:
        summary[f"m={m:g}"] = table(lambda c, v=m: c["cost_per_error"] == v)
    summary["head_to_head"] = head_to_head(cells, "cost_to_go", "stabilizing_predictions")
    return summary


def head_to_head(cells, a: str, b: str) -> dict:
    """Paired by (cell, seed): how often ``a`` has lower regret than ``b``, and the median paired difference."""

    out = {}
    groups = {"overall": lambda c: True, **{f"ratio={r:g}": (lambda c, r=r: c["ratio"] == r) for r in RATIOS},
              "mix=strong-llm": lambda c: c["mix"] == "strong-llm"}
    for label, keep in groups.items():
        diff, rel_a, rel_b = [], [], []
        for cell in cells:
            if not keep(cell):
                continue
            ra, rb = np.asarray(cell["rules"][a]["regret"]), np.asarray(cell["rules"][b]["regret"])
            opt = np.maximum(np.asarray(cell["rules"][a]["optimal_cost"]), 1e-12)
            diff.extend((ra - rb) / opt)
            rel_a.extend(ra / opt)
            rel_b.extend(rb / opt)
        if not diff:
            continue
        d = np.asarray(diff)
        med = median_ci(d)
        out[label] = {"pairs": int(d.size), "a_better_share": float(np.mean(d < 0)), "tie_share": float(np.mean(d == 0)),
                      "b_better_share": float(np.mean(d > 0)), "relative_regret_difference_median": med[0],
                      "relative_regret_difference_ci95": med[1:], "relative_regret_difference_mean": float(d.mean())}
    return {"a": a, "b": b, "groups": out}


def tables_markdown(summary: dict, meta: dict) -> str:
    lines = [f"Seeds per (dataset, mix): {meta['seeds']}; {meta['rounds']} rounds of {meta['batch_size']} labels after "
             f"{meta['initial']} random ones; policy {meta['policy']}; learner softmax regression (C=1, L-BFGS "
             f"max_iter={meta['max_iter']}, tol={meta['tol']}).", ""]

    def block(title, key):
        lines.append(f"### {title}")
        lines.append("")
        lines.append("| rule | median relative regret [95% CI] | median regret $ [95% CI] | mean regret $ | fired | "
                     "median stop round | median r* |")
        lines.append("|---|---|---|---|---|---|---|")
        rows = sorted(summary[key].items(), key=lambda kv: kv[1]["relative_regret_median"])
        for rule, r in rows:
            lo, hi = r["relative_regret_ci95"]
            dlo, dhi = r["regret_usd_ci95"]
            lines.append(f"| {rule} | {r['relative_regret_median']:.3f} [{lo:.3f}, {hi:.3f}] | "
                         f"{r['regret_usd_median']:.3f} [{dlo:.3f}, {dhi:.3f}] | {r['regret_usd_mean']:.2f} | "
                         f"{r['fired_share']:.0%} | {r['stop_round_median']:.0f} | {r['optimal_round_median']:.0f} |")
        lines.append("")

    block("All cells (datasets x mixes x price ratios x cost models)", "overall")
    for key in summary:
        if key.startswith(("dataset=", "mix=", "ratio=", "m=")):
            block(key, key)
    h = summary["head_to_head"]
    lines.append(f"### Head to head: {h['a']} minus {h['b']} (relative regret, paired by cell and seed)")
    lines.append("")
    lines.append(f"| cells | pairs | {h['a']} better | tie | {h['b']} better | median difference [95% CI] | mean difference |")
    lines.append("|---|---|---|---|---|---|---|")
    for label, g in h["groups"].items():
        lo, hi = g["relative_regret_difference_ci95"]
        lines.append(f"| {label} | {g['pairs']} | {g['a_better_share']:.0%} | {g['tie_share']:.0%} | "
                     f"{g['b_better_share']:.0%} | {g['relative_regret_difference_median']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                     f"{g['relative_regret_difference_mean']:+.3f} |")
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots


def plot_all(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["cells"]
    datasets = [d for d in DATASETS if any(c["dataset"] == d for c in cells)]
    rules = list(cells[0]["rules"])
    colours = {rule: plt.cm.tab10(k % 10) for k, rule in enumerate(rules)}
    written = []

    # 1. Where each rule stops vs the hindsight optimum, as the human:LLM price ratio grows (mixed mix, m=0.1, n=1e4).
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2), dpi=110, squeeze=False)
    for ax, name in zip(axes[0], datasets):
        sel = [c for c in cells if c["dataset"] == name and c["mix"] == "mixed" and c["cost_per_error"] == 0.1
               and c["n_future"] == 1e4]
        sel.sort(key=lambda c: c["ratio"])
        ratios = [c["ratio"] for c in sel]
        for rule in rules:
            med = [np.median(c["rules"][rule]["n_labeled"]) for c in sel]
            ax.plot(ratios, med, "o-", color=colours[rule], label=rule, ms=3, lw=1.2)
        labels_at = np.asarray(result["curves"][f"{name}/mixed"]["labels"])
        opt = [labels_at[int(np.median(c["rules"][rules[0]]["optimal_round"]))] for c in sel]
        ax.plot(ratios, opt, "k--", lw=2.2, label="hindsight optimum")
        ax.set_xscale("log")
        ax.set_xlabel("human : strong-LLM price ratio")
        ax.set_ylabel("labels at the stop (median over seeds)")
        ax.set_title(f"{name}: 60/30/10 mix, m=$0.1, n=10^4")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = out / "where_rules_stop.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path.name)

    # 2. Median relative regret vs price ratio, pooled over datasets, mixes with humans and cost models.
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    for rule in rules:
        meds, los, his = [], [], []
        for ratio in RATIOS:
            p = _rows(cells, lambda c, r=ratio: c["ratio"] == r)[rule]
            m, lo, hi = median_ci(p["relative"], n_resamples=500)
            meds.append(m), los.append(lo), his.append(hi)
        ax.plot(RATIOS, meds, "o-", color=colours[rule], label=rule, ms=3)
        ax.fill_between(RATIOS, los, his, color=colours[rule], alpha=0.12, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("human : strong-LLM price ratio")
    ax.set_ylabel("median relative cost regret (95% CI)")
    ax.set_title("Regret vs price ratio (human and mixed annotators, all datasets and cost models)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / "regret_vs_price_ratio.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path.name)

    # 3. Learning curves with each rule's median stopping point (mixed mix, ratio 100, m=0.1, n=1e4).
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2), dpi=110, squeeze=False)
    for ax, name in zip(axes[0], datasets):
        curve = result["curves"][f"{name}/mixed"]
        labels, acc = np.asarray(curve["labels"]), np.asarray(curve["accuracy_mean"])
        ax.plot(labels, acc, color="0.3", lw=1.5, label="test accuracy (mean)")
        ax.plot(labels, curve["stop_confidence_mean"], color="0.65", lw=1.2, ls=":", label="mean confidence (stop set)")
        cell = next(c for c in cells if c["dataset"] == name and c["mix"] == "mixed" and c["ratio"] == 100.0
                    and c["cost_per_error"] == 0.1 and c["n_future"] == 1e4)
        for k, rule in enumerate(rules):
            r = int(np.median(cell["rules"][rule]["round"]))
            ax.plot(labels[r], acc[r], "v", color=colours[rule], ms=8, label=rule)
        r = int(np.median(cell["rules"][rules[0]]["optimal_round"]))
        ax.plot(labels[r], acc[r], "k*", ms=12, label="hindsight optimum")
        ax.set_xlabel("labels")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: median stops (mix, 100:1, m=$0.1, n=10^4)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path = out / "stops_on_learning_curves.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path.name)
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--initial", type=int, default=10)
    p.add_argument("--policy", default="margin")
    p.add_argument("--max-iter", type=int, default=10)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--max-labels", type=float, default=300.0, help="the max_labels rule's label count")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--replot", action="store_true", help="only redo tables and plots from --out/cells.json.gz")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        with gzip.open(out / "cells.json.gz", "rt") as f:
            result = json.load(f)
        summary = summarize_cells(result["cells"])
        (out / "tables.md").write_text(tables_markdown(summary, result["meta"]))
        print("rewrote tables.md and", ", ".join(plot_all(result, out)), "in", out)
        return
    t0 = time.perf_counter()
    result = run(args)
    meta = {k: getattr(args, k) for k in ("seeds", "rounds", "batch_size", "initial", "policy", "max_iter", "tol",
                                          "max_labels", "datasets")}
    meta.update(ratios=RATIOS, costs_per_error=COSTS_PER_ERROR, future_predictions=FUTURE_PREDICTIONS,
                mixes=MIXES, wall_seconds=time.perf_counter() - t0, load_average=list(os.getloadavg()))
    result["meta"] = meta
    summary = summarize_cells(result["cells"])
    with gzip.open(out / "cells.json.gz", "wt") as f:
        json.dump(result, f)
    (out / "summary.json").write_text(json.dumps({"meta": meta, "summary": summary,
                                                  "curves": result["curves"],
                                                  "timing_seconds": result["timing_seconds"]}, indent=1))
    (out / "tables.md").write_text(tables_markdown(summary, meta))
    written = plot_all(result, out)
    print(f"wrote cells.json.gz, summary.json, tables.md, {', '.join(written)} to {out} "
          f"in {meta['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
