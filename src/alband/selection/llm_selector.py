"""An LLM that picks the items to label from a numbered shortlist, paid through the ledger (shell).

ActiveLLM (Bayer et al. 2024, arXiv 2405.10808): an instruction-tuned model
shown ``n`` unlabelled texts (200) returns the ``k`` (32) most useful to label,
with no labels and no retraining; SelectLLM (arXiv 2401.16553) shows one text
per k-means cluster. One selection is::

    candidates = draw_candidates(shortlist, ctx, key, n)        # .candidates, shuffled
    reply      = paid_charge('selection', key_of(seed, round, candidate ids), ...)
    picked     = parse_selection(reply, n, k)                    # .reply: repaired, counted
    filled     = fallback policy's first (k - len(picked)) items, the picked ones excluded
    buy picked + filled

**Money.** Each selection call is a ledger charge of kind ``'selection'``
(:func:`alband.live.paid_call.paid_charge`): its bound (UTF-8 bytes of the
prompt plus ``max_tokens``, :meth:`LLMAnnotator.max_cost_of`) is reserved in
the run's budget guard and the ledger before the request and settled with the
billed usage after it, so it counts against ``[budget] usd``. The charge key
names the run's seed, the round and a digest of the candidates' ids in the
order shown, so a resumed run, which draws the same candidates, finds the
settled charge and reads the selection back instead of paying again. The
settled row keeps the reply text (redacted of credentials) as ``raw`` and, in
``extra``, the candidates' ids, the ids picked and filled, the repair counts,
the reasons, the prompt variant and the fallback policy: enough to replay it
(:mod:`.replay`). A call the budget cannot cover, or one given up after its
attempts (a ``'skipped'`` row), leaves the whole batch to the fallback policy.

**Modes.** ``"cold_start"``: the selector picks round 0's seed set (no label
yet, as in ActiveLLM) and the configured policy runs every later round;
``"iterative"``: it picks every round's batch, round 0 included;
``"meta_arm"``: it is an arm of a meta-bandit ``[policy]`` (``albl``,
``meta_ts``) whose strategies list ``llm_selection``
(:mod:`alband.policies.llm_arm`), and picks the batch of the rounds (from 1)
in which the meta-bandit drew that arm (``meta_arm``: its position among the
strategies, read from the proposal's policy state).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import jax
import numpy as np

from alband.annotators.llm_common import LLMAnnotator
from alband.errors import AlbandError, BudgetExhausted
from alband.live.paid_call import ChargeResult, Skipped, paid_charge
from alband.policies.base import QueryPolicy, RoundContext
from alband.selection.candidates import draw_candidates
from alband.selection.prompt import SelectionPrompt
from alband.selection.reply import parse_selection
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger

KIND_SELECTION = "selection"
SELECTION_MODES = ("cold_start", "iterative", "meta_arm")


class Selector(Protocol):
    """What the live loop calls between ``before_buy`` and the purchase (:func:`alband.loop.live_rounds`)."""

    name: str

    def wants(self, round_index: int, proposal=None) -> bool:
        """Whether this selector chooses round ``round_index``'s batch (``proposal``: the policy's, from round 1)."""

    def choose(self, round_index: int, ctx: RoundContext, key: jax.Array, size: int, ledger: Ledger,
               guard: BudgetGuard) -> np.ndarray:
        """``size`` distinct unqueried pool indices to buy, in purchase order."""


@dataclass
class SelectionRecord:
    """What one selection did (also stored in its ledger row's ``extra``)."""

    round: int
    charge_key: str
    candidates: list[str]
    picked: list[str]
    filled: list[str]
    repairs: dict = field(default_factory=dict)
    outcome: str = "settled"  # settled | reused | skipped | unaffordable


def charge_key(seed: int, round_index: int, candidate_ids: Sequence[str]) -> str:
    """The ledger key of a selection: the run's seed, the round, and the candidates' ids in the order shown."""
    digest = hashlib.sha256("\0".join(candidate_ids).encode("utf-8")).hexdigest()[:20]
    return f"seed {seed} round {round_index} candidates {digest}"


class LLMSelector:
    """The selector of the module docstring, over an LLM annotator's provider, client and price."""

    def __init__(self, name: str, llm: LLMAnnotator, prompt: SelectionPrompt, *, ids: Sequence[str],
                 texts: Sequence[str], seed: int, n_candidates: int = 200, shortlist: str | QueryPolicy = "uniform",
                 mode: str = "cold_start", fallback: QueryPolicy, meta_arm: int | None = None) -> None:
        if mode not in SELECTION_MODES:
            raise AlbandError(f"selector mode must be one of {', '.join(SELECTION_MODES)}, got {mode!r}")
        if isinstance(n_candidates, bool) or not isinstance(n_candidates, int) or n_candidates < 1:
            raise AlbandError(f"n_candidates must be an integer >= 1, got {n_candidates!r}")
        if (mode == "meta_arm") != (meta_arm is not None):
            raise AlbandError("mode 'meta_arm' needs the arm's position among the meta-bandit's strategies "
                              "(meta_arm), and only that mode takes one")
        if mode == "cold_start" and isinstance(shortlist, QueryPolicy):
            raise AlbandError(f"shortlist '{shortlist.name}' needs a model, and a cold start has none: "
                              "use 'uniform' or 'kmeans', or mode = 'iterative'")
        self.name = name
        self.llm = llm
        self.prompt = prompt
        self.ids = [str(i) for i in ids]
        self.texts = list(texts)
        self.seed = seed
        self.n_candidates = n_candidates
        self.shortlist = shortlist
        self.mode = mode
        self.meta_arm = meta_arm
        self.fallback = fallback
        self.records: list[SelectionRecord] = []
        self._position = {item_id: k for k, item_id in enumerate(self.ids)}

    def wants(self, round_index: int, proposal=None) -> bool:
        if self.mode == "cold_start":
            return round_index == 0
        if self.mode == "iterative":
            return True
        arm = getattr(getattr(proposal, "policy_state", None), "arm", None)
        return round_index >= 1 and arm is not None and int(arm) == self.meta_arm

    def choose(self, round_index: int, ctx: RoundContext, key: jax.Array, size: int, ledger: Ledger,
               guard: BudgetGuard) -> np.ndarray:
        k_candidates, k_fallback = jax.random.split(key)
        candidates = draw_candidates(self.shortlist, ctx, k_candidates, self.n_candidates)
        candidate_ids = [self.ids[i] for i in candidates]
        key_text = charge_key(self.seed, round_index, candidate_ids)
        rendered = self.prompt.render([self.texts[i] for i in candidates], size)
        max_cost = float(self.llm.max_cost_of(rendered))

        def call() -> ChargeResult:
            completion = self.llm.complete(rendered, subject=key_text)
            if completion.billed_without_answer:
                return ChargeResult(completion.cost_usd, billed_without_answer=True)
            parsed = parse_selection(completion.text, len(candidates), size)
            picked = candidates[list(parsed.positions)]
            filled = self._fill(ctx, picked, k_fallback, size)[len(picked):]
            extra = {"candidates": candidate_ids, "picked": [self.ids[i] for i in picked],
                     "filled": [self.ids[i] for i in filled], "repairs": parsed.repairs,
                     "parse_method": parsed.parse_method, "reasons": parsed.reasons[:4000],
                     "prompt": self.prompt.variant, "show_labels": self.prompt.label_names is not None,
                     "batch": size, "fallback": self.fallback.name, "model": self.llm.model}
            if completion.problem:
                extra["problem"] = completion.problem
            return ChargeResult(completion.cost_usd, completion.text or "", completion.response_id,
                                completion.input_tokens, completion.output_tokens, extra)

        reused = ledger.charge_for(KIND_SELECTION, key_text, self.name) is not None
        try:
            result = paid_charge(ledger, guard, KIND_SELECTION, key_text, self.name, max_cost, call,
                                 round_index=round_index, retry=None, subject=f"selection round {round_index}")
        except BudgetExhausted:
            result = None
        if result is None or isinstance(result, Skipped):
            filled = self._fill(ctx, np.zeros(0, np.int64), k_fallback, size)
            self.records.append(SelectionRecord(round_index, key_text, candidate_ids, [],
                                                [self.ids[i] for i in filled], {"shortfall": size},
                                                "unaffordable" if result is None else "skipped"))
            return filled
        picked_ids, filled_ids = result.extra["picked"], result.extra["filled"]
        self.records.append(SelectionRecord(round_index, key_text, candidate_ids, picked_ids, filled_ids,
                                            result.extra.get("repairs", {}), "reused" if reused else "settled"))
        return np.asarray([self._position[i] for i in picked_ids + filled_ids], np.int64)

    def _fill(self, ctx: RoundContext, picked: np.ndarray, key: jax.Array, size: int) -> np.ndarray:
        """The fallback policy's first ``size - len(picked)`` items with ``picked`` excluded, after ``picked``."""
        shortfall = size - len(picked)
        if shortfall <= 0:
            return np.asarray(picked, np.int64)
        queried = np.asarray(ctx.queried).copy()
        queried[np.asarray(picked, np.int64)] = True
        fill_ctx = ctx._replace(queried=jax.numpy.asarray(queried))
        index, _ = self.fallback.select(self.fallback.init(fill_ctx), fill_ctx, key, size)
        index = [int(i) for i in np.asarray(index) if not queried[int(i)]][:shortfall]
        return np.concatenate([np.asarray(picked, np.int64), np.asarray(index, np.int64)])
