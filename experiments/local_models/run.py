"""Local GGUF models as annotators on AG News, TREC and Subj samples.

For every model and dataset: a seeded sample of test items, one chat request
per item to a local llama-cpp-python server (``alband.local_llm``), with the
prompt of ``alband``'s LLM annotators (:class:`ClassificationPrompt`), JSON
mode, temperature 0, ``max_tokens`` 48 and ``logprobs`` with ``top_logprobs``
10. Each response body is recorded (``results/<model>.jsonl.gz``) with its wall time;
the table is built from that file alone, so ``--table-only`` rebuilds it
offline. Two labels per response:

* written: what the annotator reads from the text (``parse_label_answer``);
* scored: the argmax of the label-set scores at the label's first token
  (``label_set_scores``); where they cannot be computed, the written label.

Usage (from the project root, with the ``local-llm`` extra and the weights
installed, ``../shared/data`` beside the project)::

    python experiments/local_models/run.py --models smollm2 --n 25 --threads 1
    python experiments/local_models/run.py --models qwen2.5-coder-0.5b --n 15 --threads 1
    python experiments/local_models/run.py --table-only
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "data"
DATASETS = ("ag_news", "trec", "subj")
#: TREC's class names are abbreviations: the prompt spells out what each means.
DESCRIPTIONS = {
    "trec": {"ABBR": "the question asks for an abbreviation or what one stands for",
             "DESC": "the question asks for a description, definition, manner or reason",
             "ENTY": "the question asks for an entity (a thing, animal, colour, event, product, ...)",
             "HUM": "the question asks for a person or a group of people",
             "LOC": "the question asks for a location", "NUM": "the question asks for a number, date or amount"},
}
TOP_LOGPROBS = 10
MAX_TOKENS = 48


def sample(dataset: str, n: int, seed: int) -> tuple[list[str], list[dict]]:
    """The label names and the first ``n`` test items of ``dataset`` in a seeded random order.

    The order is one shuffle of the whole test split, so a larger ``n`` keeps the items of a smaller one
    (``random.sample(rows, n)`` does not: it switches algorithm with ``n``).
    """
    labels = json.loads((DATA / dataset / "labels.json").read_text())
    names = [labels[str(i)] for i in range(len(labels))]
    rows = [json.loads(line) for line in (DATA / dataset / "data.jsonl").open() if '"split": "test"' in line]
    rows = [row for row in rows if row["split"] == "test"]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return names, [rows[i] for i in order[:n]]


def read_records(path: Path) -> list[dict]:
    """The records of a ``.jsonl.gz`` file; a tail cut off by a stopped run (no gzip trailer, a half line)
    is dropped."""
    records = []
    try:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    except (EOFError, gzip.BadGzipFile):
        pass
    return records


def plan(n: int, seed: int, block: int) -> list[tuple[str, list[str], list[dict]]]:
    """Blocks of ``block`` items taken from each dataset in turn, so that a run stopped early still covers
    all three datasets with the first items of each sample."""
    samples = {dataset: sample(dataset, n, seed) for dataset in DATASETS}
    blocks = []
    for start in range(0, n, block):
        for dataset in DATASETS:
            names, rows = samples[dataset]
            if rows[start:start + block]:
                blocks.append((dataset, names, rows[start:start + block]))
    return blocks


def measure(models: list[str], n: int, seed: int, threads: int, results: Path, block: int = 25,
            n_ctx: int = 2048) -> None:
    """Ask each model about the planned items, appending one record per response to
    ``results/<model>.jsonl.gz``; items already recorded there (same dataset, id and thread count) are kept
    and not asked again, records of items outside the plan are dropped."""
    import openai

    from alband.annotators.prompts import ClassificationPrompt
    from alband.local_llm import LocalServer, gguf_path

    results.mkdir(parents=True, exist_ok=True)
    blocks = plan(n, seed, block)
    wanted = {(dataset, row["id"]) for dataset, _, rows in blocks for row in rows}
    for model in models:
        path = results / f"{model}.jsonl.gz"
        kept = [record for record in (read_records(path) if path.exists() else [])
                if (record["dataset"], record["id"]) in wanted and record["threads"] == threads]
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in kept)
        tmp.replace(path)
        done = {(record["dataset"], record["id"]) for record in kept}
        print(f"{model}: {len(done)} of {len(wanted)} items already recorded", file=sys.stderr, flush=True)
        if len(done) == len(wanted):
            continue
        with gzip.open(path, "at") as sink, LocalServer(gguf_path(model), model, threads=threads, n_ctx=n_ctx) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=300)
            for dataset, names, rows in blocks:
                prompt = ClassificationPrompt(tuple(names), label_descriptions=DESCRIPTIONS.get(dataset))
                todo = [row for row in rows if (dataset, row["id"]) not in done]
                for row in todo:
                    rendered = prompt.render(row["text"])
                    started = time.perf_counter()
                    raw = client.chat.completions.with_raw_response.create(
                        model=model, messages=[{"role": "system", "content": rendered.system}, *rendered.messages],
                        response_format={"type": "json_object"}, temperature=0.0, max_tokens=MAX_TOKENS,
                        logprobs=True, top_logprobs=TOP_LOGPROBS)
                    body = json.loads(raw.http_response.text)
                    seconds = time.perf_counter() - started
                    sink.write(json.dumps({"model": model, "dataset": dataset, "id": row["id"],
                                           "gold": row["label"], "labels": names, "threads": threads, "n_ctx": n_ctx,
                                           "seconds": seconds, "response": body}) + "\n")
                    sink.flush()
                if todo:
                    print(f"{model} {dataset}: {len(todo)} items", file=sys.stderr, flush=True)


def table(results: Path) -> str:
    from alband.annotators.label_set_scoring import label_set_scores
    from alband.annotators.parsing import parse_label_answer

    groups: dict[tuple[str, str], list[dict]] = {}
    records = (record for path in sorted(results.glob("*.jsonl.gz")) for record in read_records(path))
    for record in records:
        choice = record["response"]["choices"][0]
        text = choice["message"]["content"]
        written = parse_label_answer(text, record["labels"]).label
        scores = label_set_scores((choice.get("logprobs") or {}).get("content"), text, record["labels"])
        scored = scores.label if scores is not None else written
        usage = record["response"]["usage"]
        groups.setdefault((record["model"], record["dataset"]), []).append(
            {"written": written == record["gold"], "valid": written is not None, "scored": scored == record["gold"],
             "scorable": scores is not None, "top": max(scores.probabilities) if scores else None,
             "prompt": usage["prompt_tokens"],
             "completion": usage["completion_tokens"], "seconds": record["seconds"]})
    lines = ["| model | dataset | items | accuracy (written) | valid answers | accuracy (label-set scored) | "
             "scorable | scored p, right / wrong | prompt tokens / item | completion tokens / item | "
             "seconds / item (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (model, dataset), rows in groups.items():
        k = len(rows)
        seconds = sorted(row["seconds"] for row in rows)
        median = (seconds[(k - 1) // 2] + seconds[k // 2]) / 2
        mean = lambda key: sum(row[key] for row in rows) / k  # noqa: E731

        def top(right: bool) -> str:
            values = [row["top"] for row in rows if row["top"] is not None and row["scored"] == right]
            return f"{sum(values) / len(values):.2f}" if values else "-"
        lines.append(f"| {model} | {dataset} | {k} | {mean('written'):.2f} | {mean('valid'):.2f} | "
                     f"{mean('scored'):.2f} | {mean('scorable'):.2f} | {top(True)} / {top(False)} | {mean('prompt'):.0f} | "
                     f"{mean('completion'):.1f} | {median:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--n", type=int, default=50, help="test items per dataset (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block", type=int, default=25,
                        help="items taken from each dataset in turn (default 25), so a stopped run covers all three")
    parser.add_argument("--threads", type=int, default=1, help="server threads (default 1)")
    parser.add_argument("--results", type=Path, default=HERE / "results",
                        help="folder of the <model>.jsonl.gz response files (default: results/ beside this file)")
    parser.add_argument("--n-ctx", type=int, default=768,
                        help="server context size (default 768: the longest prompt plus answer is under 500 tokens; "
                             "the server's logprobs step normalises a context-by-vocabulary array per request, "
                             "so a smaller context is faster)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from --results, no server")
    args = parser.parse_args()
    if not args.table_only:
        if not DATA.is_dir():
            print(f"run.py: error: no data folder at {DATA}", file=sys.stderr)
            return 2
        measure(args.models, args.n, args.seed, args.threads, args.results, args.block, args.n_ctx)
    print(table(args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
