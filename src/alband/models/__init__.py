"""Learners (core): pure init / fit / predict_proba / posterior functions over pytrees of parameters.

Every learner implements :class:`alband.models.base.Learner`; the registry
(:func:`make_learner`) names them for configs.
"""

from alband.models.base import GaussianPosterior, Learner, linear_head
from alband.models.laplace_logistic import LaplaceLogistic, LaplaceLogisticParams
from alband.models.registry import available_learners, make_learner, register_learner
from alband.models.softmax_regression import (
    SoftmaxParams,
    SoftmaxRegression,
    accuracy,
    fit,
    init_params,
    predict_proba,
)

__all__ = ["GaussianPosterior", "LaplaceLogistic", "LaplaceLogisticParams", "Learner", "SoftmaxParams",
           "SoftmaxRegression", "accuracy", "available_learners", "fit", "init_params", "linear_head",
           "make_learner", "predict_proba", "register_learner"]
