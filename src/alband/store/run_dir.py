"""A run directory: everything one run needs to be inspected and resumed.

Layout::

    <run>/
      config.toml      the run's config, verbatim (its SHA-256 is the config hash)
      run.json         alband version, creation time, config hash
      ledger.sqlite    every paid annotation (:mod:`alband.store.ledger`)
      metrics.jsonl    one line per round (:mod:`alband.store.metrics`)
      plots/           figures

:meth:`RunDir.create` builds the directory beside its destination and
renames it into place, so a run directory either exists complete or not at
all. Creating a run where the *same* run (same config hash) already lives
opens it instead, which is how a killed run is resumed; any other non-empty
directory is refused. :meth:`RunDir.open_existing` checks that every piece is
there and that the config was not edited since the run started.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alband.errors import AlbandError
from alband.store.durable import fsync_directory
from alband.store.ledger import LEDGER_FILENAME, Ledger
from alband.store.metrics import METRICS_FILENAME, MetricsWriter, read_metrics

CONFIG_FILENAME = "config.toml"
RUN_INFO_FILENAME = "run.json"
PLOTS_DIRNAME = "plots"
RUN_FORMAT = 1


def config_hash(config_text: str) -> str:
    """SHA-256 (hex) of the config text's UTF-8 bytes."""
    return hashlib.sha256(config_text.encode("utf-8")).hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class RunDir:
    """A validated run directory (see the module docstring)."""

    path: Path
    config_hash: str
    created_at: str
    alband_version: str

    # ----------------------------------------------------------------- paths
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILENAME

    @property
    def run_info_path(self) -> Path:
        return self.path / RUN_INFO_FILENAME

    @property
    def ledger_path(self) -> Path:
        return self.path / LEDGER_FILENAME

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILENAME

    @property
    def plots_dir(self) -> Path:
        return self.path / PLOTS_DIRNAME

    # ---------------------------------------------------------------- create
    @classmethod
    def create(cls, path: str | os.PathLike, config_text: str, *,
               budget_limit_usd: float | None = None) -> "RunDir":
        """Create the run directory ``path`` for ``config_text`` (TOML).

        If ``path`` already holds the run of the same config, it is opened
        (and validated) instead. A non-empty ``path`` holding anything else
        raises :class:`AlbandError`. ``budget_limit_usd`` is recorded in the
        ledger's meta table with the config and its hash.
        """
        path = Path(path)
        if not isinstance(config_text, str):
            raise AlbandError(f"the config of run {path} must be TOML text, got {type(config_text).__name__}")
        try:
            tomllib.loads(config_text)
        except tomllib.TOMLDecodeError as exc:
            raise AlbandError(f"the config of run {path} is not valid TOML: {exc}") from exc
        if budget_limit_usd is not None and (
            isinstance(budget_limit_usd, bool) or not isinstance(budget_limit_usd, (int, float))
            or not math.isfinite(budget_limit_usd) or budget_limit_usd <= 0
        ):
            raise AlbandError(f"budget limit of run {path} must be a finite number of dollars > 0, "
                              f"got {budget_limit_usd!r}")
        digest = config_hash(config_text)

        if path.exists() and not path.is_dir():
            raise AlbandError(f"cannot create run directory {path}: a file of that name exists")
        if path.is_dir() and any(path.iterdir()):
            return cls._reopen_same_run(path, digest, budget_limit_usd)

        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.creating-", dir=parent))
        except OSError as exc:
            raise AlbandError(f"cannot create run directory {path}: {exc}") from exc
        try:
            cls._populate(staging, config_text, digest, budget_limit_usd)
            try:
                os.rename(staging, path)  # atomic; replaces an empty directory
            except OSError:
                if path.is_dir() and any(path.iterdir()):  # another process created it meanwhile
                    return cls._reopen_same_run(path, digest, budget_limit_usd)
                raise
        except OSError as exc:
            raise AlbandError(f"cannot create run directory {path}: {exc}") from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        fsync_directory(parent)
        return cls.open_existing(path)

    @staticmethod
    def _populate(staging: Path, config_text: str, digest: str, budget_limit_usd: float | None) -> None:
        from alband import __version__

        _write_durably(staging / CONFIG_FILENAME, config_text.encode("utf-8"))
        with Ledger.open(staging / LEDGER_FILENAME, create=True) as ledger:
            ledger.set_meta("config", config_text)
            ledger.set_meta("config_hash", digest)
            if budget_limit_usd is not None:
                ledger.set_meta("budget_limit_usd", float(budget_limit_usd))
        (staging / PLOTS_DIRNAME).mkdir()
        info = {
            "run_format": RUN_FORMAT,
            "alband_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config_hash": digest,
        }
        _write_durably(staging / RUN_INFO_FILENAME, (json.dumps(info, indent=2) + "\n").encode("utf-8"))
        fsync_directory(staging)

    @classmethod
    def _reopen_same_run(cls, path: Path, digest: str, budget_limit_usd: float | None) -> "RunDir":
        info_path = path / RUN_INFO_FILENAME
        if not info_path.is_file():
            raise AlbandError(
                f"cannot create run directory {path}: it is not empty and is not an alband run "
                f"({RUN_INFO_FILENAME} is missing); choose another directory"
            )
        run = cls.open_existing(path)
        if run.config_hash != digest:
            raise AlbandError(
                f"cannot create run directory {path}: it holds another run (config hash "
                f"{run.config_hash[:12]}, this config {digest[:12]}); choose another directory"
            )
        if budget_limit_usd is not None:
            recorded = run.budget_limit_usd()
            if recorded is not None and recorded != float(budget_limit_usd):
                raise AlbandError(
                    f"run {path} was started with a budget of ${recorded}, not ${float(budget_limit_usd)}"
                )
        return run

    # ------------------------------------------------------------------ open
    @classmethod
    def open_existing(cls, path: str | os.PathLike) -> "RunDir":
        """Open and validate the run directory ``path``.

        Raises :class:`AlbandError` naming the path and what is wrong: the
        directory, ``run.json``, ``config.toml`` or the ledger is missing or
        unreadable, or the config no longer matches the hash the run started
        with.
        """
        path = Path(path)
        if not path.exists():
            raise AlbandError(f"run directory {path} does not exist")
        if not path.is_dir():
            raise AlbandError(f"run directory {path} is not a directory")
        info_path = path / RUN_INFO_FILENAME
        if not info_path.is_file():
            raise AlbandError(f"{path} is not an alband run directory: {RUN_INFO_FILENAME} is missing")
        info = cls._read_run_info(info_path)

        config_path = path / CONFIG_FILENAME
        if not config_path.is_file():
            raise AlbandError(f"run directory {path}: {CONFIG_FILENAME} is missing")
        try:
            config_text = config_path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise AlbandError(f"{config_path} cannot be read: {exc}") from exc
        if config_hash(config_text) != info["config_hash"]:
            raise AlbandError(
                f"{config_path} was modified after the run started (its hash no longer matches "
                f"{info_path}); resuming with another config would mix two runs"
            )

        ledger_path = path / LEDGER_FILENAME
        if not ledger_path.is_file():
            raise AlbandError(f"run directory {path}: {LEDGER_FILENAME} is missing")
        with Ledger.open(ledger_path, create=False, read_only=True) as ledger:
            recorded = ledger.get_meta("config_hash")
        if recorded != info["config_hash"]:
            raise AlbandError(
                f"{ledger_path} belongs to another run (config hash {str(recorded)[:12]}, "
                f"{RUN_INFO_FILENAME} says {info['config_hash'][:12]})"
            )
        return cls(path=path, config_hash=info["config_hash"], created_at=info["created_at"],
                   alband_version=info["alband_version"])

    @staticmethod
    def _read_run_info(info_path: Path) -> dict[str, Any]:
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AlbandError(f"{info_path} is unreadable: {exc}") from exc
        if not isinstance(info, dict):
            raise AlbandError(f"{info_path} must hold a JSON object")
        for key in ("run_format", "alband_version", "created_at", "config_hash"):
            if key not in info:
                raise AlbandError(f"{info_path}: field {key!r} is missing")
        if info["run_format"] != RUN_FORMAT:
            raise AlbandError(f"{info_path}: run format {info['run_format']!r} is not {RUN_FORMAT}, "
                              "the one this alband reads")
        if not isinstance(info["config_hash"], str) or len(info["config_hash"]) != 64:
            raise AlbandError(f"{info_path}: field 'config_hash' is not a SHA-256 hex digest")
        return info

    # ------------------------------------------------------------- contents
    def config_text(self) -> str:
        """The config, verbatim."""
        return self.config_path.read_bytes().decode("utf-8")

    def config(self) -> dict[str, Any]:
        """The config, parsed."""
        return tomllib.loads(self.config_text())

    def open_ledger(self, *, read_only: bool = False) -> Ledger:
        """The run's ledger (for writing unless ``read_only``)."""
        return Ledger.open(self.ledger_path, create=False, read_only=read_only)

    def budget_limit_usd(self) -> float | None:
        """The budget limit recorded when the run was created, if any."""
        with self.open_ledger(read_only=True) as ledger:
            return ledger.get_meta("budget_limit_usd")

    def metrics_writer(self) -> MetricsWriter:
        """A writer appending to ``metrics.jsonl`` (repairing a torn last line)."""
        return MetricsWriter(self.metrics_path)

    def read_metrics(self) -> list[dict]:
        """The recorded rounds (empty before the first round)."""
        return read_metrics(self.metrics_path) if self.metrics_path.exists() else []
