r"""Random pairs: a uniform prompt, then a uniform unjudged pair of its responses.

The baseline of every preference study (and, in online DPO, a hard one to beat:
Oh et al. 2026, "Random is hard to beat"). Sampling without replacement with
probability proportional to ``w_i`` is the Gumbel top-``B`` trick (Vieira
2014; Kool, van Hoof and Welling 2019): take the ``B`` largest
``log w_i + G_i``, ``G_i`` i.i.d. standard Gumbel. With
``w_i = 1 / n_{prompt(i)}`` (``n_p`` the pool rows of prompt ``p``) every
prompt is equally likely to be asked first, whatever its number of candidate
pairs; on a plain pair pool (one pair per prompt) this is uniform sampling of
pairs, the ``random`` policy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from alband.policies.base import QueryPolicy, _stateless_init, _stateless_update, top_unqueried
from alband.policies.preference._posterior import require_aux
from alband.policies.registry import register_policy

Array = jax.Array


def random_pair_scores(key: Array, prompt: Array, n_prompts: int) -> Array:
    """Gumbel keys ``-log n_{prompt(i)} + G_i``; their top ``B`` is the random batch."""
    counts = jnp.zeros((n_prompts,), jnp.float32).at[prompt].add(1.0)
    return -jnp.log(counts[prompt]) + jax.random.gumbel(key, prompt.shape)


@register_policy("random_pairs")
def random_pairs() -> QueryPolicy:
    def select(state, ctx, key, batch_size):
        aux = require_aux(ctx, "random_pairs")
        scores = random_pair_scores(key, aux.prompt, aux.prompt_x.shape[0])
        return top_unqueried(scores, ctx.queried, batch_size), state

    return QueryPolicy("random_pairs", _stateless_init, select, _stateless_update)
