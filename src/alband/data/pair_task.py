"""A preference task: the pair pool a run queries, its texts, and the held-out labelled pairs it is scored on.

A :class:`PairTask` is to preference runs what :class:`alband.task.Task` is
to classification runs. Pool row ``i`` is the pair ``(prompt, first,
second)`` of :class:`alband.data.pairs.PairPool` (the pool's A/B order drawn
with the run's key); its feature is ``z_i = phi(first) - phi(second)`` and
its label 0 if the first response is preferred, 1 if the second is.
``y`` (the hidden gold, -1 where unknown) is read by the simulated judge and
the evaluation only; policies see ``x`` and :attr:`aux`.

**Held-out pairs.** :func:`split_pairs` holds out whole prompts (every pair
of a held-out prompt), drawn with a key, so that the test accuracy
measures the reward model on prompts it never saw; every held-out pair
needs its gold preference. Quality is the pairwise accuracy on them
(``P(r(first) > r(second))`` on the right side of 1/2).

**Texts.** ``prompt_texts`` (one per prompt) and ``response_texts`` (one per
row of ``aux.response_x``) are kept when the source has them: an LLM or a
human judge reads them through :meth:`PairTask.item`, built by
:func:`alband.annotators.pair_orders.pair_item`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from alband.annotation import Item
from alband.annotators.pair_orders import PAIR_LABELS, pair_item
from alband.data.pairs import PairPool
from alband.errors import AlbandError
from alband.policies.preference.aux import PairAux, make_pair_aux


@dataclass(frozen=True, eq=False)
class PairTask:
    """Pool pairs, their texts and the held-out labelled pairs (module docstring)."""

    name: str
    ids: np.ndarray  # (N,) pair ids of the pool
    x: np.ndarray  # (N, d) float32 pool pair features z
    y: np.ndarray  # (N,) int32 hidden gold, -1 unknown
    aux: PairAux
    x_test: np.ndarray  # (M, d) held-out pair features
    y_test: np.ndarray  # (M,) their gold preferences
    prompt_texts: list[str] | None = None
    response_texts: list[str] | None = None
    true_margin: np.ndarray | None = None  # (N,) theta' z of a synthetic world, for margin-noise judges
    label_names: tuple[str, ...] = PAIR_LABELS

    kind = "pairs"

    @property
    def n_items(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def has_texts(self) -> bool:
        return self.prompt_texts is not None and self.response_texts is not None

    def pair_texts(self, pool_index: int) -> tuple[str, str, str]:
        """``(prompt, first, second)`` of pool row ``pool_index``."""
        if not self.has_texts:
            raise AlbandError(f"{self.name}: the pairs have no texts (embeddings only); a judge that reads "
                              "texts needs a source with prompts and responses")
        aux = self.aux
        prompt = self.prompt_texts[int(aux.prompt[pool_index])]
        return prompt, self.response_texts[int(aux.first[pool_index])], self.response_texts[int(aux.second[pool_index])]

    def text(self, pool_index: int) -> str:
        """The pair as a person reads it ('' without texts)."""
        return self.item(pool_index).text if self.has_texts else ""

    def item(self, pool_index: int) -> Item:
        """The :class:`~alband.annotation.Item` of pool row ``pool_index`` (order AB; ids are the pair ids)."""
        pair_id = str(self.ids[pool_index])
        if not self.has_texts:
            return Item(pool_index, pair_id, "")
        return pair_item(pool_index, pair_id, *self.pair_texts(pool_index))

    @property
    def texts(self) -> list[str] | None:
        """Every pool pair's :meth:`text` (None without texts): what the pool fingerprint reads."""
        return [self.text(i) for i in range(self.n_items)] if self.has_texts else None

    def episode_data(self):
        """The arrays :func:`alband.simulate.simulate` needs (gold required; ``aux`` and true margins included)."""
        import jax.numpy as jnp

        from alband.simulate.episode import EpisodeData

        self.require_gold("a simulation")
        return EpisodeData(x=jnp.asarray(self.x), y=jnp.asarray(self.y), text_chars=jnp.asarray(self.text_chars),
                           text_bytes=jnp.asarray(self.text_bytes), x_test=jnp.asarray(self.x_test),
                           y_test=jnp.asarray(self.y_test), aux=self.aux,
                           true_margin=None if self.true_margin is None else jnp.asarray(self.true_margin))

    def require_gold(self, why: str) -> None:
        """An :class:`AlbandError` unless every pool pair has its gold preference (simulated judges need it)."""
        missing = np.flatnonzero(self.y < 0)
        if missing.size:
            raise AlbandError(f"{why} needs the gold preference of every pool pair; pair '{self.ids[missing[0]]}' "
                              f"and {missing.size - 1} more have none (give a 'ranking')")

    @property
    def text_bytes(self) -> np.ndarray:
        """UTF-8 bytes of every pool pair's :meth:`text` (token counts of simulated judges)."""
        if not self.has_texts:
            return np.zeros(self.n_items, np.int32)
        return np.fromiter((len(self.text(i).encode("utf-8")) for i in range(self.n_items)), np.int32, self.n_items)

    @property
    def text_chars(self) -> np.ndarray:
        if not self.has_texts:
            return np.zeros(self.n_items, np.int32)
        return np.fromiter((len(self.text(i)) for i in range(self.n_items)), np.int32, self.n_items)


def subset_pool(pool: PairPool, rows: np.ndarray) -> PairPool:
    """The pool restricted to ``rows`` (response and prompt tables kept whole, ``aux`` re-derived)."""
    rows = np.asarray(rows)
    aux = pool.aux
    new_aux = make_pair_aux(np.asarray(aux.prompt)[rows], np.asarray(aux.first)[rows], np.asarray(aux.second)[rows],
                            np.asarray(aux.prompt_x), np.asarray(aux.response_x))
    return PairPool(pool.z[rows], new_aux, pool.gold[rows], pool.swapped[rows],
                    tuple(pool.pair_ids[i] for i in rows.tolist()),
                    None if pool.true_margin is None else pool.true_margin[rows], pool.theta)


def split_pairs(pool: PairPool, key: jax.Array, test_fraction: float, *, name: str, where: str = "",
                max_train: int | None = None, prompt_texts: list[str] | None = None,
                response_texts: list[str] | None = None) -> PairTask:
    """A :class:`PairTask`: whole prompts held out with ``key`` (module docstring); ``max_train`` caps the pool."""
    if not 0 < test_fraction < 1:
        raise AlbandError(f"{where}'test_fraction' must be in (0, 1), got {test_fraction!r}")
    prompts = np.asarray(pool.aux.prompt)
    used = np.unique(prompts)
    k_split, k_cap = jax.random.split(key)
    order = np.asarray(jax.random.permutation(k_split, used.size))
    n_test = max(1, int(round(test_fraction * used.size)))
    if n_test >= used.size:
        raise AlbandError(f"{where}{used.size} prompt(s): too few to hold out {test_fraction:g} of them and keep a pool")
    test_prompts = used[order[:n_test]]
    is_test = np.isin(prompts, test_prompts)
    test_rows, pool_rows = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    unknown = test_rows[pool.gold[test_rows] < 0]
    if unknown.size:
        raise AlbandError(f"{where}held-out pair {pool.pair_ids[unknown[0]]!r} (and {unknown.size - 1} more) has no "
                          "gold preference; held-out pairs are scored against it (give a 'ranking')")
    if max_train is not None and pool_rows.size > max_train:
        keep = np.asarray(jax.random.permutation(k_cap, pool_rows.size))[:max_train]
        pool_rows = np.sort(pool_rows[keep])
    train = subset_pool(pool, pool_rows)
    return PairTask(name=name, ids=np.asarray(train.pair_ids), x=np.ascontiguousarray(train.z, np.float32),
                    y=train.gold.astype(np.int32), aux=train.aux,
                    x_test=np.ascontiguousarray(pool.z[test_rows], np.float32),
                    y_test=pool.gold[test_rows].astype(np.int32), prompt_texts=prompt_texts,
                    response_texts=response_texts, true_margin=train.true_margin)
