"""The short path from Python: ``import alband``, then config -> simulate -> compare -> plot -> run (shell).

Every name here is a thin layer over the engine the command line uses: a
config is :func:`alband.config.parse_config`'s :class:`~alband.config.RunConfig`,
:func:`simulation` is :func:`alband.cli.simulate.simulate_config` (the jitted
simulator, seeds one compiled call), :func:`compare` is
:func:`alband.stats.paired_interval` over seeds, :func:`run` is
``alband run`` (:func:`alband.runner.start_run`). ``import alband`` loads
none of them until a name is used (``alband.__getattr__``). The builder is
``make_config`` and the simulation ``simulation``: ``alband.config`` and
``alband.simulate`` are the config module and the simulator package.

>>> import alband
>>> cfg = alband.make_config(data={"source": "bbc_news", "max_train": 300}, loop={"rounds": 3})
>>> entropy = alband.simulation(cfg, seeds=4)
>>> rand = alband.simulation(alband.make_config(cfg, policy={"name": "random"}), seeds=4)
>>> alband.compare(entropy, rand).n
4
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from alband.config import RunConfig, parse_config
from alband.config import load_config as _load_config
from alband.errors import AlbandError
from alband.stats import DEFAULT_LEVEL, Interval, paired_interval

#: The sections :func:`make_config` fills in when neither a base nor the call gives them.
DEFAULT_SECTIONS: dict[str, dict[str, Any]] = {
    "data": {"source": "bbc_news"},
    "policy": {"name": "entropy"},
    "loop": {"batch_size": 10, "rounds": 20, "initial_labels": 10, "seed": 0},
    "budget": {"usd": 1.0},
    "annotators": {"llm": {"kind": "simulated", "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.60,
                           "flip_rate": 0.2, "prompt_tokens": 120, "output_tokens": 8, "max_output_tokens": 32}},
}

#: What :meth:`Result.metric` computes per seed.
METRICS = ("final_accuracy", "mean_accuracy", "dollars", "labels")


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run configuration (the file ``alband run`` takes).

    Args:
        path: the ``.toml`` file; relative paths inside it are relative to its folder.

    Returns:
        The validated :class:`~alband.config.RunConfig`.

    >>> import alband
    >>> alband.load_config("no/such/run.toml")
    Traceback (most recent call last):
    ...
    alband.errors.AlbandError: no/such/run.toml: config file not found
    """
    return _load_config(path)


def make_config(base: RunConfig | str | Path | None = None, /, *, base_dir: str | Path | None = None,
           **sections: Mapping[str, Any]) -> RunConfig:
    """A config built in Python: TOML's sections as dicts, each replacing the base's section of that name.

    Sections neither given nor in ``base`` come from :data:`DEFAULT_SECTIONS`
    (BBC News, the embedded corpus; entropy; a simulated cheap LLM; $1).
    The result is validated exactly as a file is, and its ``text`` is the
    TOML a run directory stores.

    Args:
        base: a config (or a config file) to start from, or None.
        base_dir: the folder relative paths are resolved against (default: the
            base's, else the working directory).
        **sections: ``data``, ``learner``, ``policy``, ``loop``, ``budget``,
            ``annotators``, ``stopping``, ``routing``: dicts as in the TOML.

    Returns:
        The validated :class:`~alband.config.RunConfig`.

    >>> import alband
    >>> cfg = alband.make_config(policy={"name": "margin"}, loop={"rounds": 5, "batch_size": 4})
    >>> cfg.policy_name, cfg.loop.rounds, cfg.loop.batch_size, cfg.learner.name
    ('margin', 5, 4, 'softmax_regression')
    >>> alband.make_config(cfg, policy={"name": "random"}).loop.rounds
    5
    """
    raw: dict[str, Any] = {}
    if base is not None:
        base = base if isinstance(base, RunConfig) else _load_config(base)
        raw = tomllib.loads(base.text)
        base_dir = base.base_dir if base_dir is None else base_dir
    unknown = sorted(set(sections) - set(DEFAULT_SECTIONS) - {"learner", "stopping", "routing"})
    if unknown:
        raise AlbandError(f"alband.config: unknown section '{unknown[0]}'")
    for name, table in sections.items():
        if not isinstance(table, Mapping):
            raise AlbandError(f"alband.config: section '{name}' must be a dict, got {table!r}")
        raw[name] = dict(table)
    for name, table in DEFAULT_SECTIONS.items():
        raw.setdefault(name, table)
    return parse_config(to_toml(raw), source="<alband.config>",
                        base_dir=Path(base_dir).resolve() if base_dir is not None else Path.cwd())


@dataclass(frozen=True)
class Result:
    """A simulated experiment: per-seed curves over rounds ``0..R`` (round 0: the seed set).

    ``accuracy``, ``dollars`` and ``labels`` are ``(seeds, rounds + 1)``
    arrays in the order of ``seeds``; ``summary`` is everything
    ``alband simulate --json`` prints (stopping rules included).
    """

    name: str
    config: RunConfig
    seeds: np.ndarray
    accuracy: np.ndarray
    dollars: np.ndarray
    labels: np.ndarray
    compile_seconds: float
    simulate_seconds: float
    summary: dict

    def metric(self, name: str = "final_accuracy") -> np.ndarray:
        """One number per seed: ``final_accuracy``, ``mean_accuracy`` (over rounds), ``dollars`` or ``labels`` (final).

        >>> import numpy as np, alband
        >>> r = alband.api.Result("x", None, np.arange(2), np.array([[0.5, 0.7], [0.4, 0.6]]),
        ...                       np.zeros((2, 2)), np.zeros((2, 2)), 0.0, 0.0, {})
        >>> r.metric("mean_accuracy").round(2).tolist()
        [0.6, 0.5]
        """
        if name == "final_accuracy":
            return self.accuracy[:, -1]
        if name == "mean_accuracy":
            return self.accuracy.mean(axis=1)
        if name == "dollars":
            return self.dollars[:, -1]
        if name == "labels":
            return self.labels[:, -1].astype(np.float64)
        raise AlbandError(f"unknown metric {name!r} (one of {', '.join(METRICS)})")


def simulation(cfg: RunConfig, seeds: int = 20, *, name: str | None = None, progress: bool | None = False) -> Result:
    """Simulate ``cfg`` for ``seeds`` seeds (``loop.seed``, ``loop.seed + 1``, ...) in the jitted simulator.

    The engine of ``alband simulate`` (:func:`alband.cli.simulate.simulate_config`):
    the config's annotators must be simulated. Seed ``s`` buys what
    ``alband run`` with ``[loop] seed = s`` buys.

    Args:
        cfg: a config (:func:`make_config`, :func:`load_config`).
        seeds: number of episodes.
        name: the label of the result in plots (default: the policy's name).
        progress: a "compiling ..." line and a bar on stderr (None: when stderr is a terminal).

    Returns:
        A :class:`Result` with per-seed curves.

    >>> import alband
    >>> res = alband.simulation(alband.make_config(data={"source": "bbc_news", "max_train": 300}, loop={"rounds": 3}),
    ...                       seeds=4)
    >>> res.accuracy.shape, res.name
    ((4, 4), 'entropy')
    >>> bool(res.metric("final_accuracy").mean() > res.accuracy[:, 0].mean())
    True
    """
    from alband.cli.simulate import simulate_config

    out = simulate_config(cfg, seeds=seeds, progress=progress)
    curves = out["per_seed_curves"]
    return Result(name or cfg.policy_name, cfg, np.asarray(out["seeds"]),
                  np.asarray(curves["test_accuracy"], np.float64), np.asarray(curves["spent_usd"], np.float64),
                  np.asarray(curves["n_labeled"]), float(out["compile_seconds"]), float(out["simulate_seconds"]), out)


def compare(a: Result, b: Result, metric: str = "final_accuracy", *, level: float = DEFAULT_LEVEL,
            method: str = "t") -> Interval:
    """The mean of ``metric(a) - metric(b)`` over paired seeds, with its confidence interval.

    Seed ``s`` of ``a`` and of ``b`` see the same seed set and annotator noise,
    so the difference is paired by seed (:func:`alband.stats.paired_interval`:
    Student-t, or ``method="bca"`` for the BCa bootstrap).

    Args:
        a, b: results over the same seeds (:func:`simulation`).
        metric: ``final_accuracy``, ``mean_accuracy``, ``dollars`` or ``labels`` (:meth:`Result.metric`).
        level: confidence level.
        method: ``"t"`` or ``"bca"``.

    Returns:
        An :class:`alband.stats.Interval` (``estimate``, ``low``, ``high``, ``n``).

    >>> import alband
    >>> cfg = alband.make_config(data={"source": "bbc_news", "max_train": 300}, loop={"rounds": 3})
    >>> a = alband.simulation(cfg, seeds=4)
    >>> b = alband.simulation(alband.make_config(cfg, policy={"name": "random"}), seeds=4)
    >>> diff = alband.compare(a, b)
    >>> diff.n, bool(diff.low <= diff.estimate <= diff.high)
    (4, True)
    """
    if not np.array_equal(a.seeds, b.seeds):
        raise AlbandError(f"compare: '{a.name}' and '{b.name}' ran different seeds; simulate both with the same "
                          "[loop] seed and seed count")
    return paired_interval(a.metric(metric), b.metric(metric), level, method)


def plot(results: Result | Iterable[Result], x: str = "labels", path: str | Path | None = None):
    """Mean test accuracy against labels or dollars, one line per result, with a 95 % Student-t band over seeds.

    Args:
        results: one :class:`Result` or several.
        x: ``"labels"`` (labels bought) or ``"dollars"`` (dollars spent, log axis).
        path: a PNG to write; None returns the figure instead.

    Returns:
        ``path`` as a :class:`~pathlib.Path`, or the matplotlib figure.

    >>> import alband, tempfile, pathlib
    >>> res = alband.simulation(alband.make_config(data={"source": "bbc_news", "max_train": 300}, loop={"rounds": 3}),
    ...                       seeds=4)
    >>> out = alband.plot(res, x="dollars", path=pathlib.Path(tempfile.mkdtemp()) / "acc.png")
    >>> out.stat().st_size > 0
    True
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alband.stats import mean_interval

    results = [results] if isinstance(results, Result) else list(results)
    if x not in ("labels", "dollars"):
        raise AlbandError(f"plot: x must be 'labels' or 'dollars', got {x!r}")
    if not results:
        raise AlbandError("plot: no results")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    styles = ["-", "--", ":", "-."]
    for k, result in enumerate(results):
        along = (result.labels if x == "labels" else result.dollars).mean(axis=0)
        bands = [mean_interval(result.accuracy[:, r]) for r in range(result.accuracy.shape[1])]
        mean = np.array([band.estimate for band in bands])
        ax.plot(along, mean, linestyle=styles[k % len(styles)], marker="o", markersize=3,
                label=f"{result.name} ({len(result.seeds)} seeds)")
        low = np.array([band.low for band in bands])
        high = np.array([band.high for band in bands])
        if np.all(np.isfinite(low)):
            ax.fill_between(along, low, high, alpha=0.2)
    if x == "dollars":
        ax.set_xscale("log")
    ax.set_xlabel("labels bought" if x == "labels" else "dollars spent (log)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if path is None:
        return fig
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def run(cfg: RunConfig, out_dir: str | Path, *, quiet: bool = True) -> list:
    """Run ``cfg`` live (``alband run``): the run directory ``out_dir`` gets the ledger and ``metrics.jsonl``.

    Real annotators are paid; money is reserved before and settled after every
    call, and a killed run continues with ``alband resume OUT_DIR``.

    Args:
        cfg: a config whose annotators may be real (``anthropic``, ``openai``, ``human``) or simulated.
        out_dir: the run directory to create (must not exist).
        quiet: no progress bar.

    Returns:
        The rounds' :class:`~alband.loop.RoundEvent` (labels, dollars, accuracy per round).

    >>> import alband, tempfile, pathlib
    >>> cfg = alband.make_config(data={"source": "bbc_news", "max_train": 300}, loop={"rounds": 2})
    >>> events = alband.run(cfg, pathlib.Path(tempfile.mkdtemp()) / "run")
    >>> [e.round for e in events], events[-1].n_labeled
    ([0, 1, 2], 30)
    """
    from alband.runner import start_run

    return start_run(cfg, out_dir, quiet=quiet)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(document: Mapping[str, Any]) -> str:
    """TOML text of a dict of sections (tables; nested dicts become sub-tables).

    >>> print(to_toml({"learner": {"name": "sklearn", "params": {"C": 1.0}}}).strip())
    [learner]
    name = "sklearn"
    <BLANKLINE>
    [learner.params]
    C = 1.0
    """
    lines: list[str] = []

    def table(prefix: str, values: Mapping[str, Any]) -> None:
        lines.append(f"[{prefix}]")
        nested = []
        for key, value in values.items():
            if isinstance(value, Mapping):
                nested.append((key, value))
            else:
                lines.append(f"{_key(key)} = {_value(value)}")
        lines.append("")
        for key, value in nested:
            table(f"{prefix}.{_key(key)}", value)

    for name, values in document.items():
        if not isinstance(values, Mapping):
            raise AlbandError(f"alband.config: section '{name}' must be a dict, got {values!r}")
        table(_key(name), values)
    return "\n".join(lines)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(str(key)) else json.dumps(str(key))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Path):
        return json.dumps(str(value))
    raise AlbandError(f"alband.config: a value of type {type(value).__name__} has no TOML form: {value!r}")


__all__ = ["DEFAULT_SECTIONS", "METRICS", "Result", "compare", "load_config", "make_config", "plot", "run",
           "simulation", "to_toml"]
