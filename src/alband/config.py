"""Run configuration: a TOML file, validated into frozen dataclasses (shell).

Schema (every key is documented in README, "Config reference")::

    [data]        source = "bbc_news" | "folder" | "table" | "npy", path, ... (alband.data)
                  kind = "pairs" for a preference task: source = "hh_rlhf" | "trl" |
                  "candidates" | "synthetic_candidates" (alband.data.pair_spec)
    [learner]     name = "softmax_regression" (alband learners; "bradley_terry" by default
                  for a pairs task), or a plug-in:
                  "package.module:function" or an entry point of group alband.learners,
                  plus the learner's hyper-parameters (checked by its factory; the
                  default's are c = 1.0, max_iter = 200, tol = 1e-5)
    [policy]      name = "entropy" (alband policies), or a plug-in: "package.module:function"
                  or an entry point of group alband.policies (alband.plugins), plus the
                  policy's hyper-parameters (checked by its factory)
    [loop]        batch_size, rounds, initial_labels, seed, annotator, initial = "random" | "kmeans"
    [budget]      usd = 5.0
    [annotators.NAME]  kind = "simulated" | ..., prices and noise
    [stopping]    rule = "stabilizing_predictions", the rule's parameters (optional section;
                  alband.stopping), stop_set_size = 500, validation_rows = 0 (test rows
                  held out as the validation set of rules that need one)
    [routing]     several annotators and a router (optional section; without it one
                  annotator, [loop] annotator, labels every item):
                  router = "fixed" | "random" | "cascade" | "contextual_ts" | "bts" | "ucb_bv"
                  (alband routers), or a plug-in ("package.module:function", entry-point
                  group alband.routers),
                  annotators = ["cheap", "strong", "human"] (arm order), auditor = "human"
                  (optional), feedback = "audit" | "gold", label_weight = "none" |
                  "configured" | "audited", and the router's parameters, as registered
                  with the router (alband.routing.registry: its names and kinds; the
                  factory checks the values):
                    fixed          arm = a name in annotators (default the first)
                    cascade        chain = names, cheapest first (default annotators),
                                   target = 0.95, n_bins = 20, min_count = 20
                    contextual_ts  exploration = 1.0, dual_kappa = 20.0, lambda0 = 0.0
                    cascade, contextual_ts, bts, ucb_bv: audit_rate = 0.1, audit_share = 0.2,
                                   panel_share = 0.1, panel_size = 3 (alband.routing.audit)
    [selector]    an LLM that picks the items to label (optional section; alband.selection):
                  kind = "llm", provider = "openai" | "anthropic", model, base_url, api_key_env,
                  prices and request settings as an LLM annotator's, max_tokens = 1024,
                  n_candidates = 200, k (the batch it picks: [loop] initial_labels, and
                  batch_size in iterative mode), shortlist = "uniform" | "kmeans" | a policy
                  name, prompt = "plain" | "cot", show_labels = true, mode = "cold_start" |
                  "iterative" | "meta_arm" (an arm "llm_selection" of [policy] albl / meta_ts), fallback = "random" (a policy name), task (the task
                  description), max_chars = 400 (per candidate text)
    [generator]   an LLM that writes new labelled items where the learner is weak (optional
                  section; alband.generation): kind = "llm", provider, model, base_url,
                  api_key_env, prices and request settings as an LLM annotator's,
                  max_tokens = 2048, items_per_round = 8, k_samples = 3 (self-consistency
                  labellings), min_agreement = 1.0, verifier (an [annotators] name, optional),
                  novelty_floor = 0.05, max_share = 0.25 (of the training labels),
                  start_round = 1, every = 1, weight = 1.0, validation_rows = 0 (test rows
                  held out for the confusion matrix), n_examples = 5, task, max_chars = 300

Unknown sections or keys, wrong types and impossible values raise
:class:`~alband.errors.AlbandError` naming the file, the section and the key.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alband.errors import AlbandError

#: ``[data] kind``: "labels" (a classification task, the default) or "pairs" (a preference task,
#: :mod:`alband.data.pair_spec`).
DATA_KINDS = ("labels", "pairs")

_SECTIONS = {"data", "learner", "policy", "loop", "budget", "annotators", "stopping", "routing", "selector", "generator"}

_ROUTING_KEYS: dict[str, type | tuple[type, ...]] = {
    "router": str, "annotators": list, "auditor": str, "feedback": str, "label_weight": str,
}

_ANNOTATOR_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "simulated": {
        "kind": str,
        "input_usd_per_mtok": (int, float),
        "output_usd_per_mtok": (int, float),
        "usd_per_label": (int, float),
        "flip_rate": (int, float),
        "confusion": list,
        "prompt_tokens": int,
        "output_tokens": int,
        "max_output_tokens": int,
        "chars_per_token": (int, float),
        "label_weight": (int, float),
        # a preference task's judge only (alband.simulate.judge_model)
        "position_bias": (int, float),
        "tie_rate": (int, float),
        "beta": (int, float),
    },
    "anthropic": {
        "kind": str, "model": str, "base_url": str, "api_key_env": str, "max_tokens": int,
        "timeout_s": (int, float), "max_retries": int, "cache_dir": str, "instructions": str,
        "input_usd_per_mtok": (int, float), "output_usd_per_mtok": (int, float), "usd_per_label": (int, float),
        "prompt_cache": str, "label_weight": (int, float),
        "request_overhead_tokens": int, "per_message_overhead_tokens": int,
        "both_orders": bool, "allow_tie": bool,
    },
    "openai": {
        "kind": str, "model": str, "base_url": str, "api_key_env": str, "max_tokens": int,
        "timeout_s": (int, float), "max_retries": int, "cache_dir": str, "instructions": str,
        "input_usd_per_mtok": (int, float), "output_usd_per_mtok": (int, float), "usd_per_label": (int, float),
        "json_mode": bool, "logprobs": bool, "max_tokens_param": str, "label_weight": (int, float),
        "request_overhead_tokens": int, "per_message_overhead_tokens": int,
        "both_orders": bool, "allow_tie": bool,
    },
    "human": {
        "kind": str, "usd_per_label": (int, float), "usd_per_hour": (int, float),
        "max_seconds_per_item": (int, float), "label_weight": (int, float),
        "both_orders": bool, "allow_tie": bool,  # a preference task's judge only
    },
}
_REQUIRED_ANNOTATOR_KEYS = {"anthropic": ("model",), "openai": ("model",)}
#: Annotator keys holding dollars (each a finite number >= 0).
_PRICE_KEYS = frozenset({"input_usd_per_mtok", "output_usd_per_mtok", "usd_per_label", "usd_per_hour"})
#: Annotator keys holding a path, relative to the config file's folder unless absolute.
_PATH_KEYS = ("cache_dir",)


@dataclass(frozen=True)
class LearnerConfig:
    """The ``[learner]`` section: a registered learner's name and its hyper-parameters."""

    name: str = "softmax_regression"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, n_classes: int):
        """The :class:`~alband.models.base.Learner` of a task with ``n_classes`` classes.

        A factory that takes ``n_classes`` gets it from the task, not the config.
        """
        from alband.models.registry import make_learner, takes_n_classes

        extra = {"n_classes": n_classes} if takes_n_classes(self.name) else {}
        return make_learner(self.name, **extra, **self.params)


@dataclass(frozen=True)
class LoopConfig:
    batch_size: int = 10
    rounds: int = 20
    initial_labels: int = 10
    seed: int = 0
    annotator: str = ""
    initial: str = "random"  # the seed set: "random" or "kmeans" (alband.cold_start)


@dataclass(frozen=True)
class StoppingConfig:
    """The ``[stopping]`` section: a rule of :mod:`alband.stopping` and its parameters."""

    rule: str
    params: dict[str, float]
    stop_set_size: int = 500
    validation_rows: int = 0


@dataclass(frozen=True)
class RoutingConfig:
    """The ``[routing]`` section: a router over several annotators (names in arm order)."""

    router: str
    params: dict[str, Any]
    annotators: tuple[str, ...]
    auditor: str | None = None
    feedback: str = "audit"
    label_weight: str = "configured"

    def arm(self, name: str) -> int:
        return self.annotators.index(name)

    def router_parameters(self) -> dict[str, Any]:
        """``params`` as the router's factory takes them: annotator names become arm indices."""
        from alband.routing import ARM, ARMS, router_entry

        kinds = router_entry(self.router).parameters
        return {key: self.arm(value) if kinds[key] == ARM else
                tuple(self.arm(v) for v in value) if kinds[key] == ARMS else value
                for key, value in self.params.items()}

    def build(self):
        """The :class:`~alband.routing.base.Router` this section names (:func:`alband.routing.make_router`).

        A ``fixed`` router is named after its annotator (``fixed:NAME``).
        """
        from alband.routing import make_router

        router = make_router(self.router, **self.router_parameters())
        return router._replace(name=f"fixed:{self.params['arm']}") if self.router == "fixed" else router


@dataclass(frozen=True)
class RunConfig:
    """A validated run configuration; ``text`` is the TOML it came from."""

    data: dict[str, Any]
    learner: LearnerConfig
    policy_name: str
    policy_params: dict[str, Any]
    loop: LoopConfig
    budget_usd: float
    annotators: dict[str, dict[str, Any]]
    base_dir: Path
    source: str
    text: str = field(repr=False, default="")
    stopping: StoppingConfig | None = None
    routing: RoutingConfig | None = None
    selector: "SelectorConfig | None" = None
    generator: "GeneratorConfig | None" = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def task_kind(self) -> str:
        """``"pairs"`` for a preference task, else ``"labels"``."""
        return self.data.get("kind", "labels")


def _where(source: str, section: str, key: str | None = None) -> str:
    return f"{source}: [{section}]" + (f" {key}" if key else "")


def _take(table: dict, allowed: dict[str, type | tuple], source: str, section: str) -> dict:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise AlbandError(
            f"{_where(source, section)}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})"
        )
    for key, value in table.items():
        expected = allowed[key]
        if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
            names = "/".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
            raise AlbandError(f"{_where(source, section, key)} must be {names}, got {value!r}")
    return table


def _positive_int(value: int, source: str, section: str, key: str, minimum: int = 1) -> int:
    if value < minimum:
        raise AlbandError(f"{_where(source, section, key)} must be >= {minimum}, got {value}")
    return value


def parse_config(text: str, *, source: str = "<config>", base_dir: Path | None = None) -> RunConfig:
    """Validate the TOML ``text`` of a run configuration."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise AlbandError(f"{source}: not valid TOML: {err}") from None
    unknown = sorted(set(raw) - _SECTIONS)
    if unknown:
        raise AlbandError(f"{source}: unknown section [{unknown[0]}] (allowed: {', '.join(sorted(_SECTIONS))})")
    for section in ("data", "policy", "loop", "budget", "annotators"):
        if section not in raw:
            raise AlbandError(f"{source}: missing section [{section}]")

    data = raw["data"]
    if "kind" in data and data["kind"] not in DATA_KINDS:
        raise AlbandError(f"{_where(source, 'data', 'kind')} must be one of "
                          f"{', '.join(repr(k) for k in DATA_KINDS)}, got {data['kind']!r}")
    if data.get("kind") == "labels":
        data = {k: v for k, v in data.items() if k != "kind"}
    if "source" not in data:
        raise AlbandError(f"{_where(source, 'data', 'source')} is required (bbc_news, folder, table or npy)")

    learner = _learner(dict(raw.get("learner", {})), source, base_dir,
                       default="bradley_terry" if data.get("kind") == "pairs" else "softmax_regression")

    policy = dict(raw["policy"])
    policy_name = _policy(policy.pop("name", None), policy, source, base_dir)

    loop = LoopConfig(**_take(
        raw["loop"],
        {"batch_size": int, "rounds": int, "initial_labels": int, "seed": int, "annotator": str, "initial": str},
        source, "loop",
    ))
    from alband.cold_start import SEED_SET_METHODS  # imports jax: only once a config is read

    if loop.initial not in SEED_SET_METHODS:
        raise AlbandError(f"{_where(source, 'loop', 'initial')} must be one of {', '.join(SEED_SET_METHODS)}, "
                          f"got {loop.initial!r}")
    _positive_int(loop.batch_size, source, "loop", "batch_size")
    _positive_int(loop.rounds, source, "loop", "rounds", minimum=0)
    _positive_int(loop.initial_labels, source, "loop", "initial_labels")
    _positive_int(loop.seed, source, "loop", "seed", minimum=0)

    budget = _take(raw["budget"], {"usd": (int, float)}, source, "budget")
    if "usd" not in budget:
        raise AlbandError(f"{_where(source, 'budget', 'usd')} is required (dollars)")
    budget_usd = float(budget["usd"])
    if not (budget_usd > 0 and math.isfinite(budget_usd)):
        raise AlbandError(f"{_where(source, 'budget', 'usd')} must be a finite number of dollars > 0, got {budget['usd']}")

    annotators = raw["annotators"]
    if not annotators:
        raise AlbandError(f"{source}: [annotators] must define at least one annotator")
    for name, spec in annotators.items():
        section = f"annotators.{name}"
        if not isinstance(spec, dict):
            raise AlbandError(f"{_where(source, section)} must be a table")
        kind = spec.get("kind", "simulated")
        if kind not in _ANNOTATOR_KEYS:
            raise AlbandError(
                f"{_where(source, section, 'kind')}: unknown annotator kind '{kind}' "
                f"(available: {', '.join(sorted(_ANNOTATOR_KEYS))})"
            )
        _take(spec, _ANNOTATOR_KEYS[kind], source, section)
        for key in _REQUIRED_ANNOTATOR_KEYS.get(kind, ()):
            if key not in spec:
                raise AlbandError(f"{_where(source, section, key)} is required for kind '{kind}'")
        for key in _PRICE_KEYS & set(spec):
            if not (math.isfinite(spec[key]) and spec[key] >= 0):
                raise AlbandError(f"{_where(source, section, key)} must be a finite number of dollars >= 0, "
                                  f"got {spec[key]!r}")
    annotator = loop.annotator or next(iter(annotators))
    if annotator not in annotators:
        raise AlbandError(
            f"{_where(source, 'loop', 'annotator')}: '{annotator}' is not defined under [annotators] "
            f"(defined: {', '.join(annotators)})"
        )
    loop = LoopConfig(loop.batch_size, loop.rounds, loop.initial_labels, loop.seed, annotator, loop.initial)
    base_dir = base_dir or Path.cwd()

    stopping = _stopping(raw["stopping"], source) if "stopping" in raw else None
    routing = _routing(raw["routing"], annotators, source, base_dir) if "routing" in raw else None
    if routing is not None and "annotator" in raw["loop"]:
        raise AlbandError(
            f"{_where(source, 'loop', 'annotator')}: with a [routing] section the annotators are "
            "[routing] annotators; remove [loop] annotator"
        )

    return RunConfig(
        data=dict(data),
        learner=learner,
        policy_name=policy_name,
        policy_params=policy,
        loop=loop,
        budget_usd=budget_usd,
        annotators={k: _resolve_paths(v, base_dir) for k, v in annotators.items()},
        base_dir=base_dir,
        source=source,
        text=text,
        stopping=stopping,
        routing=routing,
        selector=(_selector(raw["selector"], loop, policy_name, policy, source, base_dir)
                  if "selector" in raw else None),
        generator=_generator(raw["generator"], annotators, stopping, data, source) if "generator" in raw else None,
    )


def _resolve_paths(spec: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """A copy of an annotator table whose path keys are absolute: ``~`` expanded, relative to ``base_dir``."""
    spec = dict(spec)
    for key in _PATH_KEYS:
        if key in spec:
            spec[key] = str(base_dir / Path(spec[key]).expanduser())
    return spec


def _policy(name: Any, params: dict[str, Any], source: str, base_dir: Path | None) -> str:
    """The registered name of ``[policy] name`` (a plug-in is imported first), built once with ``params``."""
    from alband.plugins import POLICIES, resolve_plugin
    from alband.policies import make_policy

    if not isinstance(name, str):
        raise AlbandError(f"{_where(source, 'policy', 'name')} is required (a query policy name; "
                          "see alband policies)")
    try:
        registered = resolve_plugin(name, POLICIES, search=base_dir)
    except AlbandError as err:
        raise AlbandError(f"{_where(source, 'policy', 'name')}: {err}") from None
    try:
        make_policy(registered, **params)  # the factory checks the hyper-parameters
    except AlbandError as err:
        raise AlbandError(f"{_where(source, 'policy')}: {err}") from None
    return registered


def _learner(table: dict[str, Any], source: str, base_dir: Path | None,
             default: str = "softmax_regression") -> LearnerConfig:
    """``[learner]``: the registered name of ``name`` (a plug-in is imported first), built once with the rest.

    The hyper-parameters are the factory's keyword arguments (``n_classes``
    comes from the task); the factory checks their values, built here with
    two classes so that a bad value stops the run before any data loads.
    """
    import inspect

    from alband.plugins import LEARNERS, resolve_plugin

    name = table.pop("name", default)
    if not isinstance(name, str):
        raise AlbandError(f"{_where(source, 'learner', 'name')} must be a learner name (see alband learners), "
                          f"got {name!r}")
    try:
        registered = resolve_plugin(name, LEARNERS, search=base_dir)
    except AlbandError as err:
        raise AlbandError(f"{_where(source, 'learner', 'name')}: {err}") from None
    signature = inspect.signature(LEARNERS.factories()[registered]).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in signature.values()):
        allowed = sorted(k for k in signature if k != "n_classes")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise AlbandError(f"{_where(source, 'learner')}: unknown key '{unknown[0]}' for learner '{registered}' "
                              f"(allowed: {', '.join(['name', *allowed])})")
    learner = LearnerConfig(registered, table)
    try:
        learner.build(2)
    except (AlbandError, ValueError) as err:
        raise AlbandError(f"{_where(source, 'learner')}: {err}") from None
    return learner


def _runnable_routers() -> list[str]:
    from alband.routing import available_routers, router_entry

    return [name for name in available_routers() if not router_entry(name).hindsight]


def _routing(table: dict, annotators: dict[str, dict], source: str, base_dir: Path) -> RoutingConfig:
    from alband.routing import ARM, ARMS, router_entry
    from alband.routing.label_weights import LABEL_WEIGHT_MODES

    section = "routing"
    router = table.get("router")
    if not isinstance(router, str):
        raise AlbandError(f"{_where(source, section, 'router')} is required "
                          f"({', '.join(_runnable_routers())})")
    from alband.plugins import ROUTERS, resolve_plugin

    try:
        router = resolve_plugin(router, ROUTERS, search=base_dir)
    except AlbandError as err:
        raise AlbandError(f"{_where(source, section, 'router')}: {err}") from None
    entry = router_entry(router)
    if entry.hindsight:
        raise AlbandError(f"{_where(source, section, 'router')}: router '{router}' is for evaluation only (it reads "
                          f"the outcomes in hindsight) (available: {', '.join(_runnable_routers())})")
    in_config = {ARM: str, ARMS: list}
    _take(table, {**_ROUTING_KEYS, **{k: in_config.get(kind, kind) for k, kind in entry.parameters.items()}},
          source, section)

    names = table.get("annotators")
    if names is None:
        raise AlbandError(f"{_where(source, section, 'annotators')} is required: the annotators' names in arm order")
    arms = _names(names, annotators, source, "annotators")
    auditor = table.get("auditor")
    if auditor is not None and auditor not in arms:
        raise AlbandError(f"{_where(source, section, 'auditor')}: '{auditor}' is not one of annotators "
                          f"({', '.join(arms)})")
    feedback = table.get("feedback", "audit")
    if feedback not in ("audit", "gold"):
        raise AlbandError(f"{_where(source, section, 'feedback')} must be 'audit' or 'gold', got {feedback!r}")
    label_weight = table.get("label_weight", "configured")
    if label_weight not in LABEL_WEIGHT_MODES:
        raise AlbandError(f"{_where(source, section, 'label_weight')} must be one of "
                          f"{', '.join(LABEL_WEIGHT_MODES)}, got {label_weight!r}")
    if feedback == "gold":
        if auditor is not None:
            raise AlbandError(f"{_where(source, section, 'auditor')}: feedback = 'gold' checks every paid answer "
                              "against the gold label; remove auditor, or set feedback = 'audit'")
        real = [n for n in arms if annotators[n].get("kind", "simulated") != "simulated"]
        if real:
            raise AlbandError(f"{_where(source, section, 'feedback')}: 'gold' is a simulation convenience, but "
                              f"annotator '{real[0]}' is of kind '{annotators[real[0]]['kind']}' (use 'audit')")
    elif auditor is None and entry.learns:
        raise AlbandError(f"{_where(source, section, 'auditor')} is required: router '{router}' learns from "
                          "audits (name the annotator taken as truth), or use feedback = 'gold' in simulation")
    if label_weight == "audited" and feedback == "audit" and auditor is None:
        raise AlbandError(f"{_where(source, section, 'label_weight')}: 'audited' weights come from audits; "
                          "name an auditor")

    params = {k: v for k, v in table.items() if k not in _ROUTING_KEYS}
    for key, kind in entry.parameters.items():  # arms are named; omitted ones default to the first / all
        if kind == ARM:
            arm = params.setdefault(key, arms[0])
            if arm not in arms:
                raise AlbandError(f"{_where(source, section, key)}: '{arm}' is not one of annotators "
                                  f"({', '.join(arms)})")
        elif kind == ARMS:
            params[key] = list(_names(params.get(key, list(arms)), {n: {} for n in arms}, source, key))
    routing = RoutingConfig(router, params, arms, auditor, feedback, label_weight)
    try:
        routing.build()  # the router's factory checks the values' ranges
    except AlbandError as err:
        raise AlbandError(f"{_where(source, section)} {err}") from None
    return routing


def _names(names: Any, defined: dict, source: str, key: str) -> tuple[str, ...]:
    """A non-empty list of distinct names, each defined (``[routing] annotators`` or ``chain``)."""
    where = _where(source, "routing", key)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise AlbandError(f"{where} must be a non-empty list of annotator names, got {names!r}")
    for name in names:
        if name not in defined:
            raise AlbandError(f"{where}: '{name}' is not defined (defined: {', '.join(defined)})")
    if len(set(names)) != len(names):
        raise AlbandError(f"{where}: names must be distinct, got {names!r}")
    return tuple(names)


def _stopping(table: dict, source: str) -> StoppingConfig:
    from alband.stopping.rules import make_rule, rule_parameters

    rule = table.get("rule")
    if not isinstance(rule, str):
        raise AlbandError(f"{_where(source, 'stopping', 'rule')} is required (a stopping rule name)")
    try:
        parameters = rule_parameters(rule)
    except AlbandError as err:
        raise AlbandError(f"{_where(source, 'stopping', 'rule')}: {err}") from None
    allowed = {"rule": str, "stop_set_size": int, "validation_rows": int, **{k: (int, float) for k in parameters}}
    _take(table, allowed, source, "stopping")
    params = {k: v for k, v in table.items() if k in parameters}
    try:
        built = make_rule(rule, **params)
    except AlbandError as err:
        raise AlbandError(f"{_where(source, 'stopping')}: {err}") from None
    stop_set_size = _positive_int(table.get("stop_set_size", 500), source, "stopping", "stop_set_size")
    validation_rows = _positive_int(table.get("validation_rows", 0), source, "stopping", "validation_rows", minimum=0)
    if built.needs_validation and validation_rows == 0:
        raise AlbandError(
            f"{_where(source, 'stopping', 'validation_rows')}: rule '{rule}' needs a validation set; "
            "set validation_rows to the number of test rows to hold out"
        )
    return StoppingConfig(rule, {k: float(v) for k, v in params.items()}, stop_set_size, validation_rows)


_SELECTOR_LLM_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str, "provider": str, "model": str, "base_url": str, "api_key_env": str, "max_tokens": int,
    "timeout_s": (int, float), "max_retries": int, "input_usd_per_mtok": (int, float),
    "output_usd_per_mtok": (int, float), "request_overhead_tokens": int, "per_message_overhead_tokens": int,
    "json_mode": bool, "max_tokens_param": str,
    "n_candidates": int, "k": int, "shortlist": str, "prompt": str, "show_labels": bool, "mode": str,
    "fallback": str, "task": str, "max_chars": int,
}


@dataclass(frozen=True)
class SelectorConfig:
    """The ``[selector]`` section: an LLM shown ``n_candidates`` items picks each batch (alband.selection)."""

    provider: str
    llm: dict[str, Any]  # the LLM's table, as an [annotators.NAME] table of kind ``provider``
    n_candidates: int = 200
    shortlist: str = "uniform"
    prompt: str = "plain"
    show_labels: bool = True
    mode: str = "cold_start"
    fallback: str = "random"
    task: str = ""
    max_chars: int = 400


def _check_llm_call(table: dict, source: str, section: str, what: str) -> str:
    """The keys every LLM-call table ([selector], [generator]) shares: kind, provider, model, prices; the provider."""
    if table.get("kind", "llm") != "llm":
        raise AlbandError(f"{_where(source, section, 'kind')} must be 'llm', got {table['kind']!r}")
    provider = table.get("provider", "openai")
    if provider not in ("openai", "anthropic"):
        raise AlbandError(f"{_where(source, section, 'provider')} must be 'openai' or 'anthropic', got {provider!r}")
    if "model" not in table:
        raise AlbandError(f"{_where(source, section, 'model')} is required (the {what} model)")
    if provider == "anthropic":
        for key in ("json_mode", "max_tokens_param"):
            if key in table:
                raise AlbandError(f"{_where(source, section, key)} is an OpenAI setting (provider = 'anthropic')")
    for key in ("input_usd_per_mtok", "output_usd_per_mtok"):
        if key in table and not (math.isfinite(table[key]) and table[key] >= 0):
            raise AlbandError(f"{_where(source, section, key)} must be a finite number of dollars >= 0, "
                              f"got {table[key]!r}")
    return provider


def _selector(table: dict, loop: LoopConfig, policy_name: str, policy_params: dict, source: str,
              base_dir: Path | None) -> SelectorConfig:
    """``[selector]`` (see the module docstring), every value checked before any data loads."""
    from alband.plugins import POLICIES, resolve_plugin
    from alband.selection.llm_selector import SELECTION_MODES
    from alband.selection.prompt import PROMPT_VARIANTS

    section = "selector"
    _take(table, _SELECTOR_LLM_KEYS, source, section)
    provider = _check_llm_call(table, source, section, "selecting")
    mode = table.get("mode", "cold_start")
    if mode not in SELECTION_MODES:
        raise AlbandError(f"{_where(source, section, 'mode')} must be one of {', '.join(SELECTION_MODES)}, "
                          f"got {mode!r}")
    prompt = table.get("prompt", "plain")
    if prompt not in PROMPT_VARIANTS:
        raise AlbandError(f"{_where(source, section, 'prompt')} must be one of {', '.join(PROMPT_VARIANTS)}, "
                          f"got {prompt!r}")
    n_candidates = _positive_int(table.get("n_candidates", 200), source, section, "n_candidates")
    max_chars = _positive_int(table.get("max_chars", 400), source, section, "max_chars")
    _positive_int(table.get("max_tokens", 1024), source, section, "max_tokens")
    if mode == "meta_arm":
        from alband.policies.llm_arm import LLM_ARM

        strategies = policy_params.get("strategies")
        if policy_name not in ("albl", "meta_ts") or not isinstance(strategies, list) or LLM_ARM not in strategies:
            raise AlbandError(f"{_where(source, section, 'mode')}: 'meta_arm' makes the selector an arm of a "
                              f"meta-bandit: set [policy] name = \"albl\" or \"meta_ts\" with '{LLM_ARM}' among its "
                              "strategies")
    if "k" in table:
        k = _positive_int(table["k"], source, section, "k")
        sizes = {} if mode == "meta_arm" else {"initial_labels": loop.initial_labels}
        if mode != "cold_start":
            sizes["batch_size"] = loop.batch_size
        for name, size in sizes.items():
            if k != size:
                raise AlbandError(f"{_where(source, section, 'k')} = {k} must equal [loop] {name} = {size}, the "
                                  f"batch the selector picks in mode '{mode}'")
    resolved = {}
    for key, default in (("shortlist", "uniform"), ("fallback", "random")):
        name = table.get(key, default)
        if key == "shortlist" and name in ("uniform", "kmeans"):
            resolved[key] = name
            continue
        try:
            resolved[key] = resolve_plugin(name, POLICIES, search=base_dir)
        except AlbandError as err:
            raise AlbandError(f"{_where(source, section, key)}: {err}") from None
    if mode == "cold_start" and resolved["shortlist"] not in ("uniform", "kmeans"):
        raise AlbandError(f"{_where(source, section, 'shortlist')}: '{resolved['shortlist']}' ranks items with a "
                          "model, and a cold start has none; use 'uniform' or 'kmeans', or mode = 'iterative'")
    llm = {key: table[key] for key in _ANNOTATOR_KEYS[provider] if key in table}
    llm.setdefault("max_tokens", 1024)
    return SelectorConfig(provider, llm, n_candidates, resolved["shortlist"], prompt,
                          table.get("show_labels", True), mode, resolved["fallback"], table.get("task", ""), max_chars)


_GENERATOR_KEYS: dict[str, type | tuple[type, ...]] = {
    **{k: v for k, v in _SELECTOR_LLM_KEYS.items() if k not in (
        "n_candidates", "k", "shortlist", "prompt", "show_labels", "mode", "fallback", "max_chars")},
    "items_per_round": int, "k_samples": int, "min_agreement": (int, float), "verifier": str,
    "novelty_floor": (int, float), "max_share": (int, float), "start_round": int, "every": int,
    "weight": (int, float), "validation_rows": int, "n_examples": int, "max_chars": int,
}


@dataclass(frozen=True)
class GeneratorConfig:
    """The ``[generator]`` section: an LLM writes labelled items where the learner is weak (alband.generation)."""

    provider: str
    llm: dict[str, Any]  # the LLM's table, as an [annotators.NAME] table of kind ``provider``
    items_per_round: int = 8
    k_samples: int = 3
    min_agreement: float = 1.0
    verifier: str | None = None
    novelty_floor: float = 0.05
    max_share: float = 0.25
    start_round: int = 1
    every: int = 1
    weight: float = 1.0
    validation_rows: int = 0
    n_examples: int = 5
    task: str = ""
    max_chars: int = 300


def _generator(table: dict, annotators: dict, stopping: "StoppingConfig | None", data: dict,
               source: str) -> GeneratorConfig:
    """``[generator]`` (see the module docstring), every value checked before any data loads."""
    section = "generator"
    _take(table, _GENERATOR_KEYS, source, section)
    provider = _check_llm_call(table, source, section, "generating")
    for key, minimum in (("items_per_round", 1), ("k_samples", 0), ("start_round", 1), ("every", 1),
                         ("validation_rows", 0), ("n_examples", 0), ("max_chars", 1), ("max_tokens", 1)):
        if key in table:
            _positive_int(table[key], source, section, key, minimum)
    for key, low, high, low_open in (("min_agreement", 0.0, 1.0, False), ("novelty_floor", 0.0, 1.0, False),
                                     ("max_share", 0.0, 1.0, True), ("weight", 0.0, math.inf, True)):
        if key in table:
            value = float(table[key])
            above = value > low if low_open else value >= low
            if not (math.isfinite(value) and above and value <= high):
                bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high == math.inf else ']'}"
                raise AlbandError(f"{_where(source, section, key)} must be in {bounds}, got {table[key]!r}")
    verifier = table.get("verifier")
    if verifier is not None:
        if verifier not in annotators:
            raise AlbandError(f"{_where(source, section, 'verifier')}: '{verifier}' is not defined under "
                              f"[annotators] (defined: {', '.join(annotators)})")
        if annotators[verifier].get("kind", "simulated") == "simulated":
            raise AlbandError(f"{_where(source, section, 'verifier')}: '{verifier}' is a simulated annotator, which "
                              "answers from the pool's gold labels and cannot label a generated text")
    if data.get("kind") == "pairs":
        raise AlbandError(f"{_where(source, section)}: generation writes labelled texts; a pairs task "
                          "([data] kind = \"pairs\") cannot use it")
    from alband.generation.embedding import TEXT_SOURCES

    if data.get("source") not in TEXT_SOURCES:
        raise AlbandError(f"{_where(source, section)} needs a [data] source that embeds texts "
                          f"({', '.join(TEXT_SOURCES)}): source {data.get('source')!r} holds precomputed embeddings, "
                          "with no embedder to place a generated text")
    rows = table.get("validation_rows", 0)
    held = 0 if stopping is None else stopping.validation_rows
    if rows and held and rows != held:
        raise AlbandError(f"{_where(source, section, 'validation_rows')} = {rows} differs from [stopping] "
                          f"validation_rows = {held}: the run holds out one validation set")
    llm = {key: table[key] for key in _ANNOTATOR_KEYS[provider] if key in table}
    llm.setdefault("max_tokens", 2048)
    options = {k: (float(table[k]) if k in ("min_agreement", "novelty_floor", "max_share", "weight") else table[k])
               for k in ("items_per_round", "k_samples", "min_agreement", "verifier", "novelty_floor", "max_share",
                         "start_round", "every", "weight", "validation_rows", "n_examples", "task", "max_chars")
               if k in table}
    return GeneratorConfig(provider, llm, **options)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AlbandError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AlbandError(f"{path}: cannot read config: {err}") from None
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)
