"""``alband simulate CONFIG``: a config's experiment for many seeds in the simulator, every stopping rule scored.

:func:`simulate_config` runs the experiment in the jitted simulator for many
seeds in one call (:func:`alband.simulate.simulate_many`) and reports, for
every stopping rule of :mod:`alband.stopping`, where it stops, the dollars
spent, the accuracy there and its cost regret against the hindsight-optimal
round under the cost model ``(m, n)`` (medians with 95% BCa bootstrap CIs,
:func:`alband.stats.bootstrap_interval`; per-seed values with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Sequence

import numpy as np

from alband.errors import AlbandError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


DEFAULT_SEEDS = 20
"""Episodes per configuration where a command runs several (``simulate``, ``demo``)."""

#: Chunks the seeds are run in, so that a progress bar can advance.
PROGRESS_CHUNKS = 20


def simulate_config(config, *, seeds: int = DEFAULT_SEEDS, cost_per_error: float = 0.1,
                    n_future: float = 10_000.0, vmap_width: int = 1, progress: bool | None = None,
                    cost_models: Sequence[tuple[float, float]] = (), selections=None) -> dict[str, Any]:
    """Simulate ``config`` (a :class:`~alband.config.RunConfig`) for ``seeds`` seeds and evaluate every rule.

    Without ``[routing]`` the ``[loop] annotator`` labels every item; with it,
    the ``[routing]`` annotators (all simulated) are stacked in arm order and
    routed by the router ``alband run`` builds (:meth:`alband.config.RoutingConfig.build`),
    with the same auditor and label weights, so seed ``s`` buys what a live run
    with ``[loop] seed = s`` buys. On a preference task (``[data] kind =
    "pairs"``) the annotators are simulated judges
    (:func:`alband.runner.simulated_pair_judge_model`), stacked and routed alike.

    ``progress``: a "compiling ..." line, then a bar over the seeds, on stderr
    (``None``: when stderr is a terminal). The result holds
    ``compile_seconds`` (tracing and XLA compilation; near zero when the
    persistent compilation cache has the program, :mod:`alband.jax_cache`)
    and ``simulate_seconds`` (running it).

    ``cost_models``: further ``(cost_per_error, n_future)`` pairs under which
    every rule is evaluated on the same episodes (one jitted ``vmap``,
    :func:`alband.stopping.outcome_statistics.rule_outcomes`): the cost rules
    stop where their own cost model says, and every rule's regret is against
    that model's hindsight optimum. Their per-seed outcomes are in
    ``per_cost_model``, in the given order. ``per_seed_labels_per_arm`` counts,
    per seed, the labels bought from each annotator (arm order of
    ``annotators``; audits included).

    ``selections``: a run's ledger (or run folder) or a selection cache file
    (:func:`alband.selection.replay.load_selections`) whose recorded LLM
    selections are replayed: each seed's recorded rounds buy the recorded
    items, its other rounds run the config's policy (``selection_replayed``
    in the result says which, per seed). With it, a ``[selector]`` section is
    allowed: it is what was recorded, never called.
    """
    import jax
    import jax.numpy as jnp

    from alband.cpu_threads import one_blas_thread
    from alband.jax_cache import enable_compilation_cache
    from alband.runner import (
        hold_out_validation,
        load_task,
        loop_settings,
        simulated_annotator_model,
    )
    from alband.simulate import (
        EpisodeConfig,
        episode_history,
        simulate_many,
        stack_annotators,
    )
    from alband.stopping import CostModel, default_rules, make_rule
    from alband.stopping.outcome_statistics import ordered_outcomes, summarize

    if seeds < 1:
        raise AlbandError("simulate: --seeds must be >= 1")
    if config.generator is not None:
        raise AlbandError(f"{config.source}: [generator]: an LLM's generated items cannot be simulated; run it "
                          "live (alband run), or remove [generator] to simulate the rest of the config")
    if config.selector is not None and selections is None:
        raise AlbandError(f"{config.source}: [selector]: an LLM's selections cannot be simulated, only replayed "
                          "from a run's records (alband.selection.replay.selected_indices, simulate(..., selection)); "
                          "(alband simulate --selections LEDGER_OR_CACHE); remove [selector] to simulate the policy alone")
    enable_compilation_cache()
    if not (cost_per_error >= 0 and n_future >= 0 and np.isfinite(cost_per_error) and np.isfinite(n_future)):
        raise AlbandError("simulate: --cost-per-error and --n-future must be finite numbers >= 0")
    cost_models = [(float(m), float(n)) for m, n in cost_models]
    if not all(m >= 0 and n >= 0 and np.isfinite(m) and np.isfinite(n) for m, n in cost_models):
        raise AlbandError("simulate: every cost model's cost_per_error and n_future must be finite numbers >= 0")
    routing = config.routing
    names = (config.loop.annotator,) if routing is None else routing.annotators
    for name in names:
        kind = config.annotators[name].get("kind", "simulated")
        if kind != "simulated":
            if routing is None:
                raise AlbandError(f"{config.source}: simulate needs a simulated annotator; "
                                  f"'{name}' is of kind '{kind}'")
            raise AlbandError(f"{config.source}: simulate needs simulated annotators; [routing] annotator "
                              f"'{name}' is of kind '{kind}'")
    task, validation = hold_out_validation(config, load_task(config))
    settings = loop_settings(config, task)
    task.require_gold(f"{config.source}: simulate")
    if getattr(task, "kind", "") == "pairs":  # a preference task: simulated judges (alband.simulate.judge_model)
        from alband.runner import simulated_pair_judge_model

        models = [simulated_pair_judge_model(config.annotators[name], where=f"{config.source}: [annotators.{name}]: ")
                  for name in names]
    else:
        models = [simulated_annotator_model(config.annotators[name], task.n_classes,
                                            where=f"{config.source}: [annotators.{name}]: ") for name in names]
    data = task.episode_data()
    if validation is not None:
        data = data._replace(x_val=jnp.asarray(validation[0]), y_val=jnp.asarray(validation[1]))
    if routing is None:
        model, routed = models[0], {}
    else:
        # As alband.runner.build_routing maps [routing] for the live loop; with feedback = "gold"
        # the config has no auditor, so -1 is the simulator's free feedback against gold.
        model = stack_annotators(models)
        routed = {"router": routing.build(),
                  "auditor": -1 if routing.auditor is None else routing.arm(routing.auditor),
                  "label_weight": routing.label_weight}
    episode = EpisodeConfig(settings.learner, settings.policy, settings.n_initial, settings.batch_size,
                            settings.n_rounds, stop_set_size=settings.stop_set_size, initial=settings.initial, **routed)
    seed_array = jnp.arange(config.loop.seed, config.loop.seed + seeds, dtype=jnp.uint32)
    replayed = None
    if selections is None:
        def chosen(chunk):
            return None
    else:
        from alband.selection.replay import load_selections, stacked_selected_indices

        records = load_selections(selections)
        ids = [str(i) for i in task.ids]

        def chosen(chunk):
            return stacked_selected_indices(records, np.asarray(chunk).tolist(), ids, n_initial=settings.n_initial,
                                            batch_size=settings.batch_size, n_rounds=settings.n_rounds)
        every = chosen(seed_array)
        replayed = {"source": str(selections),
                    "initial": np.asarray(every.use_initial).tolist(),
                    "rounds": np.asarray(every.use).tolist()}
    with one_blas_thread():  # the LAPACK calls of the episodes beside XLA's threads (alband.cpu_threads)
        trace, compile_seconds, seconds = run_in_chunks(
            lambda chunk: simulate_many.lower(episode, data, model, config.budget_usd, chunk, vmap_width,
                                              chosen(chunk)).compile(),
            lambda compiled, chunk: compiled(data, model, config.budget_usd, chunk, chosen(chunk)),
            seed_array, multiple=max(1, vmap_width), progress=progress, what=f"simulate {config.source}")
    rules = default_rules(cost_per_error, n_future, max_labels_=float(episode.capacity))
    if config.stopping is not None:
        rules = rules + (make_rule(config.stopping.rule, **config.stopping.params),)
    models = [(cost_per_error, n_future), *cost_models]
    costs = CostModel(jnp.array([m for m, _ in models]), jnp.array([n for _, n in models]))
    outcomes = ordered_outcomes(rules, episode_history(trace), trace.test_accuracy, costs)
    rows = summarize({name: jax.tree_util.tree_map(lambda a: a[0], out) for name, out in outcomes.items()})
    per_model = [_per_seed_outcomes(outcomes, g) for g in range(len(models))]
    per_seed = per_model[0]
    if config.stopping is not None:
        configured = list(outcomes)[-1]
        for row in rows:
            row["configured"] = row["rule"] == configured
    return {
        "config": config.source,
        "seeds": np.asarray(seed_array).tolist(),
        "rounds": settings.n_rounds,
        "routing": None if routing is None else {
            "router": routing.router, "router_name": routed["router"].name, "annotators": list(routing.annotators),
            "auditor": routing.auditor, "feedback": routing.feedback, "label_weight": routing.label_weight},
        "cost_model": {"cost_per_error_usd": cost_per_error, "n_future": n_future,
                       "total_cost": "(1 - test accuracy) * n_future * cost_per_error + dollars spent"},
        "validation_rows": 0 if validation is None else int(len(validation[1])),
        # per seed: whether round 0 and each later round bought a recorded selection (--selections)
        "selection_replayed": replayed,
        "compile_seconds": compile_seconds,
        "simulate_seconds": seconds,
        "rules": rows,
        "per_seed": per_seed,
        "per_cost_model": [{"cost_per_error_usd": m, "n_future": n, "per_seed": per_model[g + 1]}
                           for g, (m, n) in enumerate(cost_models)],
        "annotators": list(names),
        "per_seed_labels_per_arm": _labels_per_arm(trace, len(names)).tolist(),
        "test_accuracy_mean": np.asarray(trace.test_accuracy, np.float64).mean(axis=0).tolist(),
        "spent_usd_mean": np.asarray(trace.spent_usd, np.float64).mean(axis=0).tolist(),
        # (seeds, rounds + 1) per key, seed order of "seeds": what paired intervals need.
        "per_seed_curves": {"test_accuracy": np.asarray(trace.test_accuracy, np.float64).tolist(),
                            "spent_usd": np.asarray(trace.spent_usd, np.float64).tolist(),
                            "n_labeled": np.asarray(trace.n_labeled).tolist(),
                            # the model's mean max-probability on the stop set: its own accuracy estimate
                            "stop_confidence": np.asarray(trace.stop_confidence, np.float64).tolist()},
    }


def _per_seed_outcomes(outcomes: dict[str, Any], g: int) -> dict[str, dict[str, list]]:
    """Per rule, the per-seed outcome under cost model ``g``: stop round, whether it fired, dollars,
    accuracy, regret, and the hindsight-optimal round and total cost (relative regret = regret / optimal)."""
    return {name: {"round": np.asarray(out.round[g]).tolist(),
                   "fired": np.asarray(out.fired[g]).tolist(),
                   "spent_usd": np.asarray(out.spent_usd[g], np.float64).tolist(),
                   "accuracy": np.asarray(out.accuracy[g], np.float64).tolist(),
                   "regret_usd": np.asarray(out.regret[g], np.float64).tolist(),
                   "optimal_round": np.asarray(out.optimal_round[g]).tolist(),
                   "optimal_cost_usd": np.asarray(out.optimal_cost[g], np.float64).tolist()}
            for name, out in outcomes.items()}


def _labels_per_arm(trace, n_arms: int) -> np.ndarray:
    """``(seeds, arms)``: labels bought from each annotator per seed (seed items and queried items; -1 = not bought)."""
    initial = np.asarray(trace.initial_arm)
    arms = np.concatenate([initial, np.asarray(trace.query_arm).reshape(initial.shape[0], -1)], axis=1)
    return np.stack([(arms == k).sum(axis=1) for k in range(n_arms)], axis=1)


def run_in_chunks(compile_chunk, run_chunk, seeds, *, multiple: int = 1, progress: bool | None = None,
                  what: str = "simulate"):
    """Compile once for a chunk of ``seeds``, then run every chunk: ``(trace, compile_seconds, run_seconds)``.

    The seeds are cut into about :data:`PROGRESS_CHUNKS` equal chunks (a
    multiple of ``multiple``), the last padded by repeating its final seed and
    the padding dropped from the trace, so one program serves every chunk and
    a bar advances chunk by chunk. Each seed's episode is computed on its own
    (``lax.map``), so chunking leaves the numbers unchanged.
    """
    import sys

    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty()
    n = int(seeds.shape[0])
    size = -(-n // PROGRESS_CHUNKS)
    size = -(-size // multiple) * multiple
    count = -(-n // size)
    padded = jnp.concatenate([seeds, jnp.full((count * size - n,), seeds[-1], seeds.dtype)])
    if progress:
        print(f"{what}: compiling ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    compiled = compile_chunk(padded[:size])
    compile_seconds = time.perf_counter() - t0
    if progress:
        print(f"{what}: compiled in {compile_seconds:.1f} s; running {n} seeds", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    parts = []
    with tqdm(total=n, unit="seed", desc=what, disable=not progress, file=sys.stderr, leave=False) as bar:
        for k in range(count):
            parts.append(jax.block_until_ready(run_chunk(compiled, padded[k * size:(k + 1) * size])))
            bar.update(min(size, n - k * size))
    trace = jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves)[:n], *parts)
    return trace, compile_seconds, time.perf_counter() - t0


def format_rules_table(result: dict[str, Any]) -> str:
    routing = result.get("routing")
    routed = "" if routing is None else f" (routed by {routing['router']} over {', '.join(routing['annotators'])})"
    lines = [f"{result['config']}{routed}: {len(result['seeds'])} seeds x {result['rounds']} rounds in "
             f"{result['simulate_seconds']:.1f} s (+ {result.get('compile_seconds', 0.0):.1f} s compiling); cost = (1 - acc) * {result['cost_model']['n_future']:g} * "
             f"${result['cost_model']['cost_per_error_usd']:g} + dollars spent",
             f"{'rule':<26} {'fired':>6} {'stop':>5} {'r*':>5} {'labels':>7} {'dollars':>10} {'accuracy':>8} "
             f"{'regret $ (median, 95% CI)':>32}"]
    for row in result["rules"]:
        lo, hi = row["regret_usd_ci95"]
        mark = " *" if row.get("configured") else ""
        lines.append(f"{row['rule'] + mark:<26} {row['fired_share']:>6.0%} {row['stop_round_median']:>5.0f} "
                     f"{row['optimal_round_median']:>5.0f} {row['labels_median']:>7.0f} "
                     f"{row['spent_usd_median']:>10.4f} {row['accuracy_median']:>8.4f} "
                     f"{row['regret_usd_median']:>12.4f} [{lo:.4f}, {hi:.4f}]")
    lines.append("(medians over seeds; stop = stopping round, r* = hindsight-optimal round"
                 + ("; * = the config's [stopping] rule)" if any(r.get("configured") for r in result["rules"]) else ")"))
    return "\n".join(lines)


def simulate_main(argv: list[str]) -> int:
    """``alband simulate CONFIG [--seeds N] [--cost-per-error M] [--n-future N] [--json]``."""
    from alband.config import load_config

    p = _Parser(prog="alband simulate",
                description="Simulate a config's experiment for many seeds in one call; evaluate every stopping rule.")
    p.add_argument("config", help="CONFIG.toml (its annotator, or every [routing] annotator, must be simulated; "
                                  "on a pairs task, simulated judges)")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"episodes, seeds loop.seed, loop.seed+1, ... (default {DEFAULT_SEEDS})")
    p.add_argument("--cost-per-error", type=float, default=0.1, help="dollars per misclassification m (default 0.1)")
    p.add_argument("--n-future", type=float, default=10_000.0, help="future predictions n (default 10000)")
    p.add_argument("--vmap-width", type=int, default=1, help="seeds vmapped together inside the map (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object (with per-seed values)")
    p.add_argument("--quiet", action="store_true", help="no 'compiling ...' line and no progress bar")
    p.add_argument("--selections", metavar="LEDGER_OR_CACHE",
                   help="replay the LLM selections recorded in a run's ledger.sqlite (or run folder) or a "
                        "selection cache file (.jsonl); rounds without a record run the policy")
    args = p.parse_args(argv)
    if args.vmap_width < 1:
        raise AlbandError("alband simulate: --vmap-width must be >= 1")
    result = simulate_config(load_config(args.config), seeds=args.seeds, cost_per_error=args.cost_per_error,
                             n_future=args.n_future, vmap_width=args.vmap_width, progress=not args.quiet,
                             selections=args.selections)
    print(json.dumps(result, indent=2, default=float) if args.json else format_rules_table(result))
    return 0


def register(sub) -> None:
    """Add ``simulate`` to the ``alband`` parser."""
    simulate = sub.add_parser("simulate", help="simulate a config over many seeds; every stopping rule's stop, "
                              "dollars, accuracy and cost regret", add_help=False)
    simulate.add_argument("rest", nargs=argparse.REMAINDER)
    simulate.set_defaults(func=lambda a: simulate_main(a.rest))


__all__ = ["DEFAULT_SEEDS", "format_rules_table", "run_in_chunks", "register", "simulate_config", "simulate_main"]
