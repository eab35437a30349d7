"""LLM selection (ActiveLLM) with a real local model, against random, k-means and margin cold starts.

Two phases:

``record`` (needs the ``local-llm`` extra and the model's weights): starts the
local model's OpenAI-compatible server (:class:`alband.local_llm.LocalServer`)
and, for each dataset, seed and prompt variant, runs ``alband run`` on a
config whose ``[selector]`` (cold start, 32 of 200 uniformly drawn pool texts)
asks the model for round 0's seed set; margin sampling buys the rest, 2 labels
a round, to 100 labels, from a noiseless simulated annotator. Every selection
is a charge in the run's ledger. The recorded selections are written, per
dataset and prompt, to ``results/selection/selections/<dataset>-<prompt>.jsonl``
(:func:`alband.selection.replay.write_cache`: the candidates shown, the
reply, the picks after repair and the fallback's fill) and each call's tokens,
dollars, seconds and repairs to ``results/selection/calls.jsonl``.

``report`` (offline, no model): ``alband simulate --selections`` replays the
recorded selections seed by seed (the same configs, so the simulator buys what
the live runs bought: checked against the live runs' accuracies when their
folders are present) and ``alband simulate`` runs the baselines on the same
seeds: ``random`` (random 32, random to 100), ``random+margin`` (random 32,
then margin), ``kmeans+margin`` (one item per k-means cluster, then margin) and
``margin`` (10 random labels, then margin from the first round). Tables:
accuracy at 32 and at 100 labels, paired differences against random over the
seeds (Student-t, :func:`alband.stats.paired_interval`), and accuracy at equal
dollars (the selection call's dollars buy random extra labels at the stated
label prices).

Usage (from the project root)::

    python experiments/llm_roles/selection.py record --seeds 5             # the local model, ~1 min a call
    python experiments/llm_roles/selection.py report                        # offline, from the records:
                                                                            # minutes the first time (18
                                                                            # simulate calls), then seconds
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = HERE / "results" / "selection"
DATASETS = {"ag_news": 1.0, "trec": 1.0, "subj": 0.5}  # dataset: the learner's c (as label_efficiency)
PROMPTS = ("plain", "cot")
MODEL = "qwen2.5-coder-0.5b"
N_CANDIDATES, K, TARGET, BATCH, MARGIN_START = 200, 32, 100, 2, 10
MAX_CHARS = 120
PORT = 18731
#: nominal prices (the local model costs nothing): a small hosted model's, per million tokens
SELECTOR_PRICE = (0.15, 0.60)
#: label prices for the equal-dollar comparison: a person, and a small hosted LLM annotator
LABEL_PRICES = {"human ($0.05 / label)": 0.05, "LLM annotator ($0.0005 / label)": 0.0005}
MAX_TOKENS = {"plain": 400, "cot": 700}

CONFIG = """# {title}
[data]
source = "folder"
path = "{data}"

[learner]
c = {c}

[policy]
name = "{policy}"

[loop]
batch_size = {batch}
rounds = {rounds}
initial_labels = {initial_labels}
seed = {seed}
annotator = "labeller"
{initial}
[budget]
usd = 1000.0

[annotators.labeller]
kind = "simulated"
usd_per_label = 0.05
flip_rate = 0.0
"""

SELECTOR = """
[selector]
kind = "llm"
provider = "openai"
model = "{model}"
base_url = "{base_url}"
api_key_env = "ALBAND_LOCAL_KEY"
input_usd_per_mtok = {price_in}
output_usd_per_mtok = {price_out}
max_tokens_param = "max_tokens"
max_tokens = {max_tokens}
timeout_s = 900
max_retries = 0
n_candidates = {n}
k = {k}
prompt = "{prompt}"
max_chars = {max_chars}
"""

#: arm -> (policy, initial labels, seed-set method, LLM prompt or None)
ARMS = {
    "random": ("random", K, "random", None),
    "random+margin": ("margin", K, "random", None),
    "kmeans+margin": ("margin", K, "kmeans", None),
    "margin": ("margin", MARGIN_START, "random", None),
    "llm-plain+margin": ("margin", K, "random", "plain"),
    "llm-cot+margin": ("margin", K, "random", "cot"),
}


def config_text(arm: str, dataset: str, seed: int, base_url: str = "http://127.0.0.1:1/v1") -> str:
    policy, initial_labels, method, prompt = ARMS[arm]
    rounds = (TARGET - initial_labels) // BATCH
    text = CONFIG.format(title=f"llm_roles selection: {arm} on {dataset}", data=DATA / dataset, c=DATASETS[dataset],
                         policy=policy, batch=BATCH, rounds=rounds, initial_labels=initial_labels, seed=seed,
                         initial=f'initial = "{method}"\n' if method != "random" else "")
    if prompt is not None:
        text += SELECTOR.format(model=MODEL, base_url=base_url, price_in=SELECTOR_PRICE[0],
                                price_out=SELECTOR_PRICE[1], max_tokens=MAX_TOKENS[prompt], n=N_CANDIDATES, k=K,
                                prompt=prompt, max_chars=MAX_CHARS)
    return text


def _alband(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALBAND_LOCAL_KEY="local", PYTHONPATH=str(ROOT / "src"), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "alband", *args], env=env, capture_output=True, text=True)


def record(seeds: int, threads: int, datasets: list[str], prompts: list[str], port: int = PORT) -> None:
    from alband.local_llm import LocalServer, gguf_path
    from alband.selection.replay import load_selections, write_cache
    runs, configs = RESULTS / "runs", RESULTS / "configs"
    for folder in (runs, configs, RESULTS / "selections"):
        folder.mkdir(parents=True, exist_ok=True)
    # a fixed port: a resumed run's config names the server it was started with
    with LocalServer(gguf_path(MODEL), MODEL, threads=threads, n_ctx=12288, port=port) as server:
        for dataset in datasets:
            for prompt in prompts:
                arm = f"llm-{prompt}+margin"
                records = []
                for seed in range(seeds):
                    name = f"{dataset}-{prompt}-seed{seed}"
                    out = runs / name
                    config = configs / f"{name}.toml"
                    config.write_text(config_text(arm, dataset, seed, server.base_url))
                    started = time.perf_counter()
                    done = _alband("resume", str(out), "--quiet") if (out / "ledger.sqlite").exists() else \
                        _alband("run", str(config), "--out", str(out), "--quiet")
                    if done.returncode != 0:
                        raise SystemExit(f"selection.py: {name}: alband exited {done.returncode}: "
                                         f"{done.stderr.strip()[-2000:]}")
                    records += load_selections(out)
                    print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
                write_cache(records, RESULTS / "selections" / f"{dataset}-{prompt}.jsonl")
                write_calls()


def _seconds(created_at: str, settled_at: str | None) -> float | None:
    """Seconds from a ledger row's reservation to its settlement (the call, as the run saw it)."""
    from datetime import datetime

    if not created_at or not settled_at:
        return None
    return round((datetime.fromisoformat(settled_at) - datetime.fromisoformat(created_at)).total_seconds(), 1)


def write_calls() -> None:
    """``results/selection/calls.jsonl``: every selection charge of the recorded runs' ledgers."""
    from alband.store.ledger import Ledger

    lines = []
    for ledger_path in sorted((RESULTS / "runs").glob("*/ledger.sqlite")):
        dataset, prompt, seed = ledger_path.parent.name.rsplit("-", 2)
        with Ledger.open(ledger_path, create=False, read_only=True) as ledger:
            rows = [r for r in ledger.rows() if r.kind == "selection"]
        for row in rows:
            lines.append(json.dumps({
                "dataset": dataset, "prompt": prompt, "seed": int(seed.removeprefix("seed")), "model": MODEL,
                "status": row.status, "input_tokens": row.input_tokens, "output_tokens": row.output_tokens,
                "cost_usd": row.cost_usd, "seconds": _seconds(row.created_at, row.settled_at), "repairs": row.extra.get("repairs"),
                "parse_method": row.extra.get("parse_method"), "picked": len(row.extra.get("picked", [])),
                "filled": len(row.extra.get("filled", []))}))
    (RESULTS / "calls.jsonl").write_text("\n".join(lines) + "\n")


def _simulate(arm: str, dataset: str, seeds: int, again: bool) -> dict:
    """``alband simulate`` of one arm (replaying the recorded selections for an LLM arm); its JSON is kept in
    ``results/selection/simulate/`` and reused while the config, the seeds and the records are unchanged."""
    import hashlib

    folder = RESULTS / "simulate"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{dataset}-{arm}.toml"
    config.write_text(config_text(arm, dataset, 0))
    args = ["simulate", str(config), "--seeds", str(seeds), "--json", "--quiet"]
    prompt = ARMS[arm][3]
    digest = hashlib.sha256(config.read_bytes() + str(seeds).encode())
    if prompt is not None:
        cache = RESULTS / "selections" / f"{dataset}-{prompt}.jsonl"
        args += ["--selections", str(cache)]
        digest.update(cache.read_bytes())
    kept = folder / f"{dataset}-{arm}.json"
    if kept.exists() and not again:
        result = json.loads(kept.read_text())
        if result.get("inputs_sha256") == digest.hexdigest():
            return result
    done = _alband(*args)
    if done.returncode != 0:
        raise SystemExit(f"selection.py: simulate {arm} on {dataset}: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    keep = {key: result[key] for key in ("config", "seeds", "rounds", "compile_seconds", "simulate_seconds",
                                         "per_seed_curves", "selection_replayed")}
    keep["inputs_sha256"] = digest.hexdigest()
    kept.write_text(json.dumps(keep) + "\n")
    result = keep
    if prompt is not None and not all(result["selection_replayed"]["initial"]):
        raise SystemExit(f"selection.py: {dataset}-{prompt}: a seed has no recorded selection "
                         f"({result['selection_replayed']['initial']}); record it first")
    return result


def _at(curves: dict, labels: int) -> list[float]:
    """Per seed: test accuracy at the first round with at least ``labels`` labels."""
    out = []
    for accuracy, counts in zip(curves["test_accuracy"], curves["n_labeled"]):
        index = next(i for i, n in enumerate(counts) if n >= labels)
        out.append(accuracy[index])
    return out


def report(seeds: int, again: bool = False) -> str:
    import numpy as np

    from alband.stats import mean_interval, paired_interval

    calls = [json.loads(line) for line in (RESULTS / "calls.jsonl").read_text().splitlines()]
    lines, summary = [], {"seeds": seeds, "model": MODEL, "datasets": {}}
    for dataset in DATASETS:
        results = {arm: _simulate(arm, dataset, seeds, again) for arm in ARMS}
        curves = {arm: r["per_seed_curves"] for arm, r in results.items()}
        live = _live_check(dataset, curves, seeds)
        at32 = {arm: _at(c, K) for arm, c in curves.items()}
        at100 = {arm: _at(c, TARGET) for arm, c in curves.items()}
        lines += [f"### {dataset} ({seeds} seeds; mean test accuracy [95% t-interval]; difference vs random, "
                  "paired by seed)", "",
                  "| arm | accuracy at 32 labels | vs random at 32 | accuracy at 100 labels | vs random at 100 |",
                  "|---|---|---|---|---|"]
        table = {}
        for arm in ARMS:
            row = {}
            for name, values in (("32", at32), ("100", at100)):
                m = mean_interval(values[arm])
                row[name] = (m.estimate, m.low, m.high)
                d = None if arm == "random" else paired_interval(values[arm], values["random"])
                row[f"d{name}"] = None if d is None else (d.estimate, d.low, d.high)
            table[arm] = row

            def fmt(m):
                return f"{m[0]:.3f} [{m[1]:.3f}, {m[2]:.3f}]"

            def fmt_d(d):
                return "-" if d is None else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
            lines.append(f"| {arm} | {fmt(row['32'])} | {fmt_d(row['d32'])} | {fmt(row['100'])} | "
                         f"{fmt_d(row['d100'])} |")
        lines.append("")
        # equal dollars: each LLM arm's selection dollars buy random extra labels
        dollars = {}
        for prompt in PROMPTS:
            spent = [c["cost_usd"] for c in calls if c["dataset"] == dataset and c["prompt"] == prompt
                     and c["status"] == "settled"][:seeds]
            dollars[prompt] = spent
        lines += [f"Equal dollars on {dataset}: the selection call's dollars (at ${SELECTOR_PRICE[0]} / "
                  f"${SELECTOR_PRICE[1]} per M tokens) spent on random labels instead.", "",
                  "| label price | arm | selection $ (mean) | random labels it buys | random at 32 + those | "
                  "LLM arm at 32 - random at equal dollars |", "|---|---|---|---|---|---|"]
        for price_name, price in LABEL_PRICES.items():
            for prompt in PROMPTS:
                arm = f"llm-{prompt}+margin"
                extra = [int(d // price) for d in dollars[prompt]]
                equal = []
                for s, more in enumerate(extra):
                    acc, counts = curves["random"]["test_accuracy"][s], curves["random"]["n_labeled"][s]
                    index = next((i for i, n in enumerate(counts) if n >= K + more), len(counts) - 1)
                    equal.append(acc[index])
                d = paired_interval(at32[arm], equal)
                d = (d.estimate, d.low, d.high)
                lines.append(f"| {price_name} | {arm} | {np.mean(dollars[prompt]):.5f} | {np.mean(extra):.1f} | "
                             f"{np.mean(equal):.3f} | {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |")
        lines.append("")
        summary["datasets"][dataset] = {"table": {arm: {k: v for k, v in row.items()} for arm, row in table.items()},
                                        "selection_usd": dollars, "live_check": live}
    calls_table = _calls_table(calls)
    checked = [c for d in summary["datasets"].values() for c in d["live_check"].values()]
    runs = sum(c["runs_checked"] for c in checked)
    worst = max((c["max_abs_difference"] for c in checked if c["max_abs_difference"] is not None), default=None)
    calls_table += (f"\nReplay check: `alband simulate --selections` reproduces the accuracies of {runs} live runs "
                    f"round by round (largest absolute difference {worst}).\n" if runs else
                    "\nReplay check: no live run folder or archive to compare with.\n")
    text = "\n".join(lines) + "\n" + calls_table
    (RESULTS / "summary.md").write_text(text + "\n")
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return text


def _calls_table(calls: list[dict]) -> str:
    import numpy as np

    lines = ["The selection calls (Qwen2.5-Coder-0.5B-Instruct, local, 1 call per seed):", "",
             "| dataset | prompt | calls | input tokens | output tokens | picked by the model (of 32) | "
             "repairs: duplicate / out of range / non-integer / surplus | seconds per call (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for dataset in DATASETS:
        for prompt in PROMPTS:
            rows = [c for c in calls if c["dataset"] == dataset and c["prompt"] == prompt and c["status"] == "settled"]
            if not rows:
                continue
            rep = {k: sum((r["repairs"] or {}).get(k, 0) for r in rows) for k in
                   ("duplicate", "out_of_range", "non_integer", "surplus")}
            lines.append(f"| {dataset} | {prompt} | {len(rows)} | {np.mean([r['input_tokens'] for r in rows]):.0f} | "
                         f"{np.mean([r['output_tokens'] for r in rows]):.0f} | "
                         f"{np.mean([r['picked'] for r in rows]):.1f} | "
                         f"{rep['duplicate']} / {rep['out_of_range']} / {rep['non_integer']} / {rep['surplus']} | "
                         f"{np.median([r['seconds'] for r in rows]):.0f} |")
    return "\n".join(lines) + "\n"


def _live_check(dataset: str, curves: dict, seeds: int) -> dict:
    """The live runs' accuracies against the replay's (max abs difference): from the run folders, or from
    ``runs.tar.gz`` (the folders archived once recorded) where the folders are absent."""
    import tarfile

    archive = RESULTS / "runs.tar.gz"
    members = {}
    if archive.exists():
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.name.endswith("/metrics.jsonl"):
                    members[member.name.split("/")[-2]] = tar.extractfile(member).read().decode()
    out = {}
    for prompt in PROMPTS:
        diffs = []
        for seed in range(seeds):
            name = f"{dataset}-{prompt}-seed{seed}"
            folder = RESULTS / "runs" / name / "metrics.jsonl"
            text = folder.read_text() if folder.exists() else members.get(name)
            if text is None:
                continue
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            live = [row["test_accuracy"] for row in rows if "test_accuracy" in row]
            replay = curves[f"llm-{prompt}+margin"]["test_accuracy"][seed]
            diffs.append(max(abs(a - b) for a, b in zip(live, replay)) if len(live) == len(replay) else float("inf"))
        out[prompt] = {"runs_checked": len(diffs), "max_abs_difference": max(diffs) if diffs else None}
    return out


def main() -> int:
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the live selections against the local model")
    rec.add_argument("--seeds", type=int, default=5)
    rec.add_argument("--threads", type=int, default=2, help="server threads (default 2)")
    rec.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    rec.add_argument("--prompts", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    rec.add_argument("--port", type=int, default=PORT, help=f"the server's port (default {PORT})")
    rep = sub.add_parser("report", help="the tables, from the records alone")
    rep.add_argument("--seeds", type=int, default=5)
    rep.add_argument("--again", action="store_true", help="simulate again even where a kept result matches")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results folder (default: %(default)s)")
    args = parser.parse_args()
    RESULTS = args.results
    if not DATA.is_dir():
        print(f"selection.py: error: no data folder at {DATA}", file=sys.stderr)
        return 2
    if args.command == "record":
        record(args.seeds, args.threads, args.datasets, args.prompts, args.port)
    else:
        print(report(args.seeds, args.again))
    return 0


if __name__ == "__main__":
    sys.exit(main())
