"""A scikit-learn estimator (anything with ``fit`` / ``predict_proba``) as a learner, through host callbacks.

``[learner] name = "sklearn"``, ``estimator = "sklearn.linear_model:LogisticRegression"``,
``params = {C = 1.0}`` makes the estimator the learner of the live loop and of
the simulator, with the one round of :mod:`alband.rounds` unchanged: the
learner's ``fit`` and ``predict_proba`` are :func:`jax.pure_callback` calls,
so the jitted round (and the simulator's ``lax.scan``) calls out to Python at
those two points and stays one program everywhere else.

What that costs, stated plainly:

* **It runs outside ``jit``.** The estimator fits on the host, in NumPy, one
  call at a time; XLA neither fuses nor parallelises it. The callbacks declare
  ``vmap_method="sequential"``: under ``vmap`` (``simulate --vmap-width`` > 1)
  the seeds of a group are fitted one after another, never batched, so seeds
  are only ever *sequential* (``lax.map``, the default width 1, is the form to
  use). Measured against the JAX learner by ``alband bench learners``.
* **No warm start.** Every ``fit`` is a fresh clone fitted on the labelled
  rows (for a convex objective such as logistic regression the minimiser is
  the same; only the time differs).
* **No posterior, no linear head**: policies that need a Laplace posterior
  (BALD, ``lints_laplace``) or the linear head are not available with it.

Parameters. The JAX side sees an ``int32`` scalar, a *handle* to a fitted
estimator kept in this process (a least-recently-used store of
:data:`STORE_SIZE` estimators); ``-1`` is the unfitted learner (uniform
probabilities). Handles do not survive the process; the live loop refits on
resume, as it does for every learner. The fit of identical rows returns the
same handle (the store is keyed by a digest of ``x``, ``y``, ``weight``), so
a callback run twice by XLA fits once.

Rows. Only rows with ``weight > 0`` and ``y >= 0`` are fitted; the weights go
to ``fit(..., sample_weight=...)`` (an estimator whose ``fit`` takes no
``sample_weight`` accepts only equal weights). Classes never labelled get
probability 0; with a single labelled class the learner predicts it with
probability 1 (what ``LogisticRegression`` refuses to fit).

Objective. ``LogisticRegression(C=C)`` minimises
``C * sum_i w_i CE_i + ||W||^2 / 2`` with an unpenalised intercept: for three
or more classes the minimiser of :class:`alband.models.SoftmaxRegression`
with ``c = C``; binary ``LogisticRegression(C=C)`` is ``softmax_regression``
with ``c = C / 2`` (:mod:`alband.models.softmax_regression`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from alband.errors import AlbandError
from alband.models.registry import register_learner

Array = jax.Array

#: Fitted estimators kept per process (least recently used dropped first).
STORE_SIZE = 4096


class SklearnLearner(NamedTuple):
    """Hyper-parameters (static, hashable): classes, the estimator's ``"module:Class"`` and frozen keyword arguments.

    A :class:`alband.models.base.Learner` whose ``fit`` and ``predict_proba``
    are host callbacks (module docstring).
    """

    n_classes: int
    estimator: str = "sklearn.linear_model:LogisticRegression"
    params: tuple = ()  # frozen keyword arguments (_freeze)

    def init(self, n_features: int) -> Array:
        return jnp.int32(-1)

    def fit(self, params: Array, x: Array, y: Array, weight: Array) -> Array:
        return jax.pure_callback(partial_fit(self), jax.ShapeDtypeStruct((), jnp.int32), x, y, weight,
                                 vmap_method="sequential")

    def predict_proba(self, params: Array, x: Array) -> Array:
        shape = jax.ShapeDtypeStruct((x.shape[0], self.n_classes), jnp.float32)
        return jax.pure_callback(partial_predict(self), shape, params, x, vmap_method="sequential")

    def posterior(self, params: Array, x: Array, y: Array, weight: Array) -> None:
        return None

    def build(self) -> Any:
        """A fresh, unfitted estimator."""
        return estimator_class(self.estimator)(**_thaw(self.params))


class _Constant(NamedTuple):
    """The fit on rows of a single class: that class with probability 1."""

    label: int


_STORE: OrderedDict[int, Any] = OrderedDict()
_DIGESTS: dict[bytes, int] = {}
_LOCK = threading.Lock()
_NEXT = [0]


def partial_fit(learner: SklearnLearner):
    def host_fit(x, y, weight) -> np.ndarray:
        return np.int32(_fit(learner, np.asarray(x), np.asarray(y), np.asarray(weight)))

    return host_fit


def partial_predict(learner: SklearnLearner):
    def host_predict(handle, x) -> np.ndarray:
        return _predict(learner, int(handle), np.asarray(x))

    return host_predict


def _fit(learner: SklearnLearner, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> int:
    keep = (weight > 0) & (y >= 0)
    x, y, weight = x[keep].astype(np.float64), y[keep].astype(np.int64), weight[keep].astype(np.float64)
    digest = hashlib.blake2b(b"".join([repr(learner).encode(), x.tobytes(), y.tobytes(), weight.tobytes()]),
                             digest_size=16).digest()
    with _LOCK:
        if digest in _DIGESTS and _DIGESTS[digest] in _STORE:
            _STORE.move_to_end(_DIGESTS[digest])
            return _DIGESTS[digest]
    if y.size == 0:
        return -1
    classes = np.unique(y)
    if classes.size == 1:
        fitted: Any = _Constant(int(classes[0]))
    else:
        fitted = learner.build()
        if _takes_sample_weight(fitted):
            fitted.fit(x, y, sample_weight=weight)
        elif np.all(weight == weight[0]):
            fitted.fit(x, y)
        else:
            raise ValueError(f"learner 'sklearn': {learner.estimator}.fit takes no sample_weight, "
                             "but the labels have unequal weights")
    with _LOCK:
        handle = _NEXT[0]
        _NEXT[0] += 1
        _STORE[handle] = fitted
        _DIGESTS[digest] = handle
        while len(_STORE) > STORE_SIZE:
            _STORE.popitem(last=False)
        if len(_DIGESTS) > 2 * STORE_SIZE:
            for key in [k for k, v in _DIGESTS.items() if v not in _STORE]:
                del _DIGESTS[key]
    return handle


def _predict(learner: SklearnLearner, handle: int, x: np.ndarray) -> np.ndarray:
    probs = np.zeros((x.shape[0], learner.n_classes), np.float32)
    if handle < 0:
        probs[:] = 1.0 / learner.n_classes
        return probs
    with _LOCK:
        try:
            fitted = _STORE[handle]
        except KeyError:
            raise ValueError(f"learner 'sklearn': fitted estimator {handle} is no longer kept "
                             f"(the store keeps the last {STORE_SIZE})") from None
        _STORE.move_to_end(handle)
    if isinstance(fitted, _Constant):
        probs[:, fitted.label] = 1.0
        return probs
    columns = np.asarray(fitted.classes_, np.int64)
    probs[:, columns] = fitted.predict_proba(x.astype(np.float64))
    return probs


def _takes_sample_weight(estimator: Any) -> bool:
    try:
        return "sample_weight" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):
        return False


def estimator_class(path: str) -> Any:
    """The class at ``"module:Class"`` (one :class:`AlbandError` line when it does not import)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise AlbandError(f"learner 'sklearn': estimator '{path}' must be 'package.module:Class'")
    try:
        target = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure is the config's estimator's
        raise AlbandError(f"learner 'sklearn': estimator '{path}': cannot import module '{module_name}': "
                          f"{type(err).__name__}: {err}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AlbandError(f"learner 'sklearn': estimator '{path}': module '{module_name}' has no "
                              f"attribute '{attr}'")
        target = getattr(target, part)
    return target


def _freeze(value: Any) -> Any:
    """A hashable copy of a TOML value: lists as tuples, tables as sorted ``("__table__", items)``."""
    if isinstance(value, dict):
        return ("__table__", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(frozen: tuple) -> dict[str, Any]:
    def thaw(value):
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "__table__":
            return {k: thaw(v) for k, v in value[1]}
        if isinstance(value, tuple):
            return tuple(thaw(v) for v in value)
        return value

    return {k: thaw(v) for k, v in frozen}


@register_learner("sklearn")
def sklearn_learner(n_classes: int, estimator: str = "sklearn.linear_model:LogisticRegression",
                    params: dict | None = None) -> SklearnLearner:
    """A scikit-learn estimator (fit / predict_proba) called from the jitted round on the host; seeds run sequentially.

    ``estimator``: ``"module:Class"``; ``params``: its keyword arguments.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise AlbandError(f"learner 'sklearn': n_classes must be an integer >= 2, got {n_classes!r}")
    if not isinstance(estimator, str):
        raise AlbandError(f"learner 'sklearn': estimator must be 'package.module:Class', got {estimator!r}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise AlbandError(f"learner 'sklearn': params must be a table of the estimator's arguments, got {params!r}")
    learner = SklearnLearner(n_classes, estimator, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
    cls = estimator_class(estimator)
    try:
        built = learner.build()
        validate = getattr(built, "_validate_params", None)  # scikit-learn checks values when fitting
        if callable(validate):
            validate()
    except (TypeError, ValueError) as err:
        raise AlbandError(f"learner 'sklearn': {estimator}({params}): {err}") from None
    missing = [m for m in ("fit", "predict_proba") if not callable(getattr(built, m, None))]
    if missing:
        raise AlbandError(f"learner 'sklearn': {cls.__name__} has no {' / '.join(missing)} "
                          "(an estimator with fit and predict_proba is needed)")
    return learner


__all__ = ["STORE_SIZE", "SklearnLearner", "estimator_class", "sklearn_learner"]
