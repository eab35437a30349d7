"""From a validated config to a run: build the task, policy, learner and annotator; run or resume (shell).

``start_run(config, out)`` creates the run directory (config copy, ledger,
metrics) and drives :func:`alband.loop.live_rounds`; ``resume_run(run_dir)``
reopens a run that was killed and continues it from its ledger. Both show a
progress bar (labels, dollars spent, test accuracy) and write one line of
``metrics.jsonl`` per round.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from alband.annotators.simulated import SimulatedLiveAnnotator
from alband.config import RoutingConfig, RunConfig, load_config, parse_config
from alband.costs.prices import Price
from alband.errors import AlbandError
from alband.loop import LoopSettings, RoundEvent, RoutingSettings, live_rounds
from alband.models.registry import make_learner
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.routing.base import Router
from alband.simulate.annotator_model import SimulatedAnnotator, make_simulated_annotator
from alband.purchase.routed import arm_key
from alband.stopping.rules import make_rule
from alband.stopping.validation import validation_split
from alband.task import Task

_STATUS_KEY = "status"


def load_task(config: RunConfig) -> Task:
    """The dataset named by ``[data]``, as a pool and a test set."""
    from alband.data.spec import load_dataset

    try:
        dataset = load_dataset(config.data, base_dir=config.base_dir)
    except AlbandError as err:
        message = str(err)
        raise AlbandError(f"{config.source}: {message}" if message.startswith("[data]") else message) from None
    return Task.from_dataset(dataset)


def simulated_annotator_model(spec: dict[str, Any], n_classes: int, *, where: str = "") -> SimulatedAnnotator:
    """A core :class:`SimulatedAnnotator` from an ``[annotators.NAME]`` table."""
    price = Price(
        input_usd_per_mtok=float(spec.get("input_usd_per_mtok", 0.0)),
        output_usd_per_mtok=float(spec.get("output_usd_per_mtok", 0.0)),
        usd_per_label=float(spec.get("usd_per_label", 0.0)),
    )
    try:
        return make_simulated_annotator(
            n_classes,
            price,
            flip_rate=float(spec.get("flip_rate", 0.0)),
            confusion=None if "confusion" not in spec else np.asarray(spec["confusion"], np.float32),
            prompt_tokens=int(spec.get("prompt_tokens", 0)),
            output_tokens=int(spec.get("output_tokens", 0)),
            max_output_tokens=spec.get("max_output_tokens"),
            chars_per_token=float(spec.get("chars_per_token", 4.0)),
            label_weight=float(spec.get("label_weight", 1.0)),
        )
    except AlbandError as err:
        raise AlbandError(f"{where}{err}") from None


def build_annotator(config: RunConfig, task: Task, name: str | None = None, *, arm: int | None = None):
    """The live annotator ``name`` (default ``loop.annotator``), its expected costs and its label weight.

    ``arm`` is the annotator's arm index in a routed run: a simulated arm
    ``k`` answers with the simulator's key for arm ``k``
    (:func:`alband.purchase.routed.arm_key`); expected costs are None for
    annotators that are not simulated (the loop bounds them).
    """
    name = config.loop.annotator if name is None else name
    spec = config.annotators[name]
    kind = spec.get("kind", "simulated")
    where = f"{config.source}: [annotators.{name}]: "
    if kind == "simulated":
        task.require_gold(f"{where}a simulated annotator")
        model = simulated_annotator_model(spec, task.n_classes, where=where)
        key = run_keys(config.loop.seed).annotate
        annotator = SimulatedLiveAnnotator(
            name, model, key if arm is None else arm_key(key, arm), task.y, task.text_chars, task.text_bytes
        )
        return annotator, annotator.expected_cost_usd(), float(model.label_weight)
    weight = float(spec.get("label_weight", 1.0))
    if kind in ("anthropic", "openai"):
        return _llm_annotator(name, kind, spec, task, where), None, weight
    if kind == "human":
        from alband.annotators.human import HumanAnnotator

        annotator = HumanAnnotator(
            name, task.label_names,
            price_per_label=float(spec.get("usd_per_label", 0.0)),
            price_per_hour=None if "usd_per_hour" not in spec else float(spec["usd_per_hour"]),
            max_seconds_per_item=float(spec.get("max_seconds_per_item", 300.0)),
        )
        return annotator, None, weight
    raise AlbandError(f"{where}unknown annotator kind '{kind}'")


def make_router(routing: RoutingConfig) -> Router:
    """The :class:`alband.routing.Router` a ``[routing]`` section names, with its parameters."""
    from alband.routing import (
        AuditConfig,
        CascadeConfig,
        ContextualTSConfig,
        bts_router,
        cascade_router,
        contextual_ts_router,
        fixed_router,
        random_router,
        ucb_bv_router,
    )

    p = routing.params

    def given(names: dict[str, str], cast=float) -> dict:
        """Keyword arguments for the parameters present in ``[routing]`` (config key -> field)."""
        return {field: cast(p[key]) for key, field in names.items() if key in p}

    audit = AuditConfig(**given({"audit_rate": "rate", "audit_share": "share", "panel_share": "panel_share"}),
                        **given({"panel_size": "panel_size"}, int))
    if routing.router == "fixed":
        return fixed_router(routing.arm(p["arm"]), name=f"fixed:{p['arm']}")
    if routing.router == "random":
        return random_router()
    if routing.router == "cascade":
        config = CascadeConfig(**given({"target": "target"}), **given({"n_bins": "n_bins", "min_count": "min_count"},
                                                                      int), audit=audit)
        return cascade_router(tuple(routing.arm(n) for n in p["chain"]), config)
    if routing.router == "contextual_ts":
        return contextual_ts_router(ContextualTSConfig(
            **given({"exploration": "exploration", "dual_kappa": "dual_kappa", "lambda0": "lambda0"}), audit=audit))
    if routing.router == "bts":
        return bts_router(audit)
    if routing.router == "ucb_bv":
        return ucb_bv_router(audit)
    raise AlbandError(f"unknown router '{routing.router}'")


def build_routing(config: RunConfig, task: Task) -> tuple[list, dict[str, Any]]:
    """The annotators of ``[routing]`` in arm order, and the routing options of :func:`alband.loop.live_rounds`."""
    routing = config.routing
    built = [build_annotator(config, task, name, arm=k) for k, name in enumerate(routing.annotators)]
    annotators = [b[0] for b in built]
    settings = RoutingSettings(
        router=make_router(routing),
        auditor=-1 if routing.auditor is None else routing.arm(routing.auditor),
        feedback=routing.feedback,
        label_weight=routing.label_weight,
        configured_weights=tuple(b[2] for b in built),
    )
    return annotators, {"routing": settings}


def _llm_annotator(name: str, kind: str, spec: dict[str, Any], task: Task, where: str):
    """An Anthropic or OpenAI(-compatible) annotator; prices from the config or the price table."""
    from alband.annotators.pricing_table import price_for

    if "input_usd_per_mtok" in spec or "output_usd_per_mtok" in spec:
        price = Price(
            input_usd_per_mtok=float(spec.get("input_usd_per_mtok", 0.0)),
            output_usd_per_mtok=float(spec.get("output_usd_per_mtok", 0.0)),
            usd_per_label=float(spec.get("usd_per_label", 0.0)),
        )
    else:
        try:
            price = price_for(spec["model"])
        except AlbandError as err:
            raise AlbandError(f"{where}{err} (or set input_usd_per_mtok and output_usd_per_mtok)") from None
    options = {k: spec[k] for k in ("base_url", "api_key_env", "max_tokens", "timeout_s", "max_retries",
                                    "cache_dir", "instructions", "prompt_cache", "json_mode", "logprobs",
                                    "max_tokens_param") if k in spec}
    if kind == "anthropic":
        from alband.annotators.anthropic_annotator import AnthropicAnnotator as cls
    else:
        from alband.annotators.openai_annotator import OpenAIAnnotator as cls
    return cls(name, spec["model"], task.label_names, price, **options)


def loop_settings(config: RunConfig, task: Task) -> LoopSettings:
    if config.loop.batch_size > task.n_items:
        raise AlbandError(
            f"{config.source}: [loop] batch_size={config.loop.batch_size} is larger than the pool ({task.n_items} items)"
        )
    if config.loop.initial_labels > task.n_items:
        raise AlbandError(
            f"{config.source}: [loop] initial_labels={config.loop.initial_labels} is larger than the pool ({task.n_items} items)"
        )
    return LoopSettings(
        learner=make_learner("softmax_regression", n_classes=task.n_classes, c=config.learner.c,
                             max_iter=config.learner.max_iter, tol=config.learner.tol),
        policy=make_policy(config.policy_name, **config.policy_params),
        n_initial=config.loop.initial_labels,
        batch_size=config.loop.batch_size,
        n_rounds=config.loop.rounds,
        seed=config.loop.seed,
        budget_usd=config.budget_usd,
        stopping=None if config.stopping is None else make_rule(config.stopping.rule, **config.stopping.params),
        stop_set_size=500 if config.stopping is None else config.stopping.stop_set_size,
    )


def hold_out_validation(config: RunConfig, task: Task) -> tuple[Task, tuple[np.ndarray, np.ndarray] | None]:
    """The task without the ``[stopping] validation_rows`` test rows, and those rows as a validation set."""
    rows = 0 if config.stopping is None else config.stopping.validation_rows
    if rows == 0:
        return task, None
    try:
        held, kept = validation_split(len(task.y_test), rows)
    except AlbandError as err:
        raise AlbandError(f"{config.source}: [stopping] {err}") from None
    validation = (task.x_test[held], task.y_test[held])
    return dataclasses.replace(task, x_test=task.x_test[kept], y_test=task.y_test[kept]), validation


def _progress(total: int, quiet: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="round", disable=quiet, file=sys.stderr, leave=False)


def execute(config: RunConfig, run_dir, *, quiet: bool = False) -> list[RoundEvent]:
    """Run or resume the loop of ``config`` in the opened ``run_dir`` (a RunDir)."""
    task, validation = hold_out_validation(config, load_task(config))
    settings = loop_settings(config, task)
    if config.routing is None:
        annotator, expected_cost, weight = build_annotator(config, task)
        run_options = {"expected_cost_usd": expected_cost, "label_weight": weight}
        label = annotator.name
    else:
        annotator, run_options = build_routing(config, task)
        label = config.routing.router
    events: list[RoundEvent] = []
    with run_dir.open_ledger() as ledger, run_dir.metrics_writer() as metrics:
        ledger.set_meta("base_dir", str(config.base_dir))
        ledger.set_meta(_STATUS_KEY, "running")
        done_rounds = metrics.last_round
        bar = _progress(settings.n_rounds + 1, quiet, f"{settings.policy.name}/{label}")
        try:
            for event in live_rounds(settings, task, annotator, ledger, validation=validation, **run_options):
                events.append(event)
                if done_rounds is None or event.round > done_rounds:
                    metrics.append(event.metrics())
                bar.update(1)
                bar.set_postfix(labels=event.n_labeled, spent=f"${event.spent_usd:.4f}", acc=f"{event.test_accuracy:.3f}")
            ledger.set_meta(_STATUS_KEY, "complete")
            if events:
                ledger.set_meta("stop_reason", events[-1].stop_reason)
        finally:
            bar.close()
    return events


def start_run(config: RunConfig, out: str | Path, *, quiet: bool = False) -> list[RoundEvent]:
    """Create the run directory ``out`` for ``config`` and run it."""
    from alband.store.run_dir import RunDir

    run_dir = RunDir.create(out, config.text, budget_limit_usd=config.budget_usd)
    return execute(config, run_dir, quiet=quiet)


def resume_run(path: str | Path, *, quiet: bool = False) -> list[RoundEvent]:
    """Continue the run in ``path`` from its ledger (nothing bought twice)."""
    from alband.store.run_dir import RunDir

    run_dir = RunDir.open_existing(path)
    with run_dir.open_ledger(read_only=True) as ledger:
        base_dir = ledger.get_meta("base_dir")
    config = parse_config(
        run_dir.config_text(),
        source=str(run_dir.config_path),
        base_dir=Path(base_dir) if base_dir else Path(path).resolve(),
    )
    return execute(config, run_dir, quiet=quiet)


__all__ = ["build_annotator", "build_routing", "make_router", "execute", "load_config", "load_task", "resume_run", "start_run"]
