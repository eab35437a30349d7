"""JAX's persistent compilation cache under alband's cache folder (shell).

The simulator is one large XLA program per (policy, learner, shapes); tracing
and compiling it takes longer than running it on small pools. With the cache
on, a second process that compiles the same program reads it from disk
(README, "Compile time", has the measured figures).

:func:`enable_compilation_cache` points ``jax_compilation_cache_dir`` at
``$ALBAND_CACHE_DIR/jax`` (default ``~/.cache/alband/jax``, the folder of
:func:`alband.kernels._build.cache_root`) and caches every program that took
at least :data:`MIN_COMPILE_SECONDS` to compile. It is opt-in:
``ALBAND_JAX_CACHE=1`` turns it on. Off by default because one full test run
aborted a process inside JAX's cache write (``compilation_cache.py``,
``put_executable_and_time``: "Fatal Python error: Aborted"). Later aborts, in
XLA's compiler, were traced to the per-process limit on memory mappings
(``vm.max_map_count``; each cached executable holds about three), which the
test suite now stays under by clearing JAX's caches between modules
(tests/conftest.py). The cache's abort probably had the same cause; until
that is shown it stays opt-in. A cache folder set by the user
(``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is always left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

OPT_IN_ENV = "ALBAND_JAX_CACHE"
#: Programs compiled faster than this are not written (the small ones cost more to store than to rebuild).
MIN_COMPILE_SECONDS = 1.0


def compilation_cache_dir() -> Path | None:
    """The folder :func:`enable_compilation_cache` uses, or ``None`` unless ``ALBAND_JAX_CACHE=1``."""
    if os.environ.get(OPT_IN_ENV, "0").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    from alband.kernels._build import cache_root

    return cache_root() / "jax"


def enable_compilation_cache() -> Path | None:
    """Turn JAX's persistent compilation cache on (module docstring); the folder in use, or ``None``."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:  # the user's own cache folder, whatever ALBAND_JAX_CACHE says
        return Path(current)
    folder = compilation_cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


__all__ = ["MIN_COMPILE_SECONDS", "OPT_IN_ENV", "compilation_cache_dir", "enable_compilation_cache"]
