"""The one signature of every annotator router, and the arrays it sees.

A router decides, item by item, which annotators (arms) to pay. Like an optax
transform it is a triple of pure functions over pytrees::

    state     = router.init(setup)
    decision  = router.decide(state, ctx, key)
    state     = router.update(state, feedback, key)

* :class:`RouterSetup` holds what is known before the stream starts: the number
  of arms, the feature dimension, the dollar budget, the stream length, a cost
  scale (the largest per-arm mean cost, used to normalise dollars), the largest
  single cost and the auditor arm.
* :class:`StepContext` is one item as the router sees it *before* paying: its
  features, each arm's price quote for it, which arms are available (an empty
  cell of the outcome matrix is an unavailable arm), the dollars still
  spendable and how many items are left (this one included). Correctness and
  the realised cost are *not* in it (a realised cost can reveal the length of
  the answer, which correlates with its correctness); only the evaluation
  oracle reads them, through its own closure.
* :class:`Decision` names the arms to pay (``pay``), the arm whose answer becomes
  the label (``label_arm``, -1 for none), the extra arms paid for an audit
  (``audit_pay``: the auditor and a panel of cheap arms, all False for no
  audit), and whether to stop the stream (the router's annotators are
  available but none is affordable).
* :class:`Feedback` is what the payment revealed: the arms actually paid (the
  audit included), what each charged, and the auditor's verdict on each paid
  arm's answer where it was observed.

Audits. The *auditor* arm (the human, or the strongest model) is taken as
truth: whenever it is paid on an item, the verdict "this arm's answer agrees
with the auditor's" is observed for every other arm paid on that item, and the
item's label is the auditor's. ``auditor = -1`` means free feedback (every paid
arm's correctness is observed at no cost), a simulation convenience.

``Stream`` holds the whole outcome matrix in pool order; the replay engine
(:mod:`alband.routing.replay_engine`) walks it in a permuted order with ``lax.scan``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
RouterState = Any


class Stream(NamedTuple):
    """An outcome matrix: ``n`` items x ``K`` arms, in pool order (float32 / bool)."""

    features: Array  # (n, d) item features (embeddings or TF-IDF + SVD, bias included)
    price_usd: Array  # (n, K) dollars quoted before asking arm k about item i (0 where unavailable)
    cost_usd: Array  # (n, K) dollars actually charged (0 where unavailable)
    available: Array  # (n, K) bool, False where the outcome cell is empty
    correct: Array  # (n, K) 1.0 if arm k's answer is right (vs gold), else 0.0
    verdict: Array  # (n, K) what the auditor says of arm k's answer (1 agree, 0 not)


class RouterSetup(NamedTuple):
    """What a router knows before the stream starts."""

    n_arms: int  # static
    dim: int  # static
    auditor: int  # static arm index, or -1 for free feedback
    budget_usd: Array  # () float32
    n_items: Array  # () int32
    cost_scale: Array  # () float32, max over arms of the arm's mean cost per item
    cost_max: Array  # () float32, largest single cost in the matrix (bounds costs to [0, 1])


class StepContext(NamedTuple):
    """One item as a router sees it before paying."""

    item: Array  # () int32 pool index
    x: Array  # (d,) features
    price_usd: Array  # (K,) price quoted for each arm on this item (before paying)
    available: Array  # (K,) bool
    remaining_usd: Array  # () float32 dollars that may still be spent
    items_left: Array  # () int32 items left in the stream, this one included


class Decision(NamedTuple):
    pay: Array  # (K,) bool arms to pay for the label (audit excluded)
    label_arm: Array  # () int32 arm whose answer is the label, -1 for none
    audit_pay: Array  # (K,) bool extra arms paid to audit this item (none: no audit)
    stop: Array  # () bool end the stream (nothing the router uses is affordable)


class Feedback(NamedTuple):
    item: Array  # () int32
    x: Array  # (d,)
    price_usd: Array  # (K,) the quotes the decision saw
    cost_usd: Array  # (K,) dollars actually charged by each paid arm (0 elsewhere)
    available: Array  # (K,) bool
    paid: Array  # (K,) bool arms paid, audit included
    verdict: Array  # (K,) float32 auditor's verdicts (meaningful where ``observed``)
    observed: Array  # (K,) bool verdict observed
    spend_usd: Array  # () float32 dollars paid on this item
    remaining_usd: Array  # () float32 dollars spendable before this item
    items_left: Array  # () int32 items left before this one was processed
    active: Array  # () bool False once the stream has stopped (update is then skipped)


class Router(NamedTuple):
    """An annotator router: ``init``, ``decide`` and ``update`` (module docstring)."""

    name: str
    init: Callable[[RouterSetup], RouterState]
    decide: Callable[[RouterState, StepContext, Array], Decision]
    update: Callable[[RouterState, Feedback, Array], RouterState]


def stateless_update(state: RouterState, feedback: Feedback, key: Array) -> RouterState:
    """``update`` of routers that do not learn."""
    return state


def no_audit(n_arms: int) -> Array:
    """``audit_pay`` of a decision without an audit."""
    return jnp.zeros((n_arms,), bool)


def one_hot_pay(arm: Array, n_arms: int) -> Array:
    """``pay`` mask for a single arm; all False when ``arm < 0``."""
    return (jnp.arange(n_arms) == arm) & (arm >= 0)


def masked_argmax(scores: Array, mask: Array) -> Array:
    """Index of the largest score where ``mask`` holds; -1 when the mask is empty.

    Ties go to the lower index. ``+inf`` scores are allowed.
    """
    masked = jnp.where(mask, scores, -jnp.inf)
    best = jnp.argmax(masked).astype(jnp.int32)
    return jnp.where(jnp.any(mask), best, jnp.int32(-1))


def cheapest(cost_usd: Array, mask: Array, score: Array | None = None) -> Array:
    """Index of the cheapest arm where ``mask`` holds; -1 when none.

    Arms tied at the lowest price (within 1e-6 relative) are told apart by
    ``score`` (highest wins) when given, else by the lower index.
    """
    if score is None:
        return masked_argmax(-cost_usd, mask)
    lowest = jnp.min(jnp.where(mask, cost_usd, jnp.inf))
    tied = mask & (cost_usd <= lowest * (1.0 + 1e-6))
    return masked_argmax(score, tied)
