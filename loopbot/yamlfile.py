"""The one YAML loader: goals, config, plan bodies, model scripts and the maker's YAML files all
go through it. It keeps line numbers, so schema errors name file, line and field, and it is
bounded: a size cap before parsing, then one streaming pass over the parser's events that refuses
deep nesting and alias bombs (billion laughs) before anything is built.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Tag, ValidationError

from loopbot.errors import InputError, Problem

M = TypeVar("M", bound=BaseModel)
Path_ = tuple[str | int, ...]
# libyaml where it is installed (PyYAML's wheels carry it): parsing in C.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 1024 * 1024
    max_depth: int = 64
    max_aliases: int = 200
    # Values the document stands for once aliases are expanded (what validation would walk).
    max_nodes: int = 200_000


DEFAULT_LIMITS = Limits()


def _refuse(source: str, mark: Any, message: str) -> InputError:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return InputError([Problem(source, line, column, "", message)])


def check_bounds(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse, with a location, a document over the size, depth or alias limits.

    Events stream from the parser without building anything, so this pass is linear in the
    text whatever it holds; only a document that passes is composed.
    """
    # Characters never outnumber bytes: a text too long in characters is refused without encoding it.
    size = len(text) if len(text) > limits.max_bytes else len(text.encode("utf-8", errors="replace"))
    if size > limits.max_bytes:
        raise InputError([Problem(source, None, None, "", f"{size} bytes is over the {limits.max_bytes}-byte limit "
                                                          "for a YAML document")])
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limits.max_depth:
                raise _refuse(source, event.start_mark, f"nested more than {limits.max_depth} levels deep")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise _refuse(source, event.start_mark, f"more than {limits.max_aliases} aliases (*name)")


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many values the node graph stands for with every alias expanded (memoised: linear)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        known = sizes.get(id(n))
        if known is not None:
            return known
        total = 1
        if isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total += sum(size(item) for item in n.value)
        total = min(total, limit + 1)
        sizes[id(n)] = total
        return total

    return size(node)


def load_bounded(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, yaml.Node | None]:
    """One YAML document, parsed under the limits: (data, its node graph)."""
    try:
        check_bounds(text, source, limits)
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            if node is not None and _expanded_size(node, limits.max_nodes) > limits.max_nodes:
                raise _refuse(source, node.start_mark, f"expands (through aliases) to more than {limits.max_nodes} "
                                                       "values")
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _refuse(source, mark, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError([Problem(source, None, None, "", f"invalid YAML: {exc}")]) from None
    except (RecursionError, MemoryError):
        raise InputError([Problem(source, None, None, "", "the YAML document is too large or too deep")]) from None
    except (ValueError, OverflowError) as exc:  # a value YAML parses but Python cannot build: 2001-13-45, 5,000 digits
        raise InputError([Problem(source, None, None, "", f"a value cannot be read: {exc}")]) from None
    return data, node


def syntax_problem(text: str, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """Why a (multi-document) YAML file does not parse, or is over the limits; None when fine."""
    try:
        check_bounds(text, "", limits)
        for _ in yaml.compose_all(text, Loader=_LOADER):
            pass
    except InputError as exc:
        problem = exc.problems[0]
        return f"{problem.line}:{problem.column}: {problem.message}" if problem.line else problem.message
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        return f"{where}: {exc.problem}"
    except yaml.YAMLError as exc:
        return str(exc)
    return None


def read_yaml_file(path: Path, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> str:
    """A YAML file's text, read only when it is a regular file under the size limit."""
    name = source or str(path)
    try:
        # Non-blocking and type-checked on the descriptor: a FIFO or device is refused, not read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise InputError([Problem(name, None, None, "", "not a regular file")])
            if info.st_size > limits.max_bytes:
                raise InputError([Problem(name, None, None, "", f"{info.st_size} bytes is over the "
                                                                f"{limits.max_bytes}-byte limit for a YAML document")])
            raw = os.read(fd, limits.max_bytes + 1)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InputError([Problem(name, None, None, "", "no such file")]) from None
    except OSError as exc:
        raise InputError([Problem(name, None, None, "", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError([Problem(name, None, None, "", f"cannot read: not UTF-8 ({exc.reason} at byte {exc.start})")]
                         ) from None


class _Locations:
    """Maps a path of keys/indexes inside a YAML document to its (line, column), 1-based."""

    def __init__(self) -> None:
        self.marks: dict[Path_, tuple[int, int]] = {}
        self.duplicates: list[tuple[Path_, tuple[int, int]]] = []
        self._seen: set[int] = set()

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self._seen:  # an alias: its node was walked where it was defined
            return
        self._seen.add(id(node))
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


def parse_yaml(text: str, source: str, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, _Locations]:
    """Parse one bounded YAML document; syntax errors, limits and duplicate keys become located
    InputErrors."""
    locations = _Locations()
    data, node = load_bounded(text, source, limits)
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


def _strip(tp: Any) -> Any:
    """A type without its Annotated wrapper."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _step(tp: Any, part: str | int) -> Any:
    """The type found one step along a pydantic error location (None when it cannot be followed)."""
    tp = _strip(tp)
    if get_origin(tp) in (Union, UnionType):
        members = get_args(tp)
        if isinstance(part, str) and part.startswith("@"):  # a discriminated union's tag
            return next((m for m in members if any(isinstance(meta, Tag) and meta.tag == part
                                                   for meta in getattr(m, "__metadata__", ()))), None)
        others = [m for m in members if m is not type(None)]
        return _step(others[0], part) if len(others) == 1 else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field is not None else None
    if get_origin(tp) in (list, tuple, set, frozenset) and isinstance(part, int):
        return get_args(tp)[0]
    if get_origin(tp) is dict and isinstance(part, str):
        return get_args(tp)[1]
    return None


def allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys the schema allows in the mapping at `loc` (union tags included); [] when unknown."""
    tp: Any = model
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    tp = _strip(tp)
    if get_origin(tp) in (Union, UnionType):
        others = [m for m in get_args(tp) if m is not type(None)]
        tp = _strip(others[0]) if len(others) == 1 else None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [field.alias or name for name, field in tp.model_fields.items()]
    return []


def _unknown_key(model: type[BaseModel], loc: Sequence[str | int]) -> str:
    """'unknown key', with the key probably meant, or the keys allowed there when none is close."""
    key, allowed = str(loc[-1]), allowed_keys(model, loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    return f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"


def _clean_message(err: Any, model: type[BaseModel]) -> str:
    """pydantic's message in the user's terms: no Python class names, a way forward for unknown keys."""
    if err["type"] == "extra_forbidden":
        return _unknown_key(model, err["loc"])
    if err["type"] in ("model_type", "model_attributes_type", "dataclass_type"):
        return "Input should be a mapping (key: value)"
    return str(err["msg"]).removeprefix("Value error, ")


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
                    _clean_message(err, model),
                )
            )
        # In the order they appear in the file; unlocated problems last.
        problems.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))
        raise InputError(problems) from None

