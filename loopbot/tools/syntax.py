"""Syntax checks on write: a file that parsed before an edit must still parse after it."""

from __future__ import annotations

import ast
import json
import tomllib

from loopbot.yamlfile import Limits, syntax_problem

# A maker's YAML file may be large (fixtures), but never an alias bomb or 10,000 levels deep.
WRITTEN_YAML_LIMITS = Limits(max_bytes=16 * 1024 * 1024, max_nodes=2_000_000)


def syntax_error(path: str, text: str) -> str | None:
    try:
        if path.endswith((".py", ".pyi")):
            ast.parse(text, filename=path)
        elif path.endswith(".json"):
            json.loads(text)
        elif path.endswith((".yml", ".yaml")):
            problem = syntax_problem(text, WRITTEN_YAML_LIMITS)
            if problem:
                return f"{path}:{problem}"
        elif path.endswith(".toml"):
            tomllib.loads(text)
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}"
    except json.JSONDecodeError as exc:
        return f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}"
    except tomllib.TOMLDecodeError as exc:
        return f"{path}: {exc}"
    except (RecursionError, MemoryError):  # 100,000 nested brackets: refused, not a traceback
        return f"{path}: nested too deeply to check"
    return None
