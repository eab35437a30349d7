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
from alband.config import RunConfig, load_config, parse_config
from alband.costs.prices import Price
from alband.cpu_threads import one_blas_thread
from alband.errors import AlbandError, AnnotatorError
from alband.live.paid_call import CostOverrun
from alband.loop import LoopSettings, RoundEvent, RoutingSettings, live_rounds
from alband.policies import make_policy
from alband.rounds import run_keys
from alband.simulate.annotator_model import SimulatedAnnotator, make_simulated_annotator
from alband.purchase.routed import arm_key
from alband.stopping.rules import make_rule
from alband.stopping.holdout import validation_split
from alband.task import Task

_STATUS_KEY = "status"


def load_task(config: RunConfig, *, quiet: bool = False) -> Task:
    """The dataset named by ``[data]``, as a pool and a test set (``quiet``: no embedding progress bar).

    A ``kind = "pairs"`` table gives a :class:`~alband.data.pair_task.PairTask` instead.
    """
    from alband.data.pair_spec import is_pair_spec, load_pair_task
    from alband.data.spec import load_dataset

    try:
        if is_pair_spec(config.data):
            return load_pair_task(config.data, base_dir=config.base_dir, progress=False if quiet else None)
        dataset = load_dataset(config.data, base_dir=config.base_dir, progress=False if quiet else None)
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
    _check_task_keys(spec, task, where)
    if kind == "simulated" and getattr(task, "kind", "") == "pairs":
        return _simulated_pair_judge(name, spec, task, where, config.loop.seed, arm)
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
        prices = {"price_per_label": float(spec.get("usd_per_label", 0.0)),
                  "price_per_hour": None if "usd_per_hour" not in spec else float(spec["usd_per_hour"]),
                  "max_seconds_per_item": float(spec.get("max_seconds_per_item", 300.0))}
        if getattr(task, "kind", "") == "pairs":
            from alband.annotators.human_pair_judge import HumanPairJudge

            judge_options = {k: bool(spec[k]) for k in ("allow_tie", "both_orders") if k in spec}
            try:
                return HumanPairJudge(name, **prices, **judge_options), None, weight
            except AlbandError as err:
                raise AlbandError(f"{where}{err}") from None
        from alband.annotators.human import HumanAnnotator

        try:
            return HumanAnnotator(name, task.label_names, **prices), None, weight
        except AlbandError as err:
            raise AlbandError(f"{where}{err}") from None
    raise AlbandError(f"{where}unknown annotator kind '{kind}'")


def build_routing(config: RunConfig, task: Task) -> tuple[list, dict[str, Any]]:
    """The annotators of ``[routing]`` in arm order, and the routing options of :func:`alband.loop.live_rounds`."""
    routing = config.routing
    built = [build_annotator(config, task, name, arm=k) for k, name in enumerate(routing.annotators)]
    annotators = [b[0] for b in built]
    settings = RoutingSettings(
        router=routing.build(),
        auditor=-1 if routing.auditor is None else routing.arm(routing.auditor),
        feedback=routing.feedback,
        label_weight=routing.label_weight,
        configured_weights=tuple(b[2] for b in built),
    )
    return annotators, {"routing": settings}


#: Annotator keys that only a preference task's judge reads.
_PAIR_ONLY_KEYS = {"simulated": ("position_bias", "tie_rate", "beta"), "anthropic": ("both_orders", "allow_tie"),
                   "openai": ("both_orders", "allow_tie"), "human": ("both_orders", "allow_tie")}
#: Annotator kinds that read a pair's texts (a prompt and two responses).
_TEXT_READERS = ("anthropic", "openai", "human")


def _check_task_keys(spec: dict[str, Any], task, where: str) -> None:
    """Judge-only keys on a classification task, ``confusion`` on a pairs task, and a judge of pairs without
    texts who must read them, are errors."""
    kind = spec.get("kind", "simulated")
    pairs = getattr(task, "kind", "") == "pairs"
    if not pairs:
        used = [k for k in _PAIR_ONLY_KEYS.get(kind, ()) if k in spec]
        if used:
            raise AlbandError(f"{where}{used[0]!r} applies to a preference task only ([data] kind = \"pairs\")")
    elif kind == "simulated" and "confusion" in spec:
        raise AlbandError(f"{where}'confusion' does not apply to a judge; use flip_rate, position_bias, beta, tie_rate")
    elif kind in _TEXT_READERS and not task.has_texts:
        raise AlbandError(f"{where}a {kind} judge reads each pair's prompt and responses, and the pairs of "
                          f"{task.name!r} have no texts (embeddings only); use a source with texts or a simulated judge")


def _simulated_pair_judge(name: str, spec: dict[str, Any], task, where: str, seed: int, arm: int | None):
    """A simulated preference judge (:mod:`alband.simulate.judge_model`) answering as the simulator does."""
    from alband.annotators.simulated_judge import SimulatedLivePairJudge

    task.require_gold(f"{where}a simulated judge")
    judge = simulated_pair_judge_model(spec, where=where)
    key = run_keys(seed).annotate
    annotator = SimulatedLivePairJudge(name, judge, key if arm is None else arm_key(key, arm), task.y,
                                       task.text_chars, task.text_bytes, task.true_margin)
    return annotator, annotator.expected_cost_usd(), float(judge.annotator.label_weight)


def simulated_pair_judge_model(spec: dict[str, Any], *, where: str = ""):
    """A core :class:`~alband.simulate.judge_model.PairJudge` from an ``[annotators.NAME]`` table."""
    from alband.simulate.judge_model import make_pair_judge

    price = Price(
        input_usd_per_mtok=float(spec.get("input_usd_per_mtok", 0.0)),
        output_usd_per_mtok=float(spec.get("output_usd_per_mtok", 0.0)),
        usd_per_label=float(spec.get("usd_per_label", 0.0)),
    )
    try:
        return make_pair_judge(
            price, flip_rate=float(spec.get("flip_rate", 0.0)), position_bias=float(spec.get("position_bias", 0.0)),
            beta=float(spec.get("beta", float("inf"))), tie_rate=float(spec.get("tie_rate", 0.0)),
            prompt_tokens=int(spec.get("prompt_tokens", 0)), output_tokens=int(spec.get("output_tokens", 0)),
            max_output_tokens=spec.get("max_output_tokens"), chars_per_token=float(spec.get("chars_per_token", 4.0)),
            label_weight=float(spec.get("label_weight", 1.0)))
    except AlbandError as err:
        raise AlbandError(f"{where}{err}") from None


def _llm_pair_judge(name: str, kind: str, spec: dict[str, Any], price: Price, where: str):
    """An LLM preference judge; ``both_orders`` asks every pair twice (``alband.annotators.pair_orders``)."""
    from alband.annotators.pair_judge import LLMPairJudge

    provider_keys = ("prompt_cache",) if kind == "anthropic" else ("json_mode", "logprobs", "max_tokens_param")
    options = {k: spec[k] for k in ("base_url", "api_key_env", "max_tokens", "timeout_s", "max_retries", "cache_dir",
                                    "instructions", "allow_tie", "both_orders", "request_overhead_tokens",
                                    "per_message_overhead_tokens") if k in spec}
    try:
        judge = LLMPairJudge(name, spec["model"], price, provider=kind,
                             provider_options={k: spec[k] for k in provider_keys if k in spec}, **options)
    except AlbandError as err:
        raise AlbandError(f"{where}{err}") from None
    return judge


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
    if getattr(task, "kind", "") == "pairs":
        return _llm_pair_judge(name, kind, spec, price, where)
    options = {k: spec[k] for k in ("base_url", "api_key_env", "max_tokens", "timeout_s", "max_retries",
                                    "cache_dir", "instructions", "prompt_cache", "json_mode", "logprobs",
                                    "max_tokens_param", "request_overhead_tokens", "per_message_overhead_tokens")
               if k in spec}
    if kind == "anthropic":
        from alband.annotators.anthropic_annotator import AnthropicAnnotator as cls
    else:
        from alband.annotators.openai_annotator import OpenAIAnnotator as cls
    try:
        return cls(name, spec["model"], task.label_names, price, **options)
    except AlbandError as err:
        raise AlbandError(f"{where}{err}") from None


def build_selector(config: RunConfig, task: Task):
    """The :class:`alband.selection.llm_selector.LLMSelector` of ``[selector]``, or None without the section."""
    spec = config.selector
    if spec is None:
        return None
    from alband.selection.llm_selector import LLMSelector
    from alband.selection.prompt import DEFAULT_TASK, SelectionPrompt

    llm = _llm_annotator("selector", spec.provider, spec.llm, task, f"{config.source}: [selector]: ")
    prompt = SelectionPrompt(spec.prompt, label_names=tuple(task.label_names) if spec.show_labels else None,
                             task=spec.task or DEFAULT_TASK, max_chars=spec.max_chars)
    shortlist = spec.shortlist if spec.shortlist in ("uniform", "kmeans") else make_policy(spec.shortlist)
    meta_arm = None
    if spec.mode == "meta_arm":
        from alband.policies.llm_arm import LLM_ARM

        meta_arm = list(config.policy_params["strategies"]).index(LLM_ARM)
    return LLMSelector("selector", llm, prompt, ids=task.ids, texts=[task.text(i) for i in range(task.n_items)],
                       seed=config.loop.seed, n_candidates=spec.n_candidates, shortlist=shortlist, mode=spec.mode,
                       fallback=make_policy(spec.fallback), meta_arm=meta_arm)


def build_generator(config: RunConfig, task: Task):
    """The :class:`alband.generation.generator.Generator` of ``[generator]``, or None without the section."""
    spec = config.generator
    if spec is None:
        return None
    from alband.generation.embedding import pool_text_embedder
    from alband.generation.generator import Generator, GeneratorSettings

    where = f"{config.source}: "
    if task.texts is None:
        raise AlbandError(f"{where}[generator] needs the pool's texts (to show the generator), and [data] has none")
    llm = _llm_annotator("generator", spec.provider, spec.llm, task, f"{where}[generator]: ")
    verifier = None if spec.verifier is None else build_annotator(config, task, spec.verifier)[0]
    settings = GeneratorSettings(spec.items_per_round, spec.k_samples, spec.min_agreement, spec.novelty_floor,
                                 spec.max_share, spec.start_round, spec.every, spec.weight, spec.n_examples)
    embed = pool_text_embedder(config.data, config.base_dir, where=where)
    return Generator("generator", llm, settings, label_names=task.label_names, pool_texts=task.texts,
                     pool_x=task.x, embed=embed, seed=config.loop.seed, verifier=verifier, task=spec.task,
                     max_chars=spec.max_chars)


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
        learner=config.learner.build(task.n_classes),
        policy=make_policy(config.policy_name, **config.policy_params),
        n_initial=config.loop.initial_labels,
        batch_size=config.loop.batch_size,
        n_rounds=config.loop.rounds,
        seed=config.loop.seed,
        budget_usd=config.budget_usd,
        stopping=None if config.stopping is None else make_rule(config.stopping.rule, **config.stopping.params),
        stop_set_size=500 if config.stopping is None else config.stopping.stop_set_size,
        initial=config.loop.initial,
    )


def require_an_affordable_label(config: RunConfig, task: Task, annotators: list) -> None:
    """Raise unless ``[budget] usd`` covers the smallest reservation any annotator makes for a pool item.

    The loop reserves an annotator's ``max_cost_usd`` bound before each paid
    call; a budget below every item's bound cannot buy a single label, and a
    run that bought none has nothing to learn or report.
    """
    texts = [task.text(i) for i in range(task.n_items)]
    smallest = {a.name: float(np.min(np.asarray(a.max_cost_usd_many(texts), np.float64))) for a in annotators}
    name = min(smallest, key=smallest.get)
    if config.budget_usd < smallest[name]:
        raise AlbandError(
            f"{config.source}: [budget] usd = {config.budget_usd:g} is smaller than the smallest reservation, "
            f"${smallest[name]:.6g} (annotator {name!r}, its worst-case cost for the cheapest pool item): "
            "not one label can be bought; raise the budget"
        )


def hold_out_validation(config: RunConfig, task: Task) -> tuple[Task, tuple[np.ndarray, np.ndarray] | None]:
    """The task without the ``validation_rows`` test rows ([stopping] or [generator]), and those rows as a validation set.

    The held-out rows leave the test set: accuracy is measured on the rest,
    and generated items join neither.
    """
    rows = 0 if config.stopping is None else config.stopping.validation_rows
    if not rows and config.generator is not None:
        rows = config.generator.validation_rows
    if rows == 0:
        return task, None
    try:
        held, kept = validation_split(len(task.y_test), rows)
    except AlbandError as err:
        section = "[stopping]" if config.stopping is not None and config.stopping.validation_rows else "[generator]"
        raise AlbandError(f"{config.source}: {section} {err}") from None
    validation = (task.x_test[held], task.y_test[held])
    return dataclasses.replace(task, x_test=task.x_test[kept], y_test=task.y_test[kept]), validation


def _progress(total: int, quiet: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="round", disable=quiet, file=sys.stderr, leave=False)


@dataclasses.dataclass(frozen=True)
class PreparedRun:
    """Everything a run needs before its first purchase, built and checked from the config alone."""

    task: Task
    validation: tuple[np.ndarray, np.ndarray] | None
    settings: LoopSettings
    annotator: Any
    run_options: dict[str, Any]
    label: str
    selector: Any
    generator: Any


def prepare_run(config: RunConfig, *, quiet: bool = False) -> PreparedRun:
    """Load the data and build the annotators, selector and generator of ``config``; every check that can fail does.

    :func:`start_run` calls it before it creates the run directory, so a bad
    data file, annotator or budget leaves nothing behind and the same ``--out``
    works once the config is fixed.
    """
    task, validation = hold_out_validation(config, load_task(config, quiet=quiet))
    settings = loop_settings(config, task)
    if config.routing is None:
        annotator, expected_cost, weight = build_annotator(config, task)
        run_options = {"expected_cost_usd": expected_cost, "label_weight": weight}
        label = annotator.name
    else:
        annotator, run_options = build_routing(config, task)
        label = config.routing.router
    require_an_affordable_label(config, task, annotator if isinstance(annotator, list) else [annotator])
    return PreparedRun(task, validation, settings, annotator, run_options, label,
                       build_selector(config, task), build_generator(config, task))


def execute(config: RunConfig, run_dir, *, quiet: bool = False, prepared: PreparedRun | None = None
            ) -> list[RoundEvent]:
    """Run or resume the loop of ``config`` in the opened ``run_dir`` (a RunDir)."""
    if prepared is None:
        prepared = prepare_run(config, quiet=quiet)
    task, validation, settings = prepared.task, prepared.validation, prepared.settings
    annotator, run_options, label = prepared.annotator, prepared.run_options, prepared.label
    events: list[RoundEvent] = []
    # one BLAS thread while the rounds run: the LAPACK calls of the jitted steps beside XLA's threads
    with run_dir.open_ledger() as ledger, run_dir.metrics_writer() as metrics, one_blas_thread():
        check_pool(ledger, task, f"the data of {config.source}", run_dir.path)
        refuse_after_overrun(ledger)
        ledger.set_meta("base_dir", str(config.base_dir))
        ledger.set_meta(_STATUS_KEY, "running")
        done_rounds = metrics.last_round
        bar = _progress(settings.n_rounds + 1, quiet, f"{settings.policy.name}/{label}")
        try:
            for event in live_rounds(settings, task, annotator, ledger, validation=validation,
                                     selector=prepared.selector, generator=prepared.generator,
                                     aux=getattr(task, "aux", ()), **run_options):
                events.append(event)
                if done_rounds is None or event.round > done_rounds:
                    metrics.append(event.metrics())
                bar.update(1)
                bar.set_postfix(labels=event.n_labeled, spent=f"${event.spent_usd:.4f}", acc=f"{event.test_accuracy:.3f}")
            ledger.set_meta(_STATUS_KEY, "complete")
            if events:
                ledger.set_meta("stop_reason", events[-1].stop_reason)
        except CostOverrun as err:
            _record_end(ledger, "overrun", "cost overrun", err)
            raise
        except AnnotatorError as err:
            _record_end(ledger, "failed", "annotator failed", err)
            raise
        except KeyboardInterrupt:
            _record_end(ledger, "interrupted", "interrupted", None)
            raise
        except Exception as err:
            _record_end(ledger, "failed", type(err).__name__, err)
            raise
        finally:
            bar.close()
    return events


def _record_end(ledger, status: str, stop_reason: str, err: BaseException | None) -> None:
    """Record why a run ended early (``alband report`` shows it instead of 'running')."""
    try:
        ledger.set_meta(_STATUS_KEY, status)
        ledger.set_meta("stop_reason", stop_reason)
        if err is not None:
            ledger.set_meta("error", str(err)[:2000])
    except AlbandError:  # the ledger itself failed: the original error matters more
        pass


def refuse_after_overrun(ledger) -> None:
    """Stop a run whose ledger records a call billed above its reservation (the bound is not safe)."""
    overrun = next((row for row in ledger.rows() if row.overrun), None)
    if overrun is not None:
        raise AlbandError(
            f"ledger row {overrun.id}: {overrun.annotator!r} billed ${overrun.cost_usd:.6f}, above its reservation "
            f"${overrun.reserved_usd:.6f}; this run buys nothing more. "
            + str(ledger.get_meta("error") or "Raise request_overhead_tokens of that annotator and start a new run.")
        )


def check_pool(ledger, task: Task, source: str, run_path) -> None:
    """Record the pool's fingerprint at the start; on resume refuse a pool that changed (one line naming how).

    Ledgers written before fingerprints were recorded are checked row by row:
    every answer must belong to the item that has its id at its pool index.
    """
    from alband.annotators.pair_orders import pair_id_of
    from alband.store.pool_fingerprint import FINGERPRINT_KEY, IDS_KEY, pool_difference, pool_fingerprint

    current = pool_fingerprint(task.ids, task.texts, task.x)
    recorded = ledger.get_meta(FINGERPRINT_KEY)
    if recorded is not None:
        difference = pool_difference(recorded, ledger.get_meta(IDS_KEY), current, task.ids)
        if difference is not None:
            raise AlbandError(f"{source} no longer match run {run_path}: {difference}; resuming would attach "
                              "paid answers to other items (restore the data or start a new run)")
        return
    position = {str(item_id): k for k, item_id in enumerate(task.ids)}
    for row in ledger.rows():
        if row.kind != "label" or row.pool_index is None:
            continue
        now = position.get(pair_id_of(row.item_id))  # a pair asked in both orders: '<id>#AB', '<id>#BA'
        if now is None:
            raise AlbandError(f"{source} no longer match run {run_path}: ledger row {row.id} paid for item "
                              f"{row.item_id!r}, which is not in the pool (restore the data or start a new run)")
        if now != row.pool_index:
            raise AlbandError(f"{source} no longer match run {run_path}: item {row.item_id!r} was at pool row "
                              f"{row.pool_index}, now at {now} (the data were reordered; restore them or start "
                              "a new run)")
    ledger.set_meta(FINGERPRINT_KEY, current)
    ledger.set_meta(IDS_KEY, [str(i) for i in task.ids])


def start_run(config: RunConfig, out: str | Path, *, quiet: bool = False) -> list[RoundEvent]:
    """Check everything ``config`` needs (:func:`prepare_run`), then create the run directory ``out`` and run it."""
    from alband.store.run_dir import RunDir

    prepared = prepare_run(config, quiet=quiet)
    run_dir = RunDir.create(out, config.text, budget_limit_usd=config.budget_usd)
    return execute(config, run_dir, quiet=quiet, prepared=prepared)


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


__all__ = ["PreparedRun", "build_annotator", "build_routing", "execute", "load_config", "load_task", "prepare_run",
           "resume_run", "start_run"]
