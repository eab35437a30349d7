"""Reading a selection reply, tolerantly, and repairing it.

The model is asked for ``{"indices": [...], "reasons": "..."}`` with ``k``
distinct numbers in ``1..n`` (:mod:`.prompt`). What it sends is read in this
order: the whole text as JSON; the first ``{...}`` object in it (a reply
wrapped in prose or a code fence); failing both, every integer after the
word ``indices`` (or, without it, in the whole text) -- ``parse_method`` says
which. Then each entry, in order, is:

* kept when it is an integer (``7``, ``7.0``, ``"7"``) in ``1..n`` not seen before;
* counted ``duplicate`` when already kept;
* counted ``out_of_range`` when an integer outside ``1..n`` (an invented item);
* counted ``non_integer`` otherwise (``"seven"``, ``2.5``, ``null``, a list).

Entries beyond the first ``k`` kept are counted ``surplus`` and dropped;
``shortfall = k - kept`` is what the fallback policy fills
(:mod:`.llm_selector`). Numbers are returned 0-based (positions in the
candidate list).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True)
class ParsedSelection:
    """The 0-based candidate positions a reply picked, its reasons and what was repaired."""

    positions: tuple[int, ...]
    reasons: str
    parse_method: str  # "json" | "json_object" | "integers" | "none"
    repairs: dict[str, int] = field(default_factory=dict)  # duplicate, out_of_range, non_integer, surplus, shortfall

    def as_record(self) -> dict[str, Any]:
        return {"positions": list(self.positions), "reasons": self.reasons, "parse_method": self.parse_method,
                "repairs": dict(self.repairs)}


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def _entries(text: str) -> tuple[list, str, str]:
    """``(entries, reasons, method)`` of a reply text (module docstring)."""
    for method, candidate in (("json", text), ("json_object", None)):
        if candidate is None:
            match = _OBJECT.search(text)
            if match is None:
                break
            candidate = match.group(0)
        try:
            body = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get("indices"), list):
            reasons = body.get("reasons", "")
            return body["indices"], reasons if isinstance(reasons, str) else json.dumps(reasons), method
    lowered = text.lower()
    start = lowered.find("indices")
    tail = text[start:] if start >= 0 else text
    numbers = [int(m) for m in _INTEGER.findall(tail)]
    return numbers, "", "integers" if numbers else "none"


def parse_selection(text: str | None, n: int, k: int) -> ParsedSelection:
    """The repaired selection of a reply (module docstring); ``text`` None reads as an empty reply."""
    entries, reasons, method = _entries(text or "")
    counts = {"duplicate": 0, "out_of_range": 0, "non_integer": 0, "surplus": 0}
    kept: list[int] = []
    seen: set[int] = set()
    for entry in entries:
        number = _as_integer(entry)
        if number is None:
            counts["non_integer"] += 1
        elif not 1 <= number <= n:
            counts["out_of_range"] += 1
        elif number in seen:
            counts["duplicate"] += 1
        elif len(kept) >= k:
            counts["surplus"] += 1
        else:
            seen.add(number)
            kept.append(number - 1)
    counts["shortfall"] = k - len(kept)
    return ParsedSelection(tuple(kept), reasons, method, counts)
