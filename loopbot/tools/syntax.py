"""Syntax checks on write: a file that parsed before an edit must still parse after it."""

from __future__ import annotations

import ast
import json
import tomllib

import yaml


def syntax_error(path: str, text: str) -> str | None:
    try:
        if path.endswith((".py", ".pyi")):
            ast.parse(text, filename=path)
        elif path.endswith(".json"):
            json.loads(text)
        elif path.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))
        elif path.endswith(".toml"):
            tomllib.loads(text)
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}:{exc.offset}: {exc.msg}"
    except json.JSONDecodeError as exc:
        return f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}"
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        return f"{path}:{where}: {exc.problem}"
    except yaml.YAMLError as exc:
        return f"{path}: {exc}"
    except tomllib.TOMLDecodeError as exc:
        return f"{path}: {exc}"
    return None
