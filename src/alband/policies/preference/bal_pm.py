r"""BAL-PM: epistemic uncertainty plus the entropy of the acquired prompts (Melo et al. 2024).

Melo, Tigas, Abate and Gal (2024, "Deep Bayesian active learning for
preference modeling in large language models", NeurIPS; arXiv 2406.10023)
observed that BALD-style batches of preference pairs collapse onto one kind of
prompt, and added to the epistemic term a term that rewards spreading the
acquired prompts over the prompt feature space: the acquisition of pair ``i``
with prompt embedding ``q_i`` is

    a_i = I(Y_i; theta)  +  beta * H_gain(q_i),

where ``I`` is the BALD mutual information of the Bradley-Terry posterior
(:mod:`.information_gain`, closed form) and ``H_gain`` the increase of the
entropy of the acquired-prompt distribution when ``q_i`` joins it. With the
Kozachenko-Leonenko ``k``-nearest-neighbour estimator (Kozachenko and
Leonenko 1987; Kraskov, Stoegbauer and Grassberger 2004)

    H(Q) ~ (d_q / M) sum_m log r_k(q_m) + const,

a new point ``q`` enters mainly through ``log r_k(q)``, its distance to the
``k``-th nearest acquired prompt, so the score used is
``I_i + beta log(r_k(q_i) + delta)`` (``delta`` a small floor for a prompt
already acquired). Prompts far from everything acquired so far score high;
a prompt already in the set (distance 0) scores low.

Batch: ``B`` greedy steps. After a pick its prompt joins the acquired set and
every prompt's ``k`` nearest distances are merged with its distance to the new
point (``O(P d_q)`` per pick), so one batch does not repeat one kind of
prompt. Initial ``k``-NN distances to the prompts of judged pairs come from
one pass over the prompts in row chunks (``O(P^2 d_q)`` time, ``O(chunk P)``
memory). While fewer than ``k`` prompts are acquired, the missing neighbours
count at the distance ``2 max_p ||q_p||`` (no two prompts are farther apart).

Differences from the paper, stated: Melo et al. take the epistemic term from
an ensemble of adapters on the LLM and estimate the entropy with a KSG-style
``k``-NN estimator over the acquired *and* pool prompts, and their batch is
drawn stochastically; here the epistemic term is the closed-form BALD of the
Laplace posterior of the linear reward model, the entropy gain is the
Kozachenko-Leonenko term above, and the batch is greedy (deterministic given
the posterior). ``beta`` trades the two terms (nats against log-distance);
``beta = 0`` is BALD's top-``B``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from alband.models.bradley_terry import GaussianPosterior
from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update
from alband.policies.preference._posterior import require_aux, require_posterior
from alband.policies.preference.information_gain import bald_scores_probit
from alband.policies.registry import register_policy

Array = jax.Array


def knn_distances(prompt_x: Array, acquired: Array, k: int, chunk_rows: int = 1024) -> Array:
    """The ``k`` smallest distances of every prompt to the ``acquired`` prompts, ascending, (P, k)."""
    P = prompt_x.shape[0]
    far = 2.0 * jnp.sqrt(jnp.max(jnp.sum(prompt_x * prompt_x, axis=1)))
    chunk_rows = max(1, min(chunk_rows, P))
    n_chunks = -(-P // chunk_rows)
    padded = jnp.concatenate([prompt_x, jnp.zeros((n_chunks * chunk_rows - P, prompt_x.shape[1]), prompt_x.dtype)])
    sq = jnp.sum(prompt_x * prompt_x, axis=1)

    def chunk(rows):
        d2 = jnp.sum(rows * rows, axis=1)[:, None] + sq[None, :] - 2.0 * rows @ prompt_x.T
        dist = jnp.sqrt(jnp.maximum(d2, 0.0))
        dist = jnp.where(acquired[None, :], dist, far)
        return -jax.lax.top_k(-dist, k)[0]

    out = jax.lax.map(chunk, padded.reshape(n_chunks, chunk_rows, -1)).reshape(-1, k)[:P]
    return jnp.minimum(out, far)


@partial(jax.jit, static_argnames=("batch_size", "k"))
def bal_pm_batch(epistemic: Array, prompt: Array, prompt_x: Array, queried: Array, batch_size: int,
                 beta: float | Array = 1.0, k: int = 5, floor: float | Array = 1e-3) -> Array:
    """BAL-PM's greedy batch (module docstring); ``-1`` once nothing is left.

    ``epistemic`` (N,) per pair, ``prompt`` (N,) its prompt, ``prompt_x`` (P, d_q).
    """
    P = prompt_x.shape[0]
    k = min(k, P)
    acquired = jnp.zeros((P,), bool).at[prompt].max(queried)
    knn = knn_distances(prompt_x, acquired, k)

    def body(t, state):
        knn, available, picks = state
        score = epistemic + beta * jnp.log(knn[prompt, k - 1] + floor)
        i = jnp.argmax(jnp.where(available, score, -jnp.inf))
        ok = available[i]
        q = prompt_x[prompt[i]]
        dist = jnp.sqrt(jnp.maximum(jnp.sum((prompt_x - q) ** 2, axis=1), 0.0))
        merged = -jax.lax.top_k(-jnp.concatenate([knn, dist[:, None]], axis=1), k)[0]
        knn = jnp.where(ok, merged, knn)
        picks = picks.at[t].set(jnp.where(ok, i, -1).astype(jnp.int32))
        return knn, available.at[i].set(False), picks

    return jax.lax.fori_loop(0, batch_size, body, (knn, ~queried, jnp.full((batch_size,), -1, jnp.int32)))[2]


def bal_pm_select(z: Array, posterior: GaussianPosterior, prompt: Array, prompt_x: Array, queried: Array,
                  batch_size: int, beta: float = 1.0, k: int = 5) -> Array:
    """BALD (closed form) of every pair plus the prompt-entropy term, greedy batch."""
    return bal_pm_batch(bald_scores_probit(z, posterior), prompt, prompt_x, queried, batch_size, beta, k)


@register_policy("bal_pm")
def bal_pm(beta: float = 1.0, k: int = 5) -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        aux = require_aux(ctx, "bal_pm")
        posterior = require_posterior(ctx, "bal_pm")
        return bal_pm_select(ctx.x, posterior, aux.prompt, aux.prompt_x, ctx.queried, batch_size, beta, k), state

    return QueryPolicy("bal_pm", _stateless_init, select, _stateless_update)
