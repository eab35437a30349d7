r"""Pair pools for preference tasks: HH-RLHF, TRL preference JSONL, candidate lists, a synthetic PL world.

A pair pool is what a preference policy sees: one row per (prompt, response
shown first, response shown second), the row's feature the difference

    z = phi(x, first) - phi(x, second),

with ``phi(x, y)`` the embedding of the prompt followed by the response (the
reward model ``r = theta' phi`` of :mod:`alband.models.bradley_terry` sees the
response in its context; the response-alone embedding is the
``feature="response"`` option of the HH-RLHF loader). The A/B order of every
pair is drawn with the run's key (fair coin per pair), so position carries no
information; the gold preference (label 0 = first preferred, 1 = second, -1
unknown) is kept in :attr:`PairPool.gold` for the simulated judge and the
evaluation only -- policies get ``z`` and :class:`PairAux`.

Inputs:

* :func:`load_hh_rlhf_pairs`: the ``hh_rlhf_harmless_test`` folder of the shared
  data (``data.jsonl`` with ``id``, ``prompt``, ``chosen``, ``rejected``;
  ``emb_*.npy`` in the order of ``emb_ids.txt``).
* :func:`load_trl_pairs`: TRL's preference format, a JSONL of ``prompt`` /
  ``chosen`` / ``rejected`` (and optional ``id``) where each field is a string
  or a list of ``{"role", "content"}`` messages; without ``prompt`` the prompt
  is implicit, the messages before the last of ``chosen`` and of ``rejected``
  (which must agree). Embeddings from ``.npy`` files, one row per JSONL row:
  ``chosen`` and ``rejected`` (prompt + response), optionally ``prompt``.
* :func:`load_candidates`: a JSONL of ``prompt`` / ``responses`` (a list of
  ``K >= 2`` strings), optional ``id`` and ``ranking`` (response indices, best
  first); response embeddings in one ``.npy`` with the rows of all responses
  in file order. Every prompt's ``K (K - 1) / 2`` pairs become pool rows.
* :func:`synthetic_candidates_world`: ``K`` responses per prompt with a known
  ``theta`` (Plackett-Luce / Bradley-Terry world) for studies.

Bad input is an :class:`~alband.errors.AlbandError` naming the file and line:
identical responses, fewer than 2 responses, missing, short or non-finite
embeddings, mismatched dimensions, a pair whose two conversations differ
before the response, unknown fields. When no prompt embeddings are given, a
prompt's embedding is the mean of its responses' (used only to spread
prompts, e.g. by BAL-PM).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from alband.data.dataset import check_embedding_matrix
from alband.data.npy import open_npy
from alband.data.records import read_id_lines, read_records
from alband.errors import AlbandError
from alband.policies.preference.aux import PairAux, make_pair_aux

TRL_FIELDS = ("id", "prompt", "chosen", "rejected")
CANDIDATE_FIELDS = ("id", "prompt", "responses", "ranking")


@dataclass(frozen=True)
class PairPool:
    """A preference pool: features, prompt groups, and the hidden gold preferences."""

    z: np.ndarray  # (N, d) float32 phi(first) - phi(second)
    aux: PairAux
    gold: np.ndarray  # (N,) int32: 0 first preferred, 1 second, -1 unknown (judge / evaluation only)
    swapped: np.ndarray  # (N,) bool: the source's first response (chosen) is shown second
    pair_ids: tuple[str, ...]
    true_margin: np.ndarray | None = None  # (N,) theta' z of a synthetic world
    theta: np.ndarray | None = None  # the synthetic world's reward weights

    @property
    def n_pairs(self) -> int:
        return int(self.z.shape[0])


def _coin_flips(key: jax.Array, n: int) -> np.ndarray:
    return np.asarray(jax.random.bernoulli(key, 0.5, (n,)))


def _checked_matrix(path: Path, n_rows: int, what: str) -> np.ndarray:
    x = open_npy(Path(path))
    if x.shape[0] != n_rows:
        raise AlbandError(f"{path}: {x.shape[0]} rows of {what} embeddings, expected {n_rows} (one per data row)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    check_embedding_matrix(x, file=str(path))
    return x


def _same_dims(paths_and_arrays: list[tuple[Path, np.ndarray]]) -> None:
    (p0, x0), *rest = paths_and_arrays
    for p, x in rest:
        if x.shape[1] != x0.shape[1]:
            raise AlbandError(f"{p}: embeddings have {x.shape[1]} dimensions but {p0} has {x0.shape[1]}")


def _pool_from_pairs(prompt_x: np.ndarray, chosen_x: np.ndarray, rejected_x: np.ndarray, ids: list[str],
                     key: jax.Array) -> PairPool:
    """One pair per prompt (chosen preferred), shown in a random order."""
    n = chosen_x.shape[0]
    swapped = _coin_flips(key, n)
    response_x = np.concatenate([chosen_x, rejected_x])  # rows 0..n-1 chosen, n..2n-1 rejected
    chosen_row, rejected_row = np.arange(n), n + np.arange(n)
    first = np.where(swapped, rejected_row, chosen_row)
    second = np.where(swapped, chosen_row, rejected_row)
    aux = make_pair_aux(np.arange(n), first, second, prompt_x, response_x)
    z = response_x[first] - response_x[second]
    return PairPool(z, aux, swapped.astype(np.int32), swapped, tuple(ids))


def load_hh_rlhf_pairs(folder: str | Path, key: jax.Array, *, feature: str = "prompt_response") -> PairPool:
    """The HH-RLHF harmless test pairs with MiniLM features (module docstring).

    ``feature="prompt_response"`` (default): ``phi`` is the embedding of
    ``prompt + " " + response`` (``emb_chosen`` / ``emb_rejected``);
    ``feature="response"``: the response alone (``emb_*_resp``).
    """
    folder = Path(folder)
    if feature not in ("prompt_response", "response"):
        raise AlbandError(f"feature must be 'prompt_response' or 'response', got {feature!r}")
    records = read_records(folder / "data.jsonl")
    ids = read_id_lines(folder / "emb_ids.txt")
    data_ids = [str(r.fields.get("id")) for r in records]
    if data_ids != ids:
        raise AlbandError(f"{folder / 'emb_ids.txt'}: ids differ from {folder / 'data.jsonl'} (order or content)")
    suffix = "" if feature == "prompt_response" else "_resp"
    paths = [folder / "emb_prompt.npy", folder / f"emb_chosen{suffix}.npy", folder / f"emb_rejected{suffix}.npy"]
    mats = [_checked_matrix(p, len(ids), p.stem) for p in paths]
    _same_dims(list(zip(paths[1:], mats[1:])))
    return _pool_from_pairs(mats[0], mats[1], mats[2], ids, key)


def _message_list(value: Any, path: Path, line: int, field: str) -> list[dict] | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and all(isinstance(m, dict) and set(m) >= {"role", "content"} for m in value):
        return value
    raise AlbandError(f"{path}, line {line}: field {field!r} must be a string or a list of "
                      "{{'role', 'content'}} messages")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "\n".join(f"{m['role']}: {m['content']}" for m in value)


def _split_implicit(chosen: Any, rejected: Any, path: Path, line: int) -> tuple[str, str, str]:
    """Prompt and the two responses of a row without ``prompt`` (conversations sharing a prefix)."""
    if isinstance(chosen, list) and isinstance(rejected, list):
        if not chosen or not rejected:
            raise AlbandError(f"{path}, line {line}: empty conversation in 'chosen' or 'rejected'")
        if chosen[:-1] != rejected[:-1]:
            raise AlbandError(f"{path}, line {line}: 'chosen' and 'rejected' differ before the last message "
                              "(the two responses must answer the same prompt)")
        return _text(chosen[:-1]), _text(chosen[-1:]), _text(rejected[-1:])
    if isinstance(chosen, str) and isinstance(rejected, str):
        marker = "\n\nAssistant:"
        a, b = chosen.rfind(marker), rejected.rfind(marker)
        if a < 0 or b < 0:
            raise AlbandError(f"{path}, line {line}: no 'prompt' field and no '\\n\\nAssistant:' turn to split "
                              "the prompt from the response")
        if chosen[: a + len(marker)] != rejected[: b + len(marker)]:
            raise AlbandError(f"{path}, line {line}: 'chosen' and 'rejected' differ before the last "
                              "'Assistant:' turn (the two responses must answer the same prompt)")
        return chosen[: a + len(marker)], chosen[a + len(marker):], rejected[b + len(marker):]
    raise AlbandError(f"{path}, line {line}: 'chosen' and 'rejected' must both be strings or both message lists")


def _unknown_fields(data: dict, allowed: tuple[str, ...], path: Path, line: int) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise AlbandError(f"{path}, line {line}: unknown field(s) {', '.join(map(repr, unknown))}; "
                          f"expected {', '.join(allowed)}")


def read_trl_rows(path: str | Path) -> list[tuple[str, str, str, str]]:
    """``(id, prompt, chosen, rejected)`` texts of a TRL preference JSONL, validated (module docstring)."""
    path = Path(path)
    rows = []
    for number, record in enumerate(read_records(path)):
        data, line = record.fields, record.line
        _unknown_fields(data, TRL_FIELDS, path, line)
        for field in ("chosen", "rejected"):
            if field not in data:
                raise AlbandError(f"{path}, line {line}: missing field {field!r}")
            _message_list(data[field], path, line, field)
        if "prompt" in data:
            _message_list(data["prompt"], path, line, "prompt")
            prompt, chosen, rejected = _text(data["prompt"]), _text(data["chosen"]), _text(data["rejected"])
        else:
            prompt, chosen, rejected = _split_implicit(data["chosen"], data["rejected"], path, line)
        if chosen.strip() == rejected.strip():
            raise AlbandError(f"{path}, line {line}: 'chosen' and 'rejected' are identical; a pair needs two "
                              "different responses")
        rows.append((str(data.get("id", f"row-{number}")), prompt, chosen, rejected))
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise AlbandError(f"{path}: duplicate id {next(i for i in ids if ids.count(i) > 1)!r}")
    return rows


def load_trl_pairs(path: str | Path, key: jax.Array, *, chosen_npy: str | Path, rejected_npy: str | Path,
                   prompt_npy: str | Path | None = None) -> PairPool:
    """A TRL ``prompt`` / ``chosen`` / ``rejected`` JSONL with embeddings from ``.npy`` (module docstring)."""
    rows = read_trl_rows(path)
    n = len(rows)
    chosen_x = _checked_matrix(Path(chosen_npy), n, "chosen")
    rejected_x = _checked_matrix(Path(rejected_npy), n, "rejected")
    pairs = [(Path(chosen_npy), chosen_x), (Path(rejected_npy), rejected_x)]
    _same_dims(pairs)
    prompt_x = (_checked_matrix(Path(prompt_npy), n, "prompt") if prompt_npy is not None
                else 0.5 * (chosen_x + rejected_x))
    return _pool_from_pairs(prompt_x, chosen_x, rejected_x, [r[0] for r in rows], key)


def read_candidate_rows(path: str | Path) -> list[tuple[str, str, list[str], list[int] | None]]:
    """``(id, prompt, responses, ranking)`` of a candidates JSONL, validated (module docstring)."""
    path = Path(path)
    rows = []
    for number, record in enumerate(read_records(path)):
        data, line = record.fields, record.line
        _unknown_fields(data, CANDIDATE_FIELDS, path, line)
        if "prompt" not in data or "responses" not in data:
            raise AlbandError(f"{path}, line {line}: missing field 'prompt' or 'responses'")
        responses = data["responses"]
        if not isinstance(responses, list) or not all(isinstance(r, (str, list)) for r in responses):
            raise AlbandError(f"{path}, line {line}: 'responses' must be a list of responses")
        if len(responses) < 2:
            raise AlbandError(f"{path}, line {line}: {len(responses)} response(s); a prompt needs K >= 2 to compare")
        texts = [_text(r).strip() for r in responses]
        if len(set(texts)) != len(texts):
            j = next(j for j, t in enumerate(texts) if texts.count(t) > 1)
            raise AlbandError(f"{path}, line {line}: response {j} appears twice; candidates must differ")
        ranking = data.get("ranking")
        if ranking is not None and (not isinstance(ranking, list) or sorted(ranking) != list(range(len(texts)))):
            raise AlbandError(f"{path}, line {line}: 'ranking' must list every response index 0..{len(texts) - 1} "
                              "once, best first")
        rows.append((str(data.get("id", f"row-{number}")), _text(data["prompt"]), texts, ranking))
    return rows


def load_candidates(path: str | Path, key: jax.Array, *, responses_npy: str | Path,
                    prompt_npy: str | Path | None = None) -> PairPool:
    """A ``prompt`` / ``responses`` JSONL: all pairs of each prompt's candidates (module docstring).

    ``gold`` comes from ``ranking`` where given (the response ranked higher is
    preferred), else -1.
    """
    rows = read_candidate_rows(path)
    response_x = _checked_matrix(Path(responses_npy), sum(len(r[2]) for r in rows), "response")
    prompt_x = None if prompt_npy is None else _checked_matrix(Path(prompt_npy), len(rows), "prompt")
    return candidates_pool(rows, response_x, prompt_x, key)


def candidates_pool(rows: list[tuple[str, str, list[str], list[int] | None]], response_x: np.ndarray,
                    prompt_x: np.ndarray | None, key: jax.Array) -> PairPool:
    """The pool of :func:`load_candidates` from its rows and checked embeddings (``prompt_x`` None: means)."""
    counts = [len(r[2]) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if prompt_x is None:
        prompt_x = np.stack([response_x[offsets[p]:offsets[p + 1]].mean(axis=0) for p in range(len(rows))])
    prompt, a_rows, b_rows, gold, ids = [], [], [], [], []
    for p, (row_id, _, texts, ranking) in enumerate(rows):
        rank = None if ranking is None else {r: pos for pos, r in enumerate(ranking)}
        for a in range(len(texts)):
            for b in range(a + 1, len(texts)):
                prompt.append(p)
                a_rows.append(offsets[p] + a)
                b_rows.append(offsets[p] + b)
                gold.append(-1 if rank is None else (0 if rank[a] < rank[b] else 1))
                ids.append(f"{row_id}:{a}-{b}")
    a_rows, b_rows, gold = np.asarray(a_rows), np.asarray(b_rows), np.asarray(gold, np.int32)
    swapped = _coin_flips(key, len(a_rows))
    first, second = np.where(swapped, b_rows, a_rows), np.where(swapped, a_rows, b_rows)
    gold = np.where(gold < 0, -1, np.where(swapped, 1 - gold, gold)).astype(np.int32)
    aux = make_pair_aux(prompt, first, second, prompt_x, response_x)
    return PairPool(response_x[first] - response_x[second], aux, gold, swapped, tuple(ids))


def pairs_pool(prompt_x: np.ndarray, chosen_x: np.ndarray, rejected_x: np.ndarray, ids: list[str],
               key: jax.Array) -> PairPool:
    """One pair per prompt from checked embedding matrices (chosen preferred; response rows: chosen, then rejected)."""
    return _pool_from_pairs(prompt_x, chosen_x, rejected_x, ids, key)


def synthetic_candidates_world(key: jax.Array, n_prompts: int = 500, k: int = 4, d: int = 16,
                               theta_norm: float = 1.5) -> PairPool:
    r"""A candidates world with known reward weights (for studies of ``K``-candidate policies).

    Prompt ``p`` has embedding ``q_p ~ N(0, I_d)``; its ``K`` responses have
    features ``phi_pk = q_p + e_pk``, ``e_pk ~ N(0, I_d)``; the reward weights
    ``theta`` are uniform on the sphere of radius ``theta_norm``. Rewards
    ``r_pk = theta' phi_pk`` define a Plackett-Luce model over each prompt's
    candidates (:func:`alband.models.plackett_luce.sample_plackett_luce` draws
    rankings) and a Bradley-Terry model over its pairs: ``true_margin`` is
    ``theta' z`` (margins have standard deviation ``sqrt(2) theta_norm``), and
    ``gold`` is the better response of each pair (label 0 iff the margin is
    positive). A judge answering with ``P(correct) = sigmoid(|margin|)``
    (:mod:`alband.simulate.judge_model`, ``beta = 1``) samples exactly from the
    world's Bradley-Terry model.
    """
    if k < 2 or n_prompts < 1 or d < 1:
        raise AlbandError(f"a candidates world needs k >= 2, n_prompts >= 1, d >= 1 (got {k}, {n_prompts}, {d})")
    k_q, k_e, k_t, k_order = jax.random.split(key, 4)
    q = np.asarray(jax.random.normal(k_q, (n_prompts, d)), np.float32)
    e = np.asarray(jax.random.normal(k_e, (n_prompts, k, d)), np.float32)
    direction = np.asarray(jax.random.normal(k_t, (d,)), np.float64)
    theta = (theta_norm * direction / np.linalg.norm(direction)).astype(np.float32)
    response_x = (q[:, None, :] + e).reshape(n_prompts * k, d)
    a_slot, b_slot = np.triu_indices(k, 1)
    prompt = np.repeat(np.arange(n_prompts), len(a_slot))
    a_rows = prompt * k + np.tile(a_slot, n_prompts)
    b_rows = prompt * k + np.tile(b_slot, n_prompts)
    swapped = _coin_flips(k_order, len(a_rows))
    first, second = np.where(swapped, b_rows, a_rows), np.where(swapped, a_rows, b_rows)
    z = response_x[first] - response_x[second]
    margin = (z.astype(np.float64) @ theta).astype(np.float32)
    gold = np.where(margin > 0, 0, 1).astype(np.int32)
    aux = make_pair_aux(prompt, first, second, q, response_x)
    ids = tuple(f"p{p}:{a}-{b}" for p, a, b in zip(prompt, np.tile(a_slot, n_prompts), np.tile(b_slot, n_prompts)))
    return PairPool(z, aux, gold, swapped, ids, margin, theta)
