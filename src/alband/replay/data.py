"""Reading a multi-LLM outcome matrix (``wide.csv`` + ``items.csv``) for router replay.

Layout (``../shared/data/router/*``):

* ``wide.csv``: one row per item: ``item_id`` and, for every model,
  ``<model>__correct`` (0/1), ``<model>__cost_usd`` and optionally
  ``<model>__answer``. An **empty** correct/cost cell means the model's outcome
  is not available for the item (never 0): the arm cannot be used there.
* ``items.csv``: ``item_id``, optional ``task``, the gold label as ``gold`` or
  ``gold_code`` and the text as ``text`` or ``prompt`` (both spellings occur).
  The gold cell may be empty (the RouteLLM MMLU items store correctness only).

The two files must list the same item ids (in any order). Rows with
``routellm_contaminated == 1`` are dropped by default, as RouteLLM's own
evaluation does. ``human_price_usd`` adds a ``human`` arm: the gold label at
that price per item, always right.

The auditor's verdict on each arm (:mod:`alband.routing.base`): with the human
auditor it is the arm's correctness; with a model auditor ``s`` it is "the two
answers agree" where both answers are stored, and "both are right" where they
are not (the RouteLLM MMLU matrix has no answers; "both right" implies
agreement, and two wrong answers are counted as disagreeing).

Every malformed input raises :class:`alband.errors.AlbandError` naming the
file, the column and the row.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alband.errors import AlbandError

HUMAN = "human"
_CORRECT = "__correct"
_COST = "__cost_usd"
_ANSWER = "__answer"


@dataclass(frozen=True)
class OutcomeMatrix:
    """An outcome matrix in float64 / numpy (the shell's view; the core gets float32)."""

    item_ids: list[str]
    tasks: list[str]
    texts: list[str]
    arms: list[str]  # model names, then "human" if present
    correct: np.ndarray  # (n, K) float64 0/1 (0 where unavailable)
    cost_usd: np.ndarray  # (n, K) float64 (0 where unavailable)
    available: np.ndarray  # (n, K) bool
    answers: list[list[str]]  # [arm][item] raw answer strings ("" when not stored)
    source: dict = field(default_factory=dict)  # file paths and row counts for reports

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    @property
    def model_arms(self) -> list[int]:
        return [k for k, a in enumerate(self.arms) if a != HUMAN]

    def arm_index(self, name: str) -> int:
        try:
            return self.arms.index(name)
        except ValueError:
            raise AlbandError(f"unknown annotator '{name}'; known: {', '.join(self.arms)}") from None

    def full_cost(self) -> np.ndarray:
        """Dollars to label every item where the arm is available, per arm."""
        return np.where(self.available, self.cost_usd, 0.0).sum(0)

    def accuracy(self) -> np.ndarray:
        """Accuracy over the items where the arm is available, per arm (NaN if none)."""
        n_av = self.available.sum(0)
        right = np.where(self.available, self.correct, 0.0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_av > 0, right / np.maximum(n_av, 1), np.nan)

    def mean_cost(self) -> np.ndarray:
        n_av = self.available.sum(0)
        return self.full_cost() / np.maximum(n_av, 1)

    def strongest(self) -> int:
        """The model (not the human) with the highest accuracy; ties to the cheaper one."""
        acc, mc = self.accuracy(), self.mean_cost()
        models = self.model_arms
        return min(models, key=lambda k: (-np.nan_to_num(acc[k], nan=-1.0), mc[k], k))

    def cheapest(self) -> int:
        """The model with the lowest mean cost per item; ties to the more accurate one."""
        acc, mc = self.accuracy(), self.mean_cost()
        models = self.model_arms
        lowest = min(mc[k] for k in models)
        tied = [k for k in models if mc[k] <= lowest * (1 + 1e-9)]
        return min(tied, key=lambda k: (-np.nan_to_num(acc[k], nan=-1.0), k))

    def verdicts(self, auditor: int) -> np.ndarray:
        """(n, K) the auditor's verdict on each arm's answer (module docstring)."""
        if self.arms[auditor] == HUMAN:
            v = self.correct.copy()
        else:
            ref = [a.strip().lower() for a in self.answers[auditor]]
            v = np.zeros_like(self.correct)
            both_right = (self.correct > 0.5) & (self.correct[:, [auditor]] > 0.5)
            for k in range(self.n_arms):
                if self.arms[k] == HUMAN:
                    v[:, k] = self.correct[:, auditor]  # the gold agrees with the auditor iff it is right
                    continue
                mine = [a.strip().lower() for a in self.answers[k]]
                for i in range(self.n_items):
                    if mine[i] and ref[i]:
                        v[i, k] = float(mine[i] == ref[i])
                    else:
                        v[i, k] = float(both_right[i, k])
        v[:, auditor] = 1.0
        return np.where(self.available, v, 0.0)


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.exists():
        raise AlbandError(f"{path}: {what} file not found")
    if path.is_dir():
        raise AlbandError(f"{path}: is a directory, expected the {what} CSV file")
    csv.field_size_limit(2**31 - 1)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = []
            for r, row in enumerate(reader, start=1):
                if None in row:
                    raise AlbandError(f"{path}, row {r}: more cells than header columns")
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise AlbandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise AlbandError(f"{path}: malformed CSV ({exc})") from None
    if not header:
        raise AlbandError(f"{path}: empty file, expected a header row")
    if not rows:
        raise AlbandError(f"{path}: no data rows")
    return header, rows


def _pick(header: list[str], names: tuple[str, ...], path: Path, what: str) -> str:
    for n in names:
        if n in header:
            return n
    raise AlbandError(f"{path}: missing column {' or '.join(repr(n) for n in names)} ({what})")


def _ids(rows, path: Path) -> list[str]:
    ids, seen = [], {}
    for r, row in enumerate(rows, start=1):
        iid = (row.get("item_id") or "").strip()
        if not iid:
            raise AlbandError(f"{path}, row {r}: empty item_id")
        if iid in seen:
            raise AlbandError(f"{path}, row {r}: duplicate item_id '{iid}' (first at row {seen[iid]})")
        seen[iid] = r
        ids.append(iid)
    return ids


def load_outcome_matrix(wide_csv, items_csv, human_price_usd: float | None = None,
                        drop_contaminated: bool = True) -> OutcomeMatrix:
    """Read and validate an outcome matrix (module docstring)."""
    wide_csv, items_csv = Path(wide_csv), Path(items_csv)
    w_header, w_rows = _read_csv(wide_csv, "outcome matrix (wide.csv)")
    i_header, i_rows = _read_csv(items_csv, "items")
    if "item_id" not in w_header:
        raise AlbandError(f"{wide_csv}: missing column 'item_id'")
    if "item_id" not in i_header:
        raise AlbandError(f"{items_csv}: missing column 'item_id'")
    _pick(i_header, ("gold", "gold_code"), items_csv, "the gold label")
    text_col = _pick(i_header, ("text", "prompt"), items_csv, "the item text")

    models = [c[: -len(_CORRECT)] for c in w_header if c.endswith(_CORRECT)]
    if not models:
        raise AlbandError(f"{wide_csv}: no '<model>__correct' columns: not an outcome matrix")
    for m in models:
        if m + _COST not in w_header:
            raise AlbandError(f"{wide_csv}: missing column '{m}{_COST}' (model '{m}' has '{m}{_CORRECT}')")
        if m == HUMAN:
            raise AlbandError(f"{wide_csv}: a model may not be called '{HUMAN}' (reserved for the gold arm)")
    orphan = [c for c in w_header if c.endswith(_COST) and c[: -len(_COST)] not in models]
    if orphan:
        raise AlbandError(f"{wide_csv}: column '{orphan[0]}' has no matching '__correct' column")

    w_ids = _ids(w_rows, wide_csv)
    i_ids = _ids(i_rows, items_csv)
    i_pos = {iid: r for r, iid in enumerate(i_ids)}
    for r, iid in enumerate(w_ids, start=1):
        if iid not in i_pos:
            raise AlbandError(f"{wide_csv}, row {r}: item_id '{iid}' is not in {items_csv}")
    if len(i_ids) != len(w_ids):
        w_set = set(w_ids)
        r = next(r for r, iid in enumerate(i_ids, start=1) if iid not in w_set)
        raise AlbandError(f"{items_csv}, row {r}: item_id '{i_ids[r - 1]}' is not in {wide_csv}")

    keep = list(range(len(w_rows)))
    n_contaminated = 0
    if drop_contaminated and "routellm_contaminated" in w_header:
        flags = []
        for r, row in enumerate(w_rows, start=1):
            v = row["routellm_contaminated"].strip()
            if v not in ("0", "1", ""):
                raise AlbandError(f"{wide_csv}, row {r}, column 'routellm_contaminated': "
                                  f"expected 0 or 1, got {v!r}")
            flags.append(v == "1")
        keep = [r for r in keep if not flags[r]]
        n_contaminated = len(w_rows) - len(keep)
    if not keep:
        raise AlbandError(f"{wide_csv}: no items left after dropping contaminated rows")

    n, M = len(keep), len(models)
    correct = np.zeros((n, M))
    cost = np.zeros((n, M))
    avail = np.zeros((n, M), bool)
    answers = [[""] * n for _ in range(M)]
    for j, r0 in enumerate(keep):
        row, r = w_rows[r0], r0 + 1
        for k, m in enumerate(models):
            c_cell = row[m + _CORRECT].strip()
            p_cell = row[m + _COST].strip()
            if (c_cell == "") != (p_cell == ""):
                empty = m + (_CORRECT if c_cell == "" else _COST)
                raise AlbandError(f"{wide_csv}, row {r} (item_id '{w_ids[r0]}'), column '{empty}': "
                                  "empty while the other cell of the model is filled")
            if c_cell == "":
                continue
            if c_cell not in ("0", "1", "0.0", "1.0"):
                raise AlbandError(f"{wide_csv}, row {r} (item_id '{w_ids[r0]}'), column "
                                  f"'{m}{_CORRECT}': expected 0 or 1, got {c_cell!r}")
            try:
                price = float(p_cell)
            except ValueError:
                price = math.nan
            if not math.isfinite(price) or price < 0:
                raise AlbandError(f"{wide_csv}, row {r} (item_id '{w_ids[r0]}'), column "
                                  f"'{m}{_COST}': expected a cost in dollars >= 0, got {p_cell!r}")
            correct[j, k] = float(c_cell[0] == "1")
            cost[j, k] = price
            avail[j, k] = True
            answers[k][j] = row.get(m + _ANSWER, "") or ""

    ids = [w_ids[r] for r in keep]
    item_rows = [i_rows[i_pos[iid]] for iid in ids]
    texts = [row[text_col] or "" for row in item_rows]
    tasks = [(row.get("task") or "").strip() for row in item_rows]
    arms = list(models)
    if human_price_usd is not None:
        if not (math.isfinite(human_price_usd) and human_price_usd > 0):
            raise AlbandError(f"--human-price must be a positive number of dollars, got {human_price_usd!r}")
        arms.append(HUMAN)
        correct = np.concatenate([correct, np.ones((n, 1))], 1)
        cost = np.concatenate([cost, np.full((n, 1), float(human_price_usd))], 1)
        avail = np.concatenate([avail, np.ones((n, 1), bool)], 1)
        gold_col = "gold" if "gold" in i_header else "gold_code"
        answers.append([row[gold_col] or "" for row in item_rows])
    return OutcomeMatrix(
        item_ids=ids, tasks=tasks, texts=texts, arms=arms, correct=correct, cost_usd=cost,
        available=avail, answers=answers,
        source={"wide_csv": str(wide_csv), "items_csv": str(items_csv), "rows": len(w_rows),
                "dropped_contaminated": n_contaminated, "human_price_usd": human_price_usd},
    )


def load_embeddings(embeddings_npy, ids_txt, item_ids: list[str]) -> np.ndarray:
    """Rows of ``embeddings_npy`` (one per line of ``ids_txt``) in the order of ``item_ids``."""
    embeddings_npy, ids_txt = Path(embeddings_npy), Path(ids_txt)
    for p, what in ((embeddings_npy, "embeddings (.npy)"), (ids_txt, "embedding ids (.txt)")):
        if not p.exists():
            raise AlbandError(f"{p}: {what} file not found")
    try:
        emb = np.load(embeddings_npy, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise AlbandError(f"{embeddings_npy}: not a .npy array ({exc})") from None
    if emb.ndim != 2:
        raise AlbandError(f"{embeddings_npy}: expected a 2-D array (rows, dim), got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise AlbandError(f"{embeddings_npy}: expected floating-point embeddings, got dtype {emb.dtype}")
    ids = [line.strip() for line in ids_txt.read_text(encoding="utf-8").splitlines()]
    while ids and ids[-1] == "":
        ids.pop()
    if len(ids) != emb.shape[0]:
        raise AlbandError(f"{ids_txt}: {len(ids)} ids for {emb.shape[0]} rows in {embeddings_npy}")
    pos: dict[str, int] = {}
    for line, iid in enumerate(ids, start=1):
        if not iid:
            raise AlbandError(f"{ids_txt}, line {line}: empty id")
        if iid in pos:
            raise AlbandError(f"{ids_txt}, line {line}: duplicate id '{iid}'")
        pos[iid] = line - 1
    missing = [iid for iid in item_ids if iid not in pos]
    if missing:
        raise AlbandError(f"{ids_txt}: item_id '{missing[0]}' has no embedding "
                          f"({len(missing)} of {len(item_ids)} items missing)")
    out = emb[[pos[iid] for iid in item_ids]].astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = int(np.argwhere(~np.isfinite(out))[0, 0])
        raise AlbandError(f"{embeddings_npy}, row {pos[item_ids[bad]]}: non-finite embedding "
                          f"(item_id '{item_ids[bad]}')")
    return out
