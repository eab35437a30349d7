"""Recorded selections, replayed: from a run's ledger or a cache file, as the simulator's indices.

An LLM's reply cannot be simulated: the simulator only replays replies that
were recorded (the way RouteLLM ships recorded responses). A record is one
settled ``'selection'`` charge of a ledger (:mod:`.llm_selector`): the reply
text and, in ``extra``, the candidates' ids in the order shown, the ids the
reply picked after repair and those the fallback policy filled.

:func:`recorded_selections` reads them and re-derives each pick from the raw
reply (:func:`.reply.parse_selection` over the recorded candidates): a record
whose reply does not give its recorded picks is refused (the record was
altered, or parsed by other rules). :func:`write_cache` / :func:`read_cache`
store the records as JSON lines keyed by ``(seed, round, candidate ids)``;
:func:`selected_indices` turns the records of one seed into the simulator's
:class:`alband.rounds.SelectedIndices` (ids mapped to pool rows by id).

What replays exactly: a run of the same config (seed, pool, policy,
learner, simulated annotators) over the same data, whose candidate sets are
therefore the recorded ones. What cannot: a round with no record (another
seed, another shortlist policy or learner, whose candidates differ), which
the simulator runs with its policy and the caller is told
(``SelectedIndices.use`` false there), never with an invented reply.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from alband.errors import AlbandError
from alband.rounds import SelectedIndices
from alband.selection.llm_selector import KIND_SELECTION
from alband.selection.reply import parse_selection
from alband.store.ledger import STATUS_SETTLED, Ledger


@dataclass(frozen=True)
class RecordedSelection:
    """One selection as recorded: what was shown, what came back, what was bought."""

    seed: int
    round: int
    candidates: list[str]
    reply: str
    picked: list[str]
    filled: list[str]
    batch: int

    @property
    def chosen(self) -> list[str]:
        return self.picked + self.filled


def _seed_of(key: str) -> int:
    parts = key.split()
    if len(parts) < 4 or parts[0] != "seed" or parts[2] != "round":
        raise AlbandError(f"selection charge key {key!r} is not 'seed S round R candidates D'")
    return int(parts[1])


def check_record(record: RecordedSelection, where: str) -> RecordedSelection:
    """``record`` if its reply, parsed over its candidates, gives its picks; else one line naming ``where``."""
    parsed = parse_selection(record.reply, len(record.candidates), record.batch)
    again = [record.candidates[p] for p in parsed.positions]
    if again != record.picked:
        raise AlbandError(f"{where}: the recorded reply picks {again[:5]}... but the record says "
                          f"{record.picked[:5]}...: the record does not replay")
    if len(record.chosen) != record.batch or len(set(record.chosen)) != record.batch:
        raise AlbandError(f"{where}: {len(record.chosen)} chosen items for a batch of {record.batch}")
    return record


def recorded_selections(ledger: Ledger) -> list[RecordedSelection]:
    """Every settled selection of ``ledger``, checked (module docstring), in round order."""
    records = []
    for row in ledger.rows(STATUS_SETTLED):
        if row.kind != KIND_SELECTION:
            continue
        extra = row.extra
        record = RecordedSelection(_seed_of(row.charge_key), row.round, list(extra["candidates"]), row.raw or "",
                                   list(extra["picked"]), list(extra["filled"]), int(extra["batch"]))
        records.append(check_record(record, f"{ledger.path}: row {row.id}"))
    return sorted(records, key=lambda r: (r.seed, r.round))


def write_cache(records: Sequence[RecordedSelection], path: str | Path) -> None:
    """Store ``records`` as JSON lines (one selection a line)."""
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")


def read_cache(path: str | Path) -> list[RecordedSelection]:
    """The records of a cache file, each checked; a bad line is one error naming file and line."""
    records = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                record = RecordedSelection(**json.loads(line))
            except (ValueError, TypeError) as err:
                raise AlbandError(f"{where}: not a recorded selection ({err})") from None
            records.append(check_record(record, where))
    return records


def selected_indices(records: Sequence[RecordedSelection], seed: int, ids: Sequence[str], *, n_initial: int,
                     batch_size: int, n_rounds: int) -> SelectedIndices:
    """The simulator's indices for ``seed`` from ``records``; rounds without a record keep the policy's."""
    position = {str(item_id): k for k, item_id in enumerate(ids)}
    initial = np.zeros(n_initial, np.int32)
    query = np.zeros((n_rounds, batch_size), np.int32)
    use = np.zeros(n_rounds, bool)
    use_initial = False
    for record in records:
        if record.seed != seed or record.round > n_rounds:
            continue
        missing = [i for i in record.chosen if i not in position]
        if missing:
            raise AlbandError(f"recorded selection of seed {seed} round {record.round}: item {missing[0]!r} is not "
                              "in the pool")
        rows = np.asarray([position[i] for i in record.chosen], np.int32)
        want = n_initial if record.round == 0 else batch_size
        if rows.shape[0] != want:
            raise AlbandError(f"recorded selection of seed {seed} round {record.round} holds {rows.shape[0]} items, "
                              f"the round buys {want}")
        if record.round == 0:
            initial, use_initial = rows, True
        else:
            query[record.round - 1], use[record.round - 1] = rows, True
    return SelectedIndices(jnp.asarray(initial), jnp.bool_(use_initial), jnp.asarray(query), jnp.asarray(use))


def load_selections(path: str | Path) -> list[RecordedSelection]:
    """The recorded selections of a run's ledger (``ledger.sqlite``, or its run folder) or of a cache file."""
    path = Path(path)
    if path.is_dir():
        path = path / "ledger.sqlite"
    if not path.is_file():
        raise AlbandError(f"{path}: no such ledger or selection cache")
    if path.suffix in (".sqlite", ".db"):
        with Ledger.open(path, create=False, read_only=True) as ledger:
            return recorded_selections(ledger)
    return read_cache(path)


def stacked_selected_indices(records: Sequence[RecordedSelection], seeds: Sequence[int], ids: Sequence[str], *,
                             n_initial: int, batch_size: int, n_rounds: int) -> SelectedIndices:
    """:func:`selected_indices` of every seed in ``seeds``, stacked on a leading axis (``simulate_many``)."""
    per_seed = [selected_indices(records, int(seed), ids, n_initial=n_initial, batch_size=batch_size,
                                 n_rounds=n_rounds) for seed in seeds]
    return SelectedIndices(*(jnp.stack(leaves) for leaves in zip(*per_seed)))
