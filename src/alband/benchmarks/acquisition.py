"""Benchmark of acquisition: scoring a pool against the memory-read roof, and diverse batches.

Pool: ``n`` rows of ``N(0, I_d)``, float32, seeded; a 10-class softmax model
``p = softmax(x W + b)`` with ``W ~ N(0, 4/d)``, so predictions are neither
uniform nor one-hot.

* ``score_topk_seconds``: the ``entropy`` policy choosing a batch of ``batch``
  items from the whole pool (one jitted call: the round context the loop builds,
  then the policy's ``select``: entropy of every item and a masked
  ``lax.top_k``). On pools of ``NATIVE_MIN_ROWS`` rows or more, where the machine
  allows it, the policy scores in one fused native pass
  (:func:`alband.kernels.pool_uncertainty`); ``native_kernel`` says whether it
  did, and why not. ``score_topk_xla_seconds``: the same batch from XLA alone
  (``softmax(X @ W + b)``, entropy, ``lax.top_k``), and
  ``native_and_xla_same_batch`` whether both chose the same items;
  ``margin_topk_seconds`` the ``margin`` policy the same way; ``streamed_*`` the
  entropy scored in chunks of ``chunk_rows`` rows with a running top-B
  (:func:`alband.policies._chunked.streamed_top_b`).
* ``read_roof_seconds``: one jitted ``X @ v`` pass over the same device array in
  the same run -- the time to read the pool once, which no scorer can beat;
  ``ratio = score_topk_seconds / read_roof_seconds``.
* At ``diversity_n`` items (the first rows of the same pool, default 10,000) with
  1% of them labelled: the time for one batch by BADGE, coreset (k-center
  greedy, including the distances to the labelled items), the G-optimal batch
  (``g_design`` with its defaults: at ``B < d`` the regularised design
  conditioned on the labelled items, greedy rank-1; also on the top 64
  principal directions, ``g_design_pca64``, where ``B >= 64`` makes it the
  Frank-Wolfe design + rounding), GO and ``d_greedy``. The target is 0.2 s per
  batch of 100.
* Peers, when the optional ``bench`` extra is installed (modAL,
  scikit-activeml): modAL's ``margin_sampling`` and scikit-activeml's
  ``UncertaintySampling(method="margin_sampling")`` on the same pool (every row
  a candidate, as in ours), and scikit-activeml's ``Badge`` on the same
  ``diversity_n`` items with the same labelled rows excluded, all with batch
  ``batch``. Their model is a scikit-learn ``LogisticRegression`` carrying the
  same ``W`` and ``b`` (multinomial softmax, the same probabilities:
  ``peer_model_max_abs_diff`` checks it on 1,000 rows), never refitted
  (``fit_clf=False``). ``*_overlap`` is the share of a peer's margin batch
  that is also in ours (1.0 up to float32-vs-float64 near-ties at the cut);
  ``skactiveml_badge_distinct`` counts the distinct indices of its BADGE batch
  (its issue 586: duplicates). Ratios are peer seconds / ours (margin:
  ``margin_topk_seconds``; BADGE: ``badge_seconds``). Absent packages give
  ``None`` timings and ratios and a reason in ``peers_skipped``.

The read roof, the policy's batch and the XLA batch are timed in alternation
(one call of each per repeat), so that the load of a shared machine weighs on
their ratio less. Every timing is the median of ``repeats`` calls (default 5) *after* a warm-up
call (compilation, and first touch of freshly allocated memory, which is about
half as fast as reused buffers); the warm-up time is reported as
``*_first_seconds``. Machine information (cores, load average, versions) comes
with the numbers: on a shared machine they vary with the load.
"""

from __future__ import annotations

import os
import statistics
import time
from importlib import metadata
from typing import Any, Callable

import numpy as np

from alband.errors import AlbandError

TARGET_BATCH_SECONDS = 0.2


def _check_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise AlbandError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _timed_alternating(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, Any]]:
    """Like :func:`_timed` for several functions, called in turn in every repeat.

    Alternating spreads slow and fast spells of a shared machine over all of
    them, so their ratios are steadier than from back-to-back blocks of repeats.
    """
    import jax

    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        jax.block_until_ready(fn())
        out[name] = {"first": time.perf_counter() - start, "all": []}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            out[name]["all"].append(time.perf_counter() - start)
    for timing in out.values():
        timing["seconds"] = statistics.median(timing["all"])
    return out


def _timed(fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Median wall time of ``fn`` over ``repeats`` calls after one warm-up call."""
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "all": times, "first": first}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def acquisition_machine_info() -> dict[str, Any]:
    """Cores, platform, load average and the versions of JAX and of the peer libraries."""
    from alband.benchmarks.design import machine_info

    info = machine_info()
    info.update(
        {
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "scikit-learn": _version("scikit-learn"),
            "modAL-python": _version("modAL-python"),
            "scikit-activeml": _version("scikit-activeml"),
        }
    )
    return info


def acquisition_pool(n: int, d: int, n_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The benchmark pool ``X`` (n, d) and model ``W`` (d, C), ``b`` (C,), float32."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    W = (rng.standard_normal((d, n_classes)) * (2.0 / np.sqrt(d))).astype(np.float32)
    b = (0.1 * rng.standard_normal(n_classes)).astype(np.float32)
    return X, W, b


def bench_acquisition(
    n: int,
    d: int = 384,
    *,
    repeats: int = 5,
    batch: int = 100,
    seed: int = 0,
    diversity_n: int = 10_000,
    n_classes: int = 10,
    with_peers: bool = True,
    chunk_rows: int | None = None,
) -> dict[str, Any]:
    """Time pool scoring against the read roof, diverse batches, and the peers (module docstring).

    ``chunk_rows`` defaults to :data:`alband.policies._chunked.DEFAULT_CHUNK_ROWS`.
    Returns a JSON-able dict; timings in seconds (medians), ``None`` where a
    measurement was skipped (its reason in ``peers_skipped``).
    """
    import jax
    import jax.numpy as jnp

    from alband.kernels import NATIVE_MIN_ROWS, native_status, uses_native_kernel, xla_uncertainty
    from alband.models.softmax_regression import SoftmaxParams, predict_proba
    from alband.policies import RoundContext, make_policy
    from alband.policies._chunked import DEFAULT_CHUNK_ROWS, streamed_top_b_device
    from alband.policies.uncertainty import entropy_scores

    n = _check_int(n, "n")
    d = _check_int(d, "d")
    repeats = _check_int(repeats, "repeats")
    batch = _check_int(batch, "batch")
    diversity_n = _check_int(diversity_n, "diversity_n")
    n_classes = _check_int(n_classes, "n_classes", 2)
    chunk_rows = DEFAULT_CHUNK_ROWS if chunk_rows is None else _check_int(chunk_rows, "chunk_rows")
    if batch > n:
        raise AlbandError(f"batch ({batch}) must not exceed the pool size n ({n})")

    X_host, W_host, b_host = acquisition_pool(n, d, n_classes, seed)
    X = jax.device_put(X_host)
    W, b = jnp.asarray(W_host), jnp.asarray(b_host)
    v = jnp.ones((d,), jnp.float32)

    entropy_policy, margin_policy = make_policy("entropy"), make_policy("margin")
    unqueried = jnp.zeros((n,), bool)
    unit_cost = jnp.ones((n,), jnp.float32)

    def policy_batch(policy, X, W, b):
        params = SoftmaxParams(W, b)
        ctx = RoundContext(X, unqueried, predict_proba(params, X), params, unit_cost, jnp.int32(1), head=(W, b))
        return policy.select(policy.init(ctx), ctx, jax.random.key(0), batch)[0]

    entropy_topk = jax.jit(lambda X, W, b: policy_batch(entropy_policy, X, W, b))
    margin_topk = jax.jit(lambda X, W, b: policy_batch(margin_policy, X, W, b))

    @jax.jit
    def entropy_topk_xla(X, W, b):
        return jax.lax.top_k(xla_uncertainty(jax.nn.softmax(X @ W + b, axis=-1), "entropy"), batch)[1]

    @jax.jit
    def read_once(X, v):
        return X @ v

    def chunk_entropy(rows):
        return entropy_scores(jax.nn.softmax(rows @ W + b, axis=-1))

    timed = _timed_alternating({"read": lambda: read_once(X, v), "score": lambda: entropy_topk(X, W, b),
                                "score_xla": lambda: entropy_topk_xla(X, W, b)}, repeats)
    read, score, score_xla = timed["read"], timed["score"], timed["score_xla"]
    same_batch = bool(np.array_equal(np.sort(np.asarray(entropy_topk(X, W, b))),
                                     np.sort(np.asarray(entropy_topk_xla(X, W, b)))))
    margin = _timed(lambda: margin_topk(X, W, b), repeats)
    streamed = _timed(lambda: streamed_top_b_device(chunk_entropy, X, batch, chunk_rows), repeats)

    out: dict[str, Any] = {
        "n": n,
        "d": d,
        "n_classes": n_classes,
        "batch": batch,
        "repeats": repeats,
        "seed": seed,
        "score_topk_seconds": score["seconds"],
        "score_topk_seconds_all": score["all"],
        "score_topk_first_seconds": score["first"],
        "read_roof_seconds": read["seconds"],
        "read_roof_seconds_all": read["all"],
        "read_roof_first_seconds": read["first"],
        "ratio": score["seconds"] / read["seconds"] if read["seconds"] > 0 else None,
        "score_topk_xla_seconds": score_xla["seconds"],
        "ratio_xla": score_xla["seconds"] / read["seconds"] if read["seconds"] > 0 else None,
        "native_kernel": {**native_status().as_dict(), "used": uses_native_kernel(X.shape, W.shape),
                          "min_rows": NATIVE_MIN_ROWS},
        "native_and_xla_same_batch": same_batch,
        "read_gb_per_second": X_host.nbytes / read["seconds"] / 1e9 if read["seconds"] > 0 else None,
        "margin_topk_seconds": margin["seconds"],
        "streamed_score_topk_seconds": streamed["seconds"],
        "streamed_chunk_rows": chunk_rows,
    }

    # Diverse batches on the first diversity_n rows, 1% of them labelled.
    m = min(diversity_n, n)
    rng = np.random.default_rng(seed + 1)
    n_labelled = max(1, m // 100)
    queried = np.zeros(m, bool)
    queried[rng.choice(m, n_labelled, replace=False)] = True
    x_div = X[:m]
    ctx = RoundContext(
        x=x_div,
        queried=jnp.asarray(queried),
        probs=jax.nn.softmax(x_div @ W + b, axis=-1),
        params=SoftmaxParams(W, b),
        cost_usd=jnp.full((m,), 1e-4, jnp.float32),
        round=jnp.int32(1),
        head=(W, b),
    )
    div_batch = min(batch, m)
    key = jax.random.PRNGKey(seed)
    out.update({"diversity_n": m, "diversity_labelled": n_labelled, "diversity_batch": div_batch,
                "target_batch_seconds": TARGET_BATCH_SECONDS})
    for label, name, options in (
        ("badge", "badge", {}),
        ("coreset", "coreset", {}),
        ("g_design", "g_design", {}),
        ("g_design_pca64", "g_design", {"n_components": 64}),
        ("go", "go", {}),
        ("d_greedy", "d_greedy", {}),
    ):
        if label == "g_design_pca64" and d <= 64:
            out[f"{label}_seconds"] = None
            continue
        policy = make_policy(name, **options)
        select = jax.jit(lambda ctx, key, policy=policy: policy.select(policy.init(ctx), ctx, key, div_batch)[0])
        timing = _timed(lambda select=select: select(ctx, key), repeats)
        out[f"{label}_seconds"] = timing["seconds"]
        out[f"{label}_first_seconds"] = timing["first"]

    our_margin_picks = np.asarray(margin_topk(X, W, b))
    out.update(_peers(X_host, W_host, b_host, queried, m, batch, div_batch, repeats, seed, out, with_peers,
                      our_margin_picks))
    out["machine"] = acquisition_machine_info()
    return out


def _sklearn_model(W: np.ndarray, b: np.ndarray, seed: int):
    """A fitted scikit-learn LogisticRegression whose coefficients are ``W``, ``b`` (same model as ours)."""
    from sklearn.linear_model import LogisticRegression

    d, c = W.shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4 * c, d))
    y = np.arange(4 * c) % c
    clf = LogisticRegression(max_iter=50).fit(x, y)
    clf.coef_ = W.T.astype(np.float64)
    clf.intercept_ = b.astype(np.float64)
    return clf


def _peers(X, W, b, queried, m, batch, div_batch, repeats, seed, ours, with_peers,
           our_margin_picks=None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "modal_margin_seconds": None,
        "skactiveml_margin_seconds": None,
        "skactiveml_badge_seconds": None,
        "modal_margin_ratio": None,
        "skactiveml_margin_ratio": None,
        "skactiveml_badge_ratio": None,
        "modal_margin_overlap": None,
        "skactiveml_margin_overlap": None,
        "skactiveml_badge_distinct": None,
        "peer_model_max_abs_diff": None,
        "peers_skipped": {},
    }
    skipped = result["peers_skipped"]
    if not with_peers:
        skipped["all"] = "with_peers=False"
        return result

    def overlap(picks) -> float | None:
        if our_margin_picks is None:
            return None
        return len(set(np.asarray(picks).tolist()) & set(np.asarray(our_margin_picks).tolist())) / batch

    def same_model(predict_proba) -> float:
        rows = X[:1000]
        logits = rows.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        return float(np.max(np.abs(np.asarray(predict_proba(rows)) - expected)))

    try:
        from modAL.uncertainty import margin_sampling
    except ImportError as err:
        skipped["modAL"] = f"not installed ({err}); install the 'bench' extra"
    else:
        try:
            clf = _sklearn_model(W, b, seed)
            result["peer_model_max_abs_diff"] = same_model(clf.predict_proba)
            timing = _timed(lambda: np.asarray(_first(margin_sampling(clf, X, n_instances=batch))), repeats)
            result["modal_margin_seconds"] = timing["seconds"]
            result["modal_margin_ratio"] = timing["seconds"] / ours["margin_topk_seconds"]
            result["modal_margin_overlap"] = overlap(_first(margin_sampling(clf, X, n_instances=batch)))
        except Exception as err:  # a peer's failure must not hide our numbers
            skipped["modAL"] = f"failed: {type(err).__name__}: {err}"

    try:
        from skactiveml.classifier import SklearnClassifier
        from skactiveml.pool import Badge, UncertaintySampling
    except ImportError as err:
        skipped["scikit-activeml"] = f"not installed ({err}); install the 'bench' extra"
        return result
    try:
        from sklearn.linear_model import LogisticRegression

        n = X.shape[0]
        c = W.shape[1]

        def wrapped(x_fit: np.ndarray):
            """A scikit-activeml classifier fitted on a few rows, then given our W and b."""
            y_fit = np.arange(x_fit.shape[0]) % c
            clf = SklearnClassifier(LogisticRegression(max_iter=50), classes=np.arange(c), random_state=seed)
            clf.fit(x_fit, y_fit)
            clf.estimator_.coef_ = W.T.astype(np.float64)
            clf.estimator_.intercept_ = b.astype(np.float64)
            return clf

        clf = wrapped(X[: 4 * c])
        if result["peer_model_max_abs_diff"] is None:
            result["peer_model_max_abs_diff"] = same_model(clf.predict_proba)
        y_pool = np.full(n, np.nan)  # every row a candidate, as in our margin_topk and modAL
        margin_qs = UncertaintySampling(method="margin_sampling", random_state=seed)
        timing = _timed(lambda: margin_qs.query(X, y_pool, clf, fit_clf=False, batch_size=batch), repeats)
        result["skactiveml_margin_seconds"] = timing["seconds"]
        result["skactiveml_margin_ratio"] = timing["seconds"] / ours["margin_topk_seconds"]
        result["skactiveml_margin_overlap"] = overlap(margin_qs.query(X, y_pool, clf, fit_clf=False,
                                                                      batch_size=batch))

        y_div = np.full(m, np.nan)
        y_div[queried] = np.flatnonzero(queried) % c  # labelled rows: not candidates, as in ours
        badge_qs = Badge(random_state=seed)
        timing = _timed(lambda: badge_qs.query(X[:m], y_div, clf, fit_clf=False, batch_size=div_batch), repeats)
        result["skactiveml_badge_seconds"] = timing["seconds"]
        result["skactiveml_badge_ratio"] = timing["seconds"] / ours["badge_seconds"]
        picks = badge_qs.query(X[:m], y_div, clf, fit_clf=False, batch_size=div_batch)
        result["skactiveml_badge_distinct"] = len(set(np.asarray(picks).tolist()))
    except Exception as err:  # a peer's failure must not hide our numbers
        skipped["scikit-activeml"] = f"failed: {type(err).__name__}: {err}"
    return result


def _first(result: Any) -> Any:
    """modAL query strategies return indices, or (indices, instances) in older versions."""
    return result[0] if isinstance(result, tuple) else result
