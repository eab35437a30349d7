r"""Dope: the optimal design over lists of K candidates (Mukherjee et al. 2024).

Mukherjee, Lalitha, Kalantari, Deshmukh, Liu, Ma and Kveton (2024, "Optimal
design for human preference elicitation", NeurIPS; arXiv 2404.13895) choose
which *lists* (a prompt with its ``K`` candidate responses) to ask a judge to
rank. The information of ranking list ``l`` about ``theta`` is carried by the
differences of its responses; with the all-pairs matrix

    A_l = sum_{j < k} (x_lj - x_lk)(x_lj - x_lk)'  =  K_l X_l' X_l - s_l s_l',   s_l = X_l' 1,

the design ``pi`` over lists maximises ``log det V(pi)``,
``V(pi) = sum_l pi_l A_l``. Their matrix Kiefer-Wolfowitz theorem: ``pi`` is
optimal iff

    max_l tr(V(pi)^{-1} A_l) = d,

and since ``sum_l pi_l tr(V^{-1} A_l) = tr(I_d) = d`` for every design, the
maximum is always ``>= d`` (the certificate; tested). With ``K = 2`` a list is
a pair, ``A_l = z z'``, and this is the G-/D-optimal design over differences
(:mod:`.g_design`; tested: equal optimal log-determinants).

Solver: the multiplicative algorithm for matrix-valued information (Silvey,
Titterington and Torsney 1978; monotone for D-optimality, Yu 2010, "Monotonic
convergence of a general algorithm for computing optimal designs"):

    pi_l <- pi_l tr(V(pi)^{-1} A_l) / d,

which keeps ``pi`` on the simplex (by the identity above) and stops at the
certificate ``max_l tr(V^{-1} A_l) <= d (1 + eps)``. One step costs
``O(L K d^2)`` for the traces: ``tr(V^{-1} A_l) = K_l sum_j x_lj' V^{-1} x_lj
- s_l' V^{-1} s_l``.

The policy on a pair pool with prompt groups (``ctx.aux``): the design is over
prompts (lists of their candidates, Dope's non-adaptive design); a prompt's
pairs score ``pi_p / (1 + q_p)`` with ``q_p`` its judged pairs, so lists are
asked in proportion to ``pi`` (a divisor apportionment), and a list's pairs
come together -- the pairwise form of asking for its ranking (rank breaking,
Hajek, Oh and Xu 2014).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update, top_unqueried
from alband.policies.preference._posterior import precision_inverse, require_aux
from alband.policies.registry import register_policy

Array = jax.Array


class ListDesign(NamedTuple):
    """A design over lists and its certificate."""

    weights: Array  # (L,) on the simplex
    traces: Array  # (L,) tr(V^{-1} A_l)
    max_trace: Array  # () >= d; = d at the optimum
    log_det: Array  # () log det V(weights)
    certified: Array  # () bool: max_trace <= d (1 + eps)
    iterations: Array  # () int32


def list_information(x_lists: Array, valid: Array, weights: Array) -> Array:
    """``V = sum_l pi_l A_l`` with the all-pairs ``A_l`` (module docstring)."""
    X = jnp.where(valid[..., None], x_lists, 0.0)
    k = jnp.sum(valid, axis=1).astype(X.dtype)
    s = jnp.sum(X, axis=1)
    return jnp.einsum("l,lkd,lke->de", weights * k, X, X) - jnp.einsum("l,ld,le->de", weights, s, s)


def list_traces(x_lists: Array, valid: Array, V_inv: Array) -> Array:
    """``tr(V^{-1} A_l)`` of every list."""
    X = jnp.where(valid[..., None], x_lists, 0.0)
    k = jnp.sum(valid, axis=1).astype(X.dtype)
    s = jnp.sum(X, axis=1)
    quad = jnp.einsum("lkd,de,lke->l", X, V_inv, X)
    return k * quad - jnp.einsum("ld,de,le->l", s, V_inv, s)


@partial(jax.jit, static_argnames=("max_iter",))
def list_design(x_lists: Array, valid: Array, eps: float | Array = 1e-2, max_iter: int = 10_000) -> ListDesign:
    """Dope's D-optimal design over lists by the multiplicative algorithm (module docstring).

    ``x_lists`` (L, K, d) response features, ``valid`` (L, K) bool (lists of
    different lengths are padded); lists with fewer than 2 responses get weight 0.
    """
    L, _, d = x_lists.shape
    usable = jnp.sum(valid, axis=1) >= 2
    pi0 = jnp.where(usable, 1.0, 0.0) / jnp.maximum(jnp.sum(usable), 1)
    pi0 = pi0.astype(x_lists.dtype)
    bound = d * (1.0 + jnp.asarray(eps, x_lists.dtype))

    def traces_of(pi):
        return list_traces(x_lists, valid, precision_inverse(list_information(x_lists, valid, pi)))

    def step(state):
        pi, t, it = state
        pi = pi * t / d
        pi = pi / jnp.sum(pi)
        return pi, traces_of(pi), it + 1

    def keep_going(state):
        pi, t, it = state
        return (jnp.max(jnp.where(usable, t, -jnp.inf)) > bound) & (it < max_iter)

    pi, t, it = jax.lax.while_loop(keep_going, step, (pi0, traces_of(pi0), jnp.int32(0)))
    t = jnp.where(usable, t, 0.0)
    max_trace = jnp.max(t)
    log_det = jnp.linalg.slogdet(list_information(x_lists, valid, pi))[1]
    return ListDesign(pi, t, max_trace, log_det, max_trace <= bound, it)


def dope_pair_scores(design_weights: Array, prompt: Array, queried: Array) -> Array:
    """``pi_p / (1 + q_p)`` for each pair of prompt ``p`` with ``q_p`` judged pairs (module docstring)."""
    judged = jnp.zeros_like(design_weights).at[prompt].add(queried.astype(design_weights.dtype))
    return (design_weights / (1.0 + judged))[prompt]


@register_policy("dope")
def dope(eps: float = 1e-2, max_iter: int = 10_000) -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        aux = require_aux(ctx, "dope")
        valid = aux.candidates >= 0
        x_lists = aux.response_x[jnp.where(valid, aux.candidates, 0)]
        design = list_design(x_lists, valid, eps, max_iter)
        scores = dope_pair_scores(design.weights, aux.prompt, ctx.queried)
        return top_unqueried(scores, ctx.queried, batch_size), state

    return QueryPolicy("dope", _stateless_init, select, _stateless_update)
