"""One BLAS thread while XLA computes on the CPU (shell).

On the CPU, XLA runs its matrix products on its own thread pool, but the
LAPACK kernels a jitted program calls (Cholesky, triangular solves,
eigendecompositions: the Laplace posterior of the Bradley-Terry learner, the
Double Thompson sampling draws, the inverse of a design's precision) run in
the BLAS library SciPy links (jaxlib takes its LAPACK from
``scipy.linalg.cython_lapack``). OpenBLAS starts its own threads for them, and
both pools spin while they wait for work: on a machine whose cores are all
busy, each steals the other's cores. Measured on this project's 2-core machine
under a load of about 10 (``alband bench preference``, medians of 5): a
384 x 384 Cholesky took 388 ms with OpenBLAS's default threads and 1.0 ms
with one (``OPENBLAS_NUM_THREADS=1``); the Double TS decisions for 10,000
prompts 1.09 s and 0.46 s; the D-optimal design batch of 100 among 10^5 pairs
(before its one-pass rewrite) 1.08 s and 0.65 s; ``alband simulate`` of a
300-prompt preference world (10 seeds, 20 rounds) 2.3-5.7 s and 1.0-2.0 s.

:func:`one_blas_thread` limits every BLAS library loaded in the process to one
thread for the duration of a ``with`` block and restores the previous
settings after it: the drivers run their jitted work inside it (``alband
run``, ``resume``, ``simulate``, the JAX side of ``alband bench
preference``). The LAPACK calls of a jitted program are on ``d x d``
matrices, where one thread is as fast as several; plain numpy work outside
the block (a benchmark's numpy baseline) keeps its threads. JAX dispatches
asynchronously, so a block must wait for its results
(``jax.block_until_ready``) before it ends.

One thread also makes the last bits of those LAPACK results independent of the
machine's core count (a threaded Cholesky sums in another order): a core
function called outside the block (``alband.simulate.simulate`` from a
notebook) can differ from ``alband simulate`` in the last float bits for
large ``d``, enough on rare occasions to flip one held-out prediction
(measured: one pair in 461 at one round of one seed of HH-RLHF with APO).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator


@functools.lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Every loaded BLAS library (OpenBLAS, MKL, BLIS) at one thread inside the block (module docstring).

    The libraries are looked up once per process, after JAX's LAPACK is
    initialised (a 2 x 2 Cholesky), so that the library it calls is among them.
    """
    _initialise_lapack()
    with _controller().limit(limits=1, user_api="blas"):
        yield


@functools.lru_cache(maxsize=1)
def _initialise_lapack() -> None:
    import jax.numpy as jnp

    jnp.linalg.cholesky(jnp.eye(2, dtype=jnp.float32)).block_until_ready()
    _controller.cache_clear()  # look the libraries up again now that SciPy's BLAS is loaded
