"""Scoring the whole label set from the token alternatives at the label's position.

An annotator that emits ``{"label": "<label>", ...}`` commits to a label one
token at a time; the first token of the label value already spreads the
model's belief over the label set. With ``logprobs=True, top_logprobs=k`` an
OpenAI-compatible server returns, for every emitted token, the ``k`` most
likely tokens at that position with their log probabilities. At the position
where the label value starts, each label ``l`` gets::

    s(l) = sum_{t in top_k, t spells a non-empty prefix of l} exp(logprob(t))
    p(l) = s(l) / sum_{l'} s(l')

(case ignored, and only the part of ``t`` after the text that precedes the
label on that token, when the server merged the opening quote into it). The
scored label is ``argmax p``; ties go to the label the model wrote, else to
the first in the list. Labels whose names share their first token get the same
share of that token (the next tokens would tell them apart, and those are not
scored here), and a label outside the top ``k`` gets 0: ``p`` is a
distribution over the labels the top ``k`` reach, not over all of them.

This is the "surface-form" label scoring of Holtzman et al., 2021, "Surface
Form Competition: Why the Highest Probability Answer Isn't Always Right", on a
single token position, as used for zero-shot classification with LLMs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from alband.annotators.parsing import parse_label_answer

_LABEL_VALUE = re.compile(r'"label"\s*:\s*"')


@dataclass(frozen=True)
class LabelSetScores:
    """``probabilities[i]`` of ``label_names[i]`` and the scored label's index."""

    probabilities: tuple[float, ...]
    label: int
    reached_mass: float  # sum of s(l): the top-k probability that fell on some label


def label_set_scores(logprobs_content: Any, text: str | None, label_names: Sequence[str]) -> LabelSetScores | None:
    """Scores of the label set from ``choices[0].logprobs.content`` of a chat response (module docstring).

    ``None`` when they cannot be computed: no usable logprobs, tokens that do
    not spell ``text``, no label value in ``text``, or no top alternative that
    begins any label.
    """
    if not isinstance(text, str) or not isinstance(logprobs_content, list) or not logprobs_content:
        return None
    tokens = []
    for entry in logprobs_content:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        tokens.append(entry)
    if "".join(entry["token"] for entry in tokens) != text:
        return None
    parsed = parse_label_answer(text, label_names)
    if parsed.span is not None:
        start = parsed.span[0]
    else:
        match = _LABEL_VALUE.search(text)
        if match is None:
            return None
        start = match.end()
    offset = 0
    for entry in tokens:
        end = offset + len(entry["token"])
        if offset <= start < end:
            break
        offset = end
    else:
        return None
    lead = text[offset:start]
    alternatives = entry.get("top_logprobs")
    if not isinstance(alternatives, list):
        return None
    folded = [name.casefold() for name in label_names]
    mass = [0.0] * len(label_names)
    for alternative in alternatives:
        if not isinstance(alternative, dict) or not isinstance(alternative.get("token"), str):
            continue
        logprob = alternative.get("logprob")
        if isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or not math.isfinite(logprob):
            continue
        token = alternative["token"]
        if not token.startswith(lead):
            continue
        rest = token[len(lead):].casefold()
        if not rest.strip():
            continue
        for index, name in enumerate(folded):
            if name.startswith(rest):
                mass[index] += math.exp(logprob)
    total = sum(mass)
    if total <= 0.0:
        return None
    probabilities = tuple(value / total for value in mass)
    best = max(probabilities)
    tied = [index for index, value in enumerate(probabilities) if value == best]
    label = parsed.label if parsed.label in tied else tied[0]
    return LabelSetScores(probabilities, label, total)


__all__ = ["LabelSetScores", "label_set_scores"]
