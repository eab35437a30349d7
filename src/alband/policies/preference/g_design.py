r"""Fisher-weighted G-optimal design over pair differences, rounded to a batch (design engine).

The G-optimal design over the weighted differences ``x_i = sqrt(w_i) z_i``
(``w_i = mu_i (1 - mu_i)``, see :mod:`.d_design` for why differences) minimises
the largest predictive variance of a margin,

    min_pi max_i x_i' V(pi)^{-1} x_i,    V(pi) = sum_i pi_i x_i x_i',

and by the Kiefer-Wolfowitz theorem (1960) it is the D-optimal design, with
optimum ``max_i x_i' V^{-1} x_i = d``. For preference elicitation this is the
absolute-feedback design of Mukherjee et al. (2024, "Optimal design for human
preference elicitation", arXiv 2404.13895): labelling ``n`` pairs allocated by
``pi`` gives every margin a variance at most ``d / n`` (up to the weights), the
source of their ``O~(d / n)`` squared prediction error
(``theory/preference.md``). It is a design of the whole pool (non-adaptive
apart from the weights at ``theta_hat``), solved by Frank-Wolfe with away steps
(:func:`alband.design.wolfe_atwood_design`) to the certificate
``max_i x_i' V^{-1} x_i <= d (1 + eps)``, then rounded to ``B`` distinct
unjudged pairs by greedy rank-1 steps on the design's support
(:func:`alband.design.round_design_kernel`). Needs a pool of at least ``d``
pairs spanning ``R^d``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.design import DesignResult, round_design_kernel, wolfe_atwood_design
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update
from alband.policies.preference._posterior import fisher_weights
from alband.policies.registry import register_policy

Array = jax.Array


def fisher_g_design(z: Array, p_first: Array, eps: float = 1e-2, max_iter: int = 20_000) -> DesignResult:
    """The certified D-/G-optimal design over ``sqrt(w_i) z_i`` (module docstring)."""
    X = z * jnp.sqrt(fisher_weights(p_first))[:, None]
    return wolfe_atwood_design(X, eps, max_iter)


@partial(jax.jit, static_argnames=("batch_size",))
def fisher_g_design_batch(z: Array, p_first: Array, queried: Array, batch_size: int,
                          eps: float | Array = 1e-2, max_iter: int | Array = 20_000,
                          ridge: float | Array = 1e-2) -> Array:
    """``batch_size`` distinct unjudged pairs realising the design; ``-1`` when exhausted."""
    X = z * jnp.sqrt(fisher_weights(p_first))[:, None]
    design = wolfe_atwood_design(X, eps, max_iter)
    return round_design_kernel(X, design.weights, batch_size, queried, ridge)


@register_policy("pair_g_design")
def pair_g_design(eps: float = 1e-2, max_iter: int = 20_000) -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        return fisher_g_design_batch(ctx.x, ctx.probs[:, 0], ctx.queried, batch_size, eps, max_iter), state

    return QueryPolicy("pair_g_design", _stateless_init, select, _stateless_update)
