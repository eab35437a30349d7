"""Loop-free Gamma and Beta sampling for posteriors with shape parameters >= 1.

``jax.random.gamma`` runs a rejection ``while`` loop per element; inside a
``vmap``-ed ``lax.scan`` over a stream it dominates the budgeted Thompson
sampler's step. Here Marsaglia and Tsang's method (2000, "A simple method for
generating gamma variables") is run with a fixed number of proposals drawn at
once: for shape ``a >= 1``, with ``d = a - 1/3`` and ``c = 1 / sqrt(9 d)``,
a proposal ``x ~ N(0, 1)``, ``v = (1 + c x)^3`` is accepted when ``v > 0`` and
``log U < x^2 / 2 + d - d v + d log v``, and ``d v ~ Gamma(a)``. Each proposal
is accepted with probability above 0.95 for every ``a >= 1`` (above 0.99 for
``a >= 3``), so with the default ``attempts = 4`` all proposals fail with
probability below ``0.05^4 = 6.3e-6`` per draw; the first accepted proposal is
returned, and ``d`` (next to the mode) in that rare case. The random numbers,
not the arithmetic, are the cost, hence the small default.
``Beta(a, b) = G_a / (G_a + G_b)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def gamma_ge1(key: Array, shape_param: Array, attempts: int = 4) -> Array:
    """Gamma(``shape_param``, 1) draws, elementwise; ``shape_param >= 1`` (see module docstring)."""
    a = jnp.asarray(shape_param, jnp.float32)
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    k_x, k_u = jax.random.split(key)
    x = jax.random.normal(k_x, (attempts,) + a.shape, jnp.float32)
    u = jax.random.uniform(k_u, (attempts,) + a.shape, jnp.float32, minval=1e-30)
    v = (1.0 + c * x) ** 3
    safe_v = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * safe_v + d * jnp.log(safe_v))
    first = jnp.argmax(accept, axis=0)
    v_first = jnp.take_along_axis(safe_v, first[None], axis=0)[0]
    return d * jnp.where(jnp.any(accept, axis=0), v_first, 1.0)


def beta_ge1(key: Array, a: Array, b: Array, attempts: int = 4) -> Array:
    """Beta(``a``, ``b``) draws, elementwise; ``a, b >= 1``."""
    k_a, k_b = jax.random.split(key)
    ga = gamma_ge1(k_a, a, attempts)
    gb = gamma_ge1(k_b, b, attempts)
    return ga / (ga + gb)
