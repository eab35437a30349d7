"""Router replay study: every router of alband.routing over two real multi-LLM outcome matrices.

Reproduces the tables and figures of ``README.md`` beside this file::

    .venv/bin/python experiments/router_replay/run.py            # both datasets, 5 seeds
    .venv/bin/python experiments/router_replay/run.py --only routellm_mmlu_gsm8k --seeds 5

Each dataset is one call of ``alband route replay`` (:func:`alband.replay.cli.replay_main`);
the exact argument list is printed and written into ``results/<dataset>.command.txt``.
Outputs in ``results/``: ``<dataset>.json`` (the replay report), ``<dataset>.png`` (accuracy vs
dollars frontier) and ``summary.md`` (the tables pasted into the README).

Data are read in place from ``../shared/data/router`` (``ALBAND_SHARED_DATA`` overrides the
folder); nothing is copied into the project.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[1]
SHARED = Path(os.environ.get("ALBAND_SHARED_DATA", PROJECT.parent / "shared" / "data"))

# Budgets of the reported operating point (the sweep covers every budget anyway):
# llms_for_css: $5, about 8x the full-stream cost of the strongest model (flan-ul2, $0.64),
#   0.6% of labeling everything by the human arm ($786 at $0.10 per label).
# routellm: $20, about 25% of GPT-4's full-stream cost ($79), RouteLLM's regime.
DATASETS = {
    "llms_for_css": {"folder": "router/llms_for_css", "budget": 5.0, "human_price": 0.10},
    "routellm_mmlu_gsm8k": {"folder": "router/routellm_mmlu_gsm8k", "budget": 20.0, "human_price": None},
}
FEATURE_DIM = 16


def replay_args(name: str, seeds: int, out: Path) -> list[str]:
    spec = DATASETS[name]
    folder = SHARED / spec["folder"]
    args = ["--data", str(folder / "wide.csv"), "--items", str(folder / "items.csv"),
            "--budget", str(spec["budget"]), "--seeds", str(seeds), "--feature-dim", str(FEATURE_DIM),
            "--plot", str(out / f"{name}.png"), "--output", str(out / f"{name}.json")]
    if spec["human_price"] is not None:
        args += ["--human-price", str(spec["human_price"])]
    return args


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def table(report: dict) -> str:
    strong = report["strongest"]
    rows = [
        f"Budget ${report['budget_usd']:g} for {report['data']['n_items']} items, {report['seeds']} seeds. "
        f"Strongest model: {strong['name']} (accuracy {strong['accuracy']:.3f}, ${strong['cost_usd']:.2f} "
        f"for the whole stream); weak = cheapest model: {report['weak']['name']} "
        f"(accuracy {report['weak']['accuracy']:.3f}, ${report['weak']['cost_usd']:.2f}). "
        f"Target for the cost column: 95% of the strongest = {0.95 * strong['accuracy']:.3f}.",
        "",
        "| router | accuracy of labels [95% CI] | stream accuracy | $ spent | labeled | APGR | "
        "$ to 95% of strongest | cost cut vs strongest | main calls |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["routers"]:
        ci = r["accuracy_ci95"]
        ci_s = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        calls = sorted(r["calls_share"].items(), key=lambda kv: -kv[1])[:3]
        calls_s = ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in calls)
        name = r["name"] + (f" ({r['arm_at_budget']})" if r.get("arm_at_budget") else "")
        cut = r["cost_cut_vs_strongest"]
        if cut is None:
            cut_s = "-"
        elif cut >= 0:
            cut_s = f"{100 * cut:.0f}%"
        else:  # more expensive than the strongest model itself
            cut_s = f"none ({1 - cut:.1f}x its cost)"
        rows.append(
            f"| {name} | {fmt(r['accuracy'])}{ci_s} | {fmt(r['stream_accuracy'])} | {fmt(r['cost_usd'], '.3f')} "
            f"| {fmt(r['n_labeled'], '.0f')} | {fmt(r['apgr'], '.2f')} | {fmt(r['cost_to_95pct_strongest'], '.3f')} "
            f"| {cut_s} | {calls_s} |")
    return "\n".join(rows)


def task_table(report: dict, routers=("random", "cascade", "contextual_ts", "oracle")) -> str:
    """Per task: each router's accuracy vs a random mix with the same per-arm label shares."""
    acc = report["task_accuracy"]
    rows = ["| router | task | items | stream accuracy | same-shares random mix | labels by the strongest |",
            "|---|---|---|---|---|---|"]
    strong = report["strongest"]["name"]
    for r in report["routers"]:
        if r["name"] not in routers or "by_task" not in r:
            continue
        for task, e in r["by_task"].items():
            mix = sum(share * acc[task].get(arm, 0.0) for arm, share in e["label_share"].items())
            rows.append(f"| {r['name']} | {task} | {e['n_items']} | {fmt(e['stream_accuracy'])} | {mix:.3f} "
                        f"| {e['label_share'].get(strong, 0.0):.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from alband.replay.cli import replay_main

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--only", choices=sorted(DATASETS), action="append")
    p.add_argument("--out", default=str(HERE / "results"))
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    names = a.only or list(DATASETS)
    missing = [n for n in names if not (SHARED / DATASETS[n]["folder"] / "wide.csv").exists()]
    if missing:
        print(f"data not found under {SHARED}: {', '.join(missing)}", file=sys.stderr)
        return 2
    sections = []
    for name in names:
        args = replay_args(name, a.seeds, out)
        command = "alband route replay " + " ".join(shlex.quote(x) for x in args)
        (out / f"{name}.command.txt").write_text(command + "\n")
        print(f"== {name}\n{command}", flush=True)
        t0 = time.perf_counter()
        with open(os.devnull, "w") as sink:  # the report goes to --output; keep stdout for progress
            saved, sys.stdout = sys.stdout, sink
            try:
                replay_main(args + ["--json"])
            finally:
                sys.stdout = saved
        report = json.loads((out / f"{name}.json").read_text())
        print(f"   done in {time.perf_counter() - t0:.0f} s", flush=True)
        per_task = task_table(report) if len(report["task_accuracy"]) <= 4 else ""
        sections.append(f"### {name}\n\nCommand: `{command}`\n\n{table(report)}\n\n"
                        + (f"Per task at the reported budget:\n\n{per_task}\n\n" if per_task else "")
                        + f"![frontier]({name}.png)\n")
    (out / "summary.md").write_text("\n".join(sections))
    print(f"wrote {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
