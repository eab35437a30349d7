"""Run every router over an outcome matrix for several seeds and a grid of budgets.

The shell side of :mod:`alband.routing.replay_engine`: it turns the float64 outcome
matrix into the core's float32 :class:`~alband.routing.base.Stream` (realised
costs rounded *up*, budgets rounded *down*, so the float32 replay can never
overspend the float64 budget; routers decide on the price quotes of
:mod:`alband.replay.quotes`), draws one item order and one key per seed, runs each
router once for all (seed, budget) pairs, and summarises the traces. Dollars
are re-added in float64 from the traces and checked against each budget.

Routers (names used in reports):

* ``fixed:<arm>`` for every arm (the human included), from which
  ``always-cheapest``, ``always-strongest`` and ``best-fixed`` (per budget, the
  single arm with the best stream accuracy, chosen in hindsight) are taken;
* every other router of :mod:`alband.routing.registry` under its registered
  name: by default ``random``, ``cascade``, ``contextual_ts``, ``bts``,
  ``ucb_bv`` and ``oracle`` (hindsight, evaluation only). Each is built by
  :func:`~alband.routing.make_router` with the replay's hyper-parameters that
  it registered (``chain``, ``target`` and the audit parameters); a
  hindsight router gets the outcome matrices ``correct`` and ``cost_usd``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache, partial

import numpy as np

from alband.errors import AlbandError
from alband.replay.data import HUMAN, OutcomeMatrix

LEARNED_ROUTERS = ("random", "cascade", "contextual_ts", "bts", "ucb_bv", "oracle")


@dataclass(frozen=True)
class ReplaySettings:
    seeds: int = 5
    auditor: str | None = None  # None: the human if present, else the strongest model
    audit_rate: float = 0.1
    audit_share: float = 0.2
    panel_share: float = 0.1
    cascade_target: float | None = None  # None: 0.95 x strongest accuracy (human auditor), else 0.95
    apgr_points: int = 11
    frontier_points: int = 10
    routers: tuple[str, ...] = LEARNED_ROUTERS


@dataclass
class RouterRuns:
    """Summaries of one router over (seeds S, budgets B)."""

    name: str
    n_labeled: np.ndarray  # (S, B) int
    n_correct: np.ndarray  # (S, B) int
    spent_usd: np.ndarray  # (S, B) float64, re-added from the traces
    calls: np.ndarray  # (S, B, K) int, payments per arm (audits included)
    audits: np.ndarray  # (S, B) int
    arm_per_budget: list[str] | None = None  # best-fixed only: the arm chosen at each budget
    seconds: float = 0.0  # compiling included
    task_labels: np.ndarray | None = None  # (S, T, K + 1) labels per task and arm at the user budget
    task_correct: np.ndarray | None = None  # (S, T) right labels per task at the user budget
    compile_seconds: float = 0.0  # of ``seconds``: tracing and compiling the router's replay


@dataclass
class ReplayResult:
    matrix: OutcomeMatrix
    budgets: np.ndarray  # (B,) float64 sorted
    user_budget_index: int
    apgr_indices: list[int]
    auditor: int
    strongest: int
    cheapest: int
    runs: dict[str, RouterRuns] = field(default_factory=dict)
    feature_description: str = ""
    seeds: int = 0
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


def _round_up_f32(x: np.ndarray) -> np.ndarray:
    y = np.asarray(x, np.float64).astype(np.float32)
    return np.where(y.astype(np.float64) < x, np.nextafter(y, np.float32(np.inf)), y)


def _round_down_f32(x: np.ndarray) -> np.ndarray:
    y = np.asarray(x, np.float64).astype(np.float32)
    return np.where(y.astype(np.float64) > x, np.nextafter(y, np.float32(0)), y)


def build_stream(matrix: OutcomeMatrix, features: np.ndarray, auditor: int):
    import jax.numpy as jnp

    from alband.routing.base import Stream

    from alband.replay.quotes import price_quotes

    cost = np.where(matrix.available, matrix.cost_usd, 0.0)
    return Stream(
        features=jnp.asarray(features, jnp.float32),
        price_usd=jnp.asarray(price_quotes(matrix), jnp.float32),
        cost_usd=jnp.asarray(_round_up_f32(cost)),
        available=jnp.asarray(matrix.available),
        correct=jnp.asarray(matrix.correct, jnp.float32),
        verdict=jnp.asarray(matrix.verdicts(auditor), jnp.float32),
    )


def budget_grid(matrix: OutcomeMatrix, user_budget: float, strongest: int, cheapest: int,
                apgr_points: int, frontier_points: int) -> tuple[np.ndarray, int, list[int]]:
    """(sorted budgets, index of the user's budget, indices of the APGR grid)."""
    from alband.routing.router_quality import apgr_budget_grid

    full = matrix.full_cost()
    # a budget equal to a model's full-stream cost is raised by 1e-5 (relative) so that the model
    # can label the whole stream despite the spend total's 1e-6 safety margin (alband.routing.spend_total)
    slack = 1.0 + 1e-5
    apgr = apgr_budget_grid(full[cheapest] * slack, full[strongest] * slack, apgr_points)
    positive = full[full > 0]
    lo = float(positive.min()) * 0.5 if positive.size else user_budget
    hi = float(full.max()) * 1.05 if positive.size else user_budget  # beyond every full-stream cost
    frontier = np.geomspace(lo, max(hi, lo * 1.0001), frontier_points) if frontier_points > 0 else np.zeros(0)
    allb = np.concatenate([[user_budget], apgr, frontier])
    allb = allb[allb > 0]
    budgets = np.unique(np.round(allb, 12))
    def where(b):
        return int(np.argmin(np.abs(budgets - np.round(b, 12))))
    return budgets, where(user_budget), [where(b) for b in apgr if b > 0]


def _task_ids(matrix: OutcomeMatrix) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(matrix.tasks))
    index = {t: j for j, t in enumerate(names)}
    return np.array([index[t] for t in matrix.tasks], dtype=np.int64), names


def _summarise(name, trace, matrix: OutcomeMatrix, orders: np.ndarray, budgets: np.ndarray,
               seconds: float, user_idx: int) -> RouterRuns:
    label = np.asarray(trace.label_arm)
    correct = np.asarray(trace.label_correct)
    paid = np.asarray(trace.paid)
    audited = np.asarray(trace.audited)
    S, B, n, K = paid.shape
    spent = np.zeros((S, B))
    cost64 = np.where(matrix.available, matrix.cost_usd, 0.0)
    for s in range(S):
        spent[s] = np.einsum("btk,tk->b", paid[s].astype(np.float64), cost64[orders[s]])
    over = spent > budgets[None, :] * (1 + 1e-12)
    if over.any():  # an invariant of the replay engine; never expected
        s, b = np.argwhere(over)[0]
        raise RuntimeError(f"router {name} spent ${spent[s, b]:.9f} of a ${budgets[b]:.9f} budget")
    unavailable_paid = paid & ~matrix.available[orders][:, None, :, :]
    if unavailable_paid.any():
        raise RuntimeError(f"router {name} paid an unavailable annotator")
    task_of, task_names = _task_ids(matrix)
    T = len(task_names)
    task_labels = np.zeros((S, T, K + 1), np.int64)
    task_correct = np.zeros((S, T), np.int64)
    for s in range(S):
        t_items = task_of[orders[s]]
        lab = np.where(label[s, user_idx] >= 0, label[s, user_idx], K)
        np.add.at(task_labels[s], (t_items, lab), 1)
        np.add.at(task_correct[s], t_items, correct[s, user_idx].astype(np.int64))
    return RouterRuns(
        name=name,
        n_labeled=(label >= 0).sum(-1),
        n_correct=correct.sum(-1),
        spent_usd=spent,
        calls=paid.sum(2),
        audits=audited.sum(-1),
        seconds=seconds,
        task_labels=task_labels,
        task_correct=task_correct,
    )


def run_replay(matrix: OutcomeMatrix, features: np.ndarray, user_budget: float,
               settings: ReplaySettings = ReplaySettings(), feature_description: str = "",
               progress=None) -> ReplayResult:
    """Replay every router of ``settings.routers`` plus every fixed arm; see the module docstring."""
    import jax
    import jax.numpy as jnp

    from alband.routing import fixed_router, make_router, replay_batch, replay_batch_with, router_entry

    t_start = time.perf_counter()
    if settings.seeds < 1:
        raise AlbandError(f"--seeds must be >= 1, got {settings.seeds}")
    if not (np.isfinite(user_budget) and user_budget > 0):
        raise AlbandError(f"--budget must be a positive number of dollars, got {user_budget!r}")
    for name in settings.routers:
        if name == "fixed":
            raise AlbandError("router 'fixed' is replayed for every arm already (fixed:<arm>); leave it out of --routers")
        router_entry(name)  # an AlbandError lists the known names
    strongest, cheapest = matrix.strongest(), matrix.cheapest()
    if settings.auditor is None:
        auditor = matrix.arms.index(HUMAN) if HUMAN in matrix.arms else strongest
    else:
        auditor = matrix.arm_index(settings.auditor)
    stream = build_stream(matrix, features, auditor)
    budgets, user_idx, apgr_idx = budget_grid(matrix, user_budget, strongest, cheapest,
                                              settings.apgr_points, settings.frontier_points)
    budgets32 = jnp.asarray(_round_down_f32(budgets))
    n = matrix.n_items
    seed_keys = [jax.random.key(s) for s in range(settings.seeds)]
    orders = np.stack([np.asarray(jax.random.permutation(jax.random.fold_in(k, 0), n)) for k in seed_keys])
    keys = jnp.stack([jax.random.fold_in(k, 1) for k in seed_keys])
    orders_j = jnp.asarray(orders, jnp.int32)
    result = ReplayResult(matrix, budgets, user_idx, apgr_idx, auditor, strongest, cheapest,
                          feature_description=feature_description, seeds=settings.seeds)

    def record(name, traced, t0):
        trace, compile_seconds = traced
        jax.block_until_ready(trace)
        runs = _summarise(name, trace, matrix, orders, budgets, time.perf_counter() - t0, user_idx)
        runs.compile_seconds = compile_seconds
        result.runs[name] = runs
        if progress:
            progress(f"{name}: {runs.seconds:.1f} s")
        return runs

    for k, arm in enumerate(matrix.arms):
        t0 = time.perf_counter()
        trace = _compiled(replay_batch_with, (fixed_router,), (jnp.int32(k), stream, orders_j, budgets32, keys),
                          auditor)
        record(f"fixed:{arm}", trace, t0)

    chain = [cheapest, strongest] + ([auditor] if auditor not in (cheapest, strongest) else [])
    chain = list(dict.fromkeys(chain))
    target = settings.cascade_target
    if target is None:  # the study's goal: 95% of the strongest model's quality
        target = 0.95 * float(matrix.accuracy()[strongest]) if matrix.arms[auditor] == HUMAN else 0.95
    result.settings = {
        "auditor": matrix.arms[auditor], "audit_rate": settings.audit_rate,
        "audit_share": settings.audit_share, "panel_share": settings.panel_share,
        "cascade_chain": [matrix.arms[k] for k in chain], "cascade_target": target,
    }
    offered = {"chain": tuple(chain), "target": target, "audit_rate": settings.audit_rate,
               "audit_share": settings.audit_share, "panel_share": settings.panel_share}
    for name in settings.routers:
        t0 = time.perf_counter()
        entry = router_entry(name)
        if entry.hindsight:
            trace = _compiled(replay_batch_with, (_hindsight_factory(name),),
                              ((stream.correct, stream.cost_usd), stream, orders_j, budgets32, keys), auditor)
        else:
            hyper = {k: v for k, v in offered.items() if k in entry.parameters}
            trace = _compiled(replay_batch, (make_router(name, **hyper),), (stream, orders_j, budgets32, keys),
                              auditor)
        record(name, trace, t0)

    fixed = [result.runs[f"fixed:{a}"] for a in matrix.arms]
    result.runs["always-cheapest"] = _renamed(result.runs[f"fixed:{matrix.arms[cheapest]}"], "always-cheapest")
    result.runs["always-strongest"] = _renamed(result.runs[f"fixed:{matrix.arms[strongest]}"], "always-strongest")
    result.runs["best-fixed"] = _best_fixed(fixed, matrix, n, user_idx)
    result.seconds = time.perf_counter() - t_start
    return result


_EXECUTABLES: dict[tuple, object] = {}


def _compiled(jitted, static: tuple, dynamic: tuple, auditor: int):
    """``jitted(*static, *dynamic, auditor=auditor)`` compiled ahead of time: ``(trace, compile_seconds)``.

    Executables are kept per static arguments and argument shapes, as ``jax.jit``
    keeps them: the fixed arms share one program (their arm is traced), so
    only the first pays the compile (``compile_seconds`` 0 for the others).
    """
    import jax

    leaves, tree = jax.tree_util.tree_flatten(dynamic)
    key = (jitted, static, auditor, tree, tuple((np.shape(x), str(getattr(x, "dtype", type(x)))) for x in leaves))
    compile_seconds = 0.0
    if key not in _EXECUTABLES:
        t0 = time.perf_counter()
        _EXECUTABLES[key] = jitted.lower(*static, *dynamic, auditor=auditor).compile()
        compile_seconds = time.perf_counter() - t0
    return _EXECUTABLES[key](*dynamic), compile_seconds


@cache
def _hindsight_factory(name: str):
    """One function per hindsight router, so that its compiled replay is reused (a static jit argument)."""
    return partial(_hindsight_router, name)


def _hindsight_router(name: str, matrices):
    """A hindsight router (the oracle) for traced (correct, cost) matrices: no constant folding of its sort."""
    from alband.routing import make_router

    correct, cost_usd = matrices
    return make_router(name, correct=correct, cost_usd=cost_usd)


def _renamed(runs: RouterRuns, name: str) -> RouterRuns:
    from dataclasses import replace

    return replace(runs, name=name)


def _best_fixed(fixed: list[RouterRuns], matrix: OutcomeMatrix, n: int, user_idx: int) -> RouterRuns:
    """Per budget, the single arm with the best mean stream accuracy (hindsight choice)."""
    stream_acc = np.stack([r.n_correct.mean(0) / n for r in fixed])  # (K, B)
    best = np.argmax(stream_acc, axis=0)
    B = best.shape[0]
    pick = lambda attr: np.stack([getattr(fixed[best[b]], attr)[:, b] for b in range(B)], axis=1)
    return RouterRuns(
        name="best-fixed",
        n_labeled=pick("n_labeled"),
        n_correct=pick("n_correct"),
        spent_usd=pick("spent_usd"),
        calls=np.stack([fixed[best[b]].calls[:, b] for b in range(B)], axis=1),
        audits=pick("audits"),
        arm_per_budget=[matrix.arms[k] for k in best],
        task_labels=fixed[best[user_idx]].task_labels,
        task_correct=fixed[best[user_idx]].task_correct,
    )
