"""The replay's JSON report: per router accuracy with CIs, dollars, call shares, APGR, cost to 95%.

Definitions (also written into the report under ``definitions``):

* ``accuracy``: share of the labels obtained that are right (vs gold), mean
  over seeds at the requested budget; ``accuracy_ci95`` is a Student-t 95%
  interval over seeds (Wilson's interval on the pooled labels with one seed).
* ``stream_accuracy``: right labels / items in the stream (an item left
  unlabeled when the budget ran out counts as wrong). PGR, APGR, the curves
  and the cost to 95% use it, so a router cannot look good by labeling less.
* ``cost_usd``: dollars spent (audits included), mean over seeds.
* ``by_task`` (when items carry several tasks): at the requested budget, per
  task, the stream accuracy and the share of items labeled by each arm.
* ``calls_share[arm]``: payments to the arm / labeled items (RouteLLM's
  "share of strong-model calls"; a cascade or an audit pays several arms for
  one item, so shares can sum above 1).
* ``pgr``: ``(stream_accuracy - acc_weak) / (acc_strong - acc_weak)`` at the
  requested budget; weak = the cheapest model, strong = the most accurate model.
* ``apgr``: trapezoid mean of PGR over the budget grid evenly spaced from the
  full-stream cost of the weak model to that of the strong one (11 points by
  default), RouteLLM's APGR with the budget in place of the strong-call share
  (:mod:`alband.routing.router_quality`).
* ``cost_to_95pct_strongest``: dollars spent (mean over seeds) at the smallest
  budget of the sweep whose mean stream accuracy reaches 95% of the strongest
  model's accuracy; ``null`` if no budget of the sweep reaches it.
  ``cost_cut_vs_strongest`` = 1 - that / (the strongest model's full-stream cost).
"""

from __future__ import annotations

import math
import platform
from typing import Any

import numpy as np

from alband.replay.data import HUMAN
from alband.replay.runner import LEARNED_ROUTERS, ReplayResult, RouterRuns
from alband.routing.router_quality import apgr, cost_to_target, pgr
from alband.stats import mean_interval, wilson_interval

REPORT_ORDER = ("always-cheapest", "always-strongest", "best-fixed") + LEARNED_ROUTERS

DEFINITIONS = {
    "accuracy": "right labels / labels obtained, mean over seeds at the requested budget",
    "accuracy_ci95": "Student-t 95% interval over seeds (Wilson interval on pooled labels if 1 seed)",
    "stream_accuracy": "right labels / items in the stream (unlabeled items count as wrong)",
    "cost_usd": "dollars spent, audits included, mean over seeds",
    "calls_share": "payments to the arm / labeled items (audits and cascade stages included)",
    "pgr": "(stream_accuracy - acc_weak) / (acc_strong - acc_weak); weak = cheapest model, strong = most accurate model",
    "apgr": "trapezoid mean of PGR over the budget grid C_weak + j/(m-1) (C_strong - C_weak), j = 0..m-1 "
            "(RouteLLM's APGR with the budget in place of the strong-call share)",
    "cost_to_95pct_strongest": "mean dollars spent at the smallest budget of the sweep whose mean stream "
                               "accuracy >= 0.95 x the strongest model's accuracy; null if never reached",
    "cost_cut_vs_strongest": "1 - cost_to_95pct_strongest / full-stream cost of the strongest model",
    "by_task": "at the requested budget, per task: stream accuracy and share of items labeled by each arm",
    "task_accuracy": "per task, each arm's accuracy over the task's items where it is available",
    "best-fixed": "per budget, the single annotator (human included) with the best stream accuracy, chosen in hindsight",
    "oracle": "per item, the cheapest annotator right in hindsight (nothing when none is right)",
}


def _wilson(k: float, n: float) -> list[float] | None:
    """Wilson score 95% interval of ``k`` successes in ``n`` trials (:func:`alband.stats.wilson_interval`)."""
    if n <= 0:
        return None
    interval = wilson_interval(int(round(k)), int(round(n)))
    return [interval.low, interval.high]


def _mean_ci(values: np.ndarray) -> tuple[float | None, list[float] | None]:
    """Mean over seeds and its Student-t 95% interval (:func:`alband.stats.mean_interval`)."""
    interval = mean_interval(np.where(np.isfinite(values), values, np.nan))
    if interval.n == 0:
        return None, None
    if interval.n < 2:
        return interval.estimate, None
    return interval.estimate, [interval.low, interval.high]


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def router_entry(runs: RouterRuns, result: ReplayResult) -> dict[str, Any]:
    m = result.matrix
    n = m.n_items
    u = result.user_budget_index
    acc_all = m.accuracy()
    acc_w, acc_s = float(acc_all[result.cheapest]), float(acc_all[result.strongest])
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_seed = runs.n_correct / np.where(runs.n_labeled > 0, runs.n_labeled, np.nan)
    stream = runs.n_correct / n  # (S, B)
    acc_mean, acc_ci = _mean_ci(acc_seed[:, u])
    if acc_ci is None and runs.n_labeled.shape[0] == 1:
        acc_ci = _wilson(float(runs.n_correct[0, u]), float(runs.n_labeled[0, u]))
    stream_mean, stream_ci = _mean_ci(stream[:, u])
    cost_mean, cost_ci = _mean_ci(runs.spent_usd[:, u])
    with np.errstate(invalid="ignore", divide="ignore"):
        share = runs.calls[:, u, :] / np.where(runs.n_labeled[:, u, None] > 0, runs.n_labeled[:, u, None], np.nan)
    share_mean = np.nanmean(share, axis=0) if np.isfinite(share).any() else np.zeros(m.n_arms)
    stream_curve = stream.mean(0)
    spent_curve = runs.spent_usd.mean(0)
    target = 0.95 * acc_s
    to95 = cost_to_target(result.budgets, spent_curve, stream_curve, target)
    full_strong = float(m.full_cost()[result.strongest])
    entry = {
        "name": runs.name,
        "accuracy": _num(acc_mean),
        "accuracy_ci95": [_num(x) for x in acc_ci] if acc_ci else None,
        "stream_accuracy": _num(stream_mean),
        "stream_accuracy_ci95": [_num(x) for x in stream_ci] if stream_ci else None,
        "cost_usd": _num(cost_mean),
        "cost_usd_ci95": [_num(x) for x in cost_ci] if cost_ci else None,
        "calls_share": {arm: _num(share_mean[k]) for k, arm in enumerate(m.arms) if share_mean[k] > 0},
        "n_labeled": _num(runs.n_labeled[:, u].mean()),
        "audits": _num(runs.audits[:, u].mean()),
        "pgr": _num(pgr(stream_mean, acc_w, acc_s)) if stream_mean is not None else None,
        "apgr": _num(apgr(stream_curve[result.apgr_indices], acc_w, acc_s)),
        "cost_to_95pct_strongest": _num(to95),
        "cost_cut_vs_strongest": _num(1 - to95 / full_strong) if (to95 is not None and full_strong > 0) else None,
        "seconds": round(runs.seconds, 3),
        "compile_seconds": round(runs.compile_seconds, 3),
        "curve": [
            {"budget_usd": float(b), "cost_usd": float(spent_curve[j]),
             "stream_accuracy": float(stream_curve[j]),
             "accuracy": _num(np.nanmean(acc_seed[:, j])) if np.isfinite(acc_seed[:, j]).any() else None,
             "n_labeled": float(runs.n_labeled[:, j].mean()),
             **({"arm": runs.arm_per_budget[j]} if runs.arm_per_budget else {})}
            for j, b in enumerate(result.budgets)
        ],
    }
    if runs.arm_per_budget:
        entry["arm_at_budget"] = runs.arm_per_budget[u]
    if runs.task_labels is not None:
        names = sorted(set(m.tasks))
        if len(names) > 1:
            entry["by_task"] = {}
            for j, task in enumerate(names):
                counts = runs.task_labels[:, j, :].mean(0)  # (K + 1,), last = unlabeled
                n_task = float(counts.sum())
                entry["by_task"][task or "-"] = {
                    "n_items": int(round(n_task)),
                    "stream_accuracy": _num(runs.task_correct[:, j].mean() / max(n_task, 1.0)),
                    "label_share": {arm: _num(counts[k] / n_task) for k, arm in enumerate(m.arms)
                                    if counts[k] > 0},
                }
    return entry


def machine_info(seconds: float) -> dict[str, Any]:
    import os

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "runtime_s": round(seconds, 2),
    }
    try:
        import jax

        info["jax"] = jax.__version__
        info["jax_backend"] = jax.default_backend()
    except Exception:  # pragma: no cover - jax is a dependency
        pass
    info["numpy"] = np.__version__
    return info


def build_report(result: ReplayResult) -> dict[str, Any]:
    m = result.matrix
    acc, full, mean_cost = m.accuracy(), m.full_cost(), m.mean_cost()
    n = m.n_items
    n_av = m.available.sum(0)

    def model(k: int) -> dict[str, Any]:
        return {"name": m.arms[k], "accuracy": _num(acc[k]), "cost_usd": float(full[k])}

    others = [name for name in result.runs if name not in REPORT_ORDER and not name.startswith("fixed:")]
    routers = [router_entry(result.runs[name], result)
               for name in [n for n in REPORT_ORDER if n in result.runs] + others]
    tasks = np.array(m.tasks, dtype=object)
    task_accuracy = {}
    for task in sorted(set(m.tasks)):
        sel = tasks == task
        av = m.available[sel]
        right = np.where(av, m.correct[sel], 0.0).sum(0)
        task_accuracy[task or "-"] = {arm: float(right[k] / av[:, k].sum())
                                      for k, arm in enumerate(m.arms) if av[:, k].any()}
    return {
        "data": {
            **m.source,
            "n_items": n,
            "arms": m.arms,
            "features": result.feature_description,
            "auditor": m.arms[result.auditor],
        },
        "settings": result.settings,
        "budget_usd": float(result.budgets[result.user_budget_index]),
        "strongest": model(result.strongest),
        "weak": model(result.cheapest),
        "routers": routers,
        "fixed_models": [
            {**model(k), "stream_accuracy": float(np.where(m.available[:, k], m.correct[:, k], 0).sum() / n),
             "mean_cost_usd": float(mean_cost[k]), "n_available": int(n_av[k]),
             "human": m.arms[k] == HUMAN}
            for k in range(m.n_arms)
        ],
        "task_accuracy": task_accuracy,
        "grid": {
            "budgets_usd": [float(b) for b in result.budgets],
            "apgr_budgets_usd": [float(result.budgets[j]) for j in result.apgr_indices],
        },
        "definitions": DEFINITIONS,
        "machine": machine_info(result.seconds),
        "compile_seconds": round(sum(r.compile_seconds for r in result.runs.values()), 3),
        "seeds": result.seeds,
    }
