r"""Chunked passes over a pool: a streamed top-``B`` and a fold over masked rows.

Not a policy: helpers that the policies (k-center coreset, BALD) and the
acquisition benchmark run over pools too large for one array.

**Streamed top-B.** To pick the ``B`` best-scoring items of a pool that is too
large for one score vector (or one array), score it in chunks of rows and keep
a running top-``B``: for chunk ``k`` with scores ``s_k``,

    R_k = top_B(R_{k-1} ++ top_B(s_k)),

where ``++`` concatenates the running list (earlier pool indices) before the
new chunk. ``lax.top_k`` breaks ties towards the lower position, and by
induction the running list is ordered by (score desc, index asc), so the result
equals a one-shot ``lax.top_k`` over the whole pool, ties included. Memory is
O(chunk + B) beyond the pool itself.

:func:`streamed_top_b` takes either

* a JAX array ``(N, d)``: one jitted ``lax.scan`` over ``dynamic_slice``\ d
  chunks (no padded copy of the pool; the remainder rows form one last
  smaller block), usable inside ``jit`` / ``scan`` / ``vmap``; or
* a host array-like -- a NumPy array, a ``np.memmap`` opened by the caller with
  ``np.load(path, mmap_mode="r")`` (the core never opens files), or any object
  with ``shape`` and row slicing -- or an iterable of ``(rows, d)`` chunks: a
  Python loop over chunks, each scored and merged by one jitted step, so only
  one chunk is resident at a time.

**Fold over masked rows.** :func:`fold_masked_rows` applies a function to the
rows selected by a boolean mask, ``block_rows`` at a time, inside a
``lax.while_loop`` whose trip count is ``ceil(sum(mask) / block_rows)``: the
cost scales with the number of selected rows, not with the pool, although the
mask's count is only known at run time (k-center distances to the labelled set,
the Laplace Hessian over the labelled items).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from alband.errors import AlbandError

Array = jax.Array

# Rows per chunk: (2048, 384) float32 is 3 MB, a block that stays in cache between its
# slice copy and the product. Measured on 2 cores at N = 1e6, d = 384: 2048-row chunks
# scored as fast as one whole-pool pass; 8192 to 65536-row chunks took 2.5-3x longer.
DEFAULT_CHUNK_ROWS = 2048


class TopB(NamedTuple):
    """The ``B`` best items: scores (descending) and their pool indices."""

    scores: Array  # (B,) float32
    indices: Array  # (B,) int32


def _merge(running: TopB, scores: Array, start: Array | int, batch_size: int) -> TopB:
    """Running top-B merged with a chunk of scores whose first row is pool index ``start``."""
    k = min(batch_size, scores.shape[0])
    chunk_scores, chunk_pos = jax.lax.top_k(scores, k)
    values = jnp.concatenate([running.scores, chunk_scores])
    index = jnp.concatenate([running.indices, chunk_pos.astype(jnp.int32) + jnp.asarray(start, jnp.int32)])
    # The running list grows until it holds B items (a first chunk may be shorter).
    best, pos = jax.lax.top_k(values, min(batch_size, values.shape[0]))
    return TopB(best, index[pos])


def _empty() -> TopB:
    return TopB(jnp.zeros((0,), jnp.float32), jnp.zeros((0,), jnp.int32))


def _masked_scores(score_fn, block: Array, exclude_block: Array | None) -> Array:
    scores = jnp.asarray(score_fn(block), jnp.float32)
    if exclude_block is not None:
        scores = jnp.where(exclude_block, -jnp.inf, scores)
    return scores


@partial(jax.jit, static_argnames=("score_fn", "batch_size", "chunk_size"))
def streamed_top_b_device(
    score_fn: Callable[[Array], Array],
    x: Array,
    batch_size: int,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    exclude: Array | None = None,
) -> TopB:
    """:func:`streamed_top_b` for a JAX array, as one jitted ``lax.scan`` over row chunks.

    ``score_fn`` (static, hashable) maps ``(rows, d)`` to ``(rows,)`` scores;
    ``exclude`` ``(N,)`` marks items that get score ``-inf``. Needs
    ``batch_size <= N``; ``chunk_size`` is raised to ``batch_size`` if smaller.
    """
    n, d = x.shape
    chunk = min(max(chunk_size, batch_size), n)
    n_full = n // chunk

    def block_scores(start):
        block = jax.lax.dynamic_slice(x, (start, 0), (chunk, d))
        excl = None if exclude is None else jax.lax.dynamic_slice(exclude, (start,), (chunk,))
        return _masked_scores(score_fn, block, excl)

    running = _merge(_empty(), block_scores(0), 0, batch_size)

    def step(running, k):
        start = k * chunk
        return _merge(running, block_scores(start), start, batch_size), None

    if n_full > 1:
        running, _ = jax.lax.scan(step, running, jnp.arange(1, n_full, dtype=jnp.int32))
    tail = n - n_full * chunk
    if tail:
        excl = None if exclude is None else exclude[n_full * chunk:]
        running = _merge(running, _masked_scores(score_fn, x[n_full * chunk:], excl), n_full * chunk, batch_size)
    return running


@partial(jax.jit, static_argnames=("score_fn", "batch_size"))
def _host_step(score_fn, running: TopB, block: Array, exclude_block: Array | None, start: Array, batch_size: int) -> TopB:
    return _merge(running, _masked_scores(score_fn, block, exclude_block), start, batch_size)


def _host_chunks(source: Any, chunk: int) -> Iterable[np.ndarray]:
    n = source.shape[0]
    for start in range(0, n, chunk):
        yield np.asarray(source[start:start + chunk], dtype=np.float32)


def streamed_top_b(
    score_fn: Callable[[Array], Array],
    x_source: Any,
    batch_size: int,
    chunk_size: int = DEFAULT_CHUNK_ROWS,
    *,
    exclude: Any | None = None,
) -> TopB:
    """The ``batch_size`` highest ``score_fn`` scores over a pool scored chunk by chunk.

    Args:
      score_fn: maps a ``(rows, d)`` float32 chunk to ``(rows,)`` scores; a
        hashable, jittable function (it is a static argument of the jitted
        steps: pass the same function object to reuse the compilation).
      x_source: a JAX array ``(N, d)`` (one jitted ``lax.scan``), a NumPy array
        or ``np.memmap`` or any object with ``shape`` and row slicing, or an
        iterable of ``(rows, d)`` chunks (Python loop over chunks; equal chunk
        sizes compile once).
      batch_size: ``B``, at most the number of rows.
      chunk_size: rows per chunk (raised to ``B`` if smaller); ignored for an
        iterable of chunks.
      exclude: optional ``(N,)`` bool, True for items that must score ``-inf``
        (e.g. already queried).

    Returns:
      :class:`TopB` equal to ``lax.top_k(scores, B)`` of the whole pool
      (ties towards the lower pool index).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise AlbandError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise AlbandError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    batch_size, chunk_size = int(batch_size), int(chunk_size)
    exclude_host = None if exclude is None else np.asarray(exclude, dtype=bool)

    if isinstance(x_source, jax.Array):
        if x_source.ndim != 2:
            raise AlbandError(f"the pool must be a 2-D array (items x features), got shape {tuple(x_source.shape)}")
        n = x_source.shape[0]
        _check_sizes(n, batch_size, exclude_host)
        excl = None if exclude is None else jnp.asarray(exclude, bool)
        return streamed_top_b_device(score_fn, x_source, batch_size, chunk_size, excl)

    if hasattr(x_source, "shape") and hasattr(x_source, "__getitem__"):
        shape = tuple(x_source.shape)
        if len(shape) != 2:
            raise AlbandError(f"the pool must be a 2-D array (items x features), got shape {shape}")
        _check_sizes(shape[0], batch_size, exclude_host)
        chunks: Iterable[np.ndarray] = _host_chunks(x_source, max(chunk_size, batch_size))
    else:
        try:
            chunks = iter(x_source)
        except TypeError:
            raise AlbandError(
                "x_source must be a JAX array, a NumPy array / np.memmap, or an iterable of (rows, d) chunks; "
                f"got {type(x_source).__name__}"
            ) from None

    running = _empty()
    start = 0
    for k, block in enumerate(chunks):
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] == 0:
            raise AlbandError(f"chunk {k} must be a non-empty 2-D array (rows x features), got shape {block.shape}")
        excl = None
        if exclude_host is not None:
            if start + block.shape[0] > exclude_host.shape[0]:
                raise AlbandError(f"exclude has {exclude_host.shape[0]} flags but the chunks hold more rows")
            excl = jnp.asarray(exclude_host[start:start + block.shape[0]])
        running = _host_step(score_fn, running, jnp.asarray(block), excl, jnp.int32(start), batch_size)
        start += block.shape[0]
    if running.scores.shape[0] < batch_size:
        raise AlbandError(f"batch_size {batch_size} exceeds the {start} rows of the pool")
    if exclude_host is not None and exclude_host.shape[0] != start:
        raise AlbandError(f"exclude has {exclude_host.shape[0]} flags but the pool has {start} rows")
    return running


def _check_sizes(n: int, batch_size: int, exclude: np.ndarray | None) -> None:
    if batch_size > n:
        raise AlbandError(f"batch_size {batch_size} exceeds the {n} rows of the pool")
    if exclude is not None and exclude.shape != (n,):
        raise AlbandError(f"exclude must have shape ({n},) (one flag per pool item), got {exclude.shape}")


def fold_masked_rows(
    fn: Callable[[Any, Array, Array, Array], Any],
    init: Any,
    mask: Array,
    block_rows: int,
) -> Any:
    """``carry = fn(carry, rows, valid, ...)`` over the rows selected by ``mask``, ``block_rows`` at a time.

    ``fn(carry, index, valid)`` gets a block of ``block_rows`` pool indices
    (int32) and a bool ``valid`` flag per slot (False in the last block's
    padding, whose index is 0). The loop runs ``ceil(sum(mask) / block_rows)``
    times (a ``lax.while_loop``; jittable, vmappable).
    """
    n = mask.shape[0]
    n_blocks_max = -(-n // block_rows)
    index = jnp.nonzero(mask, size=n_blocks_max * block_rows, fill_value=0)[0].astype(jnp.int32)
    count = jnp.sum(mask, dtype=jnp.int32)
    slots = jnp.arange(block_rows, dtype=jnp.int32)

    def cond(state):
        k, _ = state
        return k * block_rows < count

    def body(state):
        k, carry = state
        start = k * block_rows
        rows = jax.lax.dynamic_slice(index, (start,), (block_rows,))
        return k + 1, fn(carry, rows, start + slots < count)

    return jax.lax.while_loop(cond, body, (jnp.int32(0), init))[1]


def block_rows_for(n: int, budget_elements: int = 1 << 22, cap: int = 256) -> int:
    """Rows per block so that an ``(n, block)`` temporary holds about ``budget_elements`` floats."""
    return int(max(1, min(cap, budget_elements // max(n, 1))))
