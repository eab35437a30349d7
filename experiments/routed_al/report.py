"""Routed active learning: the tables of README.md, from the stored rows of ``sweep.toml`` alone.

    alband sweep experiments/routed_al/sweep.toml --jobs 2     # the rows (results/sweep/cells/*.json.gz)
    python experiments/routed_al/report.py                      # results/tables.md, summary.json, README tables

Per dataset and labelling plan, per seed: final test accuracy; accuracy at $0.05 and $0.10 spent (the last
round whose cumulative spend is within that amount; missing when even the seed set cost more); dollars spent
and labels bought; dollars at the first round reaching the dataset's target accuracy (missing when never);
the share of labels bought from each annotator (audits included). Each is a mean with its Student-t 95%
interval over the seeds that have it (:mod:`alband.stats`); the share of seeds reaching the target has a
Wilson interval. The reference of a dataset is its *best always-one-annotator plan* (highest mean final
accuracy); every other plan's final accuracy is compared with it paired by seed (same seed labels, same
margin keys), Student-t interval of the differences.

Targets: AG News 95% of the full-pool accuracy of the cells' learner on gold labels (computed here); TREC
80%, because 95% of its full-pool accuracy is beyond 500 labels even when every label is right
(experiments/label_efficiency).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before alband imports JAX

from alband.sweep.report import fill_readme_section, full_pool_accuracy  # noqa: E402

SWEEP = HERE / "results" / "sweep"
SPEND_POINTS = (0.05, 0.10)
FIXED_TARGETS = {"trec": 0.80}  # datasets whose 95%-of-full-pool target no plan reaches within 500 labels
TARGET_SHARE = 0.95


def per_seed(row: dict, target: float) -> dict[str, np.ndarray]:
    curves = row["result"]["curves"]
    acc = np.asarray(curves["test_accuracy"], np.float64)
    usd = np.asarray(curves["spent_usd"], np.float64)
    out = {"final_accuracy": acc[:, -1], "spent_usd": usd[:, -1],
           "labels": np.asarray(curves["n_labeled"], np.float64)[:, -1]}
    for point in SPEND_POINTS:
        within = usd <= point + 1e-12
        last = np.where(within.any(axis=1), within.shape[1] - 1 - np.argmax(within[:, ::-1], axis=1), -1)
        out[f"accuracy_at_{point:g}"] = np.where(last >= 0, acc[np.arange(len(acc)), np.maximum(last, 0)], np.nan)
    hit = acc >= target
    first = np.argmax(hit, axis=1)
    out["usd_to_target"] = np.where(hit.any(axis=1), usd[np.arange(len(acc)), first], np.nan)
    labels = np.asarray(row["result"]["labels_per_arm"], np.float64)
    share = labels / np.maximum(labels.sum(axis=1, keepdims=True), 1)
    for k, name in enumerate(row["result"]["annotators"]):
        out[f"share_{name}"] = share[:, k]
    return out


def analyse() -> dict:
    from alband.stats import mean_interval, paired_interval, wilson_interval
    from alband.sweep.report import load_rows

    rows, failed, description = load_rows(SWEEP)
    order = {c["cell"]: i for i, c in enumerate(description.get("cells", []))}
    rows.sort(key=lambda r: order.get(r["cell"], len(order)))
    arms = list(rows[0]["config"]["annotators"])
    out = {"sweep": str(SWEEP.relative_to(HERE)), "seeds": description.get("seeds"), "annotators": arms,
           "datasets": {}, "failed": [r["name"] for r in failed]}
    for name in dict.fromkeys(r["coordinates"]["dataset"] for r in rows):
        cells = [r for r in rows if r["coordinates"]["dataset"] == name]
        full = full_pool_accuracy(cells[0], HERE)
        target = FIXED_TARGETS.get(name, TARGET_SHARE * full)
        values = {r["coordinates"]["labelling"]: (r["seeds"], per_seed(r, target), r) for r in cells}
        for _, m, _ in values.values():
            for arm in arms:
                m.setdefault(f"share_{arm}", np.zeros_like(m["final_accuracy"]))
        fixed = [k for k in values if k.startswith("always-")]
        reference = max(fixed, key=lambda k: float(np.mean(values[k][1]["final_accuracy"])))
        rseeds, rm, _ = values[reference]
        plans = {}
        for plan, (seeds, m, r) in values.items():
            common = sorted(set(seeds) & set(rseeds))
            ia, ib = [seeds.index(s) for s in common], [rseeds.index(s) for s in common]
            entry = {k: mean_interval(v).to_dict() for k, v in m.items()}
            entry["reached_target"] = wilson_interval(int(np.isfinite(m["usd_to_target"]).sum()), len(seeds)).to_dict()
            entry["seconds"] = r["timings"]["cell_seconds"]
            if plan != reference:
                entry["final_vs_reference"] = paired_interval(m["final_accuracy"][ia], rm["final_accuracy"][ib]).to_dict()
            plans[plan] = entry
        out["datasets"][name] = {"full_pool_accuracy": full, "target_accuracy": target, "reference": reference,
                                 "budget_usd": cells[0]["config"]["budget"]["usd"], "plans": plans}
    return out


def _ci(d: dict, scale: float = 1.0, digits: int = 1, signed: bool = False) -> str:
    if d["estimate"] is None:
        return "-"
    sign = "+" if signed else ""
    est = d["estimate"] * scale
    if d["low"] is None:
        return f"{est:{sign}.{digits}f}"
    return f"{est:{sign}.{digits}f} [{d['low'] * scale:{sign}.{digits}f}, {d['high'] * scale:{sign}.{digits}f}]"


def tables(summary: dict) -> str:
    arms = summary["annotators"]
    lines = [f"Generated by `python experiments/routed_al/report.py` from `results/sweep` "
             f"({summary['seeds']['count']} seeds per cell). [a, b] = Student-t 95% interval over the seeds that "
             "have the value; Δ = paired by seed against the dataset's best always-one-annotator plan; "
             "reached = seeds reaching the target (Wilson 95% interval).", ""]
    for name, ds in summary["datasets"].items():
        lines += [f"### {name} (budget ${ds['budget_usd']:.2f}; full-pool accuracy on gold labels "
                  f"{ds['full_pool_accuracy']:.2%}; target {ds['target_accuracy']:.1%}; reference: "
                  f"{ds['reference']})", "",
                  f"| labelling | final accuracy % | Δ vs {ds['reference']} (pp) | "
                  + " | ".join(f"acc. at ${p:.2f} %" for p in SPEND_POINTS)
                  + " | $ spent | labels | $ to target | reached | label share " + " / ".join(arms) + " | s |",
                  "|---|---|---|" + "---|" * len(SPEND_POINTS) + "---|---|---|---|---|---|"]
        for plan, p in ds["plans"].items():
            r = p["reached_target"]
            d = p.get("final_vs_reference")
            lines.append(
                f"| {plan} | {_ci(p['final_accuracy'], 100)} | {_ci(d, 100, 1, True) if d else '-'} | "
                + " | ".join(_ci(p[f'accuracy_at_{q:g}'], 100) for q in SPEND_POINTS)
                + f" | {_ci(p['spent_usd'], 1, 4)} | {_ci(p['labels'], 1, 0)} | {_ci(p['usd_to_target'], 1, 4)} | "
                f"{round(r['estimate'] * r['n'])}/{r['n']} [{r['low']:.2f}, {r['high']:.2f}] | "
                + " / ".join(f"{p[f'share_{a}']['estimate']:.0%}" for a in arms) + f" | {p['seconds']:.0f} |")
        lines.append("")
    if summary["failed"]:
        lines += ["Failed cells (not in the tables): " + ", ".join(summary["failed"]), ""]
    return "\n".join(lines)


def main() -> int:
    summary = analyse()
    (HERE / "results" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = tables(summary)
    (HERE / "results" / "tables.md").write_text(text)
    fill_readme_section(HERE / "README.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
