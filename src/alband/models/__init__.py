"""Learners (core): pure fit / predict functions over pytrees of parameters."""

from alband.models.softmax_regression import (
    SoftmaxParams,
    SoftmaxRegression,
    accuracy,
    fit,
    init_params,
    predict_proba,
)

__all__ = ["SoftmaxParams", "SoftmaxRegression", "accuracy", "fit", "init_params", "predict_proba"]
