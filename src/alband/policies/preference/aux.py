"""Side information of a pair pool: which prompt and which two responses each pool row compares.

The pool rows of a preference task are the pair features ``z_i = phi(x, a_i) -
phi(x, b_i)`` (first shown minus second shown). Policies that reason about
prompts (BAL-PM's prompt entropy, Dope's lists, Double Thompson sampling's
champion and challenger among a prompt's candidates) read :class:`PairAux`,
fixed for the run (``ctx.aux``)::

    prompt     (N,)       int32  prompt of pool row i (0..P-1)
    first      (N,)       int32  response shown first (row of response_x)
    second     (N,)       int32  response shown second
    prompt_x   (P, d_p)   float32 prompt embeddings
    response_x (R, d)     float32 response features phi(x, y), so z_i = response_x[first_i] - response_x[second_i]
    candidates (P, K)     int32  each prompt's responses (rows of response_x), -1 padded
    pair_of    (P, K, K)  int32  pool row comparing candidates slots a and b (either order), -1 if none

A plain pair pool (one pair per prompt, as HH-RLHF) is the case ``K = 2`` with
``candidates[p] = (first, second)``; a candidates pool lists all
``K (K - 1) / 2`` pairs of each prompt as rows. :func:`make_pair_aux` builds the
two derived fields from the first five.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class PairAux(NamedTuple):
    """Prompt groups and responses of a pair pool (module docstring)."""

    prompt: Array
    first: Array
    second: Array
    prompt_x: Array
    response_x: Array
    candidates: Array
    pair_of: Array


def make_pair_aux(prompt, first, second, prompt_x, response_x) -> PairAux:
    """:class:`PairAux` with ``candidates`` and ``pair_of`` derived (numpy, at load time).

    Candidates of a prompt are its distinct responses in order of first
    appearance; ``K`` is the largest count over prompts.
    """
    prompt = np.asarray(prompt, np.int32)
    first = np.asarray(first, np.int32)
    second = np.asarray(second, np.int32)
    n_prompts = int(np.asarray(prompt_x).shape[0])
    responses: list[dict[int, int]] = [dict() for _ in range(n_prompts)]
    for p, a, b in zip(prompt.tolist(), first.tolist(), second.tolist()):
        for r in (a, b):
            responses[p].setdefault(r, len(responses[p]))
    k = max(2, max((len(r) for r in responses), default=2))
    candidates = np.full((n_prompts, k), -1, np.int32)
    for p, slots in enumerate(responses):
        for r, s in slots.items():
            candidates[p, s] = r
    pair_of = np.full((n_prompts, k, k), -1, np.int32)
    for i, (p, a, b) in enumerate(zip(prompt.tolist(), first.tolist(), second.tolist())):
        sa, sb = responses[p][a], responses[p][b]
        pair_of[p, sa, sb] = pair_of[p, sb, sa] = i
    return PairAux(jnp.asarray(prompt), jnp.asarray(first), jnp.asarray(second),
                   jnp.asarray(prompt_x, jnp.float32), jnp.asarray(response_x, jnp.float32),
                   jnp.asarray(candidates), jnp.asarray(pair_of))


def pair_differences(aux: PairAux) -> Array:
    """The pool rows ``z_i = response_x[first_i] - response_x[second_i]``, shape (N, d)."""
    return aux.response_x[aux.first] - aux.response_x[aux.second]
