"""Usage turned into dollars exactly, the reservation bound, and the price table loader."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.annotators.anthropic_annotator import AnthropicAnnotator, anthropic_billed_usage
from alband.annotation import Item
from alband.annotators.openai_annotator import OpenAIAnnotator, openai_billed_usage
from alband.annotators.pricing_table import (
    default_price_table_path,
    load_price_table,
    price_for,
    read_price_table,
)
from alband.costs import Price
from alband.errors import AlbandError

PRICE = Price(input_usd_per_mtok=3.0, output_usd_per_mtok=15.0, usd_per_label=0.0001,
              cache_write_multiplier=1.25, cache_read_multiplier=0.1)


def exact(*terms) -> float:
    """Sum of (tokens, usd_per_mtok, multiplier) terms in exact rational arithmetic."""
    total = sum(Fraction(tokens) * Fraction(str(rate)) * Fraction(str(mult)) for tokens, rate, mult in terms)
    return float(total / 10**6)


def test_anthropic_cache_tokens_are_in_addition_to_input_tokens():
    billed, problem = anthropic_billed_usage(
        {"input_tokens": 1000, "output_tokens": 50, "cache_creation_input_tokens": 2000,
         "cache_read_input_tokens": 30000}, PRICE)
    assert problem is None
    expected = exact((1000, 3.0, 1), (2000, 3.0, 1.25), (30000, 3.0, 0.1), (50, 15.0, 1)) + 0.0001
    assert math.isclose(billed.cost_usd, expected, rel_tol=1e-12)
    assert billed.input_tokens == 1000 + 2000 + 30000 and billed.output_tokens == 50
    assert billed.details["cache_read_tokens"] == 30000


def test_anthropic_one_hour_cache_writes_cost_twice_the_input_price():
    billed, _ = anthropic_billed_usage(
        {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 700,
         "cache_read_input_tokens": 0,
         "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400}}, PRICE)
    expected = exact((10, 3.0, 1), (300, 3.0, 1.25), (400, 3.0, 2), (5, 15.0, 1)) + 0.0001
    assert math.isclose(billed.cost_usd, expected, rel_tol=1e-12)
    assert billed.details["cache_write_1h_tokens"] == 400


def test_openai_cached_tokens_are_a_subset_and_reasoning_bills_as_output():
    billed, problem = openai_billed_usage(
        {"prompt_tokens": 5000, "completion_tokens": 900, "total_tokens": 5900,
         "prompt_tokens_details": {"cached_tokens": 4096, "cache_write_tokens": 100},
         "completion_tokens_details": {"reasoning_tokens": 850}}, PRICE)
    assert problem is None
    expected = exact((5000 - 4096 - 100, 3.0, 1), (4096, 3.0, 0.1), (100, 3.0, 1.25), (900, 15.0, 1)) + 0.0001
    assert math.isclose(billed.cost_usd, expected, rel_tol=1e-12)
    assert billed.input_tokens == 5000 and billed.output_tokens == 900
    assert billed.details["reasoning_tokens"] == 850


def test_openai_minimal_usage_from_a_local_server():
    billed, _ = openai_billed_usage({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                                     "prompt_tokens_details": None}, PRICE)
    assert math.isclose(billed.cost_usd, exact((12, 3.0, 1), (3, 15.0, 1)) + 0.0001, rel_tol=1e-12)


@pytest.mark.parametrize("usage, problem", [
    (None, "no 'usage'"),
    ({"input_tokens": 5}, "not token counts"),
    ({"input_tokens": -1, "output_tokens": 2}, "not token counts"),
    ({"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": "9"}, "cache_read_input_tokens"),
    ({"input_tokens": True, "output_tokens": 2}, "not token counts"),
])
def test_anthropic_unusable_usage(usage, problem):
    billed, reason = anthropic_billed_usage(usage, PRICE)
    assert billed is None and problem in reason


@pytest.mark.parametrize("usage, problem", [
    (None, "no 'usage'"),
    ({"prompt_tokens": 5}, "not token counts"),
    ({"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 6}}, "exceed"),
])
def test_openai_unusable_usage(usage, problem):
    billed, reason = openai_billed_usage(usage, PRICE)
    assert billed is None and problem in reason


def _annotators(price, **kwargs):
    labels = ["positive", "negative", "neutral"]
    return [
        AnthropicAnnotator("a", "claude-x", labels, price, **kwargs),
        AnthropicAnnotator("a1h", "claude-x", labels, price, prompt_cache="1h", **kwargs),
        OpenAIAnnotator("o", "gpt-x", labels, price, **kwargs),
    ]


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(max_size=300),
    price=st.builds(Price, st.floats(0, 100), st.floats(0, 100), st.floats(0, 0.01),
                    st.floats(0, 3), st.floats(0, 3)),
    max_tokens=st.integers(1, 512),
    examples=st.lists(st.tuples(st.text(max_size=50), st.sampled_from(["positive", "negative"])), max_size=3),
)
def test_worst_case_usage_never_exceeds_the_reservation(text, price, max_tokens, examples):
    """One token per byte, every token at the dearest input rate, max_tokens out: still <= bound."""
    item = Item(3, "x", text)
    for annotator in _annotators(price, max_tokens=max_tokens, examples=examples):
        bound = annotator.max_cost_usd(item)
        tokens = annotator.input_token_bound(item)
        rendered = annotator.prompt.render(text)
        assert tokens >= rendered.utf8_bytes() + 2 * annotator.per_message_overhead_tokens
        worst = [
            {"input_tokens": tokens, "output_tokens": max_tokens},
            {"input_tokens": 0, "output_tokens": max_tokens, "cache_creation_input_tokens": tokens},
            {"input_tokens": 0, "output_tokens": max_tokens, "cache_read_input_tokens": tokens},
            {"input_tokens": 0, "output_tokens": max_tokens, "cache_creation_input_tokens": tokens,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": tokens}},
        ]
        if isinstance(annotator, OpenAIAnnotator):
            worst = [{"prompt_tokens": tokens, "completion_tokens": max_tokens,
                      "prompt_tokens_details": {"cached_tokens": c, "cache_write_tokens": w}}
                     for c, w in ((0, 0), (tokens, 0), (0, tokens))]
            costs = [openai_billed_usage(u, price)[0].cost_usd for u in worst]
        else:
            if annotator.prompt_cache != "1h":
                worst = worst[:3]
            costs = [anthropic_billed_usage(u, price)[0].cost_usd for u in worst]
        for cost in costs:
            assert cost <= bound * (1 + 1e-12) + 1e-18


def test_bound_formula_by_hand():
    annotator = AnthropicAnnotator("a", "m", ["yes", "no"], Price(2.0, 10.0, 0.5, 1.25, 0.1), max_tokens=20,
                                   per_message_overhead_tokens=8, request_overhead_tokens=64)
    item = Item(0, "i", "héllo")
    rendered = annotator.prompt.render("héllo")
    tokens = rendered.utf8_bytes() + 8 * 2 + 64
    assert annotator.input_token_bound(item) == tokens
    assert math.isclose(annotator.max_cost_usd(item), (tokens * 2.0 * 1.25 + 20 * 10.0) / 1e6 + 0.5, rel_tol=1e-12)


def test_bundled_price_table_loads_with_version_and_date():
    table = read_price_table()
    assert table.version and table.date
    assert len(table.prices) >= 6
    for model, price in table.prices.items():
        assert isinstance(price, Price), model
        assert price.output_usd_per_mtok >= price.input_usd_per_mtok > 0, model
    assert load_price_table() == dict(table.prices)
    assert default_price_table_path().name == "prices.toml"
    assert price_for("claude-haiku-5-5").input_usd_per_mtok == table.prices["claude-haiku-5-5"].input_usd_per_mtok
    assert any(model.startswith("claude-") for model in table.prices)
    assert any(model.startswith("gpt-") for model in table.prices)


def test_price_for_unknown_model_lists_known_ones():
    with pytest.raises(AlbandError, match="no price for model 'nope'.*known models"):
        price_for("nope", {"m": Price(1, 2)})


HEADER = 'schema_version = 1\nversion = "t"\ndate = "2026-01-01"\n'


@pytest.mark.parametrize("body, message", [
    ("", "key 'schema_version'"),
    (HEADER, "key 'models'"),
    (HEADER + '[models."m"]\ninput_usd_per_mtok = 1.0\n', "models.\"m\"'.*missing required key.*output_usd_per_mtok"),
    (HEADER + '[models."m"]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = "2"\n',
     "models.\"m\"', field 'output_usd_per_mtok': expected a number"),
    (HEADER + '[models."m"]\ninput_usd_per_mtok = -1.0\noutput_usd_per_mtok = 2.0\n',
     "models.\"m\"'.*input_usd_per_mtok"),
    (HEADER + '[models."m"]\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\ninput_price = 3\n',
     "unknown key.*input_price"),
    (HEADER + 'vendor = "x"\n', "unknown top-level key.*vendor"),
    ("this is = = not toml", "not valid TOML"),
])
def test_price_table_errors_name_file_and_key(tmp_path, body, message):
    path = tmp_path / "prices.toml"
    path.write_text(body)
    with pytest.raises(AlbandError, match=message) as info:
        load_price_table(path)
    assert str(path) in str(info.value)


def test_missing_price_table_file(tmp_path):
    with pytest.raises(AlbandError, match="file not found"):
        load_price_table(tmp_path / "absent.toml")


def test_user_price_table(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(HEADER + '[models."local-llama"]\ninput_usd_per_mtok = 0\noutput_usd_per_mtok = 0\n'
                    'usd_per_label = 0.001\ncache_read_multiplier = 0.5\nprovider = "vllm"\n')
    assert load_price_table(path) == {"local-llama": Price(0.0, 0.0, 0.001, 1.25, 0.5)}


@pytest.mark.parametrize("field", ["max_tokens", "n", "messages", "model"])
def test_extra_body_cannot_override_what_the_bound_depends_on(field):
    with pytest.raises(AlbandError, match=f"extra_body may not set \\['{field}'\\]"):
        OpenAIAnnotator("o", "m", ["a", "b"], PRICE, extra_body={field: 2})
