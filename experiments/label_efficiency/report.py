"""Label efficiency: the tables and plots of README.md, from the stored rows of ``sweep.toml`` alone.

    alband sweep experiments/label_efficiency/sweep.toml --jobs 2     # the rows (results/sweep/cells/*.json.gz)
    python experiments/label_efficiency/report.py                      # tables, plots, README tables

Per dataset the target is 95% of the *full-pool accuracy*: the cells' learner fitted on every pool label
(what ``alband sweep report`` cannot know, which is why this script exists). Per cell and seed, from the
curves of the row (:func:`alband.sweep.report.seed_metrics`): final accuracy, AUC (mean accuracy over the
labels bought, trapezoids over the label counts), labels and dollars to the target. The dollar view: the
*common dollar range* of a dataset runs from a seed's seed-set cost to the smallest final spend of any cell
and seed; "$-AUC" is the mean accuracy over that range (linear interpolation of accuracy against dollars).
Every interval is a Student-t 95% interval (:mod:`alband.stats`); the share of seeds reaching the target has
a Wilson interval. Differences against random are paired by seed (the same seed gives every policy the same
seed labels); a verdict is "better" / "worse" when the paired interval of the AUC difference excludes 0,
else "as random". The *best simple baseline* of a dataset is the one of random, least confidence, margin
and entropy with the highest mean AUC.

Writes ``results/tables.md``, ``results/summary.json``, ``plots/*.png`` and the README's generated section.
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
TARGET_SHARE = 0.95
SIMPLE_BASELINES = ("random", "least_confidence", "margin", "entropy")
DOLLAR_GRID = 200


def dollar_metrics(row: dict, common_usd: float) -> dict[str, np.ndarray]:
    """Per seed: accuracy at ``common_usd`` spent, and the mean accuracy over [seed-set cost, common_usd]."""
    curves = row["result"]["curves"]
    acc = np.asarray(curves["test_accuracy"], np.float64)
    usd = np.asarray(curves["spent_usd"], np.float64)
    at, area = [], []
    for a, d in zip(acc, usd):
        at.append(a[np.searchsorted(d, common_usd, side="right") - 1])
        grid = np.linspace(d[0], common_usd, DOLLAR_GRID)
        area.append(float(np.mean(np.interp(grid, d, a))))
    return {"accuracy_at_common_usd": np.asarray(at), "dollar_auc": np.asarray(area)}


def analyse() -> dict:
    from alband.stats import mean_interval, paired_interval, wilson_interval
    from alband.sweep.report import load_rows, seed_metrics

    rows, failed, description = load_rows(SWEEP)
    order = {c["cell"]: i for i, c in enumerate(description.get("cells", []))}
    rows.sort(key=lambda r: order.get(r["cell"], len(order)))
    datasets = list(dict.fromkeys(r["coordinates"]["dataset"] for r in rows))
    out = {"sweep": str(SWEEP.relative_to(HERE)), "seeds": description.get("seeds"), "datasets": {},
           "failed": [r["name"] for r in failed]}
    for name in datasets:
        cells = [r for r in rows if r["coordinates"]["dataset"] == name]
        full = full_pool_accuracy(cells[0], HERE)
        target = TARGET_SHARE * full
        common_usd = min(float(np.min(np.asarray(r["result"]["curves"]["spent_usd"])[:, -1])) for r in cells)
        values = {}
        for r in cells:
            m = seed_metrics(r, target, "budget_exhausted")
            m.update(dollar_metrics(r, common_usd))
            m["spent_usd"] = np.asarray(r["result"]["curves"]["spent_usd"], np.float64)[:, -1]
            values[r["coordinates"]["policy.name"]] = (r["seeds"], m, r)
        if "random" not in values:
            raise SystemExit(f"{SWEEP}: dataset {name} has no random cell to compare with")
        rseeds, rm, _ = values["random"]
        policies = {}
        for policy, (seeds, m, r) in values.items():
            common = sorted(set(seeds) & set(rseeds))
            ia, ib = [seeds.index(s) for s in common], [rseeds.index(s) for s in common]
            entry = {
                "seeds": len(seeds),
                "reached": wilson_interval(int(np.isfinite(m["labels_to_target"]).sum()), len(seeds)).to_dict(),
                "compile_seconds": r["timings"]["compile_seconds"],
                "simulate_seconds": r["timings"]["simulate_seconds"],
                **{k: mean_interval(m[k]).to_dict() for k in ("labels_to_target", "dollars_to_target", "auc",
                                                               "final_accuracy", "accuracy_at_common_usd",
                                                               "dollar_auc", "spent_usd")},
            }
            if policy != "random":
                entry["vs_random"] = {k: paired_interval(m[k][ia], rm[k][ib]).to_dict()
                                      for k in ("labels_to_target", "auc", "final_accuracy",
                                                "accuracy_at_common_usd", "dollar_auc")}
                for key, metric in (("verdict", "auc"), ("dollar_verdict", "dollar_auc")):
                    d = entry["vs_random"][metric]
                    entry[key] = ("better" if d["low"] is not None and d["low"] > 0 else
                                  "worse" if d["high"] is not None and d["high"] < 0 else "as random")
            policies[policy] = entry
        simple = [p for p in SIMPLE_BASELINES if p in policies]
        best = max(simple, key=lambda p: policies[p]["auc"]["estimate"])
        out["datasets"][name] = {"full_pool_accuracy": full, "target_accuracy": target, "common_usd": common_usd,
                                 "best_simple_baseline": best, "policies": policies}
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
    seeds = summary["seeds"]["count"]
    lines = [f"Generated by `python experiments/label_efficiency/report.py` from `results/sweep` "
             f"({seeds} seeds per cell). [a, b] = Student-t 95% interval; Δ = paired by seed, policy minus "
             "random; pp = percentage points; reached = seeds reaching the target (Wilson 95% interval).", ""]
    verdicts = {}
    for name, ds in summary["datasets"].items():
        lines += [f"### {name}", "",
                  f"Full-pool accuracy {ds['full_pool_accuracy']:.2%} (the cells' learner on every pool label); "
                  f"target = 95% of it = {ds['target_accuracy']:.2%}. Common dollar range: up to "
                  f"${ds['common_usd']:.4f}. Best simple baseline (highest AUC of "
                  f"{', '.join(SIMPLE_BASELINES)}): **{ds['best_simple_baseline']}**.", "",
                  "| policy | reached | labels to target | Δ labels | AUC % | Δ AUC (pp) | final acc. % | "
                  "Δ final (pp) | $-AUC % | Δ $-AUC (pp) | verdict (AUC / $-AUC) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for policy, p in ds["policies"].items():
            r = p["reached"]
            reached = f"{round(r['estimate'] * r['n'])}/{r['n']} [{r['low']:.2f}, {r['high']:.2f}]"
            vs = p.get("vs_random")
            lines.append(
                f"| {policy} | {reached} | {_ci(p['labels_to_target'], 1, 0)} | "
                f"{_ci(vs['labels_to_target'], 1, 0, True) if vs else '-'} | {_ci(p['auc'], 100)} | "
                f"{_ci(vs['auc'], 100, 1, True) if vs else '-'} | {_ci(p['final_accuracy'], 100)} | "
                f"{_ci(vs['final_accuracy'], 100, 1, True) if vs else '-'} | {_ci(p['dollar_auc'], 100)} | "
                f"{_ci(vs['dollar_auc'], 100, 1, True) if vs else '-'} | "
                f"{p['verdict'] + ' / ' + p['dollar_verdict'] if vs else '(reference)'} |")
            verdicts.setdefault(policy, {})[name] = p.get("verdict", "(reference)")
        lines.append("")
    names = list(summary["datasets"])
    lines += ["### Verdicts against random (AUC vs labels, paired 95% interval)", "",
              "| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for policy, v in verdicts.items():
        lines.append(f"| {policy} | " + " | ".join(v.get(n, "not run") for n in names) + " |")
    lines += ["", "Seconds per cell (compile / simulate, all seeds in one call):", "",
              "| policy | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for policy in verdicts:
        cells = []
        for n in names:
            p = summary["datasets"][n]["policies"].get(policy)
            cells.append("-" if p is None else f"{p['compile_seconds']:.0f} / {p['simulate_seconds']:.0f}")
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    if summary["failed"]:
        lines += ["", "Failed cells (not in the tables): " + ", ".join(summary["failed"])]
    return "\n".join(lines) + "\n"


def plots(summary: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alband.stats import mean_interval
    from alband.sweep.report import load_rows

    rows, _, _ = load_rows(SWEEP)
    folder = HERE / "plots"
    folder.mkdir(exist_ok=True)
    written = []
    for name, ds in summary["datasets"].items():
        for key, xlabel, suffix in (("n_labeled", "labels", "labels"), ("spent_usd", "dollars spent", "dollars")):
            fig, ax = plt.subplots(figsize=(8, 5.5))
            for r in rows:
                if r["coordinates"]["dataset"] != name:
                    continue
                curves = r["result"]["curves"]
                acc = np.asarray(curves["test_accuracy"], np.float64)
                ivs = [mean_interval(c) for c in acc.T]
                mean = np.array([i.estimate for i in ivs])
                half = np.nan_to_num(np.array([i.half_width for i in ivs]))
                x = np.asarray(curves[key], np.float64).mean(axis=0)
                policy = r["coordinates"]["policy.name"]
                style = {"color": "black", "ls": "--", "lw": 2} if policy == "random" else {}
                ax.plot(x, mean, label=policy, **style)
                ax.fill_between(x, mean - half, mean + half, alpha=0.15, color=style.get("color"))
            ax.axhline(ds["full_pool_accuracy"], color="grey", lw=1)
            ax.axhline(ds["target_accuracy"], color="grey", lw=1, ls=":")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("test accuracy")
            ax.set_title(f"{name}: mean over {summary['seeds']['count']} seeds, 95% Student-t bands")
            ax.legend(fontsize=7, ncol=2)
            path = folder / f"{name}_accuracy_vs_{suffix}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
    names = list(summary["datasets"])
    policies = [p for p in dict.fromkeys(p for ds in summary["datasets"].values() for p in ds["policies"])
                if p != "random"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 0.35 * len(policies) + 2), squeeze=False)
    for j, name in enumerate(names):
        ax = axes[0, j]
        for i, policy in enumerate(policies):
            p = summary["datasets"][name]["policies"].get(policy)
            if p is None:
                continue
            for k, (metric, colour) in enumerate((("auc", "C0"), ("dollar_auc", "C1"))):
                d = p["vs_random"][metric]
                ax.errorbar(100 * d["estimate"], i + 0.2 * k, xerr=[[100 * (d["estimate"] - d["low"])],
                                                                     [100 * (d["high"] - d["estimate"])]],
                            fmt="o", color=colour, ms=3, label=("AUC vs labels" if k == 0 else "$-AUC")
                            if i == 0 else None)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(policies)))
        ax.set_yticklabels(policies if j == 0 else [], fontsize=8)
        ax.set_xlabel("policy - random (pp, paired 95% interval)")
        ax.set_title(name)
        if j == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = folder / "paired_auc_vs_random.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def cells_run(summary: dict) -> str:
    """Which cells of the spec have a stored row, per dataset, with their summed compile and run seconds."""
    from alband.sweep.report import load_rows

    _, _, description = load_rows(SWEEP)
    spec_policies = list(dict.fromkeys(c["coordinates"]["policy.name"] for c in description.get("cells", [])))
    lines = [f"Generated by `report.py` from the stored rows ({summary['seeds']['count']} seeds per cell):", ""]
    for name, ds in summary["datasets"].items():
        ran = list(ds["policies"])
        missing = [p for p in spec_policies if p not in ran]
        seconds = sum(p["compile_seconds"] + p["simulate_seconds"] for p in ds["policies"].values())
        lines.append(f"* **{name}**: {len(ran)} policies ran ({', '.join(ran)}; {seconds:.0f} s of compile + "
                     f"simulate)" + (f"; not run yet: {', '.join(missing)}." if missing else "."))
    return "\n".join(lines) + "\n"


def main() -> int:
    summary = analyse()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = tables(summary)
    (HERE / "results" / "tables.md").write_text(text)
    fill_readme_section(HERE / "README.md", text)
    fill_readme_section(HERE / "README.md", cells_run(summary), "cells")
    for path in plots(summary):
        print(f"wrote {path.relative_to(HERE)}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
