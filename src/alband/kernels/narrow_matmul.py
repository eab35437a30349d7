r"""``X @ W`` for a tall pool ``X`` (N, d) and a narrow ``W`` (d, C): the pool-scoring product.

Every score-based query policy starts from the logits ``X W + b`` of the whole
pool, so this product is the pass whose speed decides how fast a pool is
scored. It reads ``N d`` floats and does ``N d C`` multiply-adds. For C of a
few classes XLA's CPU backend runs it through a general matrix product at
about a quarter of the FMA peak, which makes scoring 2-3x slower than one read
of ``X``. :func:`narrow_matmul` uses the native kernel of ``pool_scoring.cc``
instead (one read of each row against all C columns; see that file) when

* the pool has at least :data:`NATIVE_MIN_ROWS` rows (below that the product
  takes a millisecond or two either way, and the seeded simulations on pools of
  ~10k items keep XLA's arithmetic bit for bit),
* both operands are float32 matrices, and
* the kernel is available (:func:`alband.kernels.native_status`).

Otherwise, and for derivatives (a ``custom_jvp`` whose tangent is XLA's product)
and batched calls (a ``custom_vmap`` rule that hands a batch of ``W`` or ``X`` to
XLA as one larger product), it is exactly ``x @ w``. The kernel sums each
column in 8 partial sums, so its results differ from XLA's by float rounding
(~1e-6 relative), not more.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.kernels._build import native_available, native_status

Array = jax.Array

NATIVE_MIN_ROWS = 32_768
# Up to 12 columns the kernel keeps one accumulator register per column and reads each row
# once; past that it re-reads rows per block of 8 columns and loses to XLA's product
# (measured at N = 200k, d = 384: 1.6x faster at C = 10-12, about even at 13, 1.3x slower at 16, 2x at 32).
NATIVE_MAX_COLUMNS = 12


@jax.custom_batching.custom_vmap
def _native_product(x: Array, wt: Array) -> Array:
    out = jax.ShapeDtypeStruct((x.shape[0], wt.shape[0]), jnp.float32)
    return jax.ffi.ffi_call("alband_narrow_matmul", out)(x, wt)


@_native_product.def_vmap
def _native_product_batched(axis_size, in_batched, x, wt):
    x_batched, wt_batched = in_batched
    if x_batched and wt_batched:
        return jnp.einsum("bnd,bcd->bnc", x, wt), True
    if x_batched:
        return jnp.einsum("bnd,cd->bnc", x, wt), True
    return jnp.einsum("nd,bcd->bnc", x, wt), True


@jax.custom_jvp
def _kernel_matmul(x: Array, w: Array) -> Array:
    return _native_product(x, w.T)


@_kernel_matmul.defjvp
def _kernel_matmul_jvp(primals, tangents):
    x, w = primals
    x_dot, w_dot = tangents
    return _kernel_matmul(x, w), x_dot @ w + x @ w_dot


def uses_native_kernel(x_shape: tuple[int, ...], w_shape: tuple[int, ...], dtype=jnp.float32) -> bool:
    """Whether :func:`narrow_matmul` takes the native path for these (static) shapes."""
    return (
        len(x_shape) == 2
        and len(w_shape) == 2
        and x_shape[1] == w_shape[0]
        and x_shape[0] >= NATIVE_MIN_ROWS
        and 1 <= w_shape[1] <= NATIVE_MAX_COLUMNS
        and jnp.dtype(dtype) == jnp.float32
        and native_available()
    )


def narrow_matmul(x: Array, w: Array, *, native: bool | None = None) -> Array:
    """``x @ w`` for ``x`` (N, d) and ``w`` (d, C); the native kernel for large float32 pools.

    ``native=None`` chooses by :func:`uses_native_kernel`; ``True`` always takes the
    kernel (any size; an error naming the reason if it is unavailable or the
    operands are not float32 matrices); ``False`` always takes XLA's product.
    """
    x = jnp.asarray(x)
    w = jnp.asarray(w)
    if native is None:
        native = x.dtype == w.dtype and uses_native_kernel(x.shape, w.shape, x.dtype)
    elif native:
        if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
            raise ValueError(f"narrow_matmul: x must be (N, d) and w (d, C); got {x.shape} and {w.shape}")
        if x.dtype != jnp.float32 or w.dtype != jnp.float32:
            raise ValueError(f"narrow_matmul: the native kernel takes float32, got {x.dtype} and {w.dtype}")
        status = native_status()
        if not status.available:
            raise RuntimeError(f"narrow_matmul: the native kernel is unavailable: {status.reason}")
    return _kernel_matmul(x, w) if native else x @ w
