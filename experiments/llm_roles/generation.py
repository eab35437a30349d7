"""Generation on vs off at equal dollars, with a real local model (Qwen2.5-Coder-0.5B-Instruct).

For AG News, TREC and Subj (``../shared/data``, read in place) a seeded subsample
(``POOL`` train rows as the pool, ``TEST`` test rows) is written to a scratch
folder (never committed) and embedded by alband's MiniLM encoder (cached on disk
by content hash). Each (dataset, seed) is two ``alband run`` runs of one config,
the same ``[budget] usd`` for both:

* **on**: a ``[generator]`` served by ``alband.local_llm.LocalServer`` (one
  thread) writes ``items_per_round`` labelled items in its scheduled rounds;
  its calls are ledger charges in the same budget as the labels;
* **off**: the same config whose ``[generator]`` is scheduled after the last
  round (``start_round = rounds + 1``): it never calls the model, and the two
  arms share everything else: the held-out validation rows, the test rows, the
  training buffer's shape, the purchase path.

Labels come from a simulated gold annotator at a nominal human price; the
model's tokens are priced at nominal API prices (both below). The run folders
(ledger, metrics, the synthetic items' embeddings) are the record; each is kept
as ``results/generation/runs/<dataset>-s<seed>-<arm>.tar.gz`` and the table is
built from those archives alone::

    python experiments/llm_roles/generation.py record --seeds 0 1 2 3 4
    python experiments/llm_roles/generation.py report      # offline, seconds

The generator is shown no pool text by default (``--n-examples 0``): shown the
least confident ones, Qwen 0.5B copies them (the variant recorded with
``--n-examples 5 --runs results/generation/shown_examples``). What the
table shows: ``README.md``, "Generation".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHARED = ROOT.parent / "shared" / "data"
RESULTS = HERE / "results" / "generation"
RUNS = RESULTS / "runs"
DATASETS = ("ag_news", "trec", "subj")
MODEL = "qwen2.5-coder-0.5b"

POOL = 1000            # train rows kept as the pool, per dataset
TEST = 500             # test rows kept (TREC has exactly 500)
VALIDATION = 100       # of those, held out as the generator's validation set (both arms)
SUBSAMPLE_SEED = 0     # the subsample is the same for every run seed
USD_PER_LABEL = 0.02   # nominal human price per label
INPUT_USD_PER_MTOK = 0.15   # nominal API prices of a small hosted model
OUTPUT_USD_PER_MTOK = 0.60
INITIAL = 10
BATCH = 10
ROUNDS = 9
BUDGET = round(USD_PER_LABEL * (INITIAL + BATCH * ROUNDS), 6)   # exactly 100 labels when nothing else is paid
ITEMS_PER_ROUND = 6
K_SAMPLES = 1
START_ROUND = 1
EVERY = 4              # generating rounds 1, 5, 9
NOVELTY_FLOOR = 0.05

TASKS = {
    "ag_news": "Classify news articles by topic: World, Sports, Business or Sci/Tech.",
    "trec": ("Classify questions by the type of their answer: ABBR (an abbreviation), DESC (a description or "
             "definition), ENTY (an entity), HUM (a person or group), LOC (a location), NUM (a number or date)."),
    "subj": ("Classify movie-review sentences as subjective (an opinion) or objective (a plot fact)."),
}

CONFIG = """\
[data]
source = "table"
path = "{path}"
text_column = "text"
label_column = "label_name"
id_column = "id"
split_column = "split"
embedder = "minilm"

[policy]
name = "margin"

[loop]
batch_size = {batch}
rounds = {rounds}
initial_labels = {initial}
seed = {seed}
annotator = "gold"

[budget]
usd = {budget}

[annotators.gold]
kind = "simulated"
usd_per_label = {usd_per_label}

[generator]
provider = "openai"
model = "{model}"
base_url = "{base_url}"
api_key_env = "ALBAND_LOCAL_KEY"
input_usd_per_mtok = {input_price}
output_usd_per_mtok = {output_price}
max_tokens = {max_tokens}
max_tokens_param = "max_tokens"
timeout_s = 600
max_retries = 0
items_per_round = {items}
k_samples = {k}
start_round = {start}
every = {every}
max_share = 0.25
novelty_floor = {novelty_floor}
validation_rows = {validation}
n_examples = {n_examples}
task = "{task}"
"""


# ---------------------------------------------------------------------------------------------- data
def write_subsample(name: str, scratch: Path) -> Path:
    """``POOL`` train and ``TEST`` test rows of the shared dataset, drawn with ``SUBSAMPLE_SEED``."""
    rows = [json.loads(line) for line in (SHARED / name / "data.jsonl").open()]
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    keep = []
    for split, n in (("train", POOL), ("test", TEST)):
        index = [i for i, r in enumerate(rows) if r["split"] == split]
        keep += sorted(rng.choice(index, size=min(n, len(index)), replace=False).tolist())
    path = scratch / f"{name}.jsonl"
    with path.open("w") as out:
        for i in keep:
            r = rows[i]
            out.write(json.dumps({"id": r["id"], "text": r["text"], "label_name": r["label_name"],
                                  "split": r["split"]}) + "\n")
    return path


def config_text(name: str, data: Path, seed: int, base_url: str, arm: str, n_examples: int) -> str:
    start = START_ROUND if arm == "on" else ROUNDS + 1
    return CONFIG.format(path=data, batch=BATCH, rounds=ROUNDS, initial=INITIAL, seed=seed, budget=BUDGET,
                         usd_per_label=USD_PER_LABEL, model=MODEL, base_url=base_url,
                         input_price=INPUT_USD_PER_MTOK, output_price=OUTPUT_USD_PER_MTOK, max_tokens=700,
                         items=ITEMS_PER_ROUND, k=K_SAMPLES, start=start, every=EVERY, validation=VALIDATION,
                         n_examples=n_examples, novelty_floor=NOVELTY_FLOOR, task=TASKS[name])


def archive(run: Path, target: Path) -> None:
    """The run folder as ``target`` (.tar.gz), written through a temporary file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(run, arcname=target.name.removesuffix(".tar.gz"))
    os.replace(tmp, target)


# ---------------------------------------------------------------------------------------------- record
def record(seeds: list[int], datasets: list[str], threads: int, scratch: Path, n_examples: int, runs: Path) -> None:
    from alband.cli.main import main
    from alband.local_llm import LocalServer, gguf_path

    os.environ.setdefault("ALBAND_LOCAL_KEY", "local")
    scratch.mkdir(parents=True, exist_ok=True)
    data = {name: write_subsample(name, scratch) for name in datasets}
    log = scratch / "server.log"
    with LocalServer(gguf_path(MODEL), MODEL, threads=threads, n_ctx=4096, log_path=log) as server:
        for seed in seeds:
            for name in datasets:
                for arm in ("on", "off"):
                    target = runs / f"{name}-s{seed}-{arm}.tar.gz"
                    if target.exists():
                        continue
                    config = scratch / f"{name}-s{seed}-{arm}.toml"
                    config.write_text(config_text(name, data[name], seed, server.base_url, arm, n_examples))
                    out = scratch / "runs" / target.name.removesuffix(".tar.gz")
                    if out.exists():
                        shutil.rmtree(out)
                    start = time.perf_counter()
                    code = main(["run", str(config), "--out", str(out), "--quiet"])
                    seconds = time.perf_counter() - start
                    (out / "wall_seconds.json").write_text(json.dumps({"seconds": seconds, "exit": code}))
                    print(f"{name} seed {seed} {arm}: exit {code}, {seconds:.0f} s", flush=True)
                    if code != 0:
                        raise SystemExit(f"{name} seed {seed} {arm}: alband run exited {code}")
                    archive(out, target)


# ---------------------------------------------------------------------------------------------- report
def read_run(target: Path) -> dict:
    """What the table needs from one archived run folder (its ledger, metrics and synthetic embeddings)."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(target) as tar:
        tar.extractall(tmp, filter="data")
        run = next(Path(tmp).iterdir())
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        wall = json.loads((run / "wall_seconds.json").read_text())["seconds"]
        with sqlite3.connect(f"file:{run / 'ledger.sqlite'}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM annotations ORDER BY id")]
        embeddings = {f.relative_to(run).as_posix(): np.load(f) for f in run.glob("synthetic/*.npy")}
    dollars: dict[str, float] = {}
    seconds: dict[str, float] = {}
    labels = 0
    synthetic = {"generated": 0, "accepted": 0, "rejected": {}, "accepted_items": [], "conflicts": 0}
    batches: dict[int, list] = {}
    for r in rows:
        kind = r["kind"]
        if kind == "synthetic":
            extra = json.loads(r["extra"] or "{}")
            synthetic["generated"] += 1
            file, j = extra["embedding"].split("#")
            batches.setdefault(r["round"], []).append((extra["label"], extra["verdict"], extra.get("reason"),
                                                       embeddings[file][int(j)]))
            if extra.get("verdict") == "accepted":
                synthetic["accepted"] += 1
                synthetic["accepted_items"].append((extra["label_name"], r["raw"], embeddings[file][int(j)]))
            else:
                reason = extra.get("reason") or "?"
                synthetic["rejected"][reason] = synthetic["rejected"].get(reason, 0) + 1
            continue
        if r["status"] != "settled":
            continue
        dollars[kind] = dollars.get(kind, 0.0) + float(r["cost_usd"] or 0.0)
        if kind == "label":
            labels += 1
        else:  # an LLM call: reserved just before the request, settled just after the reply
            took = datetime.fromisoformat(r["settled_at"]) - datetime.fromisoformat(r["created_at"])
            seconds[kind] = seconds.get(kind, 0.0) + took.total_seconds()
    for batch in batches.values():  # accepted items whose near-duplicate in the batch was given another label
        for label, verdict, _, v in batch:
            if verdict == "accepted" and any(
                    reason == "duplicate" and other != label and 1.0 - float(v @ w) / float(np.linalg.norm(v) *
                                                                                  np.linalg.norm(w)) < NOVELTY_FLOOR
                    for other, _, reason, w in batch):
                synthetic["conflicts"] += 1
    return {"accuracy": float(metrics[-1]["test_accuracy"]), "labels": labels, "dollars": dollars,
            "synthetic": synthetic, "wall_s": wall, "llm_s": seconds, "n_synthetic_trained":
            int(metrics[-1].get("synthetic", {}).get("n_synthetic", 0))}


def neighbour_labels(name: str, vectors: np.ndarray, k: int = 10) -> list[str]:
    """The majority label of each vector's ``k`` nearest rows (cosine) among all labelled rows of the shared dataset.

    A proxy for an item's true label (none exists for a generated text): the
    shared data's own MiniLM embeddings and gold labels, train and test.
    """
    x = np.load(SHARED / name / "emb_minilm.npy")
    ids = (SHARED / name / "emb_minilm_ids.txt").read_text().split()
    label_of = {}
    for line in (SHARED / name / "data.jsonl").open():
        row = json.loads(line)
        label_of[row["id"]] = row["label_name"]
    gold = np.asarray([label_of[i] for i in ids])
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    nearest = np.argsort(-(v @ x.T), axis=1)[:, :k]
    out = []
    for row in nearest:
        values, counts = np.unique(gold[row], return_counts=True)
        out.append(str(values[np.argmax(counts)]))
    return out


def report(runs: Path = RUNS) -> str:
    from alband.stats import mean_interval, paired_interval

    columns = ("dataset", "seeds", "accuracy off", "accuracy on", "on - off (95% t)", "labels off / on",
               "synthetic generated / accepted / trained on", "rejected by reason",
               "accepted with a relabelled duplicate", "$ labels / $ LLM (on)", "accepted labels = 10-NN label",
               "LLM s / run (on)", "wall s / run off / on")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    examples = ["", ("Per dataset: the paired differences by seed, the accepted items' labels, and the first 4 "
                     "accepted items of the lowest seed (label: text, cut to 120 characters):"), ""]
    for name in DATASETS:
        pairs = []
        for on in sorted(runs.glob(f"{name}-s*-on.tar.gz")):
            off = on.with_name(on.name.replace("-on.", "-off."))
            if off.exists():
                pairs.append((read_run(off), read_run(on)))
        if not pairs:
            continue
        acc_off = [p[0]["accuracy"] for p in pairs]
        acc_on = [p[1]["accuracy"] for p in pairs]
        d = paired_interval(acc_on, acc_off)
        m_off, m_on = mean_interval(acc_off), mean_interval(acc_on)
        gen = sum(p[1]["synthetic"]["generated"] for p in pairs)
        acc = sum(p[1]["synthetic"]["accepted"] for p in pairs)
        trained = sum(p[1]["n_synthetic_trained"] for p in pairs)
        reasons: dict[str, int] = {}
        for p in pairs:
            for k, v in p[1]["synthetic"]["rejected"].items():
                reasons[k] = reasons.get(k, 0) + v
        accepted_items = [item for p in pairs for item in p[1]["synthetic"]["accepted_items"]]
        if accepted_items:
            agree = np.mean([label == nn for (label, _, _), nn in zip(
                accepted_items, neighbour_labels(name, np.stack([v for _, _, v in accepted_items])))])
            agreement = f"{agree:.2f} of {len(accepted_items)}"
        else:
            agreement = "-"
        usd_label = np.mean([p[1]["dollars"].get("label", 0.0) for p in pairs])
        usd_llm = np.mean([sum(v for k, v in p[1]["dollars"].items() if k != "label") for p in pairs])
        llm_s = np.mean([sum(p[1]["llm_s"].get(k, 0.0) for k in ("generation", "consistency", "verification"))
                         for p in pairs])
        counts: dict[str, int] = {}
        for label, _, _ in accepted_items:
            counts[label] = counts.get(label, 0) + 1
        diffs = ", ".join(f"{a - b:+.3f}" for a, b in zip(acc_on, acc_off))
        examples.append(f"- {name}: on - off per seed {diffs}; accepted labels "
                        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        for label, text, _ in pairs[0][1]["synthetic"]["accepted_items"][:4]:
            examples.append(f"- {name}, {label}: {' '.join(text.split())[:120]}")
        lines.append(
            f"| {name} | {len(pairs)} | {m_off.estimate:.3f} | {m_on.estimate:.3f} | {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}] "
            f"| {np.mean([p[0]['labels'] for p in pairs]):.1f} / {np.mean([p[1]['labels'] for p in pairs]):.1f} "
            f"| {gen} / {acc} / {trained} | "
            + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none")
            + f" | {sum(p[1]['synthetic']['conflicts'] for p in pairs)} | {usd_label:.4f} / {usd_llm:.5f} | {agreement} | {llm_s:.0f} | "
            f"{np.mean([p[0]['wall_s'] for p in pairs]):.0f} / {np.mean([p[1]['wall_s'] for p in pairs]):.0f} |")
    return "\n".join(lines + examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run the live runs (skips those already archived)")
    rec.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    rec.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    rec.add_argument("--n-examples", type=int, default=0,
                     help="least confident pool texts shown to the generator (default 0: see README.md, 'Generation')")
    rec.add_argument("--runs", type=Path, default=RUNS, help="folder of the archived runs")
    rec.add_argument("--threads", type=int, default=1, help="server threads (default 1)")
    rec.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "alband-llm-roles-generation",
                     help="folder for the subsample files, configs and unarchived run folders")
    rep = sub.add_parser("report", help="the table, from the archived runs alone")
    rep.add_argument("--runs", type=Path, default=RUNS, help="folder of the archived runs")
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.seeds, args.datasets, args.threads, args.scratch, args.n_examples, args.runs)
    print(report(args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
