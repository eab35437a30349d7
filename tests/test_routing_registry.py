"""The router registry: one name per router in configs, the CLI and reports; a new router is one registration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alband.config import parse_config
from alband.errors import AlbandError
from alband.routing import ARM, available_routers, make_router, register_router, replay, router_entry
from alband.routing import registry
from alband.routing.base import Decision, Router, Stream, no_audit, one_hot_pay, stateless_update
from helpers import three_simulated_annotators_toml

BUILT_IN = {"fixed", "random", "oracle", "cascade", "contextual_ts", "bts", "ucb_bv", "shares"}

CONFIG = """
[data]
source = "table"
path = "reviews.csv"

[policy]
name = "margin"

[loop]
batch_size = 4
rounds = 2
initial_labels = 4

[budget]
usd = 1.0

""" + three_simulated_annotators_toml() + """
[routing]
router = "{router}"
annotators = ["cheap", "strong", "human"]
auditor = "human"
{extra}
"""

#: A value for each kind a built-in router registers, as written in a config.
CONFIG_VALUES = {"arm": '"strong"', "chain": '["cheap", "human"]', "target": "0.9", "n_bins": "5", "min_count": "3",
                 "exploration": "0.5", "dual_kappa": "10.0", "lambda0": "0.1", "audit_rate": "0.2",
                 "audit_share": "0.3", "panel_share": "0.05", "panel_size": "2",
                 "shares": "[0.6, 0.3, 0.1]"}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    saved = registry.ROUTER_REGISTRY.snapshot()
    yield
    registry.ROUTER_REGISTRY.restore(saved)


def _stream(n: int = 40, k: int = 3, seed: int = 0) -> Stream:
    rng = np.random.default_rng(seed)
    price = np.tile(np.array([0.001, 0.01, 0.1], np.float32)[:k], (n, 1))
    correct = (rng.random((n, k)) < np.array([0.6, 0.8, 0.99])[:k]).astype(np.float32)
    return Stream(features=jnp.asarray(rng.normal(size=(n, 4)), jnp.float32), price_usd=jnp.asarray(price),
                  cost_usd=jnp.asarray(price), available=jnp.ones((n, k), bool), correct=jnp.asarray(correct),
                  verdict=jnp.asarray(correct))


def test_every_built_in_router_is_registered_under_its_one_spelling():
    assert BUILT_IN <= set(available_routers())
    assert all("-" not in name for name in available_routers())
    assert {name for name in BUILT_IN if router_entry(name).learns} == {"cascade", "contextual_ts", "bts", "ucb_bv"}
    assert [name for name in BUILT_IN if router_entry(name).hindsight] == ["oracle"]


@pytest.mark.parametrize("name", sorted(BUILT_IN - {"oracle"}))
def test_each_router_name_round_trips_through_a_config(name):
    entry = router_entry(name)
    assert set(entry.parameters) <= set(CONFIG_VALUES), "give the new parameter a config value above"
    extra = "\n".join(f"{key} = {CONFIG_VALUES[key]}" for key in entry.parameters)
    routing = parse_config(CONFIG.format(router=name, extra=extra)).routing
    assert routing.router == name
    assert set(routing.params) == set(entry.parameters)
    router = routing.build()
    assert router.name == ("fixed:strong" if name == "fixed" else name)
    # names in the config become arm indices for the factory
    arms = {"arm": 1, "chain": (0, 2)}
    assert {k: v for k, v in routing.router_parameters().items() if k in arms} == {
        k: v for k, v in arms.items() if k in entry.parameters}
    # a key the router did not register is refused, naming the key
    with pytest.raises(AlbandError, match=r"\[routing\]: unknown key 'no_such_key'"):
        parse_config(CONFIG.format(router=name, extra="no_such_key = 1"))


def test_the_hindsight_oracle_is_refused_by_a_config_but_made_for_the_replay():
    with pytest.raises(AlbandError, match=r"router 'oracle' is for evaluation only .*\(available: bts, cascade"):
        parse_config(CONFIG.format(router="oracle", extra=""))
    stream = _stream()
    router = make_router("oracle", correct=stream.correct, cost_usd=stream.cost_usd)
    trace = replay(router, stream, jnp.arange(40), jnp.float32(1.0), jax.random.key(0))
    labeled = np.asarray(trace.label_arm) >= 0
    assert labeled.any() and np.asarray(trace.label_correct)[labeled].all()


def test_make_router_checks_names_kinds_and_ranges():
    with pytest.raises(AlbandError, match=r"unknown router 'contextual-ts'; available: .*contextual_ts"):
        make_router("contextual-ts")
    with pytest.raises(AlbandError, match=r"router 'bts': unknown parameter 'target' \(allowed: audit_rate"):
        make_router("bts", target=0.9)
    with pytest.raises(AlbandError, match="router 'cascade': target must be int/float, got True"):
        make_router("cascade", chain=(0, 1), target=True)
    with pytest.raises(AlbandError, match=r"router 'fixed': arm must be an arm index \(int\), got 'cheap'"):
        make_router("fixed", arm="cheap")
    with pytest.raises(AlbandError, match=r"router 'cascade': chain must be a sequence of arm indices"):
        make_router("cascade", chain=("cheap",))
    with pytest.raises(AlbandError, match=r"target must be in \(0, 1\], got 1.5"):
        make_router("cascade", chain=(0, 1), target=1.5)
    with pytest.raises(AlbandError, match="chain must be a non-empty list of distinct arms"):
        make_router("cascade", chain=(0, 0))
    with pytest.raises(AlbandError, match=r"audit_rate must be a finite number in \[0, 1\], got 2"):
        make_router("ucb_bv", audit_rate=2)
    with pytest.raises(AlbandError, match="dual_kappa must be a finite number > 0"):
        make_router("contextual_ts", dual_kappa=float("nan"))
    assert make_router("contextual_ts", exploration=0.5).name == "contextual_ts"
    assert make_router("ucb_bv", panel_size=0).name == "ucb_bv"


def test_registering_the_same_function_again_is_allowed_a_different_one_is_not(scratch_registry):
    source = ("from alband.routing import random_router, register_router\n"
              "@register_router('rerun')\n"
              "def make():\n"
              "    return random_router(name='rerun')\n")
    first, second = {"__name__": "notebook"}, {"__name__": "notebook"}
    exec(source, first)  # a notebook cell ...
    exec(source, second)  # ... run again: a new function object with the same module and name
    assert first["make"] is not second["make"]
    assert router_entry("rerun").factory is second["make"]
    with pytest.raises(ValueError, match="router 'rerun' is registered twice"):
        register_router("rerun")(lambda: make_router("random"))
    with pytest.raises(ValueError, match="router 'random' is registered twice"):
        exec(source.replace("'rerun'", "'random'"), {"__name__": "notebook"})
    with pytest.raises(ValueError, match="parameter 'x' has kind 'int'"):
        register_router("bad_kind", parameters={"x": "int"})


def test_a_router_defined_here_is_made_by_name_from_a_config_and_replayed(scratch_registry):
    @register_router("always_arm_test", parameters={"arm": ARM, "cap_usd": (int, float)})
    def make_always(arm: int = 0, cap_usd: float = 1.0) -> Router:
        """Pays ``arm`` while an item's quote is at most ``cap_usd``."""
        if cap_usd < 0:
            raise AlbandError(f"cap_usd must be >= 0, got {cap_usd}")

        def decide(state, ctx, key):
            ok = ctx.available[arm] & (ctx.price_usd[arm] <= jnp.minimum(cap_usd, ctx.remaining_usd))
            label = jnp.where(ok, arm, -1).astype(jnp.int32)
            return Decision(one_hot_pay(label, ctx.price_usd.shape[0]), label, no_audit(ctx.price_usd.shape[0]),
                            stop=jnp.bool_(False))

        return Router("always_arm_test", lambda setup: (), decide, stateless_update)

    assert "always_arm_test" in available_routers()
    routing = parse_config(CONFIG.format(router="always_arm_test", extra='arm = "strong"\ncap_usd = 0.05')).routing
    assert routing.router_parameters() == {"arm": 1, "cap_usd": 0.05}
    with pytest.raises(AlbandError, match=r"\[routing\] cap_usd must be >= 0, got -1"):
        parse_config(CONFIG.format(router="always_arm_test", extra="cap_usd = -1"))
    no_auditor = CONFIG.format(router="always_arm_test", extra="").replace('auditor = "human"\n', "")
    assert parse_config(no_auditor).routing.auditor is None  # learns=False: it needs no auditor
    stream = _stream()
    trace = replay(routing.build(), stream, jnp.arange(40), jnp.float32(1.0), jax.random.key(1))
    assert (np.asarray(trace.label_arm) == 1).all()  # every quote (0.01) is under the cap and the budget
    assert np.asarray(trace.spend_usd).sum() == pytest.approx(0.4, rel=1e-5)


def test_the_shares_router_draws_each_arm_at_its_share_blind_to_price():
    stream = _stream(n=3000, seed=1)  # the arms' prices differ 100-fold; the draw ignores them
    trace = replay(make_router("shares", shares=[0.6, 0.3, 0.1]), stream, jnp.arange(3000), jnp.float32(1e6),
                   jax.random.key(0))
    arms = np.asarray(trace.label_arm)
    assert (arms >= 0).all()
    # 3,000 draws: each share within 4 standard errors (at most 0.036)
    np.testing.assert_allclose(np.bincount(arms, minlength=3) / 3000, [0.6, 0.3, 0.1], atol=0.036)
    with pytest.raises(AlbandError, match="shares must be numbers"):
        make_router("shares", shares=["a", 1])
    with pytest.raises(AlbandError, match="non-negative numbers with a positive sum"):
        make_router("shares", shares=[0.0, -1.0])
