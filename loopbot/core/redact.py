"""The redactor: every text that leaves loopbot (reports, logs, state, forge writes) passes it.

Two nets: the shapes of well-known tokens, and the exact values of every secret the process holds.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable

MASK = "[REDACTED]"

TOKEN_SHAPES = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub classic and app tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),  # GitHub fine-grained tokens
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWTs (GitHub App)
]
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._\-~+/]{16,}=*")

# Environment variable names that hold secrets.
SECRET_NAME = re.compile(r"(?i)(token|secret|passw(or)?d|api[_-]?key|private[_-]?key|credential|auth)")
MIN_SECRET_LENGTH = 8


def secrets_from_env(environ: dict[str, str]) -> list[str]:
    return [v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH]


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()):
        values: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            values.add(secret)
            # The forms a secret takes when it leaks through git config or JSON.
            values.add(base64.b64encode(secret.encode()).decode())
            values.add(base64.b64encode(f"x-access-token:{secret}".encode()).decode())
            values.add(json.dumps(secret)[1:-1])
        self._values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        for shape in TOKEN_SHAPES:
            text = shape.sub(MASK, text)
        return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


NO_SECRETS = Redactor()
