"""Stopping under heterogeneous costs: the tables and plots of README.md, from the stored sweep rows alone.

    alband sweep experiments/stopping_study/sweep.toml --jobs 2        # 60 rounds, 40 seeds
    alband sweep experiments/stopping_study/sweep_long.toml --jobs 2   # 150 rounds, 20 seeds
    python experiments/stopping_study/report.py                         # tables, plots, README tables

Every row holds, for each of the spec's 9 cost models (``m`` dollars per error x ``n`` future predictions,
``[simulate] cost_models``) and each seed, every rule's stop round, whether it fired, the dollars and test
accuracy at the stop, its cost regret ``C_s - C_r*`` and the hindsight-optimal round ``r*`` and cost
``C_r*`` (``alband.stopping``). An *episode* here is one (cell, cost model, seed); relative regret is
``regret / C_r*``. Medians carry BCa bootstrap 95% intervals (:func:`alband.stats.bootstrap_interval`,
9,999 resamples, fixed seed). Paired comparisons pair two rules on the same episode. The human's fee is
reported also as its ratio to the strong LLM's measured dollars per label on the same dataset (from the
strong-LLM-only cell). ``budget_exhausted`` never fires here (the budget never binds): it is "run to the
horizon", the simple baseline every rule is compared with; ``max_labels (300)`` is the configured
``[stopping]`` rule (the registry's own ``max_labels`` stops at the horizon's capacity and is left out).

Writes ``results/tables.md`` (both horizons), ``results*/summary.json``, ``results*/*.png`` and the README's generated section.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

from alband.sweep.report import fill_readme_section  # noqa: E402

HORIZONS = {"60 rounds": HERE / "results", "150 rounds": HERE / "results_long"}
FEE_AXIS = "annotators.human.usd_per_label"
CONFIGURED = "max_labels (300)"
HORIZON_RULE = "budget_exhausted"
FOCUS = ("cost_to_go", "stabilizing_predictions", "classification_change", HORIZON_RULE, "validation_plateau",
         "cost_optimum_validation")
PAIRS = (("cost_to_go", "stabilizing_predictions"), ("cost_to_go", HORIZON_RULE))
PLOT_MODEL = (0.1, 10_000.0)  # the cost model of the "where rules stop" plot
RESAMPLES = 9999


def episodes(rows: list[dict]) -> dict[str, np.ndarray]:
    """Flat arrays over every (cell, cost model, seed): coordinates, and per rule the outcome fields."""
    cols: dict[str, list] = {}

    def add(key, values):
        cols.setdefault(key, []).extend(values)

    for row in rows:
        res = row["result"]
        labels = np.asarray(res["curves"]["n_labeled"], np.float64)
        seeds = np.arange(len(labels))
        configured = next((r["rule"] for r in res["rules"] if r.get("configured")), None)
        for model in res["stops_per_cost_model"]:
            n = len(seeds)
            add("dataset", [row["coordinates"]["dataset"]] * n)
            add("labels_from", [row["coordinates"]["labels_from"]] * n)
            add("fee", [float(row["config"]["annotators"]["human"]["usd_per_label"])] * n)
            add("m", [model["cost_per_error_usd"]] * n)
            add("n", [model["n_future"]] * n)
            add("seed", list(seeds))
            add("cell", [row["cell"]] * n)
            for rule, out in model["per_seed"].items():
                if rule == "max_labels":
                    continue
                name = CONFIGURED if rule == configured else rule
                rounds = np.asarray(out["round"])
                add(f"{name}|round", rounds)
                add(f"{name}|labels", labels[seeds, rounds])
                add(f"{name}|fired", out["fired"])
                add(f"{name}|regret", out["regret_usd"])
                add(f"{name}|relative", np.asarray(out["regret_usd"]) / np.maximum(out["optimal_cost_usd"], 1e-12))
                if rule == HORIZON_RULE:  # r* is the same for every rule of an episode: filed once
                    add("optimal_round", out["optimal_round"])
                    add("optimal_labels", labels[seeds, np.asarray(out["optimal_round"])])
    return {k: np.asarray(v) for k, v in cols.items()}


def rules_of(ep: dict) -> list[str]:
    return list(dict.fromkeys(k.split("|")[0] for k in ep if "|" in k))


def median_ci(values) -> dict:
    from alband.stats import bootstrap_interval

    return bootstrap_interval(values, np.median, n_resamples=RESAMPLES).to_dict()


def fee_ratios(rows: list[dict]) -> dict[str, float]:
    """Per dataset: the strong LLM's measured dollars per label (strong-LLM-only cell, mean over seeds)."""
    out = {}
    for row in rows:
        if row["coordinates"]["labels_from"] == "strong-llm":
            c = row["result"]["curves"]
            out[row["coordinates"]["dataset"]] = float(np.mean(np.asarray(c["spent_usd"])[:, -1]
                                                               / np.asarray(c["n_labeled"])[:, -1]))
    return out


def analyse(folder: Path) -> dict | None:
    from alband.sweep.report import load_rows

    if not (folder / "sweep" / "cells").is_dir():
        return None
    rows, failed, description = load_rows(folder / "sweep")
    if not rows:
        return None
    ep = episodes(rows)
    rules = rules_of(ep)
    strong_price = fee_ratios(rows)
    fees = sorted(set(ep["fee"][ep["labels_from"] != "strong-llm"]))
    overall = {}
    for rule in rules:
        overall[rule] = {"episodes": int(len(ep[f"{rule}|relative"])),
                         "relative_regret_median": median_ci(ep[f"{rule}|relative"]),
                         "fired_share": float(np.mean(ep[f"{rule}|fired"])),
                         "stop_round_median": float(np.median(ep[f"{rule}|round"])),
                         "optimal_round_median": float(np.median(ep["optimal_round"]))}
    by_fee = {}
    for fee in fees:
        keep = (ep["fee"] == fee) & (ep["labels_from"] != "strong-llm")
        by_fee[f"{fee:g}"] = {rule: float(np.median(ep[f"{rule}|relative"][keep])) for rule in rules}
        by_fee[f"{fee:g}"]["optimal_round"] = float(np.median(ep["optimal_round"][keep]))
    strong = ep["labels_from"] == "strong-llm"
    if strong.any():
        by_fee["strong-llm only"] = {rule: float(np.median(ep[f"{rule}|relative"][strong])) for rule in rules}
        by_fee["strong-llm only"]["optimal_round"] = float(np.median(ep["optimal_round"][strong]))
    by_m = {f"{m:g}": {rule: float(np.median(ep[f"{rule}|relative"][ep["m"] == m])) for rule in rules}
            for m in sorted(set(ep["m"]))}
    by_dataset = {d: {rule: median_ci(ep[f"{rule}|relative"][ep["dataset"] == d]) for rule in FOCUS[:2] + (HORIZON_RULE,)}
                  for d in dict.fromkeys(ep["dataset"])}
    for d in by_dataset:
        keep = ep["dataset"] == d
        by_dataset[d]["fired_share"] = {rule: float(np.mean(ep[f"{rule}|fired"][keep])) for rule in FOCUS[:2]}
    groups = {"all cells": np.ones(len(ep["fee"]), bool), **{
        f"fee ${fee:g}": (ep["fee"] == fee) & (ep["labels_from"] != "strong-llm") for fee in fees},
        "strong-llm only": strong}
    paired = {}
    for a, b in PAIRS:
        diff = ep[f"{a}|relative"] - ep[f"{b}|relative"]
        paired[f"{a} - {b}"] = {g: {"pairs": int(keep.sum()), "a_better": float(np.mean(diff[keep] < 0)),
                                    "tie": float(np.mean(diff[keep] == 0)), "b_better": float(np.mean(diff[keep] > 0)),
                                    "median_difference": median_ci(diff[keep])}
                                for g, keep in groups.items() if keep.any()}
    confidence = {}
    # the learner's own accuracy estimate against its test accuracy (strong-LLM-only cells; else any cell)
    for row in sorted(rows, key=lambda r: r["coordinates"]["labels_from"] == "strong-llm"):
        if True:
            c = row["result"]["curves"]
            acc, conf = np.asarray(c["test_accuracy"]).mean(0), np.asarray(c["stop_confidence"]).mean(0)
            confidence[row["coordinates"]["dataset"]] = {
                f"round {r}": {"accuracy": float(acc[r]), "confidence": float(conf[r])}
                for r in sorted({0, 10, len(acc) - 1})}
    return {"folder": str(folder.relative_to(HERE)), "seeds": description.get("seeds"), "cells": len(rows),
            "confidence": confidence,
            "failed": [r["name"] for r in failed], "datasets": list(dict.fromkeys(ep["dataset"])),
            "strong_llm_usd_per_label": strong_price,
            "fee_ratio": {f"{fee:g}": {d: fee / p for d, p in strong_price.items()} for fee in fees},
            "simulate_seconds": sum(r["timings"]["simulate_seconds"] for r in rows),
            "compile_seconds": sum(r["timings"]["compile_seconds"] for r in rows),
            "overall": overall, "by_fee": by_fee, "by_cost_per_error": by_m, "by_dataset": by_dataset,
            "paired": paired}


def _ci(d: dict, digits: int = 3) -> str:
    if d["estimate"] is None or d["low"] is None:
        return "-" if d["estimate"] is None else f"{d['estimate']:.{digits}f}"
    return f"{d['estimate']:.{digits}f} [{d['low']:.{digits}f}, {d['high']:.{digits}f}]"


def tables(summaries: dict[str, dict]) -> str:
    lines = ["Generated by `python experiments/stopping_study/report.py` from the stored sweep rows. Episode = "
             "(cell, cost model, seed); medians with BCa bootstrap 95% intervals; fired = share of episodes in "
             "which the rule fired before the horizon.", ""]
    for horizon, s in summaries.items():
        ratios = s["fee_ratio"]
        lines += [f"### {horizon}: {s['cells']} cells x {s['seeds']['count']} seeds x 9 cost models "
                  f"({', '.join(s['datasets'])})", "",
                  "Human fee per label and its ratio to the strong LLM's measured dollars per label: "
                  + "; ".join(f"${fee} = " + " / ".join(f"{v:.0f}:1" for v in r.values()) for fee, r in ratios.items())
                  + f" ({' / '.join(s['strong_llm_usd_per_label'])}).", "",
                  "| rule | relative regret, median [95% CI] | fired | median stop / r* (rounds) |",
                  "|---|---|---|---|"]
        ranked = sorted(s["overall"].items(), key=lambda kv: kv[1]["relative_regret_median"]["estimate"])
        for rule, o in ranked:
            lines.append(f"| {rule} | {_ci(o['relative_regret_median'])} | {o['fired_share']:.0%} | "
                         f"{o['stop_round_median']:.0f} / {o['optimal_round_median']:.0f} |")
        cols = list(s["by_fee"])
        lines += ["", "Median relative regret by the human's fee (human-only and mixed cells; last column: strong "
                  "LLM only, where the fee plays no part):", "",
                  "| rule | " + " | ".join(f"${c}" if c[0].isdigit() else c for c in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for rule in FOCUS:
            lines.append(f"| {rule} | " + " | ".join(f"{s['by_fee'][c][rule]:.3f}" for c in cols) + " |")
        lines.append("| median r* (rounds) | " + " | ".join(f"{s['by_fee'][c]['optimal_round']:.0f}" for c in cols) + " |")
        ms = list(s["by_cost_per_error"])
        lines += ["", "Median relative regret by dollars per error m (all cells):", "",
                  "| rule | " + " | ".join(f"m = ${m}" for m in ms) + " |", "|---|" + "---|" * len(ms)]
        for rule in FOCUS:
            lines.append(f"| {rule} | " + " | ".join(f"{s['by_cost_per_error'][m][rule]:.3f}" for m in ms) + " |")
        lines += ["", "Per dataset, median relative regret [95% CI] (fired share):", "",
                  "| dataset | cost_to_go | stabilizing_predictions | horizon |", "|---|---|---|---|"]
        for d, v in s["by_dataset"].items():
            lines.append(f"| {d} | {_ci(v['cost_to_go'])} ({v['fired_share']['cost_to_go']:.0%}) | "
                         f"{_ci(v['stabilizing_predictions'])} ({v['fired_share']['stabilizing_predictions']:.0%}) | "
                         f"{_ci(v[HORIZON_RULE])} |")
        for pair, groups in s["paired"].items():
            a, b = pair.split(" - ")
            lines += ["", f"Paired, same episode: {a} minus {b} (relative regret; negative = {a} better):", "",
                      f"| episodes | pairs | {a} better | tie | {b} better | median difference [95% CI] |",
                      "|---|---|---|---|---|---|"]
            for g, v in groups.items():
                lines.append(f"| {g} | {v['pairs']:,} | {v['a_better']:.0%} | {v['tie']:.0%} | {v['b_better']:.0%} | "
                             f"{_ci(v['median_difference'])} |")
        rounds = list(next(iter(s["confidence"].values())))
        lines += ["", "Mean test accuracy / mean confidence on the stop set (the model's own accuracy estimate), "
                  "strong-LLM-only cells:", "", "| dataset | " + " | ".join(rounds) + " |",
                  "|---|" + "---|" * len(rounds)]
        for d, v in s["confidence"].items():
            lines.append(f"| {d} | " + " | ".join(f"{v[r]['accuracy']:.3f} / {v[r]['confidence']:.3f}" for r in rounds)
                         + " |")
        lines += ["", f"Simulator time: {s['compile_seconds']:.0f} s compiling and {s['simulate_seconds']:.0f} s "
                  "running, summed over the cells.", ""]
        if s["failed"]:
            lines += ["Failed cells (not in the tables): " + ", ".join(s["failed"]), ""]
    return "\n".join(lines)


def plots(folder: Path, summary: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alband.sweep.report import load_rows

    rows, _, _ = load_rows(folder / "sweep")
    ep = episodes(rows)
    written = []
    mixed = (ep["labels_from"] == "mixed") & (ep["m"] == PLOT_MODEL[0]) & (ep["n"] == PLOT_MODEL[1])
    fees = sorted(set(ep["fee"][mixed]))
    fig, ax = plt.subplots(figsize=(7, 5))
    for rule in FOCUS:
        ax.plot(fees, [np.median(ep[f"{rule}|labels"][mixed & (ep["fee"] == f)]) for f in fees], "o-", label=rule)
    ax.plot(fees, [np.median(ep["optimal_labels"][mixed & (ep["fee"] == f)]) for f in fees], "k--", lw=2,
            label="hindsight optimum")
    ax.set_xscale("log")
    ax.set_xlabel("human fee per label ($)")
    ax.set_ylabel("labels at the stop (median)")
    ax.set_title(f"mixed annotators, m = ${PLOT_MODEL[0]:g}, n = {PLOT_MODEL[1]:g}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(folder / "where_rules_stop.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 5))
    paid = ep["labels_from"] != "strong-llm"
    fees = sorted(set(ep["fee"][paid]))
    for rule in FOCUS:
        ivs = [median_ci(ep[f"{rule}|relative"][paid & (ep["fee"] == f)]) for f in fees]
        est = np.array([i["estimate"] for i in ivs])
        ax.errorbar(fees, est, yerr=[est - [i["low"] for i in ivs], [i["high"] for i in ivs] - est], fmt="o-",
                    capsize=3, label=rule)
    ax.set_xscale("log")
    ax.set_xlabel("human fee per label ($)")
    ax.set_ylabel("relative regret (median, BCa 95% CI)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(folder / "regret_vs_price_ratio.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    datasets = summary["datasets"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.5), squeeze=False)
    middle = fees[len(fees) // 2]
    for j, d in enumerate(datasets):
        ax = axes[0, j]
        row = next(r for r in rows if r["coordinates"]["dataset"] == d and r["coordinates"]["labels_from"] == "mixed"
                   and float(r["config"]["annotators"]["human"]["usd_per_label"]) == middle)
        c = row["result"]["curves"]
        labels = np.asarray(c["n_labeled"], np.float64).mean(0)
        ax.plot(labels, np.asarray(c["test_accuracy"]).mean(0), "k", label="test accuracy")
        ax.plot(labels, np.asarray(c["stop_confidence"]).mean(0), "k:", label="mean confidence (stop set)")
        keep = (ep["cell"] == row["cell"]) & (ep["m"] == PLOT_MODEL[0]) & (ep["n"] == PLOT_MODEL[1])
        for k, rule in enumerate(FOCUS):
            ax.axvline(np.median(ep[f"{rule}|labels"][keep]), color=f"C{k}", lw=1, label=rule)
        ax.axvline(np.median(ep["optimal_labels"][keep]), color="k", ls="--", lw=2, label="optimum")
        ax.set_title(f"{d}, mixed, fee ${middle:g}")
        ax.set_xlabel("labels")
        if j == 0:
            ax.legend(fontsize=6)
    fig.tight_layout()
    written.append(folder / "stops_on_learning_curves.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written


def main() -> int:
    summaries = {}
    for horizon, folder in HORIZONS.items():
        summary = analyse(folder)
        if summary is None:
            print(f"{folder}: no stored rows, skipped")
            continue
        summaries[horizon] = summary
        (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        for path in plots(folder, summary):
            print(f"wrote {path.relative_to(HERE)}")
    text = tables(summaries)
    (HERE / "results" / "tables.md").write_text(text)
    (HERE / "results_long" / "tables.md").unlink(missing_ok=True)  # both horizons are in results/tables.md
    fill_readme_section(HERE / "README.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
