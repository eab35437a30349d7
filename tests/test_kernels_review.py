"""Second look at alband.kernels: extreme logits, automatic dispatch on odd shapes, concurrent calls,
loops and higher-order derivatives around the native kernels, against XLA's own arithmetic."""

from __future__ import annotations

import threading
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.kernels import NATIVE_MIN_ROWS, narrow_matmul, native_status, pool_uncertainty

needs_native = pytest.mark.skipif(not native_status().available,
                                  reason=f"native kernels unavailable here: {native_status().reason}")
KINDS = ("entropy", "margin", "least_confidence")


def _both(z, b=None):
    """Scores of logits ``z`` (rows) by the kernel and by XLA: x = z, W = I, so the logits are exact."""
    z = np.asarray(z, np.float32)
    c = z.shape[1]
    w = np.eye(c, dtype=np.float32)
    b = np.zeros(c, np.float32) if b is None else np.asarray(b, np.float32)
    return {kind: (np.asarray(pool_uncertainty(z, w, b, kind, native=True)),
                   np.asarray(pool_uncertainty(z, w, b, kind, native=False))) for kind in KINDS}


@needs_native
def test_a_class_masked_by_a_minus_inf_bias_scores_as_in_xla():
    """A bias of -inf (a class switched off) gives p = 0 for it: finite scores, as XLA's."""
    scores = _both([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, -1.0, 9.0]] * 3, b=[0.0, 0.0, -np.inf])
    for kind, (native, xla) in scores.items():
        assert np.all(np.isfinite(native)), (kind, native)
        np.testing.assert_allclose(native, xla, rtol=1e-6, atol=1e-6, err_msg=kind)


@needs_native
def test_logit_gaps_beyond_the_float_range_score_as_in_xla():
    """z_c - max z overflowing to -inf is a probability of 0, not a NaN entropy."""
    scores = _both([[3e38, -3e38], [-3e38, 3e38], [1e30, -1e30], [0.0, 0.0]])
    for kind, (native, xla) in scores.items():
        np.testing.assert_allclose(native, xla, rtol=1e-6, atol=1e-6, err_msg=kind)


@needs_native
def test_equal_peaked_and_single_class_logits():
    scores = _both([[1.0, 1.0, 1.0], [3.0, 3.0, -1.0], [0.0, -20.0, -20.0], [0.0, -90.0, -200.0], [1e4, 0.0, 0.0]])
    for kind, (native, xla) in scores.items():
        np.testing.assert_allclose(native, xla, rtol=1e-5, atol=1e-7, err_msg=kind)
    assert scores["margin"][0][0] == 0.0 and scores["margin"][0][1] == 0.0  # top logit shared: margin 0
    np.testing.assert_allclose(scores["entropy"][0][0], np.log(3.0), rtol=1e-6)
    one = _both([[0.0], [7.0], [-1e30]])
    for kind in ("entropy", "least_confidence"):
        np.testing.assert_array_equal(one[kind][0], 0.0)


@needs_native
def test_automatic_dispatch_accepts_what_xla_accepts():
    """On a pool past NATIVE_MIN_ROWS a broadcastable bias (1,) works as on a small pool (XLA's broadcasting)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((NATIVE_MIN_ROWS + 3, 4), dtype=np.float32)
    w = rng.standard_normal((4, 3), dtype=np.float32)
    b = np.array([0.5], np.float32)
    for kind in KINDS:
        np.testing.assert_allclose(pool_uncertainty(x, w, b, kind), pool_uncertainty(x, w, b, kind, native=False),
                                   rtol=1e-5, atol=1e-5)


@needs_native
def test_automatic_dispatch_with_mismatched_shapes_fails_at_trace_time():
    """A d mismatch is the same shape error on large pools as on small ones, before anything runs."""
    x = np.ones((NATIVE_MIN_ROWS, 5), np.float32)
    with pytest.raises(TypeError):
        narrow_matmul(x, np.ones((6, 3), np.float32))
    with pytest.raises(TypeError):
        pool_uncertainty(x, np.ones((6, 3), np.float32), np.zeros(3, np.float32), "entropy")


@needs_native
def test_concurrent_calls_from_python_threads_and_within_one_program():
    """Four Python threads run a program of six independent native calls (rows over several chunks) at once."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((9 * 2048 + 5, 24), dtype=np.float32))
    ws = [jnp.asarray(rng.standard_normal((24, c), dtype=np.float32)) for c in (3, 10, 17)]
    b = jnp.asarray(rng.standard_normal(10).astype(np.float32))

    def program(native):
        return jax.jit(lambda x, w0, w1, w2, b: (
            narrow_matmul(x, w0, native=native), narrow_matmul(x, w1, native=native),
            narrow_matmul(x, w2, native=native), pool_uncertainty(x, w1, b, "entropy", native=native),
            pool_uncertainty(x, w1, b, "margin", native=native),
            pool_uncertainty(2 * x, w1, b, "least_confidence", native=native)))

    ours, reference = program(True), [np.asarray(r) for r in program(False)(x, *ws, b)]
    errors: list[str] = []

    def worker():
        try:
            for _ in range(6):
                for got, ref in zip(ours(x, *ws, b), reference):
                    np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-4, atol=2e-4)
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "native calls did not finish (deadlock?)"
    assert not errors, errors[0]


@needs_native
def test_scan_map_and_donation_around_the_kernels():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((4100, 16), dtype=np.float32))
    ws = jnp.asarray(rng.standard_normal((3, 16, 16), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal(16).astype(np.float32))
    expected = np.einsum("nd,bdc->bnc", np.asarray(x), np.asarray(ws))
    _, scanned = jax.lax.scan(lambda c, w: (c, narrow_matmul(x, w, native=True)), 0, ws)
    np.testing.assert_allclose(scanned, expected, rtol=1e-4, atol=1e-4)
    for batch_size in (None, 2):
        mapped = jax.lax.map(lambda w: pool_uncertainty(x, w, b, "entropy", native=True), ws, batch_size=batch_size)
        np.testing.assert_allclose(mapped, jax.vmap(lambda w: pool_uncertainty(x, w, b, "entropy", native=False))(ws),
                                   rtol=1e-5, atol=1e-5)
    # d == C: the output could take the donated input's buffer; the kernel still reads x intact.
    donated = jax.jit(lambda x, w: narrow_matmul(x, w, native=True) * 1.0, donate_argnums=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some donated buffers were not usable" when XLA declines the buffer
        got = donated(jnp.array(x), ws[0])
    np.testing.assert_allclose(got, expected[0], rtol=1e-4, atol=1e-4)


@needs_native
def test_second_order_derivatives_and_partial_vmaps_match_xla():
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((300, 7), dtype=np.float32))
    w = jnp.asarray(rng.standard_normal((7, 5), dtype=np.float32) * 0.5)
    v = jnp.asarray(rng.standard_normal((7, 5), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal(5).astype(np.float32))

    def hvp(native):
        loss = lambda w: jnp.sum(jnp.sin(narrow_matmul(x, w, native=native)))  # noqa: E731
        return jax.jvp(jax.grad(loss), (w,), (v,))[1]

    np.testing.assert_allclose(hvp(True), hvp(False), rtol=1e-4, atol=1e-4)

    def hvp_scores(native):
        loss = lambda w: pool_uncertainty(x, w, b, "entropy", native=native).sum()  # noqa: E731
        return jax.jvp(jax.grad(loss), (w,), (v,))[1]

    np.testing.assert_allclose(hvp_scores(True), hvp_scores(False), rtol=1e-4, atol=1e-4)
    xs, bs = jnp.stack([x, 0.5 * x]), jnp.stack([b, 2.0 * b])
    for axes, args, kinds in (((0, None, None), (xs, w, b), ("margin",)), ((None, None, 0), (x, w, bs), ("entropy",)),
                              ((0, None, 0), (xs, w, bs), KINDS)):
        for kind in kinds:
            got = jax.vmap(lambda x, w, b, kind=kind: pool_uncertainty(x, w, b, kind, native=True), in_axes=axes)(*args)
            ref = jax.vmap(lambda x, w, b, kind=kind: pool_uncertainty(x, w, b, kind, native=False), in_axes=axes)(*args)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
