"""Price tables and usage-to-dollars.

An annotator's price has three parts, all in US dollars:

* ``input_usd_per_mtok`` and ``output_usd_per_mtok``: list prices per million
  input / output tokens (LLM annotators);
* ``usd_per_label``: a flat fee per annotation (human annotators, or a
  per-request surcharge).

The cost of one annotation with usage ``u`` is::

    cost = (u.input_tokens * p_in
            + u.cache_write_tokens * p_in * cache_write_multiplier
            + u.cache_read_tokens * p_in * cache_read_multiplier
            + u.output_tokens * p_out) / 1e6
           + usd_per_label

Provider conventions are normalised *before* this formula by the annotators:
Anthropic reports cache-creation and cache-read tokens in addition to
``input_tokens`` (writes cost 1.25x the input price for the 5-minute cache,
reads 0.1x); OpenAI's ``cached_tokens`` are a subset of ``prompt_tokens`` and
reasoning tokens are part of ``completion_tokens`` (billed as output).
"""

from __future__ import annotations

from dataclasses import dataclass

from alband.errors import AlbandError


@dataclass(frozen=True)
class Usage:
    """Token usage of one annotation request (all counts are non-negative ints)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True)
class Price:
    """Dollar price of one annotator. See the module docstring for the formula."""

    input_usd_per_mtok: float = 0.0
    output_usd_per_mtok: float = 0.0
    usd_per_label: float = 0.0
    cache_write_multiplier: float = 1.25
    cache_read_multiplier: float = 0.1

    def __post_init__(self) -> None:
        for field in ("input_usd_per_mtok", "output_usd_per_mtok", "usd_per_label",
                      "cache_write_multiplier", "cache_read_multiplier"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and value == value and 0 <= value < float("inf")):
                raise AlbandError(f"price field '{field}' must be a finite number >= 0, got {value!r}")


def usage_cost_usd(price: Price, usage: Usage) -> float:
    """Dollars billed for ``usage`` at ``price`` (module docstring formula)."""
    token_usd = (
        usage.input_tokens * price.input_usd_per_mtok
        + usage.cache_write_tokens * price.input_usd_per_mtok * price.cache_write_multiplier
        + usage.cache_read_tokens * price.input_usd_per_mtok * price.cache_read_multiplier
        + usage.output_tokens * price.output_usd_per_mtok
    ) / 1e6
    return token_usd + price.usd_per_label
