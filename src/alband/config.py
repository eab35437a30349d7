"""Run configuration: a TOML file, validated into frozen dataclasses (shell).

Schema (every key is documented in README, "Config reference")::

    [data]        source = "bbc_news" | "folder" | "table" | "npy", path, ... (alband.data)
    [learner]     c = 1.0, max_iter = 200, tol = 1e-5
    [policy]      name = "entropy", plus the policy's hyper-parameters
    [loop]        batch_size, rounds, initial_labels, seed, annotator
    [budget]      usd = 5.0
    [annotators.NAME]  kind = "simulated" | ..., prices and noise
    [stopping]    rule = "stabilizing_predictions", the rule's parameters (optional section;
                  alband.stopping), stop_set_size = 500, validation_rows = 0 (test rows
                  held out as the validation set of rules that need one)

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

_SECTIONS = {"data", "learner", "policy", "loop", "budget", "annotators", "stopping"}

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
    },
    "anthropic": {
        "kind": str, "model": str, "base_url": str, "api_key_env": str, "max_tokens": int,
        "timeout_s": (int, float), "max_retries": int, "cache_dir": str, "instructions": str,
        "input_usd_per_mtok": (int, float), "output_usd_per_mtok": (int, float), "usd_per_label": (int, float),
        "prompt_cache": str, "label_weight": (int, float),
    },
    "openai": {
        "kind": str, "model": str, "base_url": str, "api_key_env": str, "max_tokens": int,
        "timeout_s": (int, float), "max_retries": int, "cache_dir": str, "instructions": str,
        "input_usd_per_mtok": (int, float), "output_usd_per_mtok": (int, float), "usd_per_label": (int, float),
        "json_mode": bool, "logprobs": bool, "max_tokens_param": str, "label_weight": (int, float),
    },
    "human": {
        "kind": str, "usd_per_label": (int, float), "usd_per_hour": (int, float),
        "max_seconds_per_item": (int, float), "label_weight": (int, float),
    },
}
_REQUIRED_ANNOTATOR_KEYS = {"anthropic": ("model",), "openai": ("model",)}


@dataclass(frozen=True)
class LearnerConfig:
    c: float = 1.0
    max_iter: int = 200
    tol: float = 1e-5


@dataclass(frozen=True)
class LoopConfig:
    batch_size: int = 10
    rounds: int = 20
    initial_labels: int = 10
    seed: int = 0
    annotator: str = ""


@dataclass(frozen=True)
class StoppingConfig:
    """The ``[stopping]`` section: a rule of :mod:`alband.stopping` and its parameters."""

    rule: str
    params: dict[str, float]
    stop_set_size: int = 500
    validation_rows: int = 0


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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


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
    if "source" not in data:
        raise AlbandError(f"{_where(source, 'data', 'source')} is required (bbc_news, folder, table or npy)")

    learner = LearnerConfig(**_take(raw.get("learner", {}), {"c": (int, float), "max_iter": int, "tol": (int, float)}, source, "learner"))
    if not (learner.c > 0 and math.isfinite(learner.c)):
        raise AlbandError(f"{_where(source, 'learner', 'c')} must be a finite number > 0, got {learner.c}")
    _positive_int(learner.max_iter, source, "learner", "max_iter")

    policy = dict(raw["policy"])
    policy_name = policy.pop("name", None)
    if not isinstance(policy_name, str):
        raise AlbandError(f"{_where(source, 'policy', 'name')} is required (a query policy name)")

    loop = LoopConfig(**_take(
        raw["loop"],
        {"batch_size": int, "rounds": int, "initial_labels": int, "seed": int, "annotator": str},
        source, "loop",
    ))
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
    annotator = loop.annotator or next(iter(annotators))
    if annotator not in annotators:
        raise AlbandError(
            f"{_where(source, 'loop', 'annotator')}: '{annotator}' is not defined under [annotators] "
            f"(defined: {', '.join(annotators)})"
        )
    loop = LoopConfig(loop.batch_size, loop.rounds, loop.initial_labels, loop.seed, annotator)

    stopping = _stopping(raw["stopping"], source) if "stopping" in raw else None

    return RunConfig(
        data=dict(data),
        learner=learner,
        policy_name=policy_name,
        policy_params=policy,
        loop=loop,
        budget_usd=budget_usd,
        annotators={k: dict(v) for k, v in annotators.items()},
        base_dir=base_dir or Path.cwd(),
        source=source,
        text=text,
        stopping=stopping,
    )


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
