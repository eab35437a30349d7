"""Prompt rendering and the label parser: JSON, tolerant fallbacks, nothing guessed."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alband.annotators.parsing import label_span_probability, parse_label_answer
from alband.annotators.prompts import ClassificationPrompt, normalize_label
from alband.errors import AlbandError

LABELS = ("World", "Sports", "Business", "Sci/Tech")


@pytest.mark.parametrize("answer, expected, method", [
    ('{"label": "Sports", "confidence": 0.8}', 1, "json"),
    ('  {"label":"sports"}  ', 1, "json"),
    ('```json\n{"label": "Business", "confidence": 0.55}\n```', 2, "json"),
    ('Here you go: {"label": "sci-tech", "confidence": 0.7} -- hope it helps', 3, "json"),
    ('{"Label": "WORLD", "Confidence": "0.6"}', 0, "json"),
    ('{"label": "Sports", "confid', 1, "json_fragment"),
    ("Sports", 1, "bare_label"),
    ("  sports. ", 1, "bare_label"),
    ("SCI TECH!", 3, "bare_label"),
])
def test_valid_answers(answer, expected, method):
    parsed = parse_label_answer(answer, LABELS)
    assert parsed.label == expected
    assert parsed.method == method
    assert parsed.invalid_reason is None


@pytest.mark.parametrize("answer, reason", [
    ('{"label": "Politics", "confidence": 0.9}', "off-label"),
    ('{"label": null}', "no string 'label'"),
    ('{"label": 1, "confidence": 0.9}', "no string 'label'"),
    ('{"label": "Entertainment"', "off-label"),
    ("I'm sorry, but I can't help with classifying this text.", "no label"),
    ("This looks like Sports to me", "no label"),
    ("Sports or Business", "no label"),
    ("", "empty"),
    (None, "empty"),
])
def test_invalid_answers_are_never_mapped_to_a_label(answer, reason):
    parsed = parse_label_answer(answer, LABELS)
    assert parsed.label is None
    assert reason in parsed.invalid_reason


def test_self_reported_confidence_kept_only_in_unit_interval():
    assert parse_label_answer('{"label": "Sports", "confidence": 0.25}', LABELS).confidence == 0.25
    for bad in ("1.5", "-0.1", '"high"', "true", "NaN"):
        parsed = parse_label_answer('{"label": "Sports", "confidence": %s}' % bad, LABELS)
        assert parsed.label == 1 and math.isnan(parsed.confidence)
    assert math.isnan(parse_label_answer("Sports", LABELS).confidence)


def test_label_span_points_at_the_label_text():
    text = 'ok {"label": "Sci/Tech", "confidence": 0.9}'
    parsed = parse_label_answer(text, LABELS)
    start, end = parsed.span
    assert text[start:end] == "Sci/Tech"


def test_logprob_confidence_is_probability_of_label_tokens():
    text = '{"label": "Sports", "confidence": 0.9}'
    span = parse_label_answer(text, LABELS).span
    tokens = [('{"', -0.01), ("label", -0.02), ('":', -0.03), (' "', -0.04), ("Sports", -0.2),
              ('",', -0.05), (' "confidence": 0.9}', -0.3)]
    assert math.isclose(label_span_probability(tokens, text, span), math.exp(-0.2), rel_tol=1e-12)
    # A token that holds the opening quote with the label counts as the label's.
    merged = [('{"label": "Spo', -0.5), ("rts", -0.1), ('", "confidence": 0.9}', -0.3)]
    assert math.isclose(label_span_probability(merged, text, span), math.exp(-0.6), rel_tol=1e-12)
    assert math.isnan(label_span_probability([("nope", -0.1)], text, span))
    assert math.isnan(label_span_probability(tokens, text, None))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_yields_a_label_it_does_not_state(text):
    parsed = parse_label_answer(text, LABELS)
    if parsed.label is not None:
        name = normalize_label(LABELS[parsed.label])
        assert name in normalize_label(text)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(LABELS), st.floats(0, 1), st.text(max_size=20))
def test_json_answers_round_trip(label, confidence, noise):
    answer = json.dumps({"label": label, "confidence": confidence})
    parsed = parse_label_answer(answer, LABELS)
    assert parsed.label == LABELS.index(label)
    assert parsed.confidence == confidence


def test_prompt_lists_labels_examples_and_answer_format():
    prompt = ClassificationPrompt(LABELS, "Classify the news headline by topic.",
                                  label_descriptions={"Sci/Tech": "science and technology"})
    prompt = prompt.with_examples([("Stocks fall", "Business"), ("Team wins cup", "Sports")])
    rendered = prompt.render("New chip announced")
    assert "Classify the news headline by topic." in rendered.system
    for label in LABELS:
        assert f"- {label}" in rendered.system
    assert "science and technology" in rendered.system
    assert "<text>Stocks fall</text>\nLabel: Business" in rendered.system
    assert '"label"' in rendered.system and '"confidence"' in rendered.system and "JSON" in rendered.system
    assert rendered.messages == ({"role": "user", "content": prompt.user_text("New chip announced")},)
    assert "New chip announced" not in rendered.system  # the item only in the user message
    assert rendered.utf8_bytes() == len(rendered.system.encode()) + len(rendered.messages[0]["content"].encode())


@pytest.mark.parametrize("kwargs, message", [
    ({"label_names": ("only",)}, "at least 2 labels"),
    ({"label_names": ("Sci/Tech", "sci tech")}, "same once case and punctuation"),
    ({"label_names": ("a", "!!")}, "letter or digit"),
    ({"label_names": ("a", "b"), "examples": (("x", "c"),)}, "example 0: label 'c'"),
    ({"label_names": ("a", "b"), "label_descriptions": {"z": "?"}}, "not in the label set"),
])
def test_prompt_validation_errors(kwargs, message):
    with pytest.raises(AlbandError, match=message):
        ClassificationPrompt(**kwargs)
