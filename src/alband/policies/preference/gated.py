r"""Gated querying (ADPO, Ji et al. 2024): ask the judge only when the model is unsure.

Ji, He and Gu (2024, "Reinforcement learning from human feedback
with active queries", arXiv 2402.09401; ADPO) query a preference only when the
model's confidence is low: with the reward margin ``m_i = theta_hat' z_i``,

    ask the judge            if |m_i| <  tau,
    pseudo-label the pair    if |m_i| >= tau   (label 0 if m_i > 0, else 1),

and train on both, the pseudo-labels free of charge. In their experiments DPO
reached the performance of full querying with about half of the queries. The
threshold ``tau`` is on the logit scale: ``|m| >= tau`` means
``max(P(first), P(second)) >= sigmoid(tau)`` (``tau = 2`` is 88%).

How it fits the one policy signature. ``select`` returns, among unjudged pairs
under the gate (``|m| < tau``), the ``B`` least confident (smallest ``|m|``),
and ``-1`` in the slots it leaves empty when fewer pass the gate (the design
engine's convention for "nothing left"); the pairs above the gate are recorded
in the policy state as pseudo-labels of the current model:
:class:`GatedState` ``(pseudo_label (N,) int32, -1 = none)``, recomputed at
every ``select`` (a pair the model has become unsure about leaves the
pseudo-labelled set and can be asked).

How the round uses it (:mod:`alband.rounds`, both drivers):

1. The purchase skips ``-1`` slots, as it skips already-queried indices; a
   round in which nothing passes the gate buys nothing.
2. The policy's ``pseudo_labels`` hook (:class:`~alband.policies.base.QueryPolicy`)
   returns ``(labels, weights)``; :func:`alband.rounds.after_buy` fits on the
   bought labels plus the pseudo-labelled, unjudged pairs with weight
   ``pseudo_weight`` (default 1, as ADPO) at zero cost; a judged label always
   wins. Pseudo-labels are not annotations: the ledger and the exports hold
   only what a judge answered.
3. Dollars saved: each live round reports the number of pseudo-labelled
   pairs and the sum of their ``ctx.cost_usd`` (the expected price of asking
   them; :func:`alband.rounds.pseudo_label_summary`) in ``metrics.jsonl``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from alband.errors import AlbandError
from alband.policies.base import QueryPolicy
from alband.policies.preference._posterior import masked_top
from alband.policies.registry import register_policy

Array = jax.Array


class GatedState(NamedTuple):
    """The model's own preferences for the pairs above the gate; -1 elsewhere."""

    pseudo_label: Array  # (N,) int32


def gate(margin: Array, threshold: float | Array) -> tuple[Array, Array]:
    """``(ask, pseudo_label)``: ask where ``|m| < tau``; elsewhere label 0 if ``m > 0`` else 1 (-1 when asked)."""
    ask = jnp.abs(margin) < threshold
    return ask, jnp.where(ask, -1, jnp.where(margin > 0, 0, 1)).astype(jnp.int32)


@partial(jax.jit, static_argnames=("batch_size",))
def gated_batch(margin: Array, queried: Array, batch_size: int, threshold: float | Array) -> tuple[Array, Array]:
    """The least confident unjudged pairs under the gate (``-1`` padded) and the pseudo-labels of the rest."""
    ask, pseudo = gate(margin, threshold)
    picks = masked_top(-jnp.abs(margin), ask & ~queried, batch_size)
    return picks, jnp.where(queried, -1, pseudo)


def pseudo_labels(state: GatedState, pseudo_weight: float = 1.0) -> tuple[Array, Array]:
    """The pseudo-labels and their training weights (0 where none): the loop's hook (module docstring)."""
    has = state.pseudo_label >= 0
    return state.pseudo_label, jnp.where(has, jnp.float32(pseudo_weight), 0.0)


def dollars_saved(state: GatedState, cost_usd: Array) -> Array:
    """Expected dollars not spent: the asking price of every pseudo-labelled pair."""
    return jnp.sum(jnp.where(state.pseudo_label >= 0, cost_usd, 0.0))


@register_policy("gated")
def gated(threshold: float = 2.0, pseudo_weight: float = 1.0) -> QueryPolicy:
    """ADPO's gate at ``|theta' z| = threshold`` (logit scale); pseudo-labels trained with ``pseudo_weight``."""
    if not pseudo_weight >= 0:
        raise AlbandError(f"gated: pseudo_weight must be >= 0, got {pseudo_weight!r}")

    def init(ctx):
        return GatedState(jnp.full(ctx.queried.shape, -1, jnp.int32))

    def select(state, ctx, key, batch_size):
        margin = ctx.x @ ctx.params.theta
        picks, pseudo = gated_batch(margin, ctx.queried, batch_size, threshold)
        return picks, GatedState(pseudo)

    def update(state, ctx, indices, labels, accepted):
        # A judged pair's own label replaces any pseudo-label.
        bought = jnp.where(accepted & (indices >= 0), indices, state.pseudo_label.shape[0])
        return GatedState(state.pseudo_label.at[bought].set(-1, mode="drop"))

    def hook(state):
        return pseudo_labels(state, pseudo_weight)

    return QueryPolicy("gated", init, select, update, hook)
