"""``alband llm serve`` / ``alband llm models``: small local models behind an OpenAI-compatible server.

``serve`` verifies the model's GGUF file (:mod:`alband.local_llm.weights`),
starts llama-cpp-python's server on ``127.0.0.1`` (:mod:`alband.local_llm.server`),
prints the ``base_url`` and an ``[annotators.NAME]`` table that uses it, and
keeps the server running until interrupted (Ctrl-C or SIGTERM: the server is
stopped, exit code 0). A missing runtime or missing
weights is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import signal
import time

from alband.errors import AlbandError

ANNOTATOR_TABLE = """[annotators.{name}]
kind = "openai"
model = "{model}"
base_url = "{base_url}"
api_key_env = "ALBAND_LOCAL_LLM_KEY"   # the server checks no key: export ALBAND_LOCAL_LLM_KEY=local
max_tokens_param = "max_tokens"
max_tokens = 48
input_usd_per_mtok = 0.0                # local inference bills nothing; set a notional price to rank it
output_usd_per_mtok = 0.0"""


def _serve(argv: list[str]) -> int:
    from alband.local_llm import LocalServer, gguf_path, runtime_problem
    from alband.local_llm.weights import LOCAL_MODELS

    parser = argparse.ArgumentParser(prog="alband llm serve",
                                     description="serve a local model on 127.0.0.1 (OpenAI-compatible) until Ctrl-C")
    parser.add_argument("--model", required=True, choices=sorted(LOCAL_MODELS))
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default 1: safe on shared cores)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context length in tokens (default 2048)")
    parser.add_argument("--cache-dir", default=None, help="where chunked weights are assembled "
                        "(default $XDG_CACHE_HOME/alband/gguf)")
    args = parser.parse_args(argv)
    problem = runtime_problem()
    if problem:
        raise AlbandError(problem)
    path = gguf_path(args.model, args.cache_dir)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the server as Ctrl-C does
    server = LocalServer(path, args.model, threads=args.threads, port=args.port, n_ctx=args.n_ctx)
    with server:
        print(f"serving {args.model} ({path}) with {args.threads} thread(s); log: {server.log_path}")
        print(f"base_url: {server.base_url}")
        print(ANNOTATOR_TABLE.format(name=args.model.replace(".", "_").replace("-", "_"), model=args.model,
                                     base_url=server.base_url), flush=True)
        try:
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
    raise AlbandError(f"the server of {args.model} exited with code {server.process.returncode} "
                      f"(log: {server.log_path})")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _models(argv: list[str]) -> int:
    from alband.local_llm.weights import LOCAL_MODELS, part_paths

    argparse.ArgumentParser(prog="alband llm models", description="the local models and whether they are installed"
                            ).parse_args(argv)
    for model in LOCAL_MODELS.values():
        try:
            part_paths(model)
            state = "installed"
        except AlbandError:
            state = f"not installed: {model.install}"
        print(f"{model.name:<20} {model.size_bytes / 1e6:6.0f} MB  {model.title}; {state}")
    return 0


def register(sub) -> None:
    """Add ``llm`` to the ``alband`` parser."""
    from alband.cli.dispatch import register_actions

    register_actions(sub, "llm", "small local models behind an OpenAI-compatible server on 127.0.0.1",
                     {"serve": (_serve, "verify a model's weights, serve it, print the annotator table"),
                      "models": (_models, "the local models and whether their weights are installed")})


__all__ = ["register"]
