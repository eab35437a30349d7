"""Optimal experimental design for choosing what to label (pure JAX core).

A design is a probability vector ``pi`` over the pool rows ``x_i`` (n, d);
its information matrix is ``V(pi) = sum_i pi_i x_i x_i'``.

* D-/G-optimal design (Kiefer and Wolfowitz 1960): maximise ``log det V(pi)``
  (equivalently minimise ``max_i x_i' V^{-1} x_i``, whose optimum is ``d``):
  :func:`d_optimal_design` with Frank-Wolfe + away steps
  (:func:`wolfe_atwood_design`), the multiplicative algorithm
  (:func:`multiplicative_design`) or the cvxpy reference (:func:`cvxpy_design`).
* Transductive design for a target set ``Z`` (Fiez et al. 2019):
  :func:`transductive_design`; the greedy GO policy of Mukherjee et al. 2024:
  :func:`go_select`.
* From a design to a batch of distinct items: :func:`round_design`; integer
  counts with repetitions: :func:`efficient_rounding` (Pukelsheim and Rieder
  1992).
* Batches smaller than the dimension (``B < d``): the regularised (Bayesian)
  D-optimal batch conditioned on the labelled items, by greedy rank-1 steps:
  :func:`greedy_batch_design`.
* Dollar budgets: :func:`greedy_budgeted_design` (distinct items, hard
  budget), :func:`cost_weighted_design` (continuous allocation).

The math and its numerical checks are in ``theory/design.md`` and
``tests/test_design_theory.py``. Everything except the cvxpy reference and the
cost-weighted wrapper is jittable; cvxpy loads only when used.
"""

from alband.design.budgeted import (
    BudgetedSelection,
    CostWeightedDesign,
    cost_weighted_design,
    greedy_budgeted_design,
    greedy_budgeted_kernel,
)
from alband.design.d_optimal import METHODS, d_optimal_design
from alband.design.frank_wolfe import wolfe_atwood_design
from alband.design.go import GOSelection, go_select, go_select_kernel
from alband.design.initial import VolumeSupport, greedy_volume_support
from alband.design.multiplicative import multiplicative_design
from alband.design.reference import cvxpy_design, evaluate_design
from alband.design.regularised import greedy_batch_design, greedy_batch_design_kernel
from alband.design.result import DesignResult
from alband.design.rounding import efficient_rounding, round_design, round_design_kernel
from alband.design.transductive import TransductiveResult, transductive_design, transductive_design_kernel

__all__ = [
    "METHODS",
    "BudgetedSelection",
    "CostWeightedDesign",
    "DesignResult",
    "GOSelection",
    "TransductiveResult",
    "VolumeSupport",
    "cost_weighted_design",
    "cvxpy_design",
    "d_optimal_design",
    "efficient_rounding",
    "evaluate_design",
    "go_select",
    "go_select_kernel",
    "greedy_batch_design",
    "greedy_batch_design_kernel",
    "greedy_budgeted_design",
    "greedy_budgeted_kernel",
    "greedy_volume_support",
    "multiplicative_design",
    "round_design",
    "round_design_kernel",
    "transductive_design",
    "transductive_design_kernel",
    "wolfe_atwood_design",
]
