"""Classification prompts for LLM annotators: label set, instructions, few-shot examples.

A :class:`ClassificationPrompt` renders one item as a system text (task,
labels, answer format, optional examples) and one user message (the item).
Everything that does not depend on the item lives in the system text, so the
prefix is identical across items -- the part providers' prompt caches reuse.

The model is asked for a JSON object ``{"label": "<label>", "confidence": c}``
with ``c`` in ``[0, 1]``; :mod:`alband.annotators.parsing` reads the answer.

Few-shot examples are ``(text, label_name)`` pairs drawn from the labelled set
by the caller (annotators never choose items); :meth:`with_examples` returns a
new prompt, so an annotator's cost bound always matches the prompt it sends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

import numpy as np

from alband.annotators.base import utf8_byte_lengths
from alband.errors import AlbandError

DEFAULT_INSTRUCTIONS = "Classify the text into exactly one of the labels below."

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def normalize_label(text: str) -> str:
    """Case-folded, punctuation-free form used to compare label names.

    Runs of characters that are neither letters nor digits become one space,
    so ``"Sci/Tech"``, ``"sci-tech"`` and ``" SCI TECH. "`` all compare equal.
    """
    return _NON_ALNUM.sub(" ", text.casefold()).strip()


@dataclass(frozen=True)
class RenderedPrompt:
    """What is sent for one item: a system text and the chat messages."""

    system: str
    messages: tuple[dict, ...]

    def utf8_bytes(self) -> int:
        """UTF-8 bytes of the system text and every message's content."""
        return len(self.system.encode("utf-8")) + sum(
            len(message["content"].encode("utf-8")) for message in self.messages
        )


@dataclass(frozen=True)
class ClassificationPrompt:
    """Prompt template for single-label classification into ``label_names``."""

    label_names: tuple[str, ...]
    instructions: str = DEFAULT_INSTRUCTIONS
    label_descriptions: Mapping[str, str] | None = None
    examples: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        names = tuple(self.label_names)
        object.__setattr__(self, "label_names", names)
        if len(names) < 2:
            raise AlbandError(f"a classification prompt needs at least 2 labels, got {list(names)!r}")
        seen: dict[str, str] = {}
        for name in names:
            if not isinstance(name, str) or not normalize_label(name):
                raise AlbandError(f"label names must be non-empty text with a letter or digit, got {name!r}")
            key = normalize_label(name)
            if key in seen:
                raise AlbandError(
                    f"labels {seen[key]!r} and {name!r} are the same once case and punctuation are "
                    "ignored: answers could not tell them apart"
                )
            seen[key] = name
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise AlbandError("prompt instructions must be non-empty text")
        if self.label_descriptions is not None:
            unknown = sorted(set(self.label_descriptions) - set(names))
            if unknown:
                raise AlbandError(f"label_descriptions name labels not in the label set: {unknown!r}")
        object.__setattr__(self, "examples", _checked_examples(self.examples, names))

    def with_examples(self, examples: Iterable[tuple[str, str]]) -> "ClassificationPrompt":
        """The same prompt with these few-shot ``(text, label_name)`` examples."""
        return replace(self, examples=tuple(examples))

    def label_index(self, name: str) -> int | None:
        """Index of the label whose normalised name equals ``name``'s, else ``None``."""
        key = normalize_label(name)
        for index, label in enumerate(self.label_names):
            if normalize_label(label) == key:
                return index
        return None

    def system_text(self) -> str:
        lines = [
            "You are a careful annotator for a text classification task.",
            self.instructions.strip(),
            "",
            "Labels:",
        ]
        for name in self.label_names:
            description = (self.label_descriptions or {}).get(name)
            lines.append(f"- {name}: {description}" if description else f"- {name}")
        lines += [
            "",
            "Answer with one JSON object and nothing else, in this form:",
            '{"label": "<one label from the list, written exactly as above>", '
            '"confidence": <probability between 0 and 1 that the label is correct>}',
        ]
        if self.examples:
            lines += ["", "Examples:"]
            for text, label in self.examples:
                lines += [f"<text>{text}</text>", f"Label: {label}", ""]
            lines.pop()
        return "\n".join(lines)

    def user_text(self, item_text: str) -> str:
        return f"<text>{item_text}</text>\n\nAnswer with the JSON object only."

    def utf8_bytes_many(self, texts: Iterable[str]) -> np.ndarray:
        """``render(text).utf8_bytes()`` for every text, int64, without rendering each.

        The item text stands once, verbatim, in the user message and nowhere
        else, so a prompt's bytes are the template's (``render("")``, few-shot
        examples included) plus the text's.
        """
        return self.render("").utf8_bytes() + utf8_byte_lengths(texts)

    def render(self, item_text: str) -> RenderedPrompt:
        if not isinstance(item_text, str):
            raise AlbandError(f"item text must be a string, got {type(item_text).__name__}")
        return RenderedPrompt(
            system=self.system_text(),
            messages=({"role": "user", "content": self.user_text(item_text)},),
        )


def _checked_examples(examples, label_names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    checked = []
    for position, example in enumerate(examples):
        if not (isinstance(example, (tuple, list)) and len(example) == 2):
            raise AlbandError(f"few-shot example {position} must be a (text, label_name) pair, got {example!r}")
        text, label = example
        if not isinstance(text, str):
            raise AlbandError(f"few-shot example {position}: text must be a string, got {type(text).__name__}")
        if label not in label_names:
            raise AlbandError(
                f"few-shot example {position}: label {label!r} is not in the label set {list(label_names)!r}"
            )
        checked.append((text, label))
    return tuple(checked)
