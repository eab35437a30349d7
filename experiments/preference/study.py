r"""The preference study's episodes: the project's simulator (:func:`alband.simulate.simulate_many`) on a pair task.

Every seed runs the episode ``alband simulate`` and ``alband run`` run (the
rounds of :mod:`alband.rounds`; the live loop buys the same pairs for the
same seed, ``tests/test_preference_live.py``):

    round 0: ``n_initial`` pairs drawn uniformly (the same pairs for every policy of a seed);
    round t: the policy's ``select`` on the round context (the Bradley-Terry model's
             probabilities, its Fisher-weighted Laplace posterior, the pool's PairAux);
             ``-1`` slots and judged pairs are skipped; the judge answers and is paid;
             the reward model is refitted (warm start) on the judged pairs, plus, for
             the gated policy, its free pseudo-labels; held-out pairwise accuracy.

The judge is a :class:`alband.simulate.judge_model.PairJudge`: every answer depends
only on ``(seed, pair)``, so two policies asking the same pair of the same seed get the
same answer (paired comparisons). On HH-RLHF the judge returns the human label (the
human labels' own noise is the noise); in the synthetic Plackett-Luce world it samples
from the world's Bradley-Terry model (``beta = 1``). A pair costs the judge's token
price of its text (a synthetic pair, without text, the per-label price).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from alband.models.bradley_terry import BradleyTerry, pairwise_accuracy
from alband.models.registry import make_learner
from alband.policies import make_policy
from alband.simulate import EpisodeConfig, simulate_many
from alband.simulate.judge_model import PairJudge


class Curve(NamedTuple):
    """Per round: valid judged pairs, pairs asked (paid), dollars, held-out accuracy."""

    n_labels: np.ndarray
    n_asked: np.ndarray
    dollars: np.ndarray
    accuracy: np.ndarray


def full_data_accuracy(data, learner: BradleyTerry) -> float:
    """Held-out accuracy of the reward model fitted on every pool pair's gold label."""
    params = learner.fit(learner.init(data.x.shape[1]), data.x, data.y, jnp.ones(data.y.shape[0]))
    return float(pairwise_accuracy(params, data.x_test, data.y_test))


def run_policy(data, judge: PairJudge, policy_name: str, options: dict, seeds: range, *, l2: float,
               n_initial: int, batch: int, rounds: int) -> tuple[list[Curve], float]:
    """Every seed's curve (one compiled call for all seeds) and the wall seconds it took."""
    learner = make_learner("bradley_terry", l2=l2)
    config = EpisodeConfig(learner, make_policy(policy_name, **options), n_initial, batch, rounds)
    started = time.perf_counter()
    trace = jax.block_until_ready(simulate_many(config, data, judge, 1e9, jnp.asarray(list(seeds), jnp.uint32)))
    seconds = time.perf_counter() - started
    curves = [Curve(np.asarray(trace.n_labeled[s]), np.asarray(trace.n_queried[s]),
                    np.asarray(trace.spent_usd[s], np.float64), np.asarray(trace.test_accuracy[s], np.float64))
              for s in range(len(seeds))]
    return curves, seconds
