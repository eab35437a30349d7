"""The pairwise prompt of an LLM preference judge: a prompt and two responses -> "A", "B" or "tie".

A :class:`PairwisePrompt` renders one comparison as a system text (the task,
the answer format) and one user message holding the prompt and the two
responses in the order shown (``A`` first). The model answers with a JSON
object ``{"label": "A" | "B" | "tie", "confidence": c}``, read by
:func:`alband.annotators.parsing.parse_label_answer` against
:data:`JUDGE_ANSWERS`.

**Bytes.** Each of the three texts stands once, verbatim, in the user
message, so a rendered comparison has exactly
``render("", "", "").utf8_bytes() + bytes(prompt) + bytes(a) + bytes(b)``
UTF-8 bytes (:meth:`PairwisePrompt.utf8_bytes`), the quantity the judge's
cost bound starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

from alband.annotators.prompts import RenderedPrompt
from alband.errors import AlbandError

#: What the judge may answer, in the order of the parsed label index.
JUDGE_ANSWERS = ("A", "B", "tie")
DEFAULT_PAIR_INSTRUCTIONS = ("Decide which response answers the prompt better: more helpful, honest and harmless. "
                             "Judge the content, not the length or the position of a response.")


@dataclass(frozen=True)
class PairwisePrompt:
    """Prompt template for comparing two responses to one prompt (module docstring)."""

    instructions: str = DEFAULT_PAIR_INSTRUCTIONS
    allow_tie: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise AlbandError("pair judge instructions must be non-empty text")

    def system_text(self) -> str:
        answers = '"A", "B" or "tie"' if self.allow_tie else '"A" or "B"'
        lines = [
            "You are a careful judge comparing two responses, A and B, to the same prompt.",
            self.instructions.strip(),
            "",
            "Answer with one JSON object and nothing else, in this form:",
            f'{{"label": <{answers}>, "confidence": <probability between 0 and 1 that your choice is right>}}',
        ]
        if self.allow_tie:
            lines.append('Answer "tie" only when neither response is better than the other.')
        return "\n".join(lines)

    def user_text(self, prompt: str, response_a: str, response_b: str) -> str:
        return (f"<prompt>\n{prompt}\n</prompt>\n\n<response_a>\n{response_a}\n</response_a>\n\n"
                f"<response_b>\n{response_b}\n</response_b>\n\nWhich response is better? "
                "Answer with the JSON object only.")

    def render(self, prompt: str, response_a: str, response_b: str) -> RenderedPrompt:
        for what, text in (("prompt", prompt), ("response A", response_a), ("response B", response_b)):
            if not isinstance(text, str):
                raise AlbandError(f"the {what} of a comparison must be a string, got {type(text).__name__}")
        return RenderedPrompt(system=self.system_text(),
                              messages=({"role": "user", "content": self.user_text(prompt, response_a, response_b)},))

    def template_utf8_bytes(self) -> int:
        """UTF-8 bytes of a comparison with three empty texts (what every rendering adds to its texts)."""
        return self.render("", "", "").utf8_bytes()
