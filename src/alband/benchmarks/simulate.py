"""``alband bench simulate``: the simulator at scale (shell).

``bench_simulate_main``: episodes per second of the simulator on AG News
(MiniLM embeddings: 10,001 pool items, 384-d, 4 classes; 7,600 test rows),
margin sampling, batches of 10, a strong simulated LLM annotator, all seeds
in one compiled call; the process's peak memory; and the same experiment run
through the live loop (:func:`alband.loop.live_rounds` with
:class:`~alband.annotators.simulated.SimulatedLiveAnnotator` and a SQLite
ledger in a temporary folder) for a few seeds, to give
``speedup_vs_live_loop`` = live seconds per episode / simulated seconds per
episode, and ``speedup_vs_live_loop_without_ledger``, the same ratio with the
live loop's time in its SQLite ledger (two durable commits per purchase,
``live_loop.ledger_seconds_per_round``) taken out. Both engines refit the same
learner on the same labels every round, so that refit bounds the ratio from
above whatever the loop around it costs. The live seeds are checked to buy
exactly the items the simulator bought for them. With the optional ``bench`` extra (modAL) a modAL loop
(scikit-learn ``LogisticRegression(C=1)``, margin sampling, the same pool,
batches and rounds) is timed too.

``scoring_floor``: what no simulator can go below on this machine for a
score-based policy such as margin. Every round must compute the logits of
every pool item under that round's new weights, ``2 N d C`` floating-point
operations per seed; the floor times that product for :data:`FLOOR_SEEDS`
seeds at once in the best shape the hardware has, one large matrix product
``X (N, d) @ W (d, C * FLOOR_SEEDS)``, and divides by the seeds. It counts no
refit, no softmax and no top-k, so ``speedup_bound_from_scoring`` (live seconds
per episode / floor seconds per episode) is an upper bound on
``speedup_vs_live_loop`` for any engine that runs the same policy on this pool.

Timing excludes compilation, which is
reported separately (``compile_seconds``); the live loop is warmed up on two
rounds before it is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from alband.errors import AlbandError

SHARED_DATA = Path(os.environ.get("ALBAND_SHARED_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))
DEFAULT_AG_NEWS = SHARED_DATA / "ag_news"

# The strong LLM of the example configs: $3 / $15 per million tokens, 5% flips.
STRONG_LLM = dict(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0, flip_rate=0.05, prompt_tokens=120,
                  output_tokens=8, max_output_tokens=32)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


def load_folder_task(path: str | Path, *, max_train: int | None = None):
    """A :class:`~alband.task.Task` from a folder in the shared format (``data.jsonl`` + embeddings)."""
    from alband.data.spec import load_dataset
    from alband.task import Task

    path = Path(path)
    if not (path / "data.jsonl").exists():
        raise AlbandError(f"{path}: no data.jsonl here (expected a dataset folder such as ../shared/data/ag_news)")
    spec: dict[str, Any] = {"source": "folder", "path": str(path)}
    if max_train:
        spec["max_train"] = int(max_train)
    return Task.from_dataset(load_dataset(spec, base_dir=Path.cwd()))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KB


def _tree_mb(tree) -> float:
    import jax

    return sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(tree)) / 2**20


def _bought(trace, s: int) -> list[int]:
    initial = np.asarray(trace.initial_index[s])[np.asarray(trace.initial_accepted[s])]
    queried = np.asarray(trace.query_index[s])[np.asarray(trace.query_accepted[s])]
    return np.concatenate([initial, queried]).tolist()


class _TimedLedger:
    """The run's ledger, with the wall time of every call into it summed (durable commits included)."""

    def __init__(self, ledger) -> None:
        self._ledger = ledger
        self.seconds = 0.0

    def __getattr__(self, name: str):
        attribute = getattr(self._ledger, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


def time_live_loop(task, settings, model, *, seeds: list[int]) -> dict[str, Any]:
    """Seconds per episode of the live loop (warmed up on two rounds), and the items each seed bought.

    ``ledger_seconds_per_round`` is the part spent in the SQLite ledger (a
    reservation and a settlement committed durably per purchase): the price
    of losing nothing paid for, which the simulator does not pay.
    """
    from dataclasses import replace

    from alband.annotators.simulated import SimulatedLiveAnnotator
    from alband.loop import live_rounds
    from alband.rounds import run_keys
    from alband.store.ledger import Ledger

    def episode(seed: int, max_rounds: int | None = None):
        annotator = SimulatedLiveAnnotator("llm", model, run_keys(seed).annotate, task.y, task.text_chars,
                                           task.text_bytes)
        with tempfile.TemporaryDirectory() as folder, Ledger.open(Path(folder) / "ledger.sqlite",
                                                                   create=True) as ledger:
            timed = _TimedLedger(ledger)
            events = []
            for event in live_rounds(replace(settings, seed=seed), task, annotator, timed,
                                     expected_cost_usd=annotator.expected_cost_usd()):
                events.append(event)
                if max_rounds is not None and len(events) > max_rounds:
                    break
            items = [r.pool_index for r in ledger.rows()]
        return events, items, timed.seconds

    t0 = time.perf_counter()
    episode(seeds[0], max_rounds=2)
    warmup = time.perf_counter() - t0
    seconds, ledger_seconds, items, rounds = [], [], {}, []
    for seed in seeds:
        t0 = time.perf_counter()
        events, bought, in_ledger = episode(seed)
        seconds.append(time.perf_counter() - t0)
        ledger_seconds.append(in_ledger)
        items[seed] = bought
        rounds.append(events[-1].round)
    per_episode = float(np.mean(seconds))
    n_rounds = max(float(np.mean(rounds)), 1.0)
    return {"seeds": seeds, "seconds": seconds, "seconds_per_episode": per_episode,
            "seconds_per_round": per_episode / n_rounds,
            "ledger_seconds_per_round": float(np.mean(ledger_seconds)) / n_rounds,
            "warmup_seconds": warmup, "items": items}


def time_modal_loop(task, *, n_initial: int, batch_size: int, rounds: int, seeds: list[int]) -> dict[str, Any]:
    """Seconds per episode of a modAL margin-sampling loop on the same pool (needs the ``bench`` extra)."""
    try:
        from modAL.models import ActiveLearner
        from modAL.uncertainty import margin_sampling
        from sklearn.linear_model import LogisticRegression
    except ImportError as err:
        return {"skipped": f"modAL not importable ({err}); install the optional extra: pip install -e '.[bench]'"}
    seconds = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        start = rng.choice(task.n_items, n_initial, replace=False)
        pool = np.setdiff1d(np.arange(task.n_items), start)
        learner = ActiveLearner(LogisticRegression(C=1.0, max_iter=200), query_strategy=margin_sampling,
                                X_training=task.x[start], y_training=task.y[start])
        for _ in range(rounds):
            chosen, _ = learner.query(task.x[pool], n_instances=batch_size)
            learner.teach(task.x[pool[chosen]], task.y[pool[chosen]])
            pool = np.delete(pool, chosen)
            learner.score(task.x_test, task.y_test)
        seconds.append(time.perf_counter() - t0)
    return {"seeds": seeds, "seconds": seconds, "seconds_per_episode": float(np.mean(seconds))}


FLOOR_SEEDS = 1000


def scoring_floor(x: np.ndarray, n_classes: int, rounds: int, *, seeds: int = FLOOR_SEEDS,
                  repeats: int = 5) -> dict[str, Any]:
    """Seconds per episode of the pool product alone, batched over ``seeds`` (module docstring)."""
    import jax
    import jax.numpy as jnp

    xj = jnp.asarray(x, jnp.float32)
    w = jnp.asarray(np.random.default_rng(0).standard_normal((x.shape[1], n_classes * seeds), dtype=np.float32))
    product = jax.jit(lambda a, b: a @ b)
    jax.block_until_ready(product(xj, w))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(product(xj, w))
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    flops = 2.0 * x.shape[0] * x.shape[1] * n_classes * seeds
    return {"seeds_batched": seeds, "product_seconds_per_round": seconds, "gflops": flops / seconds / 1e9,
            "seconds_per_episode": seconds * rounds / seeds}


#: Stages :func:`bench_simulate` announces: load, compile, simulate, live loop, scoring floor, modAL.
STAGE_COUNT = 6


def bench_simulate(
    data_dir: str | Path = DEFAULT_AG_NEWS,
    *,
    seeds: int = 1000,
    rounds: int = 200,
    batch_size: int = 10,
    n_initial: int = 10,
    policy: str = "margin",
    c: float = 1.0,
    max_iter: int = 200,
    tol: float = 1e-5,
    live_seeds: int = 2,
    modal_seeds: int = 1,
    vmap_width: int = 1,
    stop_set_size: int = 500,
    max_train: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns a JSON-able dict.

    ``progress(stage)`` is called as each of the :data:`STAGE_COUNT` stages starts.
    """
    say = progress or (lambda stage: None)
    import jax
    import jax.numpy as jnp

    from alband.benchmarks.design import machine_info
    from alband.costs.prices import Price
    from alband.loop import LoopSettings
    from alband.models.softmax_regression import SoftmaxRegression
    from alband.policies import make_policy
    from alband.simulate import EpisodeConfig, make_simulated_annotator, simulate_many

    if min(seeds, rounds, batch_size, n_initial, max_iter) < 1 or live_seeds < 0 or modal_seeds < 0:
        raise AlbandError("bench simulate: --seeds, --rounds, --batch-size, --initial and --max-iter must be >= 1")
    rss_start = _peak_rss_mb()
    say("loading the data")
    t0 = time.perf_counter()
    task = load_folder_task(data_dir, max_train=max_train)
    load_seconds = time.perf_counter() - t0
    data = task.episode_data()
    price = Price(STRONG_LLM["input_usd_per_mtok"], STRONG_LLM["output_usd_per_mtok"])
    model = make_simulated_annotator(task.n_classes, price, flip_rate=STRONG_LLM["flip_rate"],
                                     prompt_tokens=STRONG_LLM["prompt_tokens"],
                                     output_tokens=STRONG_LLM["output_tokens"],
                                     max_output_tokens=STRONG_LLM["max_output_tokens"])
    learner = SoftmaxRegression(task.n_classes, c, max_iter, tol)
    config = EpisodeConfig(learner, make_policy(policy), n_initial, batch_size, rounds, stop_set_size=stop_set_size)
    budget = 1e6  # never binds: every episode runs all its rounds
    seed_array = jnp.arange(seeds, dtype=jnp.uint32)

    say("compiling the simulator")
    t0 = time.perf_counter()
    compiled = simulate_many.lower(config, data, model, budget, seed_array, vmap_width).compile()
    compile_seconds = time.perf_counter() - t0
    rss_before = _peak_rss_mb()
    say(f"simulating {seeds} seeds in one call")
    t0 = time.perf_counter()
    trace = jax.block_until_ready(compiled(data, model, budget, seed_array))
    simulate_seconds = time.perf_counter() - t0
    rss_peak = _peak_rss_mb()
    sim_per_episode = simulate_seconds / seeds

    result: dict[str, Any] = {
        "benchmark": "simulate",
        "dataset": str(data_dir),
        "pool": task.n_items,
        "dim": int(task.x.shape[1]),
        "classes": task.n_classes,
        "test_rows": int(len(task.y_test)),
        "batch_size": batch_size,
        "rounds": rounds,
        "initial_labels": n_initial,
        "seeds": seeds,
        "policy": policy,
        "learner": {"c": c, "max_iter": max_iter, "tol": tol},
        "stop_set_size": stop_set_size,
        "vmap_width": vmap_width,
        "annotator": {"name": "strong-llm (simulated)", **STRONG_LLM},
        "load_seconds": load_seconds,
        "compile_seconds": compile_seconds,
        "simulate_seconds": simulate_seconds,
        "episodes_per_second": seeds / simulate_seconds,
        "sim_seconds_per_episode": sim_per_episode,
        "sim_seconds_per_round": sim_per_episode / rounds,
        "peak_rss_mb": rss_peak,
        "rss_before_simulate_mb": rss_before,
        "rss_at_start_mb": rss_start,
        "trace_mb": _tree_mb(trace),
        "final_test_accuracy_mean": float(np.mean(np.asarray(trace.test_accuracy)[:, -1])),
    }
    say(f"the live loop ({live_seeds} seeds)" if live_seeds else "the live loop (skipped)")
    if live_seeds:
        settings = LoopSettings(learner, config.policy, n_initial, batch_size, rounds, seed=0, budget_usd=budget)
        live = time_live_loop(task, settings, model, seeds=list(range(min(live_seeds, seeds))))
        matches = {str(s): items == _bought(trace, s) for s, items in live.pop("items").items()}
        live["matches_simulation"] = matches
        result["live_loop"] = live
        result["speedup_vs_live_loop"] = live["seconds_per_episode"] / sim_per_episode
        # The same ratio without the ledger's durable commits: the simulator's own gain.
        result["speedup_vs_live_loop_without_ledger"] = (
            (live["seconds_per_round"] - live["ledger_seconds_per_round"]) * rounds / sim_per_episode
        )
    say("the scoring floor")
    floor = scoring_floor(np.asarray(task.x), task.n_classes, rounds)
    result["scoring_floor"] = floor
    if live_seeds:
        result["speedup_bound_from_scoring"] = live["seconds_per_episode"] / floor["seconds_per_episode"]
    say(f"modAL ({modal_seeds} seeds)" if modal_seeds else "modAL (skipped)")
    if modal_seeds:
        modal = time_modal_loop(task, n_initial=n_initial, batch_size=batch_size, rounds=rounds,
                                seeds=list(range(modal_seeds)))
        result["modal_loop"] = modal
        if "seconds_per_episode" in modal:
            result["speedup_vs_modal"] = modal["seconds_per_episode"] / sim_per_episode
    result["load_average"] = list(os.getloadavg())
    result["machine"] = machine_info()
    return result


def bench_simulate_main(argv: list[str]) -> int:
    """``alband bench simulate [options] [--json]``."""
    p = _Parser(prog="alband bench simulate",
                description="The jitted simulator at scale vs the live loop (and modAL) on AG News embeddings.")
    p.add_argument("--data", default=str(DEFAULT_AG_NEWS), help="dataset folder (default: ../shared/data/ag_news)")
    p.add_argument("--seeds", type=int, default=1000, help="episodes in the one simulator call (default 1000)")
    p.add_argument("--rounds", type=int, default=200, help="query rounds per episode (default 200)")
    p.add_argument("--batch-size", type=int, default=10, help="labels bought per round (default 10)")
    p.add_argument("--initial", type=int, default=10, help="random seed labels (default 10)")
    p.add_argument("--policy", default="margin", help="query policy (alband policies; default margin)")
    p.add_argument("--c", type=float, default=1.0, help="learner's inverse L2 strength (default 1)")
    p.add_argument("--max-iter", type=int, default=200, help="L-BFGS iterations per refit (default 200)")
    p.add_argument("--tol", type=float, default=1e-5, help="L-BFGS gradient tolerance (default 1e-5)")
    p.add_argument("--live-seeds", type=int, default=2, help="seeds run through the live loop (default 2; 0: skip)")
    p.add_argument("--modal-seeds", type=int, default=1, help="seeds run through modAL when installed (0: skip)")
    p.add_argument("--vmap-width", type=int, default=1, help="seeds vmapped together inside the map (default 1)")
    p.add_argument("--max-train", type=int, default=None, help="subsample the pool to this many items (quick runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no stage lines and no progress bar")
    args = p.parse_args(argv)
    from alband.cli.progress import stage_bar

    with stage_bar("bench simulate", STAGE_COUNT, quiet=args.quiet) as step:
        result = bench_simulate(args.data, seeds=args.seeds, rounds=args.rounds, batch_size=args.batch_size,
                                n_initial=args.initial, policy=args.policy, c=args.c, max_iter=args.max_iter,
                                tol=args.tol, live_seeds=args.live_seeds, modal_seeds=args.modal_seeds,
                                vmap_width=args.vmap_width, max_train=args.max_train, progress=step)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        keys = ("seeds", "rounds", "episodes_per_second", "sim_seconds_per_episode", "compile_seconds",
                "peak_rss_mb", "speedup_vs_live_loop", "speedup_bound_from_scoring", "speedup_vs_modal")
        print("  ".join(f"{k}={result[k]:.4g}" if isinstance(result.get(k), float) else f"{k}={result.get(k)}"
                        for k in keys if k in result))
    return 0
