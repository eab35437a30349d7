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
from alband.simulate.episode import EpisodeConfig, EpisodeData, EpisodeTrace, simulate, simulate_seeds

__all__ = [
    "EpisodeConfig",
    "EpisodeData",
    "EpisodeTrace",
    "SimulatedAnnotator",
    "annotation_cost_usd",
    "flip_confusion",
    "make_simulated_annotator",
    "noisy_labels",
    "reserve_usd",
    "simulate",
    "simulate_seeds",
    "token_counts",
]
