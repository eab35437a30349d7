"""The simulator (core): whole active-learning episodes as one ``lax.scan``, vmappable over seeds."""

from alband.simulate.annotator_model import (
    SimulatedAnnotator,
    annotation_cost_usd,
    flip_confusion,
    make_simulated_annotator,
    noisy_labels,
    reserve_usd,
    token_counts,
)
from alband.simulate.episode import (
    EpisodeConfig,
    EpisodeData,
    EpisodeTrace,
    episode_history,
    repriced_spend,
    simulate,
    simulate_grid,
    simulate_many,
    simulate_seeds,
    stack_annotators,
)
from alband.simulate.mix import share_router

__all__ = [
    "EpisodeConfig",
    "EpisodeData",
    "EpisodeTrace",
    "SimulatedAnnotator",
    "annotation_cost_usd",
    "episode_history",
    "flip_confusion",
    "make_simulated_annotator",
    "noisy_labels",
    "repriced_spend",
    "reserve_usd",
    "share_router",
    "simulate",
    "simulate_grid",
    "simulate_many",
    "simulate_seeds",
    "stack_annotators",
    "token_counts",
]
