"""A responder for the local wire-format server that plays a generating LLM, its self-consistency and a verifier.

The ``n``-th distinct generation prompt (1-based; the same prompt asked
again, after a kill, gets the same answer) writes eight items, one per way of
failing the filters and two that pass, their numbers taken from ``n`` so
every round writes new texts. The self-consistency
labeller calls a text ``neg`` when it says "bad" or "sly", else ``pos``, and
flips that for a "wobbly" text; the verifier calls a text ``pos`` when it
says "good", else ``neg``: so the "sly" text passes self-consistency and
fails the verifier.
"""

from __future__ import annotations

import json
import re

from fake_llm_server import Reply

GENERATE = "You write new labelled training examples"
CHECK = "You label texts for a text classifier"


def generated_items(n: int) -> list[dict]:
    a, b = 10 + n, 20 + n
    return [
        {"text": f"good lovely film {a} {b} with a fine cast", "label": "pos"},  # passes
        {"text": f"bad dull film {b} {a} with a weak plot", "label": "neg"},  # passes
        {"text": "a good and lovely film number 3", "label": "pos"},  # a pool text: not novel
        {"text": f"good lovely film {a} {b} with a fine cast", "label": "pos"},  # a copy of the first: duplicate
        {"text": "xylophone quasar", "label": "pos"},  # no word of the vocabulary: not embeddable
        {"text": f"a dull film {a}", "label": "meh"},  # not a label
        {"text": f"a wobbly good film {b}", "label": "pos"},  # self-consistency says neg
        {"text": f"a sly good film {a}", "label": "neg"},  # self-consistency agrees, the verifier says pos
    ]


def consistency_label(text: str) -> str:
    label = "neg" if ("bad" in text or "sly" in text) else "pos"
    if "wobbly" in text:
        label = "pos" if label == "neg" else "neg"
    return label


class GenerationResponder:
    """The server's responder (module docstring); ``calls`` counts requests by kind."""

    def __init__(self) -> None:
        self.calls = {"generation": 0, "consistency": 0, "verification": 0}
        self.hang_generation_call: int | None = None  # that generation call answers after 120 s
        self.in_flight = None  # a threading.Event set when the hanging call arrives
        self.prompts: dict[str, int] = {}  # generation prompt -> its number

    def __call__(self, request) -> Reply:
        prompt = request.prompt_text
        if GENERATE in prompt:
            self.calls["generation"] += 1
            n = self.prompts.setdefault(prompt, len(self.prompts) + 1)
            reply = Reply(text=json.dumps({"items": generated_items(n)}))
            if self.calls["generation"] == self.hang_generation_call and self.in_flight is not None and not self.in_flight.is_set():
                self.in_flight.set()
                return Reply(text=reply.text, delay_s=120)
            return reply
        if CHECK in prompt:
            self.calls["consistency"] += 1
            texts = re.findall(r"^\[\d+\] (.*)$", prompt, re.MULTILINE)
            return Reply(text=json.dumps({"labels": [consistency_label(t) for t in texts]}))
        self.calls["verification"] += 1
        message = request.body["messages"][-1]["content"]
        text = message if isinstance(message, str) else json.dumps(message)
        return Reply(text=json.dumps({"label": "pos" if "good" in text else "neg", "confidence": 0.9}))
