"""Syntax checks on write: a file that parsed before an edit must still parse after it."""

from __future__ import annotations

import ast
import json


def syntax_error(path: str, text: str) -> str | None:
    try:
        if path.endswith(".py"):
            ast.parse(text, filename=path)
        elif path.endswith(".json"):
            json.loads(text)
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}"
    except json.JSONDecodeError as exc:
        return f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}"
    return None
