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
"""

__version__ = "0.1.0"
