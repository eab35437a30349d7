"""Export a run's paid annotations: JSONL or CSV of every settled label, or DPO rows of judged pairs (shell).

**Annotations** (:func:`export_annotations`, ``--format jsonl | csv``): one
record per *settled label row* of the ledger -- every answer that was paid
and returned, valid or not (ties, refusals and off-format answers have
``label`` empty and ``valid`` false) -- and nothing else: released,
charged-without-answer, skipped and still-reserved attempts, and charges that
are not labels, are left out (their dollars are in the ledger and in
``alband report``). Fields (:data:`FIELDS`): the ledger row id, the item id
and pool index, the item's text (from the run's data; empty with
``texts=False`` or when the source has none), the label index and name, the
annotator, its confidence, tokens, dollars, the round, whether the answer is
``used_for_training`` and its ``invalid_reason``.

``used_for_training`` is the label the run trains on for an item, read from
the ledger: the auditor's valid answer when the run's ``[routing]`` has an
auditor that answered the item; otherwise the first valid answer bought for
the item. For a pair asked in both orders, both order answers are used when
they agree and neither when they do not (:func:`alband.annotators.pair_orders.combine_orders`).
Pseudo-labels a run records without paying are not annotations and are not
exported.

**Synthetic items.** A run with a ``[generator]`` (:mod:`alband.generation`)
also records every item the generator wrote (ledger rows of kind
``'synthetic'``); each is exported after the label rows with ``synthetic``
true, its generated text and label, no pool index, the generator as
annotator and cost 0 (its calls' dollars are in the ledger's generation,
consistency and verification charges), ``used_for_training`` true for the
accepted ones and ``invalid_reason`` the filter that rejected the others.
Every other record has ``synthetic`` false.

**DPO** (:func:`export_dpo`, ``--format dpo``): for a preference run, one
TRL row ``{"prompt", "chosen", "rejected"}`` per pair whose verdict is valid
(``dpo.jsonl``), and a reward-model pairs file (``reward_pairs.jsonl``:
``id``, ``prompt``, ``first``, ``second`` in the pool's order, ``preferred``
= ``"first"`` | ``"second"``, the verdict's ``confidence``, the annotators
and the dollars of its answers). Pairs whose verdict is a tie or invalid are
skipped and counted.

:func:`read_annotations_export` reads either annotation file back (tested:
a round trip gives every settled label row of the ledger and nothing more).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alband.annotation import Annotation
from alband.annotators.pair_orders import combine_orders, pair_id_of
from alband.errors import AlbandError
from alband.store.ledger import KIND_LABEL, STATUS_SETTLED, LedgerRow

KIND_SYNTHETIC = "synthetic"  # alband.generation.generator.KIND_SYNTHETIC (not imported: no SDK import here)

FORMATS = ("jsonl", "csv", "dpo")
FIELDS = ("row_id", "item_id", "pool_index", "text", "label", "label_name", "valid", "annotator", "confidence",
          "input_tokens", "output_tokens", "cost_usd", "round", "used_for_training", "invalid_reason",
          "response_id", "settled_at", "synthetic")
_INT_FIELDS = ("row_id", "pool_index", "label", "input_tokens", "output_tokens", "round")
_FLOAT_FIELDS = ("confidence", "cost_usd")
_BOOL_FIELDS = ("valid", "used_for_training", "synthetic")


@dataclass(frozen=True)
class RunView:
    """What an export reads from a run: its settled label rows, the task (or None) and the auditor."""

    rows: list[LedgerRow]
    task: Any | None
    label_names: tuple[str, ...]
    auditor: str | None
    synthetic: tuple[LedgerRow, ...] = ()  # the generator's items (kind 'synthetic'), accepted or not


def open_run(run_path: str | Path, *, texts: bool = True) -> RunView:
    """The settled label rows of the run in ``run_path``, with its task when ``texts`` (its data reloaded)."""
    from alband.config import parse_config
    from alband.store.run_dir import RunDir

    run_dir = RunDir.open_existing(run_path)
    with run_dir.open_ledger(read_only=True) as ledger:
        base_dir = ledger.get_meta("base_dir")
        settled = ledger.rows(STATUS_SETTLED)
        rows = [r for r in settled if r.kind == KIND_LABEL]
        synthetic = tuple(r for r in settled if r.kind == KIND_SYNTHETIC)
    config = parse_config(run_dir.config_text(), source=str(run_dir.config_path),
                          base_dir=Path(base_dir) if base_dir else Path(run_path).resolve())
    auditor = config.routing.auditor if config.routing is not None and config.routing.feedback == "audit" else None
    task = None
    if texts or config.task_kind == "pairs":
        from alband.runner import load_task

        task = load_task(config, quiet=True)
        for row in rows:
            known = row.pool_index is not None and row.pool_index < task.n_items
            if not known or str(task.ids[row.pool_index]) != pair_id_of(row.item_id):
                raise AlbandError(f"the data of {run_dir.config_path} no longer match run {run_path}: ledger row "
                                  f"{row.id} paid for item {row.item_id!r} at pool row {row.pool_index} "
                                  "(restore the data, or export with --no-text)")
        label_names = tuple(task.label_names)
    else:
        label_names = tuple(config.data.get("label_names", ()))
    return RunView(rows, task if texts else None, label_names, auditor, synthetic)


def used_for_training(rows: list[LedgerRow], auditor: str | None) -> set[int]:
    """Ledger row ids of the answers the run trains on (module docstring)."""
    by_item: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.settled_at or "", r.id)):
        by_item[pair_id_of(row.item_id)].append(row)
    used: set[int] = set()
    for item_rows in by_item.values():
        valid = [r for r in item_rows if r.label is not None]
        audited = [r for r in valid if auditor is not None and r.annotator == auditor]
        if audited:
            used.add(audited[0].id)
            continue
        if not valid:
            continue
        annotator = valid[0].annotator
        own = [r for r in item_rows if r.annotator == annotator]
        if any(r.item_id != pair_id_of(r.item_id) for r in own):  # a pair asked in both orders
            if combine_orders([r.to_annotation() for r in own]).label is not None:
                used.update(r.id for r in own)
        else:
            used.add(valid[0].id)
    return used


def annotation_records(view: RunView) -> list[dict]:
    """One record per settled label row (:data:`FIELDS`), in ledger order."""
    used = used_for_training(view.rows, view.auditor)
    records = []
    for row in view.rows:
        label_name = (view.label_names[row.label] if row.label is not None and row.label < len(view.label_names)
                      else "")
        records.append({
            "row_id": row.id, "item_id": row.item_id, "pool_index": row.pool_index,
            "text": view.task.text(row.pool_index) if view.task is not None else "",
            "label": row.label, "label_name": label_name, "valid": row.label is not None,
            "annotator": row.annotator,
            "confidence": None if row.confidence is None or math.isnan(row.confidence) else row.confidence,
            "input_tokens": row.input_tokens or 0, "output_tokens": row.output_tokens or 0,
            "cost_usd": row.cost_usd, "round": row.round, "used_for_training": row.id in used,
            "invalid_reason": str(row.extra.get("invalid_reason", "")) if row.label is None else "",
            "response_id": row.response_id or "", "settled_at": row.settled_at or "", "synthetic": False,
        })
    for row in view.synthetic:
        label = row.extra.get("label")
        records.append({
            "row_id": row.id, "item_id": row.item_id, "pool_index": None, "text": row.raw or "",
            "label": label, "label_name": row.extra.get("label_name", ""), "valid": label is not None,
            "annotator": row.annotator, "confidence": None, "input_tokens": 0, "output_tokens": 0,
            "cost_usd": row.cost_usd, "round": row.round, "used_for_training": row.extra.get("verdict") == "accepted",
            "invalid_reason": row.extra.get("reason") or "", "response_id": "", "settled_at": row.settled_at or "",
            "synthetic": True,
        })
    return records


def export_annotations(run_path: str | Path, out: str | Path, fmt: str, *, texts: bool = True) -> int:
    """Write every settled annotation of the run to ``out`` as ``jsonl`` or ``csv``; the number written."""
    if fmt not in ("jsonl", "csv"):
        raise AlbandError(f"annotation export format must be 'jsonl' or 'csv', got {fmt!r}")
    records = annotation_records(open_run(run_path, texts=texts))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with open(out, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        with open(out, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            for record in records:
                writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return len(records)


def read_annotations_export(path: str | Path) -> list[dict]:
    """The records of a ``jsonl`` or ``csv`` annotation export, typed as written (None for empty values)."""
    path = Path(path)
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as handle:
            raw = list(csv.DictReader(handle))
        records = []
        for row in raw:
            record: dict[str, Any] = dict(row)
            for key in _INT_FIELDS:
                record[key] = int(row[key]) if row[key] != "" else None
            for key in _FLOAT_FIELDS:
                record[key] = float(row[key]) if row[key] != "" else None
            for key in _BOOL_FIELDS:
                record[key] = row[key] == "True"
            records.append(record)
        return records
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass(frozen=True)
class DpoExport:
    """What :func:`export_dpo` wrote: pairs exported, pairs skipped (tie or invalid) and why."""

    written: int
    skipped: int
    skipped_reasons: dict[str, int]
    dpo_path: Path
    reward_pairs_path: Path


def export_dpo(run_path: str | Path, out_dir: str | Path) -> DpoExport:
    """``dpo.jsonl`` (TRL prompt / chosen / rejected) and ``reward_pairs.jsonl`` of a preference run."""
    view = open_run(run_path, texts=True)
    task = view.task
    if getattr(task, "kind", "") != "pairs":
        raise AlbandError(f"run {run_path} is not a preference run ([data] kind = \"pairs\"): "
                          "use --format jsonl or csv")
    if not task.has_texts:
        raise AlbandError(f"run {run_path}: its pairs have no texts (source {task.name!r}); DPO rows need "
                          "the prompt and both responses")
    used = used_for_training(view.rows, view.auditor)
    answers: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in view.rows:
        answers[pair_id_of(row.item_id)].append(row)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dpo_path, pairs_path = out_dir / "dpo.jsonl", out_dir / "reward_pairs.jsonl"
    written, reasons = 0, defaultdict(int)
    with open(dpo_path, "w", encoding="utf-8") as dpo, open(pairs_path, "w", encoding="utf-8") as pairs:
        for pair_id, rows in answers.items():
            training = [r for r in rows if r.id in used]
            if not training:
                verdict_reason = _skip_reason(rows)
                reasons[verdict_reason] += 1
                continue
            annotations: list[Annotation] = [r.to_annotation() for r in training]
            verdict = combine_orders(annotations)
            pool_index = training[0].pool_index
            prompt, first, second = task.pair_texts(pool_index)
            chosen, rejected = (first, second) if verdict.label == 0 else (second, first)
            dpo.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}, ensure_ascii=False) + "\n")
            pairs.write(json.dumps({
                "id": pair_id, "prompt": prompt, "first": first, "second": second,
                "preferred": "first" if verdict.label == 0 else "second",
                "confidence": None if math.isnan(verdict.confidence) else verdict.confidence,
                "annotators": sorted({r.annotator for r in training}),
                "cost_usd": sum(r.cost_usd for r in rows),
            }, ensure_ascii=False) + "\n")
            written += 1
    return DpoExport(written, sum(reasons.values()), dict(reasons), dpo_path, pairs_path)


def _skip_reason(rows: list[LedgerRow]) -> str:
    """Why a pair with no training answer is skipped: 'tie', 'orders disagree' or 'invalid'."""
    annotations = [r.to_annotation() for r in rows]
    reason = combine_orders(annotations).reason
    if reason == "tie":
        return "tie"
    if "disagree" in reason:
        return "orders disagree"
    return "invalid"
