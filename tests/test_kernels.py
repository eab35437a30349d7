"""The native narrow product (alband.kernels) against numpy, under jit / vmap / grad, and its fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.kernels import NATIVE_MIN_ROWS, narrow_matmul, native_status, pool_uncertainty, uses_native_kernel

needs_native = pytest.mark.skipif(not native_status().available,
                                  reason=f"native kernels unavailable here: {native_status().reason}")


def _reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ w.astype(np.float64)


def _close(got, x, w):
    ref = _reference(x, w)
    # float32 sums of d products: error bound ~ d * eps * sum |x_k w_k|.
    scale = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
    np.testing.assert_array_less(np.abs(np.asarray(got, np.float64) - ref), 4 * x.shape[1] * 1.2e-7 * scale + 1e-30)


@needs_native
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([1, 2, 3, 2047, 2048, 2049, 4097]), d=st.sampled_from([1, 7, 8, 9, 16, 17, 384, 385]),
       c=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_native_product_equals_numpy(n, d, c, seed):
    """Every column-block width (1-12, blocks of 8 above 12), row counts around the 2048-row chunks,
    and d with and without an 8-float tail."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal((d, c), dtype=np.float32)
    _close(jax.jit(lambda a, b: narrow_matmul(a, b, native=True))(x, w), x, w)


@needs_native
def test_large_pool_takes_the_kernel_and_agrees_with_xla():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((NATIVE_MIN_ROWS + 5, 384), dtype=np.float32)
    w = rng.standard_normal((384, 10), dtype=np.float32)
    assert uses_native_kernel(x.shape, w.shape)
    jaxpr = str(jax.make_jaxpr(narrow_matmul)(x, w))
    assert "alband_narrow_matmul" in jaxpr
    _close(jax.jit(narrow_matmul)(x, w), x, w)
    np.testing.assert_allclose(np.asarray(narrow_matmul(x, w)), np.asarray(jnp.asarray(x) @ w), rtol=1e-4, atol=1e-4)


def test_small_or_non_float32_inputs_stay_on_xla():
    assert not uses_native_kernel((NATIVE_MIN_ROWS - 1, 384), (384, 4))
    assert not uses_native_kernel((NATIVE_MIN_ROWS, 384), (384, 4), jnp.float64)
    assert not uses_native_kernel((NATIVE_MIN_ROWS, 384, 2), (384, 4))
    assert not uses_native_kernel((NATIVE_MIN_ROWS, 384), (384, 13))  # past one register block: XLA is faster
    assert not uses_native_kernel((NATIVE_MIN_ROWS, 384), (383, 4))
    x = np.ones((10, 3), np.float32)
    assert "alband_narrow_matmul" not in str(jax.make_jaxpr(narrow_matmul)(x, np.ones((3, 2), np.float32)))


def test_forcing_the_kernel_with_bad_operands_names_the_problem():
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        narrow_matmul(np.ones((4, 3), np.float32), np.ones((2, 2), np.float32), native=True)
    with pytest.raises(ValueError, match="float32"):
        narrow_matmul(np.ones((4, 3), np.float16), np.ones((3, 2), np.float16), native=True)


@needs_native
def test_vmap_and_grad_match_xla():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 40), dtype=np.float32)
    ws = rng.standard_normal((5, 40, 6), dtype=np.float32)
    xs = rng.standard_normal((3, 3000, 40), dtype=np.float32)
    kernel = lambda a, b: narrow_matmul(a, b, native=True)  # noqa: E731
    np.testing.assert_allclose(jax.vmap(kernel, (None, 0))(x, ws), np.einsum("nd,bdc->bnc", x, ws), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.vmap(kernel, (0, None))(xs, ws[0]), np.einsum("bnd,dc->bnc", xs, ws[0]),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(jax.vmap(kernel)(xs, ws[:3]), np.einsum("bnd,bdc->bnc", xs, ws[:3]), rtol=1e-4, atol=1e-4)

    def loss(fn, a, b):
        return jnp.sum(jnp.tanh(fn(a, b)) ** 2)

    gx, gw = jax.grad(lambda a, b: loss(kernel, a, b), argnums=(0, 1))(x, ws[0])
    rx, rw = jax.grad(lambda a, b: loss(jnp.matmul, a, b), argnums=(0, 1))(x, ws[0])
    np.testing.assert_allclose(gx, rx, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gw, rw, rtol=1e-3, atol=1e-2)


def _reference_uncertainty(x, w, b, kind):
    z = x.astype(np.float64) @ w.astype(np.float64) + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    if kind == "entropy":
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
    top = np.sort(p, axis=1)
    if kind == "least_confidence":
        return 1.0 - top[:, -1]
    return -(top[:, -1] - (top[:, -2] if p.shape[1] > 1 else 0.0))


@needs_native
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([1, 7, 8, 9, 2047, 2049, 4100]), d=st.sampled_from([1, 5, 8, 33, 384]),
       c=st.integers(1, 20), kind=st.sampled_from(["entropy", "margin", "least_confidence"]),
       scale=st.sampled_from([0.01, 1.0, 10.0]), seed=st.integers(0, 2**31 - 1))
def test_fused_uncertainty_equals_numpy(n, d, c, kind, scale, seed):
    """Rows in and out of the 8-row blocks and 2048-row chunks; flat, moderate and peaked softmaxes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    w = (scale * rng.standard_normal((d, c))).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    got = np.asarray(jax.jit(lambda a, v, u: pool_uncertainty(a, v, u, kind, native=True))(x, w, b), np.float64)
    ref = _reference_uncertainty(x, w, b, kind)
    # float32 logits (error ~ d * eps * |x||w|) move the scores by at most that much times a small factor.
    logit_err = 4 * d * 1.2e-7 * (np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)).max(axis=1)
    np.testing.assert_array_less(np.abs(got - ref), 4 * logit_err + 1e-5)


@needs_native
def test_fused_margin_is_zero_when_the_top_class_is_shared():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 16), dtype=np.float32)
    w = rng.standard_normal((16, 3), dtype=np.float32)
    w = np.concatenate([w, w[:, :1]], axis=1)  # class 3 duplicates class 0: equal logits
    b = np.array([0.5, -9.0, -9.0, 0.5], np.float32)
    got = np.asarray(pool_uncertainty(x, w, b, "margin", native=True))
    assert np.all(got[(x @ w[:, 0] + 0.5) >= (x @ w[:, 1:3] - 9.0).max(axis=1)] == 0.0)


@needs_native
def test_fused_uncertainty_under_vmap_and_grad_matches_xla():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3000, 24), dtype=np.float32)
    ws = rng.standard_normal((4, 24, 5), dtype=np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    for kind in ("entropy", "margin", "least_confidence"):
        native = jax.vmap(lambda w, kind=kind: pool_uncertainty(x, w, b, kind, native=True))(ws)
        xla = jax.vmap(lambda w, kind=kind: pool_uncertainty(x, w, b, kind, native=False))(ws)
        np.testing.assert_allclose(native, xla, rtol=1e-5, atol=1e-5)
        grad_native = jax.grad(lambda w, kind=kind: pool_uncertainty(x, w, b, kind, native=True).sum())(ws[0])
        grad_xla = jax.grad(lambda w, kind=kind: pool_uncertainty(x, w, b, kind, native=False).sum())(ws[0])
        np.testing.assert_allclose(grad_native, grad_xla, rtol=1e-5, atol=1e-5)


def test_unknown_uncertainty_kind_is_named():
    with pytest.raises(ValueError, match="'entropie'"):
        pool_uncertainty(np.ones((3, 2), np.float32), np.ones((2, 2), np.float32), np.ones(2, np.float32), "entropie")


@needs_native
@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence"])
def test_uncertainty_policies_on_a_large_pool_pick_the_xla_batch(name):
    """On a pool past NATIVE_MIN_ROWS the policies score natively; their batch is XLA's."""
    from alband.models.softmax_regression import SoftmaxParams, predict_proba
    from alband.policies import RoundContext, make_policy
    from alband.policies.uncertainty import xla_uncertainty

    rng = np.random.default_rng(2)
    n = NATIVE_MIN_ROWS + 1000
    x = jnp.asarray(rng.standard_normal((n, 64), dtype=np.float32))
    params = SoftmaxParams(jnp.asarray(rng.standard_normal((64, 5), dtype=np.float32) * 0.3),
                           jnp.asarray(rng.standard_normal(5, dtype=np.float32) * 0.1))
    queried = jnp.asarray(rng.random(n) < 0.3)
    ctx = RoundContext(x, queried, predict_proba(params, x), params, jnp.ones(n, jnp.float32), jnp.int32(1),
                       head=(params.w, params.b))
    policy = make_policy(name)
    jaxpr = str(jax.make_jaxpr(lambda c: policy.select((), c, jax.random.key(0), 50)[0])(ctx))
    assert "alband_pool_uncertainty" in jaxpr
    ours = np.asarray(jax.jit(lambda c: policy.select((), c, jax.random.key(0), 50)[0])(ctx))
    probs = jax.nn.softmax(x @ params.w + params.b, axis=-1)
    xla = np.asarray(jax.lax.top_k(jnp.where(queried, -jnp.inf, xla_uncertainty(probs, name)), 50)[1])
    assert len(set(ours.tolist())) == 50 and not np.asarray(queried)[ours].any()
    assert set(ours.tolist()) == set(xla.tolist())


def _status_in_subprocess(env_updates: dict[str, str], tmp_path: Path) -> dict:
    code = ("import json, numpy as np; from alband.kernels import native_status, narrow_matmul; "
            "s = native_status().as_dict(); x = np.ones((70000, 8), np.float32); w = np.ones((8, 3), np.float32); "
            "s['sum'] = float(narrow_matmul(x, w).sum()); print(json.dumps(s))")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "ALBAND_CACHE_DIR": str(tmp_path / "cache"), **env_updates}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_disabled_kernels_fall_back_to_xla(tmp_path):
    status = _status_in_subprocess({"ALBAND_NATIVE_KERNELS": "0"}, tmp_path)
    assert status["available"] is False and "ALBAND_NATIVE_KERNELS" in status["reason"]
    assert status["sum"] == 70000 * 8 * 3


def test_no_compiler_falls_back_to_xla(tmp_path):
    empty = tmp_path / "empty_path"
    empty.mkdir()
    status = _status_in_subprocess({"PATH": str(empty), "CXX": ""}, tmp_path)
    if "CPU" in status["reason"] or "x86-64" in status["reason"]:
        pytest.skip(status["reason"])
    assert status["available"] is False and "compiler" in status["reason"]
    assert status["sum"] == 70000 * 8 * 3
    assert not (tmp_path / "cache" / "kernels").exists() or not any((tmp_path / "cache" / "kernels").rglob("*.so"))


def test_failed_compilation_is_reported_and_falls_back(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    script = fake / "broken-c++"
    script.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo broken 1.0; exit 0; fi\necho 'error: no' >&2\nexit 3\n")
    script.chmod(0o755)
    status = _status_in_subprocess({"CXX": str(script)}, tmp_path)
    if "CPU" in status["reason"] or "x86-64" in status["reason"]:
        pytest.skip(status["reason"])
    assert status["available"] is False and "exit 3" in status["reason"], status
    assert status["sum"] == 70000 * 8 * 3


@needs_native
@pytest.mark.slow
def test_compiled_once_then_loaded_from_the_cache(tmp_path):
    first = _status_in_subprocess({}, tmp_path)
    second = _status_in_subprocess({}, tmp_path)
    assert first["available"] and first["compiled_now"] is True
    assert second["available"] and second["compiled_now"] is False and second["library"] == first["library"]
    assert first["sum"] == second["sum"] == 70000 * 8 * 3
    library = Path(first["library"])
    assert library.stat().st_mode & 0o755 == 0o755  # loadable by other users of a shared cache
    library.write_bytes(b"not a shared library")  # a truncated or foreign file in the cache
    third = _status_in_subprocess({}, tmp_path)
    assert third["available"] and third["compiled_now"] is True and third["sum"] == 70000 * 8 * 3
