"""The fingerprint of a run's pool, recorded when the run starts and checked when it resumes.

A resumed run replays its rounds over the pool, and the ledger's answers
belong to items. If the data were re-exported (another row order, items
added or removed, texts or embeddings edited), replaying would propose other
items and could attach paid answers to the wrong ones. The fingerprint::

    ids_sha256         SHA-256 of the ids in pool order (order matters)
    id_set_sha256      SHA-256 of the sorted ids (order does not)
    texts_sha256       SHA-256 of (id, text) pairs in sorted-id order
    embeddings_sha256  SHA-256 of the float32 embedding rows in sorted-id order, with their shape

and the ids themselves (stored in the ledger's meta table, to name what went
missing or was added) let a resume say in one line what changed: ids missing,
ids added, the same ids reordered, texts changed, embeddings changed.
Ids must be unique: the ledger matches answers to items by id.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from alband.errors import AlbandError

FINGERPRINT_KEY = "pool_fingerprint"
IDS_KEY = "pool_ids"


def _sha(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def pool_fingerprint(ids: Sequence, texts: Sequence[str] | None, x: np.ndarray) -> dict:
    """The fingerprint of a pool (module docstring); raises :class:`AlbandError` on duplicate ids."""
    ids = [str(i) for i in ids]
    order = sorted(range(len(ids)), key=ids.__getitem__)
    for a, b in zip(order, order[1:]):
        if ids[a] == ids[b]:
            raise AlbandError(f"pool rows {a} and {b} share the id {ids[a]!r}: a live run matches paid answers "
                              "to items by id, so ids must be unique")
    rows = np.ascontiguousarray(np.asarray(x, np.float32)[np.asarray(order, np.int64)]) if ids else np.zeros((0,))
    return {
        "n_items": len(ids),
        "ids_sha256": _sha(i.encode("utf-8") + b"\0" for i in ids),
        "id_set_sha256": _sha(ids[k].encode("utf-8") + b"\0" for k in order),
        "texts_sha256": None if texts is None else _sha(
            ids[k].encode("utf-8") + b"\0" + texts[k].encode("utf-8", "surrogatepass") + b"\0" for k in order),
        "embeddings_sha256": _sha([str(tuple(np.shape(x))).encode(), rows.tobytes()]),
    }


def pool_difference(recorded: dict, recorded_ids: Sequence[str] | None, current: dict,
                    current_ids: Sequence) -> str | None:
    """One line naming how the current pool differs from the recorded one, or None when it is the same."""
    if recorded == current:
        return None
    if recorded.get("id_set_sha256") != current["id_set_sha256"]:
        if recorded_ids is None:
            return f"the pool's ids changed ({recorded.get('n_items')} items then, {current['n_items']} now)"
        then, now = set(recorded_ids), {str(i) for i in current_ids}
        missing, added = sorted(then - now), sorted(now - then)
        parts = []
        if missing:
            parts.append(f"{len(missing)} ids missing (first {missing[0]!r})")
        if added:
            parts.append(f"{len(added)} ids added (first {added[0]!r})")
        return ", ".join(parts) or "the pool's ids changed"
    if recorded.get("ids_sha256") != current["ids_sha256"]:
        if recorded_ids is not None:
            now = [str(i) for i in current_ids]
            first = next(k for k, (a, b) in enumerate(zip(recorded_ids, now)) if a != b)
            return f"the same ids in another order (row {first} was {recorded_ids[first]!r}, now {now[first]!r})"
        return "the same ids in another order"
    changed = [name for key, name in (("texts_sha256", "texts"), ("embeddings_sha256", "embeddings"))
               if recorded.get(key) != current[key]]
    return f"{' and '.join(changed) or 'the pool'} changed for the same ids"
