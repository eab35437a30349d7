"""alband: active learning as sequential decision making.

Every decision of the active-learning loop (which items to label, who labels
them, when to stop, which preference pairs to ask for) is a bandit decision,
made under a real-valued dollar budget.

Architecture (see ``docs`` in README):

* **Core** (pure, jittable, no I/O): :mod:`alband.pool`, :mod:`alband.models`,
  :mod:`alband.policies`, :mod:`alband.design`, :mod:`alband.costs`,
  :mod:`alband.stopping`, :mod:`alband.routing`, :mod:`alband.simulate`.
* **Shell** (effects): :mod:`alband.annotators`, :mod:`alband.store`,
  :mod:`alband.data`, :mod:`alband.loop`, :mod:`alband.cli`.

The core never imports the shell; ``tests/test_architecture.py`` enforces it.
Importing :mod:`alband` is cheap: heavy modules (jax, SDKs, cvxpy) load lazily.

The short path from Python (:mod:`alband.api`), loaded on first use::

    import alband

    cfg = alband.make_config(policy={"name": "margin"})  # or alband.load_config("run.toml")
    a = alband.simulation(cfg, seeds=20)                 # per-seed curves (jitted simulator)
    b = alband.simulation(alband.make_config(cfg, policy={"name": "random"}), seeds=20)
    alband.compare(a, b, "final_accuracy")               # paired by seed: alband.stats.Interval
    alband.plot([a, b], x="dollars", path="acc.png")
    alband.run(cfg, "runs/margin")                       # live, with a ledger
"""

__version__ = "0.1.0"

#: Names of :mod:`alband.api` available as ``alband.NAME`` (imported on first use).
API = ("Result", "compare", "load_config", "make_config", "plot", "run", "simulation")


def __getattr__(name: str):
    if name in API:
        from alband import api

        return getattr(api, name)
    if not name.startswith("_"):
        import importlib

        try:  # a submodule: alband.stats, alband.api, ...
            return importlib.import_module(f"alband.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"alband.{name}":
                raise
    raise AttributeError(f"module 'alband' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *API])


__all__ = ["API", "__version__", *API]
