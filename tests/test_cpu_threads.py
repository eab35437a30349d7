"""One BLAS thread inside the block, every library's own setting restored after it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_info

from alband.cpu_threads import one_blas_thread


def _blas_threads() -> dict[str, int]:
    return {info["filepath"]: info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_every_blas_library_has_one_thread_inside_and_its_own_after():
    jnp.linalg.cholesky(jnp.eye(3)).block_until_ready()  # JAX's LAPACK (SciPy's BLAS) is loaded
    before = _blas_threads()
    assert before  # numpy's BLAS at least
    with one_blas_thread():
        inside = _blas_threads()
        x = np.linalg.cholesky(np.eye(4) * 2.0)  # BLAS still works inside
    assert set(inside) >= set(before) and set(inside.values()) == {1}
    assert _blas_threads() == before and np.allclose(x, np.eye(4) * np.sqrt(2.0))
