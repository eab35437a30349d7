"""The labelling state of a pool: one index space (the pool index) everywhere.

A pool is ``N`` items with embeddings ``x`` (float32, ``(N, d)``). What has been
bought so far lives in :class:`LabelState`, a pytree of fixed shapes so that
it can be carried through ``jax.lax.scan`` and ``jax.vmap``:

* ``queried[i]``: item ``i`` was annotated (paid for), whatever the answer; a
  queried item is never offered again, so no item is bought twice;
* a training buffer of static capacity ``M`` (the most labels a run can buy):
  ``train_index[k]`` (pool index), ``train_label[k]``, ``train_weight[k]``,
  filled in the order labels arrive; ``n_train`` slots are used. Unused slots
  and invalid answers have weight 0. Learners train on ``x[train_index]``
  (``M x d``) rather than on the whole pool, so a round costs O(M d C), not
  O(N d C).
* ``spent_usd``: dollars settled so far (float32 in the core; the live shell
  keeps the exact float64 ledger).

Item ids (strings) are looked up only at the shell's edges.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class LabelState(NamedTuple):
    """What has been annotated so far (see module docstring)."""

    queried: Array  # (N,) bool
    train_index: Array  # (M,) int32 pool indices
    train_label: Array  # (M,) int32, -1 for an invalid answer or an empty slot
    train_weight: Array  # (M,) float32, 0 for invalid answers and empty slots
    n_train: Array  # () int32
    spent_usd: Array  # () float32


def empty_label_state(n_items: int, capacity: int) -> LabelState:
    """No item annotated; room for ``capacity`` annotations."""
    return LabelState(
        queried=jnp.zeros((n_items,), bool),
        train_index=jnp.zeros((capacity,), jnp.int32),
        train_label=jnp.full((capacity,), -1, jnp.int32),
        train_weight=jnp.zeros((capacity,), jnp.float32),
        n_train=jnp.zeros((), jnp.int32),
        spent_usd=jnp.zeros((), jnp.float32),
    )


@jax.jit
def record_annotations(
    state: LabelState,
    index: Array,
    label: Array,
    accepted: Array,
    cost_usd: Array,
    weight: Array | float = 1.0,
) -> LabelState:
    """Add a batch of annotations (a pure, jittable update).

    ``index`` (B,) pool indices, ``label`` (B,) class indices or -1 for an
    invalid answer, ``accepted`` (B,) which of them were actually bought (a
    prefix when the budget ran out), ``cost_usd`` (B,) what each cost,
    ``weight`` the learner's weight of each label (annotator quality).
    Accepted items are appended to the training buffer in batch order.
    Jitted, so that the live loop's one call per round is one dispatch.
    """
    accepted = accepted.astype(bool)
    weight = jnp.broadcast_to(jnp.asarray(weight, jnp.float32), index.shape)
    slot = state.n_train + jnp.cumsum(accepted.astype(jnp.int32)) - 1
    capacity = state.train_index.shape[0]
    # Rejected items are scattered out of bounds and dropped.
    slot = jnp.where(accepted, slot, capacity)
    valid = accepted & (label >= 0)
    return LabelState(
        queried=state.queried.at[jnp.where(accepted, index, state.queried.shape[0])].set(True, mode="drop"),
        train_index=state.train_index.at[slot].set(index.astype(jnp.int32), mode="drop"),
        train_label=state.train_label.at[slot].set(jnp.where(valid, label, -1).astype(jnp.int32), mode="drop"),
        train_weight=state.train_weight.at[slot].set(jnp.where(valid, weight, 0.0), mode="drop"),
        n_train=state.n_train + jnp.sum(accepted.astype(jnp.int32)),
        spent_usd=state.spent_usd + jnp.sum(jnp.where(accepted, cost_usd, 0.0)).astype(jnp.float32),
    )


@jax.jit
def n_labeled(state: LabelState) -> Array:
    """Number of items annotated with a valid label."""
    return jnp.sum(state.train_weight > 0)
