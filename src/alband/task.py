"""A task: the pool (train rows) and the test set of a dataset, as the loop and simulator see them.

Row ``i`` of :attr:`Task.x` is pool index ``i``; ids and texts are kept for the
shell's edges (ledger rows, annotator prompts). ``text_chars`` and
``text_bytes`` (UTF-8) drive the token counts and reservations of simulated
annotators.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from alband.annotation import Item
from alband.errors import AlbandError
from alband.simulate.episode import EpisodeData


@dataclass(frozen=True, eq=False)
class Task:
    """Pool and test arrays of one dataset (see module docstring)."""

    name: str
    ids: np.ndarray
    texts: list[str] | None
    x: np.ndarray
    y: np.ndarray  # gold labels of the pool, -1 where unknown
    x_test: np.ndarray
    y_test: np.ndarray
    label_names: tuple[str, ...]

    @classmethod
    def from_dataset(cls, dataset) -> "Task":
        train, test = dataset.train_mask, dataset.test_mask
        if not train.any():
            raise AlbandError(f"{dataset.source}: the pool is empty (no train rows)")
        if not test.any():
            raise AlbandError(f"{dataset.source}: no test rows to measure accuracy on")
        if (dataset.y[test] < 0).any():
            raise AlbandError(f"{dataset.source}: every test row needs a gold label")
        texts = None if dataset.texts is None else [t for t, keep in zip(dataset.texts, train) if keep]
        return cls(
            name=dataset.name,
            ids=np.asarray(dataset.ids)[train],
            texts=texts,
            x=np.ascontiguousarray(dataset.x[train], np.float32),
            y=np.asarray(dataset.y[train], np.int32),
            x_test=np.ascontiguousarray(dataset.x[test], np.float32),
            y_test=np.asarray(dataset.y[test], np.int32),
            label_names=tuple(dataset.label_names),
        )

    @property
    def n_items(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def text(self, pool_index: int) -> str:
        return "" if self.texts is None else self.texts[pool_index]

    def item(self, pool_index: int) -> Item:
        """The :class:`~alband.annotation.Item` annotators get for pool row ``pool_index``."""
        return Item(pool_index, str(self.ids[pool_index]), self.text(pool_index))

    @property
    def text_chars(self) -> np.ndarray:
        if self.texts is None:
            return np.zeros(self.n_items, np.int32)
        return np.fromiter((len(t) for t in self.texts), np.int32, self.n_items)

    @property
    def text_bytes(self) -> np.ndarray:
        if self.texts is None:
            return np.zeros(self.n_items, np.int32)
        return np.fromiter((len(t.encode("utf-8")) for t in self.texts), np.int32, self.n_items)

    def require_gold(self, why: str) -> None:
        missing = np.flatnonzero(self.y < 0)
        if missing.size:
            raise AlbandError(
                f"{why} needs the gold label of every pool item; item '{self.ids[missing[0]]}' "
                f"and {missing.size - 1} more have none"
            )

    def episode_data(self) -> EpisodeData:
        """The arrays :func:`alband.simulate.simulate` needs (gold labels required)."""
        self.require_gold("a simulation")
        return EpisodeData(
            x=jnp.asarray(self.x),
            y=jnp.asarray(self.y),
            text_chars=jnp.asarray(self.text_chars),
            text_bytes=jnp.asarray(self.text_bytes),
            x_test=jnp.asarray(self.x_test),
            y_test=jnp.asarray(self.y_test),
        )
