"""YAML loading that keeps line numbers, so schema errors can name file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from loopbot.errors import InputError, Problem

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str | int, ...]


class _Locations:
    """Maps a path of keys/indexes inside a YAML document to its (line, column), 1-based."""

    def __init__(self) -> None:
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.duplicates: list[tuple[Path_, tuple[int, int]]] = []

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = (*path, key)
                if key in seen:
                    self.duplicates.append((child, (key_node.start_mark.line + 1, key_node.start_mark.column + 1)))
                seen.add(key)
                # A key's own line is the most useful place to point at (unknown keys, bad values).
                self.walk(value_node, child)
                self.marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def locate(self, loc: Sequence[str | int]) -> tuple[int, int] | None:
        """Longest known prefix of a pydantic error location; skips union tags that YAML lacks."""
        best = self.marks.get(())
        path: Path_ = ()
        for part in loc:
            candidate = (*path, part)
            if candidate in self.marks:
                path = candidate
                best = self.marks[candidate]
        return best


def field_name(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc)


def parse_yaml(text: str, source: str) -> tuple[Any, _Locations]:
    """Parse one YAML document; syntax errors and duplicate keys become located InputErrors."""
    locations = _Locations()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        message = f"invalid YAML: {exc.problem or exc.context}"
        raise InputError([Problem(source, line, column, "", message)]) from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(source, None, None, "", f"invalid YAML: {exc}")]) from None
    if node is not None:
        locations.walk(node)
    if locations.duplicates:
        raise InputError(
            [
                Problem(source, line, col, field_name(path), "duplicate key (YAML keeps only the last one)")
                for path, (line, col) in locations.duplicates
            ]
        )
    return data, locations


def _clean_message(message: str) -> str:
    if message == "Extra inputs are not permitted":
        return "unknown key"
    return message.removeprefix("Value error, ")


def validate_located(model: type[M], data: Any, locations: _Locations, source: str, *, kind: str) -> M:
    """Validate parsed YAML against a model; every error names file, line and field."""
    if data is None:
        raise InputError([Problem(source, 1, None, "", f"empty {kind} file")])
    if not isinstance(data, dict):
        raise InputError([Problem(source, 1, None, "", f"a {kind} must be a YAML mapping, got {type(data).__name__}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            # Union tags ("@run", "@file") are ours, not the user's: leave them out of the path.
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("@"))]
            where = locations.locate(loc)
            problems.append(
                Problem(
                    source,
                    where[0] if where else None,
                    where[1] if where else None,
                    field_name(loc),
                    _clean_message(err["msg"]),
                )
            )
        raise InputError(problems) from None

