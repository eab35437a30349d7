"""Reading a label (and a confidence) out of an LLM's answer, never guessing.

Tiers, first match wins:

1. **JSON**: the answer (or a ```json fenced block, or the first ``{...}``
   object in it) decodes to an object with a string ``"label"``.
2. **JSON fragment**: ``"label": "<value>"`` appears with its closing quote,
   e.g. in JSON truncated by ``max_tokens``.
3. **Bare label**: the whole answer is one label name (case-insensitive,
   punctuation ignored, see :func:`alband.annotators.prompts.normalize_label`).

A label value that is not in the label set (off-label), a non-string label,
a refusal or any other text is *invalid*: ``label=None`` with a reason. A
label is never inferred from a sentence that merely mentions it ("I cannot
say whether this is sports" stays invalid).

The self-reported confidence is kept only when it is a number in ``[0, 1]``;
otherwise it is NaN. :func:`label_span_probability` turns token logprobs into
the probability of the emitted label (OpenAI-style ``logprobs``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Sequence

from alband.annotators.prompts import normalize_label

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_LABEL_FIELD = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"', re.IGNORECASE)


@dataclass(frozen=True)
class ParsedAnswer:
    """``label`` index or ``None``; ``span`` is where the label text sits in the answer."""

    label: int | None
    confidence: float = float("nan")
    method: str | None = None
    invalid_reason: str | None = None
    span: tuple[int, int] | None = None


def parse_label_answer(text: str | None, label_names: Sequence[str]) -> ParsedAnswer:
    """Parse ``text`` against ``label_names`` (see the module docstring for the rules)."""
    if text is None or not text.strip():
        return ParsedAnswer(None, invalid_reason="empty answer")
    lookup = {normalize_label(name): index for index, name in enumerate(label_names)}

    found = _find_json_object(text)
    if found is not None:
        obj, start, end = found
        value = _get_label_value(obj)
        confidence = _confidence(obj)
        if not isinstance(value, str):
            return ParsedAnswer(None, confidence, "json",
                                f"JSON answer has no string 'label' (got {value!r})")
        index = lookup.get(normalize_label(value))
        if index is None:
            return ParsedAnswer(None, confidence, "json", f"off-label answer {value!r}")
        match = _LABEL_FIELD.search(text, start, end)
        span = match.span(1) if match else None
        return ParsedAnswer(index, confidence, "json", None, span)

    match = _LABEL_FIELD.search(text)
    if match is not None:
        try:
            value = json.loads(f'"{match.group(1)}"')
        except json.JSONDecodeError:
            value = match.group(1)
        index = lookup.get(normalize_label(value))
        if index is None:
            return ParsedAnswer(None, float("nan"), "json_fragment", f"off-label answer {value!r}")
        return ParsedAnswer(index, float("nan"), "json_fragment", None, match.span(1))

    stripped = text.strip()
    index = lookup.get(normalize_label(stripped))
    if index is not None:
        start = text.index(stripped)
        return ParsedAnswer(index, float("nan"), "bare_label", None, (start, start + len(stripped)))
    shown = stripped if len(stripped) <= 80 else stripped[:77] + "..."
    return ParsedAnswer(None, invalid_reason=f"no label in answer {shown!r}")


def label_span_probability(tokens: Sequence[tuple[str, float]], text: str,
                           span: tuple[int, int] | None) -> float:
    """``exp(sum of logprobs)`` of the tokens covering ``text[span]``; NaN if unusable.

    ``tokens`` are the generated ``(token_text, logprob)`` pairs; their
    concatenation must equal ``text``, else the character positions cannot be
    trusted and NaN is returned. Tokens that overlap the label's characters
    (e.g. ``' "sports'``, which also holds the opening quote) all count: the
    result is the model's probability of emitting this label at that point.
    """
    if span is None or not tokens or "".join(token for token, _ in tokens) != text:
        return float("nan")
    start, end = span
    position, total, covered = 0, 0.0, False
    for token, logprob in tokens:
        token_end = position + len(token)
        if token_end > start and position < end:
            if logprob is None or not math.isfinite(logprob) or logprob > 0:
                return float("nan")
            total += logprob
            covered = True
        position = token_end
    return math.exp(total) if covered else float("nan")


def _find_json_object(text: str):
    candidates = [text.strip()]
    candidates += [block.strip() for block in _FENCE.findall(text)]
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict) and _has_label_key(obj):
            start = text.find(candidate)
            return obj, max(start, 0), max(start, 0) + len(candidate)
    decoder = json.JSONDecoder()
    position = text.find("{")
    while position != -1:
        try:
            obj, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and _has_label_key(obj):
            return obj, position, end
        position = text.find("{", position + 1)
    return None


def _has_label_key(obj: dict) -> bool:
    return any(isinstance(key, str) and key.casefold() == "label" for key in obj)


def _get_label_value(obj: dict):
    for key, value in obj.items():
        if isinstance(key, str) and key.casefold() == "label":
            return value
    return None


def _confidence(obj: dict) -> float:
    for key, value in obj.items():
        if isinstance(key, str) and key.casefold() == "confidence":
            if isinstance(value, bool):
                return float("nan")
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    return float("nan")
            if isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0:
                return float(value)
            return float("nan")
    return float("nan")
