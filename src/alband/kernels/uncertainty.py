r"""Uncertainty scores of a whole pool in one fused pass: logits, softmax and score per row.

For a softmax model ``p = softmax(x W + b)`` the three uncertainty scores of
:mod:`alband.policies.uncertainty` (Lewis and Gale 1994; Scheffer et al. 2001;
Settles 2009) are computed from the logits without materialising ``p``: with
``z = x W + b``, ``m = max_c z_c``, ``e_c = exp(z_c - m)`` and ``s = sum_c e_c``,

* entropy ``-sum_c p_c log p_c = log s - (sum_c e_c (z_c - m)) / s``,
* margin ``-(p_(1) - p_(2)) = -(1 - exp(m_2 - m)) / s`` (``m_2`` the runner-up
  logit; 0 when the top logit is shared),
* least confidence ``1 - max_c p_c = 1 - 1 / s``.

:func:`pool_uncertainty` evaluates them in the native kernel
(``alband_pool_uncertainty`` in ``pool_scoring.cc``: each row of ``X`` read
once, its logits kept in L1, the scores of 8 rows at a time with vectorised
``exp``/``log``) when the pool is large enough for the native path
(:func:`alband.kernels.uses_native_kernel`), and otherwise with XLA from the
same formulas' textbook form, ``score(softmax(x W + b))``. Results agree to
float32 rounding (~1e-6). Batched calls (``vmap``) and derivatives go to XLA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from alband.kernels._build import native_status
from alband.kernels.narrow_matmul import uses_native_kernel

Array = jax.Array

KINDS = ("entropy", "margin", "least_confidence")


def xla_uncertainty(probs: Array, kind: str) -> Array:
    """The scores from probabilities ``(N, C)`` in plain JAX (the reference the kernel matches)."""
    if kind == "entropy":
        return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs), 0.0), axis=-1)
    if kind == "least_confidence":
        return 1.0 - jnp.max(probs, axis=-1)
    if kind == "margin":
        top = jnp.max(probs, axis=-1, keepdims=True)
        is_top = probs >= top
        runner_up = jnp.max(jnp.where(is_top, -jnp.inf, probs), axis=-1)
        return -jnp.where(jnp.sum(is_top, axis=-1) > 1, 0.0, top[:, 0] - runner_up)
    raise ValueError(f"unknown uncertainty kind {kind!r}; expected one of {KINDS}")


def _xla_from_params(x: Array, w: Array, b: Array, kind: str) -> Array:
    return xla_uncertainty(jax.nn.softmax(x @ w + b, axis=-1), kind)


def _call(x, wt, b, code):
    out = jax.ShapeDtypeStruct((x.shape[0],), jnp.float32)
    return jax.ffi.ffi_call("alband_pool_uncertainty", out)(x, wt, b, kind=np.int64(code))


def _native(kind: str):
    code = KINDS.index(kind)

    @jax.custom_batching.custom_vmap
    def native(x, w, b):
        return _call(x, w.T, b, code)

    @native.def_vmap
    def batched(axis_size, in_batched, x, w, b):
        axes = tuple(0 if batched_ else None for batched_ in in_batched)
        return jax.vmap(lambda x, w, b: _xla_from_params(x, w, b, kind), in_axes=axes)(x, w, b), True

    @jax.custom_jvp
    def scores(x, w, b):
        return native(x, w, b)

    @scores.defjvp
    def scores_jvp(primals, tangents):
        _, tangent = jax.jvp(lambda x, w, b: _xla_from_params(x, w, b, kind), primals, tangents)
        return scores(*primals), tangent

    return scores


_NATIVE = {kind: _native(kind) for kind in KINDS}


def pool_uncertainty(x: Array, w: Array, b: Array, kind: str, *, native: bool | None = None) -> Array:
    """Uncertainty ``kind`` of every row of ``x`` under ``softmax(x w + b)``, shape (N,).

    ``native=None`` takes the fused kernel when :func:`uses_native_kernel` says so
    (large float32 pools on a machine where it built); ``True`` forces it (an error
    naming the reason if it is unavailable); ``False`` computes it with XLA.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown uncertainty kind {kind!r}; expected one of {KINDS}")
    x, w, b = jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)
    if native is None:
        native = (x.dtype == w.dtype == b.dtype == jnp.float32 and b.shape == w.shape[-1:]
                  and uses_native_kernel(x.shape, w.shape, x.dtype))
    elif native:
        if x.ndim != 2 or w.ndim != 2 or b.shape != (w.shape[-1],) or x.shape[1] != w.shape[0]:
            raise ValueError(f"pool_uncertainty: x must be (N, d), w (d, C) and b (C,); got {x.shape}, {w.shape}, {b.shape}")
        if not (x.dtype == w.dtype == b.dtype == jnp.float32):
            raise ValueError(f"pool_uncertainty: the native kernel takes float32, got {x.dtype}, {w.dtype}, {b.dtype}")
        status = native_status()
        if not status.available:
            raise RuntimeError(f"pool_uncertainty: the native kernel is unavailable: {status.reason}")
    return _NATIVE[kind](x, w, b) if native else _xla_from_params(x, w, b, kind)
