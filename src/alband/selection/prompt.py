"""The selection prompt: a task description, ``n`` numbered candidates, ``k`` numbers to return.

Variants (``[selector] prompt``, ``show_labels``), after ActiveLLM (Bayer et
al. 2024), which found chain-of-thought prompting best:

* ``"plain"``: the model answers ``{"indices": [...], "reasons": "..."}``
  directly;
* ``"cot"``: the model is asked to reason step by step first, inside
  ``"reasons"`` (written before ``"indices"``);
* with ``show_labels`` the label set of the task is listed (the model can aim
  for coverage of every class); without it the model sees only the texts.

Candidates are numbered from 1 in the order shown; each text is cut to
``max_chars`` characters. Everything but the candidates sits in the system
text. The bound on the cost is that of any LLM call
(:mod:`alband.annotators.llm_common`): the UTF-8 bytes of the rendered prompt
plus ``max_tokens`` of output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from alband.annotators.prompts import RenderedPrompt
from alband.errors import AlbandError

PROMPT_VARIANTS = ("plain", "cot")
DEFAULT_TASK = "Train a text classifier with as few labelled examples as possible."


@dataclass(frozen=True)
class SelectionPrompt:
    """A selection prompt template (module docstring)."""

    variant: str = "plain"
    label_names: tuple[str, ...] | None = None  # shown when not None
    task: str = DEFAULT_TASK
    max_chars: int = 400

    def __post_init__(self) -> None:
        if self.variant not in PROMPT_VARIANTS:
            raise AlbandError(f"prompt must be one of {', '.join(PROMPT_VARIANTS)}, got {self.variant!r}")
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int) or self.max_chars < 1:
            raise AlbandError(f"max_chars must be an integer >= 1, got {self.max_chars!r}")

    def system_text(self, n: int, k: int) -> str:
        lines = [
            "You choose which unlabelled texts a person should label next.",
            f"Task: {self.task.strip()}",
            f"You will see {n} numbered texts. Choose the {k} whose labels would teach a classifier the most: "
            "informative, diverse, representative of the data, not near-duplicates of each other.",
        ]
        if self.label_names is not None:
            lines += ["", "The labels are: " + ", ".join(self.label_names) + ". Cover every label if you can."]
        lines.append("")
        if self.variant == "cot":
            lines += ["Think step by step first: write your reasoning in \"reasons\", then the numbers.",
                      f'Answer with one JSON object and nothing else: {{"reasons": "<your reasoning>", '
                      f'"indices": [<{k} distinct numbers between 1 and {n}>]}}']
        else:
            lines.append(f'Answer with one JSON object and nothing else: {{"indices": [<{k} distinct numbers '
                         f'between 1 and {n}>], "reasons": "<one sentence>"}}')
        return "\n".join(lines)

    def user_text(self, texts: Sequence[str]) -> str:
        shown = [" ".join(t.split())[: self.max_chars] for t in texts]
        return "\n".join(f"[{number}] {text}" for number, text in enumerate(shown, start=1))

    def render(self, texts: Sequence[str], k: int) -> RenderedPrompt:
        """The prompt showing ``texts`` (numbered from 1) and asking for ``k`` of them."""
        return RenderedPrompt(system=self.system_text(len(texts), k),
                              messages=({"role": "user", "content": self.user_text(texts)},))
