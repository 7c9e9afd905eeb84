"""The redactor: every text that leaves loopbot (reports, logs, state, forge writes) passes it.

Two nets: the shapes of well-known tokens, and the exact values of every secret the process holds.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

MASK = "[REDACTED]"

TOKEN_SHAPES = [
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),  # GitHub classic and app tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),  # GitHub fine-grained tokens
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}"),  # OpenAI
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # JWTs (GitHub App)
]
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._\-~+/]{16,}=*")

_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z ]{0,40}PRIVATE KEY-----")


def _mask_private_keys(text: str) -> str:
    """PEM private keys, BEGIN to END (to the end of the text when the END is missing). Linear:
    each BEGIN looks for its END once, from where it stands, instead of a lazy regex per BEGIN."""
    parts: list[str] = []
    position = 0
    while (begin := _KEY_BEGIN.search(text, position)) is not None:
        end = _KEY_END.search(text, begin.end())
        parts += [text[position:begin.start()], MASK]
        position = end.end() if end is not None else len(text)
    parts.append(text[position:])
    return "".join(parts)


# Environment variable names that hold secrets.
SECRET_NAME = re.compile(r"(?i)(token|secret|passw(or)?d|api[_-]?key|private[_-]?key|credential|auth)")
MIN_SECRET_LENGTH = 8


def secrets_from_env(environ: dict[str, str]) -> list[str]:
    return [v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH]


_EXTRAHEADER = re.compile(r"(?im)^\s*extraheader\s*=\s*authorization:\s*(basic|bearer|token)\s+(\S+)")
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/@:\s]+):([^/@\s]+)@")


def secrets_in_git_config(text: str) -> list[str]:
    """The credentials a git config carries (actions/checkout's extraheader, tokens in remote
    URLs): loopbot holds them too, so they are filtered like its own."""
    found: list[str] = []
    for scheme, value in _EXTRAHEADER.findall(text):
        found.append(value)
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
            except ValueError:
                continue
            found.append(decoded.split(":", 1)[-1])
    for user, password in _URL_PASSWORD.findall(text):
        found += [password] + ([user] if len(user) >= 20 else [])
    return [value for value in found if len(value) >= MIN_SECRET_LENGTH]


# Dropped before matching content, from the text and the secret alike: a secret split across
# lines, string literals or concatenations ("ghp_" + "abc…") is still one string.
_JOINERS = str.maketrans("", "", " \t\r\n\"'+\\,`")


_JOINERS_BUT_NEWLINE = str.maketrans("", "", " \t\r\"'+\\,`")


def _line_of(kept: str, index: int) -> int:
    """The line of the index-th non-newline character of `kept` (1-based): a bisection on newline
    counts, each a C-speed count, so a text of ten million empty lines costs milliseconds."""
    low, high = index, len(kept) - 1
    while low < high:  # the first position p with index + 1 non-newline characters up to it
        middle = (low + high) // 2
        if middle + 1 - kept.count("\n", 0, middle + 1) < index + 1:
            low = middle + 1
        else:
            high = middle
    return kept.count("\n", 0, low) + 1


def _normal(text: str) -> str:
    return text.translate(_JOINERS).lower()


def _base64_forms(data: bytes) -> list[str]:
    """The base64 text a secret leaves inside any longer base64 stream, at each of the three
    byte alignments: only the characters that depend on the secret's bytes alone."""
    forms = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        first = -(-offset * 8 // 6)
        last = (offset + len(data)) * 8 // 6
        core = encoded[first:last]
        forms += [core, core.replace("+", "-").replace("/", "_")]
    return forms


def encoded_forms(secret: str) -> dict[str, str]:
    """form -> text, for every way a secret is commonly smuggled: raw, reversed, base64 (any
    alignment, url-safe too), hex, URL-encoded, JSON-escaped. Case is ignored when matching."""
    data = secret.encode()
    forms = {"raw": secret, "reversed": secret[::-1], "hex": data.hex(),
             "url-encoded": "".join(f"%{b:02x}" for b in data), "json": json.dumps(secret)[1:-1]}
    for index, form in enumerate(_base64_forms(data)):
        forms[f"base64#{index}"] = form
    forms["base64 (x-access-token)"] = base64.b64encode(f"x-access-token:{secret}".encode()).decode()
    return forms


@dataclass(frozen=True)
class SecretHit:
    line: int
    form: str


class Redactor:
    """The exit filter: every text that leaves loopbot passes it, and content about to be pushed
    is scanned with it."""

    def __init__(self, secrets: Iterable[str] = ()):
        needles: dict[str, str] = {}
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            for form, text in encoded_forms(secret).items():
                normal = _normal(text)
                if len(normal) >= MIN_SECRET_LENGTH:
                    needles.setdefault(normal, form.split("#")[0])
        self._needles = needles
        literal = sorted({text for secret in secrets if len(secret) >= MIN_SECRET_LENGTH
                          for text in encoded_forms(secret).values() if len(text) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, literal)), re.IGNORECASE) if literal else None

    def __call__(self, text: str) -> str:
        text = _mask_private_keys(text)
        if self._literal is not None:
            text = self._literal.sub(MASK, text)
        for shape in TOKEN_SHAPES:
            text = shape.sub(MASK, text)
        return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)

    def scan(self, text: str, max_hits: int = 50) -> list[SecretHit]:
        """Where the text holds a secret in any form, split across lines or not (1-based lines).

        Two copies of the text at most, whatever its shape: the normalised text with its newlines,
        and the same without them; a hit's line is found by bisecting on newline counts.
        """
        if not self._needles:
            return []
        kept = text.translate(_JOINERS_BUT_NEWLINE).lower()
        joined = kept.replace("\n", "")
        hits: set[SecretHit] = set()
        for needle, form in self._needles.items():
            index = joined.find(needle)
            while index != -1 and len(hits) < max_hits:
                hits.add(SecretHit(line=_line_of(kept, index), form=form))
                index = joined.find(needle, index + len(needle))
        return sorted(hits, key=lambda h: (h.line, h.form))

    @property
    def holds_secrets(self) -> bool:
        return bool(self._needles)


NO_SECRETS = Redactor()
