"""Input checks shared by the design entry points: bad input -> AlbandError.

Checks run on concrete inputs only; under ``jax.jit`` the inputs are tracers
and the kernels' documented behaviour on bad input applies instead.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from alband.errors import AlbandError


def is_concrete(*arrays: object) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def pool_array(X: object, name: str = "X", *, min_rows: int = 1) -> Array:
    """``X`` as a float32 ``(n, d)`` JAX array with ``n >= min_rows`` and ``d >= 1``."""
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    shape = tuple(X.shape)
    if len(shape) != 2:
        raise AlbandError(f"{name} must be a 2-D array (items x features), got shape {shape}")
    n, d = shape
    if d < 1:
        raise AlbandError(f"{name} has no feature columns (shape {shape})")
    if n < min_rows:
        raise AlbandError(f"{name} has {n} rows; at least {min_rows} are needed (shape {shape})")
    dtype = np.dtype(X.dtype)
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise AlbandError(f"{name} must hold real numbers, got dtype {dtype}")
    return jnp.asarray(X, dtype=jnp.float32)


def first_nonfinite_row(X: Array) -> int | None:
    """Index of the first row of ``X`` with a NaN or an infinity, or None."""
    bad = ~np.isfinite(np.asarray(X)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def explain_singular(X: Array, name: str = "X") -> AlbandError:
    """The error for a design problem whose information matrix came out singular or NaN."""
    row = first_nonfinite_row(X)
    if row is not None:
        return AlbandError(f"{name} row {row} has a NaN or infinite entry; clean or drop it")
    n, d = X.shape
    singular_values = np.linalg.svd(np.asarray(X, dtype=np.float64), compute_uv=False)
    top = float(singular_values[0]) if singular_values.size else 0.0
    # The solvers run in float32: directions below float32 resolution are lost.
    rank = int(np.sum(singular_values > top * max(n, d) * float(np.finfo(np.float32).eps)))
    if rank < d:
        return AlbandError(
            f"{name} ({n} x {d}) has rank {rank} < {d} (at float32 precision): every design's information "
            f"matrix is singular; reduce the features to {rank} dimensions (e.g. PCA) or drop constant / "
            "duplicate columns"
        )
    condition = top / float(singular_values[-1])
    return AlbandError(
        f"{name} ({n} x {d}) is too ill-conditioned for float32 (condition number {condition:.3g}): "
        "standardise the features or reduce them by PCA"
    )


def positive_float(value: object, name: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise AlbandError(f"{name} must be a number > 0, got {value!r}") from exc
    if not (math.isfinite(v) and v > 0):
        raise AlbandError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AlbandError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def bool_mask(mask: object | None, n: int, name: str) -> Array:
    """An ``(n,)`` boolean mask (all False when ``mask`` is None)."""
    if mask is None:
        return jnp.zeros((n,), dtype=bool)
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != (n,):
        raise AlbandError(f"{name} must have shape ({n},) (one flag per pool item), got {tuple(mask.shape)}")
    return jnp.asarray(mask, dtype=bool)


def vector(values: object, n: int, name: str) -> Array:
    """A float32 ``(n,)`` vector."""
    if not hasattr(values, "shape"):
        values = np.asarray(values, dtype=np.float64)
    if tuple(values.shape) != (n,):
        raise AlbandError(f"{name} must have shape ({n},) (one value per pool item), got {tuple(values.shape)}")
    return jnp.asarray(values, dtype=jnp.float32)
