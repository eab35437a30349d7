"""Preference-pair policies: pure functions against references, certificates and batch invariants."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.design import wolfe_atwood_design
from alband.models.bradley_terry import BradleyTerry, GaussianPosterior
from alband.policies import make_policy
from alband.policies.preference import make_pair_aux, pair_differences
from alband.policies.preference.apo import apo_batch, greedy_rank_one_batch, lazy_greedy_rank_one_batch
from alband.policies.preference.bal_pm import bal_pm_batch, knn_distances
from alband.policies.preference.d_design import fisher_d_design_batch, prior_precision
from alband.policies.preference.dope import list_design, list_information
from alband.policies.preference.double_ts import double_ts_decisions
from alband.policies.preference.g_design import fisher_g_design, fisher_g_design_batch
from alband.policies.preference.gated import dollars_saved, gate, gated_batch, GatedState
from alband.policies.preference.information_gain import (
    bald_scores_probit,
    bald_scores_samples,
    probit_mutual_information,
)
from alband.policies.preference.random_pairs import random_pair_scores
from alband.policies.preference.uncertainty import pair_uncertainty_scores


def _posterior(rng, d, n_labels=40, l2=1.0):
    z = rng.normal(size=(n_labels, d)).astype(np.float32)
    theta = rng.normal(size=d).astype(np.float32) * 0.5
    mu = 1 / (1 + np.exp(-z @ theta))
    V = l2 * np.eye(d) + (z * (mu * (1 - mu))[:, None]).T @ z
    return GaussianPosterior(jnp.asarray(theta), jnp.asarray(V, jnp.float32))


def _check_batch(picks, queried, batch_size):
    picks = np.asarray(picks)
    assert picks.shape == (batch_size,)
    real = picks[picks >= 0]
    assert len(set(real.tolist())) == len(real), "batch not distinct"
    assert not np.asarray(queried)[real].any(), "a judged pair was asked again"
    left = int((~np.asarray(queried)).sum())
    assert len(real) == min(batch_size, left), "-1 only when fewer unjudged pairs are left"


def test_uncertainty_scores_are_minus_abs_margin():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 4)).astype(np.float32)
    theta = rng.normal(size=4).astype(np.float32)
    np.testing.assert_allclose(np.asarray(pair_uncertainty_scores(jnp.asarray(z), jnp.asarray(theta))),
                               -np.abs(z @ theta), rtol=1e-5, atol=1e-6)


def test_probit_closed_form_is_the_monte_carlo_limit_for_the_probit_link():
    from scipy.stats import norm

    rng = np.random.default_rng(1)
    for mean, var in [(0.0, 1.0), (1.5, 0.3), (-0.7, 4.0), (3.0, 0.01)]:
        f = rng.normal(mean, np.sqrt(var), size=400_000)
        p = norm.cdf(f)

        def H(q):
            q = np.clip(q, 1e-12, 1 - 1e-12)
            return -(q * np.log(q) + (1 - q) * np.log(1 - q))

        mc = H(p.mean()) - H(p).mean()
        closed = float(probit_mutual_information(jnp.float32(mean), jnp.float32(var)))
        # Houlsby et al.'s form approximates the entropy term's expectation: agreement to ~1e-2 nats.
        assert abs(closed - mc) < 0.012, (mean, var, closed, mc)


def test_bald_probit_and_samples_agree_on_the_logistic_link():
    rng = np.random.default_rng(2)
    post = _posterior(rng, 5, n_labels=8)
    z = jnp.asarray(rng.normal(size=(200, 5)).astype(np.float32))
    closed = np.asarray(bald_scores_probit(z, post))
    mc = np.asarray(bald_scores_samples(z, post, jax.random.key(0), 20_000))
    assert np.max(np.abs(closed - mc)) < 0.03
    assert np.corrcoef(closed, mc)[0, 1] > 0.99


def _numpy_greedy(z, V, w, available, B, criterion):
    z = z.astype(np.float64)
    V = V.astype(np.float64).copy()
    available = available.copy()
    picks = []
    for _ in range(B):
        s = np.einsum("nd,de,ne->n", z, np.linalg.inv(V), z)
        score = s if criterion == "apo" else w * s
        score = np.where(available, score, -np.inf)
        i = int(np.argmax(score))
        picks.append(i)
        available[i] = False
        V += w[i] * np.outer(z[i], z[i])  # re-inversion next step: the reference the rank-1 updates must match
    return picks


@pytest.mark.parametrize("criterion", ["apo", "d"])
def test_greedy_rank_one_batch_equals_reinversion_reference(criterion):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(300, 6)).astype(np.float32)
    post = _posterior(rng, 6)
    w = rng.uniform(0.05, 0.25, size=300).astype(np.float32)
    avail = rng.random(300) > 0.2
    ref = _numpy_greedy(z, np.asarray(post.precision), w, avail, 12, criterion)
    got = greedy_rank_one_batch(jnp.asarray(z), post.precision, jnp.asarray(w), jnp.asarray(avail), 12, criterion)
    assert np.asarray(got).tolist() == ref
    for c in (1, 4, 32):  # lazy evaluation: the same picks whatever the number of re-scored candidates
        lazy = lazy_greedy_rank_one_batch(jnp.asarray(z), post.precision, jnp.asarray(w), jnp.asarray(avail), 12,
                                          criterion, c)
        assert np.asarray(lazy).tolist() == ref


@pytest.mark.parametrize("n,d,block_cols,chunk_rows", [(50, 7, 3, 16), (1000, 40, 16, 300), (300, 9, 128, 2048)])
def test_triangular_leverages_are_the_leverages_of_r_transpose_r(n, d, block_cols, chunk_rows):
    from alband.design._linalg import triangular_leverages
    from alband.policies.preference._posterior import precision_factor_inverse

    rng = np.random.default_rng(n + d)
    z = rng.normal(size=(n, d)).astype(np.float32)
    A = rng.normal(size=(d, 3 * d))
    V = (np.eye(d) + A @ A.T / d).astype(np.float32)
    R, V_inv = precision_factor_inverse(jnp.asarray(V))
    assert np.allclose(np.tril(np.asarray(R)), np.asarray(R))
    expected = np.einsum("nd,de,ne->n", z.astype(np.float64), np.linalg.inv(V.astype(np.float64)), z)
    got = triangular_leverages(jnp.asarray(z), R, block_cols=block_cols, chunk_rows=chunk_rows)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-4)
    np.testing.assert_allclose(np.asarray(V_inv), np.linalg.inv(V.astype(np.float64)), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("criterion", ["apo", "d"])
def test_candidate_greedy_is_exact_when_it_says_so_and_the_fallback_covers_the_rest(criterion):
    from alband.design._linalg import leverages
    from alband.policies.preference._posterior import precision_inverse
    from alband.policies.preference.apo import candidate_greedy

    rng = np.random.default_rng(8)
    n, d, batch = 2000, 24, 15
    z = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
    post = _posterior(rng, d)
    w = jnp.asarray(rng.uniform(0.01, 0.25, size=n).astype(np.float32))
    avail = jnp.asarray(rng.random(n) > 0.1)
    eager = np.asarray(greedy_rank_one_batch(z, post.precision, w, avail, batch, criterion)).tolist()
    V_inv = precision_inverse(post.precision)
    s = leverages(z, V_inv)
    flags = {}
    for m in (1, 3, 512, n):
        picks, exact = candidate_greedy(z, V_inv, s, w, avail, batch, criterion, m)
        flags[m] = bool(exact)
        if exact:  # the bound held at every pick: the eager greedy's batch, from the candidates alone
            assert np.asarray(picks).tolist() == eager, m
        lazy = lazy_greedy_rank_one_batch(z, post.precision, w, avail, batch, criterion, m)
        assert np.asarray(lazy).tolist() == eager, m  # and with the fallback, whatever the candidates
    assert not flags[1] and not flags[3] and flags[512] and flags[n]  # both paths were taken


def test_d_design_through_the_engine_equals_the_greedy_on_the_laplace_precision():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(400, 5)).astype(np.float32)
    y = rng.integers(0, 2, size=400).astype(np.int32)
    queried = np.zeros(400, bool)
    queried[rng.choice(400, 30, replace=False)] = True
    learner = BradleyTerry(l2=2.0)
    params = learner.fit(learner.init(5), jnp.asarray(z), jnp.asarray(y), jnp.asarray(queried, jnp.float32))
    post = learner.posterior(params, jnp.asarray(z), jnp.asarray(y), jnp.asarray(queried, jnp.float32))
    p_first = np.asarray(learner.predict_proba(params, jnp.asarray(z)))[:, 0]
    w = p_first * (1 - p_first)
    lam = prior_precision(post.precision, jnp.asarray(z), jnp.asarray(w), jnp.asarray(queried))
    assert float(lam) == pytest.approx(2.0, rel=1e-4)
    engine = fisher_d_design_batch(jnp.asarray(z), jnp.asarray(p_first), jnp.asarray(queried), 10, lam)
    direct = greedy_rank_one_batch(jnp.asarray(z), post.precision, jnp.asarray(w), jnp.asarray(~queried), 10, "d")
    assert np.asarray(engine).tolist() == np.asarray(direct).tolist()


def test_g_design_reaches_the_kiefer_wolfowitz_certificate_and_rounds_to_a_valid_batch():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(500, 8)).astype(np.float32)
    p_first = 1 / (1 + np.exp(-z @ rng.normal(size=8).astype(np.float32) * 0.3))
    eps = 1e-2
    design = fisher_g_design(jnp.asarray(z), jnp.asarray(p_first), eps)
    assert bool(design.certified)
    X = z.astype(np.float64) * np.sqrt(p_first * (1 - p_first))[:, None]
    V = (X * np.asarray(design.weights, np.float64)[:, None]).T @ X
    lev = np.einsum("nd,de,ne->n", X, np.linalg.inv(V), X)
    assert lev.max() <= 8 * (1 + eps) * (1 + 1e-3)
    assert np.sum(np.asarray(design.weights) * lev) == pytest.approx(8, rel=1e-3)
    queried = np.zeros(500, bool)
    queried[:50] = True
    picks = fisher_g_design_batch(jnp.asarray(z), jnp.asarray(p_first), jnp.asarray(queried), 20, eps)
    _check_batch(picks, queried, 20)


def test_dope_list_design_reaches_its_certificate():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 4, 5)).astype(np.float32)
    valid = np.ones((60, 4), bool)
    valid[:10, 3] = False  # lists of three
    eps = 1e-2
    design = list_design(jnp.asarray(x), jnp.asarray(valid), eps, 20_000)
    assert bool(design.certified)
    pi = np.asarray(design.weights, np.float64)
    assert pi.min() >= 0 and pi.sum() == pytest.approx(1.0, abs=1e-5)
    # float64 reference of the traces: max = d (1 + eps) at most, and the pi-weighted mean is exactly d.
    A = []
    for l in range(60):
        X = x[l][valid[l]].astype(np.float64)
        A.append(sum(np.outer(X[j] - X[k], X[j] - X[k]) for j in range(len(X)) for k in range(j + 1, len(X))))
    V = sum(p * a for p, a in zip(pi, A))
    tr = np.array([np.trace(np.linalg.solve(V, a)) for a in A])
    assert tr.max() <= 5 * (1 + eps) * (1 + 1e-3)
    assert np.dot(pi, tr) == pytest.approx(5, rel=1e-4)
    np.testing.assert_allclose(np.asarray(design.traces), tr, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(list_information(jnp.asarray(x), jnp.asarray(valid), jnp.asarray(pi, jnp.float32))),
                               V, rtol=1e-4, atol=1e-4)


def test_dope_at_k2_is_the_design_over_differences():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 2, 4)).astype(np.float32)
    lists = list_design(jnp.asarray(x), jnp.ones((200, 2), bool), 1e-3, 50_000)
    pairs = wolfe_atwood_design(jnp.asarray(x[:, 0] - x[:, 1]), 1e-3)
    assert bool(lists.certified) and bool(pairs.certified)
    assert float(lists.log_det) == pytest.approx(float(pairs.log_det), abs=4 * np.log1p(1e-3) + 1e-3)


def test_double_ts_decisions_equal_a_numpy_reference_under_the_same_key():
    rng = np.random.default_rng(8)
    P, K, d = 300, 16, 6
    x = rng.normal(size=(P, K, d)).astype(np.float32)
    valid = np.ones((P, K), bool)
    valid[:20, 5:] = False
    valid[20:23, 1:] = False  # one candidate: no duel
    post = _posterior(rng, d)
    key = jax.random.key(11)
    got = np.asarray(double_ts_decisions(key, jnp.asarray(x), jnp.asarray(valid), post))
    # numpy float64: the same normal draws, theta = mean + L'^{-1} e, argmaxes.
    e = np.asarray(jax.random.normal(key, (2, P, d), jnp.float32), np.float64)
    V = np.asarray(post.precision, np.float64)
    L = np.linalg.cholesky(V)
    thetas = np.asarray(post.mean, np.float64) + np.linalg.solve(L.T, e.reshape(-1, d).T).T.reshape(2, P, d)
    ref = np.full((P, 2), -1)
    for p in range(P):
        slots = np.flatnonzero(valid[p])
        if len(slots) < 2:
            continue
        r1 = x[p, slots].astype(np.float64) @ thetas[0, p]
        c1 = slots[np.argmax(r1)]
        rest = slots[slots != c1]
        r2 = x[p, rest].astype(np.float64) @ thetas[1, p]
        ref[p] = (c1, rest[np.argmax(r2)])
    np.testing.assert_array_equal(got, ref)


def test_knn_distances_match_brute_force():
    rng = np.random.default_rng(9)
    q = rng.normal(size=(70, 3)).astype(np.float32)
    acquired = rng.random(70) < 0.3
    got = np.asarray(knn_distances(jnp.asarray(q), jnp.asarray(acquired), 3, chunk_rows=16))
    D = np.linalg.norm(q[:, None] - q[None, acquired], axis=2)
    np.testing.assert_allclose(got, np.sort(D, axis=1)[:, :3], atol=1e-4)


def test_bal_pm_with_beta_zero_is_top_epistemic_and_large_beta_spreads_prompts():
    rng = np.random.default_rng(10)
    n_prompts, per = 30, 6
    prompt = np.repeat(np.arange(n_prompts), per).astype(np.int32)
    prompt_x = rng.normal(size=(n_prompts, 4)).astype(np.float32)
    epistemic = rng.random(n_prompts * per).astype(np.float32)
    epistemic[:per] += 10.0  # prompt 0's pairs dominate the epistemic term
    queried = np.zeros(n_prompts * per, bool)
    queried[-per:] = True
    plain = np.asarray(bal_pm_batch(jnp.asarray(epistemic), jnp.asarray(prompt), jnp.asarray(prompt_x),
                                    jnp.asarray(queried), 8, 0.0))
    top = np.argsort(-np.where(queried, -np.inf, epistemic))[:8]
    assert sorted(plain.tolist()) == sorted(top.tolist())
    assert len(set(prompt[plain])) < 8  # BALD alone repeats prompt 0
    spread = np.asarray(bal_pm_batch(jnp.asarray(epistemic), jnp.asarray(prompt), jnp.asarray(prompt_x),
                                     jnp.asarray(queried), 8, 100.0, k=1))
    assert len(set(prompt[spread])) == 8  # the entropy term never repeats a prompt in one batch
    assert n_prompts - 1 not in set(prompt[spread])  # the judged prompt is already in the set


def test_gate_and_gated_batch():
    margin = jnp.asarray([0.1, -3.0, 2.5, -0.5, 1.9, 0.0, 4.0])
    ask, pseudo = gate(margin, 2.0)
    assert np.asarray(ask).tolist() == [True, False, False, True, True, True, False]
    assert np.asarray(pseudo).tolist() == [-1, 1, 0, -1, -1, -1, 0]
    queried = jnp.asarray([False, False, False, False, False, True, False])
    picks, pseudo = gated_batch(margin, queried, 5, 2.0)
    assert np.asarray(picks).tolist() == [0, 3, 4, -1, -1]  # smallest |m| first; -1 where the gate is closed
    assert float(dollars_saved(GatedState(pseudo), jnp.full(7, 0.01))) == pytest.approx(0.03)


def test_random_pairs_asks_every_prompt_equally_often():
    prompt = jnp.asarray([0] * 9 + [1], jnp.int32)
    scores = jax.vmap(lambda k: random_pair_scores(k, prompt, 2))(jax.random.split(jax.random.key(0), 4000))
    first = np.asarray(prompt)[np.asarray(jnp.argmax(scores, axis=1))]
    assert abs(np.mean(first == 1) - 0.5) < 0.04  # uniform over pairs would give 0.1


def test_make_pair_aux_groups_candidates():
    response_x = np.arange(12, dtype=np.float32).reshape(6, 2)
    prompt, first, second = [0, 0, 0, 1], [0, 2, 1, 3], [1, 0, 2, 4]
    aux = make_pair_aux(prompt, first, second, np.zeros((2, 3)), response_x)
    assert np.asarray(aux.candidates).tolist() == [[0, 1, 2], [3, 4, -1]]
    assert int(aux.pair_of[0, 2, 0]) == 1 and int(aux.pair_of[0, 0, 2]) == 1 and int(aux.pair_of[1, 0, 1]) == 3
    assert int(aux.pair_of[1, 2, 0]) == -1
    np.testing.assert_array_equal(np.asarray(pair_differences(aux)), response_x[first] - response_x[second])


# --- batch invariants of every batch rule and every registered adapter (hypothesis) ---------------


class PairRoundContext(NamedTuple):
    """The round context with the two fields the learner-protocol redesign adds (posterior, aux)."""

    x: Any
    queried: Any
    probs: Any
    params: Any
    cost_usd: Any
    round: Any
    posterior: Any
    aux: Any


def _candidates_world(seed, n_prompts, k, d):
    rng = np.random.default_rng(seed)
    response_x = rng.normal(size=(n_prompts * k, d)).astype(np.float32)
    prompt, first, second = [], [], []
    for p in range(n_prompts):
        for a in range(k):
            for b in range(a + 1, k):
                flip = rng.random() < 0.5
                prompt.append(p)
                first.append(p * k + (b if flip else a))
                second.append(p * k + (a if flip else b))
    aux = make_pair_aux(prompt, first, second, rng.normal(size=(n_prompts, 3)), response_x)
    return aux, rng


PREFERENCE_POLICIES = ["random_pairs", "pair_uncertainty", "pair_bald", "apo", "pair_d_design", "pair_g_design",
                       "dope", "double_ts", "bal_pm", "gated", ("pair_d_design", {"lazy": False}),
                       ("pair_bald", {"method": "samples"})]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_prompts=st.sampled_from([4, 7]), k=st.sampled_from([2, 4]),
       judged=st.floats(0.0, 1.0), batch=st.sampled_from([3, 12]), policy=st.sampled_from(PREFERENCE_POLICIES))
def test_every_batch_is_distinct_and_never_a_judged_pair(seed, n_prompts, k, judged, batch, policy):
    d = 3
    aux, rng = _candidates_world(seed, n_prompts, k, d)
    z = pair_differences(aux)
    n = z.shape[0]
    queried = rng.random(n) < judged
    learner = BradleyTerry(l2=1.0)
    y = jnp.asarray(rng.integers(0, 2, size=n), jnp.int32)
    params = learner.fit(learner.init(d), z, y, jnp.asarray(queried, jnp.float32))
    ctx = PairRoundContext(z, jnp.asarray(queried), learner.predict_proba(params, z), params,
                           jnp.full((n,), 0.01), jnp.int32(1),
                           learner.posterior(params, z, y, jnp.asarray(queried, jnp.float32)), aux)
    policy, options = policy if isinstance(policy, tuple) else (policy, {})
    pol = make_policy(policy, **options)
    if policy == "pair_g_design" and n < d:
        return
    batch = min(batch, n)
    state = pol.init(ctx)
    picks, _ = jax.jit(pol.select, static_argnums=3)(state, ctx, jax.random.key(seed), batch)
    picks = np.asarray(picks)
    left = int((~queried).sum())
    if policy == "gated":
        real = picks[picks >= 0]
        assert len(set(real.tolist())) == len(real) and not queried[real].any()
        return
    if batch <= left:
        _check_batch(picks, queried, batch)
    else:  # fewer unjudged pairs than the batch: all of them, the rest judged (dropped by the loop) or -1
        real = picks[picks >= 0]
        assert len(set(real.tolist())) == len(real)
        assert set(np.flatnonzero(~queried).tolist()) <= set(real.tolist())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), judged=st.floats(0.0, 1.0), batch=st.sampled_from([1, 7, 15]))
def test_pure_batch_rules_are_distinct_and_skip_judged_pairs(seed, judged, batch):
    # Fixed shapes (one compilation per batch size); the masks and values vary, including pools with
    # fewer unjudged pairs than the batch.
    n = 24
    rng = np.random.default_rng(seed)
    d = 4
    z = jnp.asarray(rng.normal(size=(n, d)).astype(np.float32))
    queried = rng.random(n) < judged
    post = _posterior(rng, d)
    p_first = jax.nn.sigmoid(z @ post.mean)
    _check_batch(apo_batch(z, post.precision, p_first, jnp.asarray(queried), batch), queried, batch)
    _check_batch(fisher_d_design_batch(z, p_first, jnp.asarray(queried), batch, 1.0), queried, batch)
    _check_batch(lazy_greedy_rank_one_batch(z, post.precision, p_first * (1 - p_first), jnp.asarray(~queried), batch,
                                            "d", 4), queried, batch)
    prompt = jnp.asarray(rng.integers(0, 5, size=n), jnp.int32)
    _check_batch(bal_pm_batch(bald_scores_probit(z, post), prompt, jnp.asarray(rng.normal(size=(5, 2)), jnp.float32),
                              jnp.asarray(queried), batch), queried, batch)
    picks, _ = gated_batch(z @ post.mean, jnp.asarray(queried), batch, 1e9)  # an open gate asks like uncertainty
    _check_batch(picks, queried, batch)
