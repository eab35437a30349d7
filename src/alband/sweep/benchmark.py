"""``alband sweep bench``: a sweep's wall time on each backend against calling ``simulate`` directly.

The grid is policies x datasets (``../shared/data``: MiniLM embeddings, a
simulated strong LLM), every cell run for the same seeds. Each measurement is
a fresh process started from the same state (nothing compiled, nothing
stored), timed from its start to its exit:

* ``direct``: one process that expands the cells and calls ``simulate`` on
  each in turn (:func:`alband.sweep.worker.simulate_cell`: parse the config,
  ``simulate_config``), storing nothing -- what a hand-written loop does;
* ``local``: ``alband sweep SPEC`` (cells in the driver, ``--jobs 1``);
* ``local_jobs_2``: ``alband sweep SPEC --jobs 2`` (a pool of 2 spawned workers);
* ``ray``: ``alband sweep SPEC --ray`` (a local Ray instance started by the sweep).

The overhead per cell of a backend is ``(its wall time - direct) / cells``:
the store, the progress bar, worker or Ray start-up, moving rows back. Each
cell compiles its own episode (pool sizes and classes differ between datasets),
in every variant alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from alband.errors import AlbandError

DATASETS = ("ag_news", "trec", "subj")
DEFAULT_SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"

_BASE = """[data]
source = "folder"
path = "{path}"
max_train = {max_train}

[policy]
name = "random"

[loop]
batch_size = {batch_size}
rounds = {rounds}
initial_labels = 10

[budget]
usd = 100.0

[annotators.strong-llm]
kind = "simulated"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0
flip_rate = 0.05
prompt_tokens = 120
output_tokens = 8
max_output_tokens = 32
"""


def write_benchmark_spec(folder: Path, data_root: Path, *, policies: list[str], datasets: list[str], seeds: int,
                         rounds: int, batch_size: int, max_train: int) -> Path:
    """``base.toml`` and ``spec.toml`` of the benchmark grid in ``folder``."""
    for name in datasets:
        if not (data_root / name / "emb_minilm.npy").exists():
            raise AlbandError(f"sweep bench: dataset '{name}' not found under {data_root} (--data-root)")
    (folder / "base.toml").write_text(_BASE.format(path=data_root / datasets[0], max_train=max_train,
                                                   batch_size=batch_size, rounds=rounds))
    values = ", ".join(f'{{ name = "{n}", value = {json.dumps(str(data_root / n))} }}' for n in datasets)
    spec = folder / "spec.toml"
    spec.write_text(f'base = "base.toml"\n\n[seeds]\nstart = 0\ncount = {seeds}\n\n[grid]\n'
                    f'"data.path" = [{values}]\n"policy.name" = {json.dumps(policies)}\n\n'
                    f'[report]\nbaseline = "policy.name={policies[0]}"\n')
    return spec


def direct_main(spec_path: str) -> None:
    """Every cell of the spec through ``simulate`` in this process, nothing stored; JSON seconds per call."""
    from alband.sweep.cells import expand_cells
    from alband.sweep.spec import load_spec
    from alband.sweep.worker import simulate_cell

    calls = []
    for cell in expand_cells(load_spec(spec_path)):
        t0 = time.perf_counter()
        result = simulate_cell(cell)
        calls.append({"cell": cell.name, "seconds": time.perf_counter() - t0,
                      "compile_seconds": result["compile_seconds"], "simulate_seconds": result["simulate_seconds"]})
    print(json.dumps(calls))


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise AlbandError(f"sweep bench: {' '.join(argv[2:5])} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, done.stdout


def bench_sweep(data_root: Path, *, policies: list[str], datasets: list[str], seeds: int, rounds: int,
                batch_size: int, max_train: int, backends: list[str]) -> dict[str, Any]:
    from alband.demo import machine_info
    from alband.sweep.store import ResultStore

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="alband-sweep-bench-") as tmp:
        folder = Path(tmp)
        spec = write_benchmark_spec(folder, data_root, policies=policies, datasets=datasets, seeds=seeds,
                                    rounds=rounds, batch_size=batch_size, max_train=max_train)
        cells = len(policies) * len(datasets)
        direct_seconds, out = _timed([sys.executable, "-c", "import sys; from alband.sweep.benchmark import "
                                      "direct_main; direct_main(sys.argv[1])", str(spec)], env)
        calls = json.loads(out)
        result: dict[str, Any] = {
            "benchmark": "sweep", "policies": policies, "datasets": datasets, "cells": cells, "seeds": seeds,
            "rounds": rounds, "batch_size": batch_size, "max_train": max_train,
            "direct": {"wall_seconds": direct_seconds, "calls": calls,
                       "call_seconds_total": sum(c["seconds"] for c in calls)},
        }
        flags = {"local": ["--jobs", "1"], "local_jobs_2": ["--jobs", "2"], "ray": ["--ray"]}
        for backend in backends:
            out_dir = folder / f"out-{backend}"
            seconds, _ = _timed([sys.executable, "-m", "alband", "sweep", str(spec), "--out", str(out_dir),
                                 "--quiet", *flags[backend]], env)
            rows = list(ResultStore(out_dir).rows())
            if len(rows) != cells or any(r["status"] != "done" for r in rows):
                raise AlbandError(f"sweep bench: backend {backend} stored {len(rows)} rows, not {cells} done ones")
            result[backend] = {
                "wall_seconds": seconds,
                "overhead_seconds_per_cell": (seconds - direct_seconds) / cells,
                "cell_seconds_total": sum(r["timings"]["cell_seconds"] for r in rows),
                "compile_seconds_total": sum(r["timings"]["compile_seconds"] for r in rows),
                "simulate_seconds_total": sum(r["timings"]["simulate_seconds"] for r in rows),
            }
    result["load_average"] = list(os.getloadavg())
    result["machine"] = machine_info()
    return result


def bench_main(argv: list[str]) -> int:
    """``alband sweep bench [--seeds N] [--rounds R] [--backend B]... [--json]``."""
    from alband.sweep.cli import _RaisingParser

    p = _RaisingParser(prog="alband sweep bench",
                       description="Wall time of a policies x datasets sweep per backend against direct simulate calls.")
    p.add_argument("--data-root", default=str(DEFAULT_SHARED), help="folder of ag_news/, trec/, subj/ "
                                                                    "(default ../shared/data)")
    p.add_argument("--policy", action="append", help="policy (repeatable; default random margin)")
    p.add_argument("--dataset", action="append", help="dataset folder name (repeatable; default ag_news trec subj)")
    p.add_argument("--seeds", type=int, default=20, help="episodes per cell (default 20, as simulate)")
    p.add_argument("--rounds", type=int, default=10, help="query rounds per episode (default 10)")
    p.add_argument("--batch-size", type=int, default=10, help="labels bought per round (default 10)")
    p.add_argument("--max-train", type=int, default=2000, help="pool size per dataset (default 2000)")
    p.add_argument("--backend", action="append", choices=["local", "local_jobs_2", "ray"],
                   help="repeatable; default local, local_jobs_2 and ray (ray when installed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if min(args.seeds, args.rounds, args.batch_size, args.max_train) < 1:
        raise AlbandError("sweep bench: --seeds, --rounds, --batch-size and --max-train must be >= 1")
    backends = args.backend or ["local", "local_jobs_2"] + (["ray"] if _has_ray() else [])
    result = bench_sweep(Path(args.data_root), policies=args.policy or ["random", "margin"],
                         datasets=args.dataset or list(DATASETS), seeds=args.seeds, rounds=args.rounds,
                         batch_size=args.batch_size, max_train=args.max_train, backends=backends)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print(f"{result['cells']} cells x {result['seeds']} seeds x {result['rounds']} rounds: "
              f"direct {result['direct']['wall_seconds']:.1f} s")
        for backend in backends:
            r = result[backend]
            print(f"{backend}: {r['wall_seconds']:.1f} s, overhead {r['overhead_seconds_per_cell']:+.2f} s per cell")
    return 0


def _has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None
