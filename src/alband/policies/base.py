"""The one signature of every query policy.

A query policy is a triple of pure functions, in the spirit of optax's
``init`` / ``update`` pairs::

    state            = policy.init(ctx)
    indices, state   = policy.select(state, ctx, key, batch_size)
    state            = policy.update(state, ctx, indices, labels, accepted)

* ``ctx`` is the :class:`RoundContext` of the round: the pool embeddings, the
  mask of items already queried, the current learner's predictive
  probabilities (class probabilities; for a pair pool, column 0 is the
  probability that the first response is preferred), its opaque parameters,
  its Laplace posterior where it has one, its linear softmax head where it
  has one, each item's expected annotation cost and the task's side
  information ``aux``. A policy never names a learner's parameter type: it
  reads ``probs``, and where it needs more, ``posterior`` or ``head``.
* ``select`` returns ``batch_size`` **distinct** pool indices (int32). Indices
  of items already queried may only appear when fewer than ``batch_size``
  unqueried items are left; the loop drops them (it checks ``ctx.queried``).
* ``update`` sees what the annotators returned (labels, and which items were
  bought before the budget ran out); stateless policies ignore it.

``batch_size`` is a static Python int. A policy never knows who annotates.
Policies that only score items are written with :func:`score_policy`, which
takes the ``batch_size`` highest scores among unqueried items with one masked
``lax.top_k`` pass (no Python loop over the pool).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from alband.models.base import GaussianPosterior

Array = jax.Array
PolicyState = Any


class RoundContext(NamedTuple):
    """Everything a policy may look at when it chooses a batch.

    ``posterior`` is the learner's :class:`~alband.models.base.GaussianPosterior`
    computed from the training buffer (None for a learner without one). The
    round builds it inside the same ``jit`` as the policy's ``select``, so a
    policy that does not read it does not pay for it (dead code).
    ``head`` is ``(W, b)`` with ``probs == softmax(x W + b)`` when the
    learner's probabilities have that form (:func:`alband.models.base.linear_head`),
    else None; ``aux`` is the task's side information, a pytree of arrays
    fixed for the run (``()`` for an item pool).
    """

    x: Array  # (N, d) float32 pool embeddings
    queried: Array  # (N,) bool, already annotated
    probs: Array  # (N, C) current predictive probabilities
    params: Any  # the learner's parameters (an opaque pytree)
    cost_usd: Array  # (N,) expected dollars to annotate each item
    round: Array  # () int32, 1 for the first query round
    posterior: GaussianPosterior | None = None
    head: tuple[Array, Array] | None = None
    aux: Any = ()


class QueryPolicy(NamedTuple):
    """A query policy: ``init``, ``select`` and ``update`` (module docstring).

    ``pseudo_labels`` (optional, None for most policies): ``state -> (labels (N,)
    int32, weights (N,) float32)``, labels the policy assigns *without asking*
    (-1 or weight 0 where none). The round trains on them beside the bought
    labels, at no cost (:func:`alband.rounds.after_buy`); a bought label
    always wins. ``select`` may leave slots ``-1`` (nothing to ask there); the
    purchase skips them.
    """

    name: str
    init: Callable[[RoundContext], PolicyState]
    select: Callable[[PolicyState, RoundContext, Array, int], tuple[Array, PolicyState]]
    update: Callable[[PolicyState, RoundContext, Array, Array, Array], PolicyState]
    pseudo_labels: Callable[[PolicyState], tuple[Array, Array]] | None = None


def _stateless_init(ctx: RoundContext) -> PolicyState:
    return ()


def _stateless_update(state, ctx, indices, labels, accepted) -> PolicyState:
    return state


def top_unqueried(scores: Array, queried: Array, batch_size: int) -> Array:
    """Indices of the ``batch_size`` highest scores among unqueried items, distinct.

    Exact ties are broken towards the lower pool index (``lax.top_k`` order),
    under ``jit`` and ``vmap`` alike. Scores that are not tied are ordered by
    value, and the batch is stable up to that order: if every score moves by
    at most ``delta``, only items whose scores lie within ``2 delta`` of the
    ``B``-th largest can enter or leave the batch (tested).

    Near-ties between runs are not float32 rounding. The simulator's vmapped
    seeds (``simulate_seeds``) and sequential seeds (``simulate_many``) give
    the learner the same labels but fit it with differently compiled products,
    and L-BFGS stops anywhere its gradient test passes (``tol``). Measured on
    AG News (10k x 384, margin, batch 10, ``tol=1e-5``): with the same labelled
    set the two fits differ by up to 3e-6 in ``W`` and the margins by up to
    3.7e-6 -- about 250 float32 ulps of the margins at the cut (~6e-4) -- so
    an item at the cut changes whenever two margins lie that close, and the
    labelled sets differ from then on. The tolerance to expect is the
    learner's, through this ``2 delta`` band; no tie-break rule removes it (the
    scores differ, and rounding them to a grid only moves the cut).
    """
    masked = jnp.where(queried, -jnp.inf, scores.astype(jnp.float32))
    return jax.lax.top_k(masked, batch_size)[1].astype(jnp.int32)


def score_policy(name: str, score: Callable[[RoundContext, Array], Array]) -> QueryPolicy:
    """A stateless policy that takes the top-``B`` items of ``score(ctx, key)``."""

    def select(state, ctx, key, batch_size):
        return top_unqueried(score(ctx, key), ctx.queried, batch_size), state

    return QueryPolicy(name, _stateless_init, select, _stateless_update)
