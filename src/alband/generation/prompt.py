"""The generation and self-consistency prompts, and tolerant reading of their replies.

**Generation.** The system text states the task and the label set, and asks
for one JSON object ``{"items": [{"text": "...", "label": "..."}, ...]}``.
The user text lists the planned items (:func:`.targets.plan_items`): for
each label, how many texts to write, and the label they must be told apart
from (a confused pair); then up to ``n_examples`` pool texts the learner is
least sure about (cut to ``max_chars``), as the region to write near. A reply
is read as the whole text as JSON, else the first ``{...}`` object in it; each
entry must have a non-empty string ``text``; its ``label`` is matched to the
label set ignoring case and surrounding spaces (-1 when it matches none: the
filters reject it as ``unknown_label``). Entries beyond the ``n`` asked for
are dropped.

**Self-consistency.** The generating model is shown the ``m`` surviving texts,
numbered, with the label set, and asked for ``{"labels": [...]}`` (one label
per text, in order). Missing or unknown labels read as -1 (a disagreement).
Each of the ``k`` samples is its own call; the model's sampling temperature
is the provider's default.

Both bounds are those of any LLM call (:mod:`alband.annotators.llm_common`):
the UTF-8 bytes of the rendered prompt plus ``max_tokens``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence

from alband.annotators.prompts import RenderedPrompt
from alband.errors import AlbandError
from alband.generation.targets import PlannedItem

DEFAULT_TASK = "Train a text classifier with as few labelled examples as possible."
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class GeneratedText:
    """One item as the generator wrote it: its text and label index (-1: not a known label)."""

    text: str
    label: int
    label_text: str


def _one_line(text: str, max_chars: int) -> str:
    return " ".join(text.split())[:max_chars]


def _json_object(text: str | None) -> dict | None:
    text = text or ""
    for candidate in (text, None):
        if candidate is None:
            match = _OBJECT.search(text)
            if match is None:
                return None
            candidate = match.group(0)
        try:
            body = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(body, dict):
            return body
    return None


def label_index(value, label_names: Sequence[str]) -> int:
    """The index of ``value`` in ``label_names`` ignoring case and spaces, else -1."""
    if not isinstance(value, str):
        return -1
    wanted = value.strip().lower()
    for k, name in enumerate(label_names):
        if name.strip().lower() == wanted:
            return k
    return -1


@dataclass(frozen=True)
class GenerationPrompt:
    """The generation prompt template (module docstring)."""

    label_names: tuple[str, ...]
    task: str = DEFAULT_TASK
    max_chars: int = 300

    def __post_init__(self) -> None:
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise AlbandError(f"max_chars must be an integer >= 1, got {self.max_chars!r}")

    def render(self, plan: Sequence[PlannedItem], examples: Sequence[str]) -> RenderedPrompt:
        system = "\n".join([
            "You write new labelled training examples for a text classifier.",
            f"Task: {self.task.strip()}",
            "The labels are: " + ", ".join(self.label_names) + ".",
            "Write realistic, varied texts, each clearly of its label, none copying an example.",
            'Answer with one JSON object and nothing else: {"items": [{"text": "<text>", "label": "<label>"}, ...]}',
        ])
        wanted: dict[tuple[int, int], int] = {}
        for item in plan:
            wanted[(item.label, item.contrast)] = wanted.get((item.label, item.contrast), 0) + 1
        lines = [f"Write {len(plan)} texts:"]
        for (label, contrast), count in wanted.items():
            apart = "" if contrast < 0 else f", hard to tell apart from '{self.label_names[contrast]}' but clearly not it"
            lines.append(f"- {count} labelled '{self.label_names[label]}'{apart}")
        if examples:
            lines += ["", "Texts the classifier is unsure about (write near these, do not copy them):"]
            lines += [f"* {_one_line(t, self.max_chars)}" for t in examples]
        return RenderedPrompt(system=system, messages=({"role": "user", "content": "\n".join(lines)},))

    def parse(self, text: str | None, n: int) -> list[GeneratedText]:
        """The items of a reply (module docstring), at most ``n``."""
        body = _json_object(text)
        entries = body.get("items") if body is not None else None
        if not isinstance(entries, list):
            return []
        items = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
                continue
            label = entry.get("label")
            items.append(GeneratedText(entry["text"].strip(), label_index(label, self.label_names),
                                       label if isinstance(label, str) else json.dumps(label)))
            if len(items) == n:
                break
        return items


@dataclass(frozen=True)
class ConsistencyPrompt:
    """The self-consistency prompt: label each numbered text (module docstring)."""

    label_names: tuple[str, ...]
    max_chars: int = 300

    def render(self, texts: Sequence[str]) -> RenderedPrompt:
        system = "\n".join([
            "You label texts for a text classifier.",
            "The labels are: " + ", ".join(self.label_names) + ".",
            f"Label each of the {len(texts)} numbered texts.",
            'Answer with one JSON object and nothing else: {"labels": ["<label of text 1>", ...]}',
        ])
        user = "\n".join(f"[{k}] {_one_line(t, self.max_chars)}" for k, t in enumerate(texts, start=1))
        return RenderedPrompt(system=system, messages=({"role": "user", "content": user},))

    def parse(self, text: str | None, m: int) -> list[int]:
        """``m`` label indices, in order; -1 where the reply gives none or an unknown one."""
        body = _json_object(text)
        entries = body.get("labels") if body is not None else None
        entries = entries if isinstance(entries, list) else []
        labels = [label_index(v, self.label_names) for v in entries[:m]]
        return labels + [-1] * (m - len(labels))
