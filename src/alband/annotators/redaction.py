"""Removing credentials from every text that a provider's response produced, before it is stored.

A model can echo anything it was shown or has seen, an API key included, and
an error body can quote a header. Every text derived from a response (the
answer kept as ``raw``, a refusal, the reason an answer is invalid, an error
message, a cached response body) goes through :func:`redact_secrets` before
it reaches the ledger, the response cache, a log line or an exception.

What is replaced by :data:`REDACTED`:

1. the exact values passed as ``secrets`` (the configured API keys, read
   from their environment variables), longest first, wherever they occur;
2. text shaped like a credential, whoever it belongs to (:data:`KEY_SHAPES`):

   * ``sk-`` keys: OpenAI (``sk-``, ``sk-proj-``, ``sk-svcacct-``,
     ``sk-admin-``) and Anthropic (``sk-ant-api03-``, ``sk-ant-admin01-``),
     i.e. ``sk-`` then at least 16 of ``[A-Za-z0-9_-]``;
   * the token after ``Bearer`` (an ``Authorization`` header), 16 or more
     characters of the RFC 6750 token alphabet;
   * the value of an ``x-api-key`` / ``api-key`` / ``api_key`` field
     (``: value`` or ``= value``, quoted or not), 16 or more characters;
   * Google API keys (``AIza`` + 35 characters), GitHub tokens
     (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``, ``github_pat_``),
     Hugging Face tokens (``hf_`` + 30 or more characters) and AWS access key
     ids (``AKIA`` / ``ASIA`` + 16 upper-case letters or digits).

Redaction runs on the whole text *before* anything shortens it, so a key is
never cut into a fragment that no longer matches. A key the model quoted
only in part (fewer characters than the shapes require) cannot be
recognised; the configured key's exact value is always removed.

The function is pure and idempotent: ``redact_secrets(redact_secrets(t)) ==
redact_secrets(t)``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

#: What a credential is replaced by.
REDACTED = "[redacted]"

#: Credential shapes redacted whatever the configured keys are (module docstring).
KEY_SHAPES = re.compile(
    r"""
    (?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}                       # OpenAI / Anthropic keys
    | (?<=[Bb]earer\ )[A-Za-z0-9._~+/-]{16,}=*                    # Authorization: Bearer <token>
    | (?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}                        # Google API keys
    | (?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})  # GitHub tokens
    | (?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}                          # Hugging Face tokens
    | (?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])        # AWS access key ids
    """,
    re.VERBOSE,
)
#: ``x-api-key: value``, ``"api_key": "value"``, ``api-key=value``: the value is redacted.
_KEY_FIELD = re.compile(
    r"""((?:x-)?api[-_]?key["']?\s*[:=]\s*["']?)([A-Za-z0-9._~+/-]{16,})""",
    re.IGNORECASE,
)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret in ``secrets`` and every credential-shaped token replaced by ``[redacted]``."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = KEY_SHAPES.sub(REDACTED, text)
    return _KEY_FIELD.sub(lambda match: match.group(1) + REDACTED, text)


def redact_strings(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with :func:`redact_secrets` applied to every string in it (dicts, lists, tuples; keys too)."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact_secrets(value, secrets)
    if isinstance(value, dict):
        return {redact_strings(key, secrets): redact_strings(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_strings(item, secrets) for item in value)
    return value
