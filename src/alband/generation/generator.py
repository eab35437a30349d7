"""An LLM that writes new labelled items where the learner is weak, paid through the ledger (shell).

One generating round ``r`` (the rounds :meth:`Generator.wants`), before the
round's purchase::

    spots    = weak_spots(pool probs, queried, labels bought, validation)   # .targets
    plan     = plan_items(spots, items_per_round)                             # labels and contrasts
    reply    = paid_charge('generation', key(seed, r, prompt digest), ...)    # .prompt
    items    = parse(reply); x = embed(texts)                                 # .embedding
    verdicts = free_filters(items, x, pool + accepted synthetic rows)         # .filters 1-5
    samples  = k x paid_charge('consistency', key + ' sample j', survivors)   # filter 6
    verdict  = paid_charge('verification', item id, verifier) per survivor    # filter 7
    record every item (ledger kind 'synthetic', cost 0); keep the accepted

**Money.** Every call is a ledger charge (:func:`alband.live.paid_call.paid_charge`):
its bound is reserved in the run's budget guard and ledger before the
request and settled after, in the same ``[budget] usd`` as the labels, so
generation competes with the pool purchase of the same round (it is paid
first; the purchase gets what is left). Keys name the seed, the round and a
digest of the prompt (the survivors' ids for a consistency sample; the
item's id for a verification), so a resumed run, which replays the rounds
to the same state, finds every settled charge and pays for none twice. A
call the budget cannot cover rejects what it would have checked
(``unaffordable``); a generation call given up (``'skipped'``) writes nothing.

**Records.** Each generated item gets a ledger row of kind ``'synthetic'``
(cost 0, charge key = its id ``synthetic-s<seed>-r<round>-<j>-<digest>``):
its text as ``raw``; in ``extra``: ``synthetic: true``, the label and its
name, the embedding reference (``synthetic/round-RRRR.npy#j`` in the run
folder, written before the row), every filter's finding and the verdict
(``accepted``, or ``rejected`` with the first filter failed). Accepted items
join the training rows of the learner (never the pool the policy selects
from, never the test or validation set) with weight ``weight``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from alband.annotation import Item
from alband.annotators.llm_common import LLMAnnotator
from alband.errors import BudgetExhausted
from alband.generation.filters import Verdicts, consistency, free_filters
from alband.generation.prompt import ConsistencyPrompt, GenerationPrompt
from alband.generation.targets import plan_items, weak_spots
from alband.live.paid_call import ChargeResult, Skipped, paid_charge
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger

KIND_GENERATION = "generation"
KIND_CONSISTENCY = "consistency"
KIND_VERIFICATION = "verification"
KIND_SYNTHETIC = "synthetic"
SYNTHETIC_FOLDER = "synthetic"


@dataclass(frozen=True)
class GeneratorSettings:
    """The ``[generator]`` options the loop needs (:class:`alband.config.GeneratorConfig`)."""

    items_per_round: int = 8
    k_samples: int = 3
    min_agreement: float = 1.0
    novelty_floor: float = 0.05
    max_share: float = 0.25
    start_round: int = 1
    every: int = 1
    weight: float = 1.0
    n_examples: int = 5


@dataclass
class GenerationRound:
    """What one generating round did (a round's ``synthetic`` metrics)."""

    round: int
    outcome: str  # settled | reused | skipped | unaffordable
    generated: int = 0
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def metrics(self) -> dict:
        return {"generation": self.outcome, "generated": self.generated, "accepted": len(self.accepted),
                "rejected": dict(sorted(self.rejected.items()))}


def _digest(text: str, n: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _save_rows(path: Path, x: np.ndarray) -> None:
    """Atomic ``np.save`` (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, np.asarray(x, np.float32), allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Generator:
    """The generator of the module docstring, over an LLM annotator's provider, client and price."""

    def __init__(self, name: str, llm: LLMAnnotator, settings: GeneratorSettings, *, label_names: Sequence[str],
                 pool_texts: Sequence[str], pool_x: np.ndarray, embed: Callable[[Sequence[str]], np.ndarray],
                 seed: int, verifier=None, task: str = "", max_chars: int = 300) -> None:
        self.name = name
        self.llm = llm
        self.settings = settings
        self.label_names = tuple(label_names)
        self.prompt = GenerationPrompt(self.label_names, **({"task": task} if task else {}), max_chars=max_chars)
        self.check_prompt = ConsistencyPrompt(self.label_names, max_chars=max_chars)
        self.pool_texts = list(pool_texts)
        self.pool_x = np.asarray(pool_x, np.float32)
        self.embed = embed
        self.seed = seed
        self.verifier = verifier
        self.accepted_x = np.zeros((0, self.pool_x.shape[1]), np.float32)
        self.accepted_y = np.zeros(0, np.int32)
        self.accepted_ids: list[str] = []
        self.rounds: list[GenerationRound] = []

    # ------------------------------------------------------------------ schedule
    def wants(self, round_index: int) -> bool:
        s = self.settings
        return round_index >= s.start_round and (round_index - s.start_round) % s.every == 0

    def capacity(self, n_rounds: int) -> int:
        """The most items a run of ``n_rounds`` rounds can accept (the training rows kept for them)."""
        return self.settings.items_per_round * sum(self.wants(r) for r in range(1, n_rounds + 1))

    # ------------------------------------------------------------------ a round
    def generate(self, round_index: int, *, probs: np.ndarray, queried: np.ndarray, train_labels: np.ndarray,
                 n_real: int, ledger: Ledger, guard: BudgetGuard, val_true: np.ndarray | None = None,
                 val_probs: np.ndarray | None = None) -> GenerationRound:
        """Generate, filter, record; the accepted items join :attr:`accepted_x` / :attr:`accepted_y`."""
        s = self.settings
        spots = weak_spots(probs, queried, train_labels, len(self.label_names), val_true=val_true,
                           val_probs=val_probs, n_examples=s.n_examples)
        plan = plan_items(spots, s.items_per_round, probs)
        rendered = self.prompt.render(plan, [self.pool_texts[i] for i in spots.low_confidence])
        key = f"seed {self.seed} round {round_index} prompt {_digest(repr(rendered))}"
        reused = ledger.charge_for(KIND_GENERATION, key, self.name) is not None

        def call() -> ChargeResult:
            completion = self.llm.complete(rendered, subject=key)
            if completion.billed_without_answer:
                return ChargeResult(completion.cost_usd, billed_without_answer=True)
            extra = {"plan": [[p.label, p.contrast] for p in plan], "model": self.llm.model,
                     "confused_pairs": [list(p) for p in spots.confused_pairs],
                     "class_counts": spots.class_counts.tolist()}
            if completion.problem:
                extra["problem"] = completion.problem
            return ChargeResult(completion.cost_usd, completion.text or "", completion.response_id,
                                completion.input_tokens, completion.output_tokens, extra)

        result = self._pay(ledger, guard, KIND_GENERATION, key, self.name, self.llm.max_cost_of(rendered), call,
                           round_index)
        if not isinstance(result, ChargeResult):
            record = GenerationRound(round_index, result)
            self.rounds.append(record)
            return record
        items = self.prompt.parse(result.output, s.items_per_round)
        texts = [item.text for item in items]
        labels = np.asarray([item.label for item in items], np.int64)
        ids = [f"synthetic-s{self.seed}-r{round_index}-{j}-{_digest(t, 8)}" for j, t in enumerate(texts)]
        x = self.embed(texts) if texts else np.zeros((0, self.pool_x.shape[1]), np.float32)
        verdicts = free_filters(labels, x, np.concatenate([self.pool_x, self.accepted_x]),
                                n_classes=len(self.label_names), floor=s.novelty_floor, n_real=n_real,
                                n_synthetic=len(self.accepted_ids), max_share=s.max_share)
        survivors = [j for j, v in enumerate(verdicts) if v.passed]
        if s.k_samples > 0 and survivors:
            self._self_consistency(round_index, key, survivors, texts, labels, ids, verdicts, ledger, guard)
        if self.verifier is not None:
            for j in [j for j, v in enumerate(verdicts) if v.passed]:
                self._verify(round_index, ids[j], texts[j], int(labels[j]), verdicts[j], ledger, guard)
        record = GenerationRound(round_index, "reused" if reused else "settled", len(items))
        if items:
            self._record(round_index, key, items, ids, x, verdicts, ledger)
        for j, v in enumerate(verdicts):
            if v.passed:
                record.accepted.append(ids[j])
                self.accepted_ids.append(ids[j])
                self.accepted_x = np.concatenate([self.accepted_x, x[j:j + 1].astype(np.float32)])
                self.accepted_y = np.append(self.accepted_y, np.int32(labels[j]))
            else:
                record.rejected[v.rejected] = record.rejected.get(v.rejected, 0) + 1
        self.rounds.append(record)
        return record

    # ------------------------------------------------------------------ paid checks
    @staticmethod
    def _pay(ledger, guard, kind, key, payer, max_cost, call, round_index) -> ChargeResult | str:
        """``paid_charge``, or ``'unaffordable'`` / ``'skipped'`` when it bought nothing usable."""
        try:
            result = paid_charge(ledger, guard, kind, key, payer, float(max_cost), call, round_index=round_index,
                                 retry=None, subject=f"{kind} round {round_index}")
        except BudgetExhausted:
            return "unaffordable"
        return "skipped" if isinstance(result, Skipped) else result

    def _self_consistency(self, round_index, key, survivors, texts, labels, ids, verdicts, ledger, guard) -> None:
        shown = [texts[j] for j in survivors]
        rendered = self.check_prompt.render(shown)
        samples = np.full((self.settings.k_samples, len(survivors)), -1, np.int64)
        for sample in range(self.settings.k_samples):
            sample_key = f"{key} sample {sample} items {_digest(chr(0).join(ids[j] for j in survivors))}"

            def call() -> ChargeResult:
                completion = self.llm.complete(rendered, subject=sample_key)
                if completion.billed_without_answer:
                    return ChargeResult(completion.cost_usd, billed_without_answer=True)
                got = self.check_prompt.parse(completion.text, len(shown))
                return ChargeResult(completion.cost_usd, completion.text or "", completion.response_id,
                                    completion.input_tokens, completion.output_tokens,
                                    {"items": [ids[j] for j in survivors], "labels": got})

            result = self._pay(ledger, guard, KIND_CONSISTENCY, sample_key, self.name,
                               self.llm.max_cost_of(rendered), call, round_index)
            if result == "unaffordable":
                for j in survivors:
                    verdicts[j].reject("unaffordable")
                return
            if isinstance(result, ChargeResult):
                samples[sample] = result.extra["labels"]
        for column, j in enumerate(survivors):
            agreement = consistency(int(labels[j]), samples[:, column])
            verdicts[j].checks["consistency"] = agreement
            verdicts[j].checks["samples"] = samples[:, column].tolist()
            if agreement < self.settings.min_agreement:
                verdicts[j].reject("inconsistent")

    def _verify(self, round_index: int, item_id: str, text: str, label: int, verdict: Verdicts, ledger, guard):
        item = Item(0, item_id, text)
        verifier = self.verifier

        def call() -> ChargeResult:
            answer = verifier.annotate(item)
            if answer.extra.get("retryable"):
                return ChargeResult(answer.cost_usd, billed_without_answer=True)
            return ChargeResult(answer.cost_usd, answer.raw or "", answer.response_id or "", answer.input_tokens,
                                answer.output_tokens, {"label": answer.label})

        result = self._pay(ledger, guard, KIND_VERIFICATION, item_id, verifier.name, verifier.max_cost_usd(item),
                           call, round_index)
        if result == "unaffordable":
            verdict.reject("unaffordable")
            return
        said = result.extra.get("label") if isinstance(result, ChargeResult) else None
        verdict.checks["verifier"] = {"annotator": verifier.name, "label": said}
        if said != label:
            verdict.reject("verifier_disagrees")

    # ------------------------------------------------------------------ records
    def _record(self, round_index, key, items, ids, x, verdicts, ledger: Ledger) -> None:
        """The embeddings (one file per round), then one ledger row per item (module docstring)."""
        relative = f"{SYNTHETIC_FOLDER}/round-{round_index:04d}.npy"
        _save_rows(ledger.path.parent / relative, x)
        for j, (item, item_id, verdict) in enumerate(zip(items, ids, verdicts)):
            if ledger.charge_for(KIND_SYNTHETIC, item_id, self.name) is not None:
                continue  # recorded before a kill: the same item, the same verdicts
            label = int(item.label)
            extra = {"synthetic": True, "label": label if label >= 0 else None,
                     "label_name": self.label_names[label] if label >= 0 else item.label_text,
                     "embedding": f"{relative}#{j}", "generation_key": key, "checks": verdict.checks,
                     "verdict": "accepted" if verdict.passed else "rejected", "reason": verdict.rejected}
            row = ledger.reserve(round_index, None, item_id, self.name, 0.0, kind=KIND_SYNTHETIC, key=item_id)
            ledger.settle_charge(row, 0.0, raw=item.text, extra=extra)
