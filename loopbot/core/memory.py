"""Failure memory: approaches that failed, recognised again when reworded, blocked after 3 failures.

An approach is the maker's one-line statement plus the set of files it touched. Rewording changes
word order, inflection and filler words, so two approaches are the same when they touch the same
files and their normalised content words overlap strongly (Jaccard similarity).
"""

from __future__ import annotations

import hashlib
import re

from loopbot.core.state import ApproachRecord, FailureEvent

BLOCK_AFTER = 3
SIMILARITY = 0.5

_STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "but", "to", "of", "in", "on", "at", "by", "for", "with", "from", "into", "onto", "via", "as", "is", "are", "be", "been", "being", "was", "were", "it", "its", "this", "that", "these", "those", "then", "than", "so", "such", "do", "does", "did", "doing", "done", "will", "would", "should", "could", "can", "may", "might", "must", "shall", "we", "i", "you", "they", "he", "she", "our", "my", "your", "their", "let", "lets", "let's", "just", "also", "again", "try", "trying", "tried", "attempt", "attempting", "approach", "instead", "now", "first", "second", "new", "old", "same", "way", "method", "function", "functions", "file", "files", "code", "using", "use", "used", "make", "making", "made", "change", "changing", "changed", "update", "updating", "updated"]
)

# Common synonyms an agent swaps when it rewords the same idea.
_SYNONYMS = {
    "add": "add", "adding": "add", "added": "add", "introduce": "add", "implement": "add",
    "implementing": "add", "support": "add", "create": "add", "insert": "add",
    "fix": "fix", "fixing": "fix", "repair": "fix", "correct": "fix", "patch": "fix",
    "remove": "remove", "delete": "remove", "drop": "remove", "strip": "remove",
    "check": "check", "verify": "check", "validate": "check", "test": "check",
    "expire": "expire", "expiry": "expire", "expiration": "expire", "expires": "expire",
    "expired": "expire", "ttl": "expire", "timeout": "expire",
    "store": "store", "save": "store", "keep": "store", "record": "store", "stash": "store",
    "parameter": "param", "param": "param", "argument": "param", "arg": "param", "kwarg": "param",
    "timestamp": "time", "time": "time", "clock": "time", "deadline": "time",
}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def normalise(approach: str) -> list[str]:
    """Content tokens of an approach, order-free and inflection-free."""
    tokens: set[str] = set()
    for raw in re.findall(r"[a-z0-9_]+", approach.lower()):
        for word in raw.split("_"):
            if not word or word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
                continue
            word = _SYNONYMS.get(word, word)
            word = _SYNONYMS.get(_stem(word), _stem(word))
            if word not in _STOPWORDS:
                tokens.add(word)
    return sorted(tokens)


def fingerprint(tokens: list[str], files: list[str]) -> str:
    digest = hashlib.sha256(("|".join(sorted(tokens)) + "#" + "|".join(sorted(files))).encode())
    return digest.hexdigest()[:12]


def _similarity(a: list[str], b: list[str]) -> float:
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def find(memory: list[ApproachRecord], approach: str, files: list[str]) -> ApproachRecord | None:
    """The remembered approach this one repeats, if any."""
    tokens = normalise(approach)
    file_set = sorted(set(files))
    best: tuple[float, ApproachRecord] | None = None
    for record in memory:
        if record.files != file_set:
            continue
        score = _similarity(tokens, record.tokens)
        if score >= SIMILARITY and (best is None or score > best[0]):
            best = (score, record)
    return best[1] if best else None


def is_blocked(memory: list[ApproachRecord], approach: str, files: list[str]) -> ApproachRecord | None:
    record = find(memory, approach, files)
    return record if record is not None and record.blocked else None


def record_failure(
    memory: list[ApproachRecord], approach: str, files: list[str], *, iteration: int, signature: str
) -> tuple[list[ApproachRecord], ApproachRecord]:
    """Return the new memory and the record that took the failure (blocked at BLOCK_AFTER)."""
    memory = [r.model_copy(deep=True) for r in memory]
    record = find(memory, approach, files)
    if record is None:
        tokens = normalise(approach)
        file_set = sorted(set(files))
        record = ApproachRecord(
            fingerprint=fingerprint(tokens, file_set), approach=approach, tokens=tokens, files=file_set
        )
        memory.append(record)
    record.failures.append(FailureEvent(iteration=iteration, signature=signature))
    record.blocked = len(record.failures) >= BLOCK_AFTER
    return memory, record


def error_signature(text: str) -> str:
    """A short, stable signature of a failure: the first error-looking line, numbers and paths blurred."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    pick = next(
        (ln for ln in lines if re.search(r"(Error|error:|FAILED|FAIL:|Traceback|assert|exit code)", ln)),
        lines[-1] if lines else "no output",
    )
    pick = re.sub(r"0x[0-9a-f]+", "0x?", pick)
    pick = re.sub(r"\d+(\.\d+)?", "N", pick)
    pick = re.sub(r"(/[\w.-]+)+", "/…", pick)
    return pick[:160]
