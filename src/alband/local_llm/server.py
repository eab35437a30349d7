"""llama-cpp-python's OpenAI-compatible server as a subprocess on ``127.0.0.1``.

:class:`LocalServer` runs ``python -m llama_cpp.server`` on a GGUF file with a
fixed thread count and context size, on a free port (or the one given), waits
until ``GET /v1/models`` answers, and stops the process (terminate, then kill)
on :meth:`LocalServer.stop` or when its ``with`` block ends. The server's own
output goes to a log file whose tail is quoted if it exits before it is ready.

On Linux the server is asked to receive SIGTERM when the thread that started
it dies (``PR_SET_PDEATHSIG``), so a killed parent leaves no server behind;
start it from a thread that lives as long as it is needed (the main thread).
The request is made by a short Python prelude that then ``exec``s the server
(the setting survives ``execve``), not by a ``preexec_fn``: that would make
``subprocess`` fork a multithreaded process (JAX's) and run Python code in
the child before ``exec``, which can deadlock.

Threads: on a machine whose cores are shared with other work, one thread per
server is the safe default; more threads only pay when cores are idle.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from alband.errors import AlbandError

HOST = "127.0.0.1"
#: Modules ``python -m llama_cpp.server`` imports (llama-cpp-python and its ``server`` extra).
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
RUNTIME_INSTALL = "pip install 'llama-cpp-python[server]==0.3.36' (or: pip install 'alband[local-llm]')"


def runtime_problem() -> str | None:
    """Why the local server cannot start here (a missing module), or None if it can."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"the local model server needs {', '.join(missing)}: {RUNTIME_INSTALL}"
    return None


def free_port() -> int:
    """A TCP port on ``127.0.0.1`` that nothing listens on at the moment of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


#: ``python -c`` prelude: ``argv[1]`` is the parent's pid, the rest the command it ``exec``s. On Linux it
#: asks for SIGTERM when the parent dies, and exits if the parent is already gone.
_DIE_WITH_PARENT = (
    "import os, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    import ctypes, signal\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv[1]):\n"
    "        sys.exit(0)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class LocalServer:
    """A running ``llama_cpp.server`` for one GGUF file, served under the model name ``alias``."""

    def __init__(self, gguf: str | os.PathLike, alias: str, *, threads: int = 1, port: int | None = None,
                 n_ctx: int = 2048, startup_timeout_s: float = 120.0, log_path: str | os.PathLike | None = None):
        for field, value in (("threads", threads), ("n_ctx", n_ctx)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AlbandError(f"local server: {field} must be an integer >= 1, got {value!r}")
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise AlbandError(f"local server: port must be an integer in 1..65535, got {port!r}")
        self.gguf = Path(gguf)
        self.alias = alias
        self.threads = threads
        self.port = port
        self.n_ctx = n_ctx
        self.startup_timeout_s = float(startup_timeout_s)
        self.log_path = Path(log_path) if log_path is not None else None
        self.process: subprocess.Popen | None = None
        self._log_handle = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``base_url`` of an ``[annotators.X] kind = "openai"`` table."""
        if self.port is None:
            raise AlbandError("local server: not started")
        return f"http://{HOST}:{self.port}/v1"

    def command(self) -> list[str]:
        """The server's command line."""
        return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), sys.executable, "-m", "llama_cpp.server",
                "--model", str(self.gguf), "--model_alias", self.alias,
                "--host", HOST, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)]

    def start(self) -> "LocalServer":
        """Start the process and wait until it answers ``/v1/models`` (an error with its log tail if it dies)."""
        problem = runtime_problem()
        if problem:
            raise AlbandError(problem)
        if not self.gguf.is_file():
            raise AlbandError(f"local server: no model file at {self.gguf}")
        if self.port is None:
            self.port = free_port()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix=f"alband-llm-{self.alias}-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log_handle = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_handle,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self._log_tail()
                self.stop()
                raise AlbandError(f"local server for {self.alias!r} exited with code {self.process.returncode} "
                                  f"before it was ready: {tail}")
            if self._models_answer() and self.process.poll() is None:  # our process, not one already there
                return self
            time.sleep(0.2)
        self.stop()
        raise AlbandError(f"local server for {self.alias!r} did not answer {self.base_url}/models within "
                          f"{self.startup_timeout_s:g} s (log: {self.log_path})")

    def stop(self) -> None:
        """Terminate the process (kill after 10 s) and close its log."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _models_answer(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                body = json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
            return False
        return isinstance(body, dict) and any(entry.get("id") == self.alias for entry in body.get("data", []))

    def _log_tail(self, n_chars: int = 400) -> str:
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return "(no log)"
        return " | ".join(line.strip() for line in text[-n_chars:].splitlines() if line.strip()) or "(empty log)"


__all__ = ["HOST", "LocalServer", "free_port", "runtime_problem"]
