"""Small synthetic tasks for fast tests of the core and the loop, and the CLI as a user meets it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np

from alband.costs.prices import Price
from alband.simulate import EpisodeData, make_simulated_annotator


def blobs(n: int = 120, d: int = 6, n_classes: int = 3, n_test: int = 60, seed: int = 0):
    """Gaussian class blobs: pool and test arrays plus text lengths."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * 2.0
    y = rng.integers(0, n_classes, n + n_test)
    x = (centers[y] + rng.normal(size=(n + n_test, d))).astype(np.float32)
    chars = rng.integers(10, 400, n).astype(np.int32)
    return x[:n], y[:n].astype(np.int32), x[n:], y[n:].astype(np.int32), chars


def episode_data(n: int = 120, d: int = 6, n_classes: int = 3, seed: int = 0) -> EpisodeData:
    x, y, xt, yt, chars = blobs(n, d, n_classes, seed=seed)
    return EpisodeData(jnp.asarray(x), jnp.asarray(y), jnp.asarray(chars), jnp.asarray(chars),
                       jnp.asarray(xt), jnp.asarray(yt))


def llm_annotator(n_classes: int = 3, flip_rate: float = 0.1, p_in: float = 1.0, p_out: float = 5.0):
    return make_simulated_annotator(n_classes, Price(p_in, p_out), flip_rate=flip_rate,
                                    prompt_tokens=50, output_tokens=4, max_output_tokens=16)


def three_simulated_annotators_toml(*, cheap_flip_rate: float = 0.25, strong_label_weight: float | None = 0.9,
                                    human_usd_per_label: float = 0.001) -> str:
    """``[annotators.*]`` TOML of the cheap / strong / human mix the routing tests use.

    A cheap LLM ($0.15 / $0.60 per million tokens), a strong LLM ($3 / $15, 5 % flips) and a per-label
    human, all simulated. Braces-free, so it can sit inside a ``str.format`` template.
    """
    strong_weight = "" if strong_label_weight is None else f"label_weight = {strong_label_weight}\n"
    return (
        "[annotators.cheap]\nkind = \"simulated\"\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.60\n"
        f"flip_rate = {cheap_flip_rate}\nprompt_tokens = 120\noutput_tokens = 8\nmax_output_tokens = 32\n\n"
        "[annotators.strong]\nkind = \"simulated\"\ninput_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0\n"
        "flip_rate = 0.05\nprompt_tokens = 120\noutput_tokens = 8\nmax_output_tokens = 32\n"
        f"{strong_weight}\n"
        f"[annotators.human]\nkind = \"simulated\"\nusd_per_label = {human_usd_per_label}\n"
    )


# -- the CLI as a user meets it ------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cli_error_line(capsys, *argv: str) -> str:
    """Run ``alband ARGV`` in-process; it must exit 2 with exactly one ``alband: error:`` line on stderr."""
    from alband.cli.main import main

    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("alband: error: "), err
    return err[0]


def start_alband(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m alband ARGS`` in a child process (stdout discarded, stderr kept for messages)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "alband", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sigkill_when(proc: subprocess.Popen, ready: Callable[[], bool], *, timeout_s: float = 240.0,
                 poll_s: float = 0.02, must_be_running: bool = True) -> None:
    """SIGKILL ``proc`` once ``ready()`` holds (or at the deadline) and reap it.

    ``ready`` usually reads the run's ledger while the run writes it, so a
    :class:`sqlite3.Error` (or a ledger not yet created) counts as "not yet".
    With ``must_be_running`` the run must still be alive when killed: a run
    that ended on its own is a failed test, not a silent pass.
    """
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                if ready():
                    break
            except (sqlite3.Error, FileNotFoundError):
                pass
            time.sleep(poll_s)
        if must_be_running:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
