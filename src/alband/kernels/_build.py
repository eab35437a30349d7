"""Compile, cache and register the native CPU kernels (the one place the core touches disk).

Like XLA's own compilation cache, this is a build step, not data I/O: on first
use in a process, :func:`native_status` compiles ``pool_scoring.cc`` with the
system C++ compiler against the XLA FFI headers that jaxlib ships
(``jax.ffi.include_dir()``), caches the shared library under
``$ALBAND_CACHE_DIR`` (default ``$XDG_CACHE_HOME/alband`` or ``~/.cache/alband``)
in a folder named by a hash of the source, the jaxlib version, the compiler and
its flags, and registers its handlers as XLA custom-call targets. Later
processes load the cached library (the compiler is still asked for its version,
which is part of the cache key); a cached file that does not load is rebuilt once.

The kernels need Linux on x86-64 with AVX2 and FMA (read from
``/proc/cpuinfo`` before anything is loaded, since running an unsupported
instruction would kill the process). When anything is missing -- the CPU
features, a compiler, a writable cache, ``ALBAND_NATIVE_KERNELS=0`` in the
environment -- the callers fall back to XLA's own product and
:func:`native_status` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("pool_scoring.cc")
TARGETS = {"alband_narrow_matmul": "AlbandNarrowMatmul", "alband_pool_uncertainty": "AlbandPoolUncertainty"}
FLAGS = ("-O3", "-mavx2", "-mfma", "-std=c++17", "-shared", "-fPIC")
DISABLE_ENV = "ALBAND_NATIVE_KERNELS"
CACHE_ENV = "ALBAND_CACHE_DIR"


@dataclass(frozen=True)
class NativeStatus:
    """Whether the native kernels are in use, and where they came from or why not."""

    available: bool
    reason: str
    library: str | None = None
    compiled_now: bool = False

    def as_dict(self) -> dict:
        return {"available": self.available, "reason": self.reason, "library": self.library,
                "compiled_now": self.compiled_now}


_lock = threading.Lock()
_status: NativeStatus | None = None


def cache_root() -> Path:
    """Where compiled kernels are kept: ``$ALBAND_CACHE_DIR``, else the user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alband"


def cpu_supports_kernels() -> tuple[bool, str]:
    """True on Linux x86-64 whose CPU flags include avx2 and fma (else the reason)."""
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False, f"needs Linux on x86-64 (this is {platform.system()} on {platform.machine()})"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError as exc:
        return False, f"cannot read /proc/cpuinfo ({exc})"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    missing = [f for f in ("avx2", "fma") if f not in flags]
    if missing:
        return False, f"the CPU lacks {', '.join(missing)}"
    return True, "ok"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _compiler_version(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0] if out.stdout else cxx


def _build(cxx: str, include_dir: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "libalband_kernels.so"
    if target.exists():
        return target
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    try:
        cmd = [cxx, *FLAGS, "-isystem", include_dir, "-o", tmp, str(SOURCE)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"{Path(cxx).name} failed (exit {done.returncode}): {last}")
        os.chmod(tmp, 0o755)  # mkstemp made it 0600: let other users of a shared cache load it
        os.replace(tmp, target)  # atomic: concurrent builders each publish a complete file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load() -> NativeStatus:
    if os.environ.get(DISABLE_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return NativeStatus(False, f"disabled by {DISABLE_ENV}={os.environ[DISABLE_ENV]}")
    ok, why = cpu_supports_kernels()
    if not ok:
        return NativeStatus(False, why)
    import jax
    import jaxlib

    if jax.default_backend() != "cpu":
        return NativeStatus(False, f"the default JAX backend is {jax.default_backend()}, not cpu")
    cxx = _compiler()
    if cxx is None:
        return NativeStatus(False, "no C++ compiler (g++, c++ or clang++; or set CXX)")
    try:
        key_text = "\n".join([SOURCE.read_text(), jaxlib.__version__, _compiler_version(cxx), " ".join(FLAGS)])
        key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
        folder = cache_root() / "kernels" / key
        fresh = not (folder / "libalband_kernels.so").exists()
        path = _build(cxx, jax.ffi.include_dir(), folder)
        try:
            lib = ctypes.cdll.LoadLibrary(str(path))
        except OSError:
            if fresh:
                raise
            path.unlink(missing_ok=True)  # a truncated or foreign file in the cache: build it again
            path, fresh = _build(cxx, jax.ffi.include_dir(), folder), True
            lib = ctypes.cdll.LoadLibrary(str(path))
        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except Exception as exc:  # any failure means: use XLA's product instead
        return NativeStatus(False, f"could not build or load the kernels: {exc}")
    return NativeStatus(True, "ok", str(path), fresh)


def native_status() -> NativeStatus:
    """Build (once per process) and report whether the native kernels are usable."""
    global _status
    with _lock:
        if _status is None:
            _status = _load()
        return _status


def native_available() -> bool:
    return native_status().available
