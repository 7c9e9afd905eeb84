"""The maker's tools: list, read, search, edit, write, run, done (and diagnose in plan mode)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loopbot.core.paths import command_denied, matches
from loopbot.core.regex import RegexRefused, SafePattern
from loopbot.core.state import GuardViolation, SpecConflict
from loopbot.messages import ToolSpec
from loopbot.ports import Sandbox
from loopbot.sandbox.output import CappedOutput
from loopbot.tools import safefile
from loopbot.tools.confine import PathRefused, confine
from loopbot.tools.edit import apply_edit, numbered
from loopbot.tools.syntax import syntax_error

READ_LIMIT_LINES = 400
SEARCH_LIMIT = 100
# What one search call reads at most: a maker cannot make it spend minutes on generated files.
SEARCH_BYTES_LIMIT = 50_000_000
LIST_LIMIT = 300
MAX_FILE_BYTES = 2_000_000
APPROACH_LIMIT = 300


@dataclass
class Done:
    summary: str
    chunks_completed: list[int]
    approach: str = ""  # one line for failure memory; empty when the model gave none


@dataclass
class Diagnosis:
    hypotheses: list[str]
    five_whys: list[str]
    next_approach: str

    def render(self) -> str:
        hyp = "\n".join(f"{i}. {h}" for i, h in enumerate(self.hypotheses, 1))
        whys = "\n".join(f"- why? {w}" for w in self.five_whys)
        return f"Hypotheses:\n{hyp}\n\nFive whys:\n{whys}\n\nNext approach: {self.next_approach}"


@dataclass
class ToolOutcome:
    content: str
    is_error: bool = False
    done: Done | None = None
    diagnosis: Diagnosis | None = None
    conflict: SpecConflict | None = None


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _str(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _int(description: str) -> dict[str, Any]:
    return {"type": "integer", "description": description}


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


# How read shows a line, so the descriptions show the model exactly the prefix edit strips.
_READ_PREFIX_SAMPLE = numbered(12, "text")
_PATH = "file path relative to the repository root, e.g. src/app.py"

SPECS = {
    "list": ToolSpec(name="list", description="List a directory of the repository (default: the root).",
                     input_schema=_schema({"path": _str("directory relative to the repository root; default '.'")}, [])),
    "read": ToolSpec(name="read", description=f"Read a file with line numbers; at most {READ_LIMIT_LINES} lines per call. "
                     f"Each line is shown as '{_READ_PREFIX_SAMPLE}': the number and ' | ' are not part of the file. "
                     "Negative line numbers count from the end (-1 is the last line).",
                     input_schema=_schema({
                         "path": _str(_PATH),
                         "start_line": _int("first line to show, 1-based; negative counts from the end (-3 = the "
                                            "third-last line); default 1"),
                         "end_line": _int("last line to show, inclusive; negative counts from the end (-1 = the last "
                                          f"line); default start_line + {READ_LIMIT_LINES - 1}"),
                     }, ["path"])),
    "search": ToolSpec(name="search", description="Search file contents with a regular expression (RE2 syntax); "
                       "path may be a directory or one file.",
                       input_schema=_schema({
                           "pattern": _str("regular expression (RE2 syntax) matched against each line"),
                           "path": _str("directory or file to search, relative to the repository root; default '.'"),
                       }, ["pattern"])),
    "edit": ToolSpec(name="edit", description="Replace one exact block of a file (search must match one place, "
                     "or set replace_all; whitespace differences are tolerated and the replacement takes the file's "
                     "indentation). Include enough context to be unique. Give the file's own text: a search "
                     f"pasted from read with the '{_READ_PREFIX_SAMPLE}' prefix on every line has the prefix stripped.",
                     input_schema=_schema({
                         "path": _str(_PATH),
                         "search": _str("the exact text to replace, copied from the file, with enough surrounding "
                                        "lines to match one place"),
                         "replace": _str("the text that takes its place (empty deletes it)"),
                         "replace_all": {"type": "boolean", "description": "replace every match instead of requiring "
                                         "exactly one; default false"},
                     }, ["path", "search", "replace"])),
    "write": ToolSpec(name="write", description="Create or overwrite a whole file.",
                      input_schema=_schema({"path": _str(_PATH),
                                            "content": _str("the whole new content of the file")},
                                           ["path", "content"])),
    "run": ToolSpec(name="run", description="Run a shell command in the repository (sandboxed, no network).",
                    input_schema=_schema({
                        "command": _str("shell command, run from the repository root"),
                        "timeout_seconds": _int("stop the command after this many seconds; capped by the loop's "
                                                "own limit"),
                    }, ["command"])),
    "done": ToolSpec(name="done", description="Finish this iteration: a summary, the 1-based chunk numbers now complete, "
                     "and the approach you took.",
                     input_schema=_schema({
                         "summary": _str("what you changed and why, in a few sentences"),
                         "chunks_completed": {"type": "array", "items": {"type": "integer"},
                                              "description": "1-based numbers of the chunks now complete"},
                         "approach": _str("one line: the approach you took this iteration, used for failure memory"),
                     }, ["summary"])),
    "diagnose": ToolSpec(name="diagnose", description="Plan mode: record 2-3 hypotheses, five whys, and the next approach.",
                         input_schema=_schema({
                             "hypotheses": _strings("2-3 hypotheses for why the last attempts failed"),
                             "five_whys": _strings("the chain of whys down to the root cause, at least 3 steps"),
                             "next_approach": _str("one line: the approach you will take next"),
                         }, ["hypotheses", "five_whys", "next_approach"])),
    "spec_conflict": ToolSpec(
        name="spec_conflict",
        description=("Report that the goal cannot be met as specified, because a test (or other acceptance "
                     "check) contradicts the requirement. The loop stops, keeps its best work and shows your "
                     "evidence to a human. Use this instead of changing, skipping or working around a check."),
        input_schema=_schema({"check": _str("the test or check, e.g. tests/test_x.py::test_y"),
                              "requirement": _str("the part of the goal it contradicts"),
                              "evidence": _str("why both cannot hold: quote the lines")},
                             ["check", "requirement", "evidence"])),
}

READ_ONLY = ("list", "read", "search")
Mode = Literal["edit", "plan", "audit", "docs"]
MODE_TOOLS: dict[str, tuple[str, ...]] = {
    "edit": (*READ_ONLY, "edit", "write", "run", "done", "spec_conflict"),
    "plan": (*READ_ONLY, "diagnose"),          # Meta-Andon: read-only until a diagnosis
    "audit": (*READ_ONLY, "propose_plan", "done"),
    "docs": (*READ_ONLY, "edit", "write", "done"),  # writes confined to write_allow (the wiki)
}


# The plan model's fields as the auditor should fill them; the model itself says only types.
_PLAN_FIELDS = {
    "title": "short title of the plan, 5-120 characters",
    "context": "why this work matters: what you found in the code, tests, wiki or lessons",
    "chunks": "1-10 steps, each small enough for one iteration",
    "scope": "globs of the files the plan may change, e.g. src/store/**",
    "risks": "what the change could break, and how the plan guards against it",
    "priority": "security, incident or routine (default routine)",
    "goal": "the goal: id, goal, and acceptance with at least one objective check (run, file or metric)",
}


def _propose_plan_spec() -> ToolSpec:
    from loopbot.plans import Plan

    schema = Plan.model_json_schema()
    for name, prop in schema.get("properties", {}).items():
        if name in _PLAN_FIELDS:
            prop.setdefault("description", _PLAN_FIELDS[name])
    return ToolSpec(name="propose_plan", description=(
        "Propose one plan: title, context, 1-10 chunks, scope (globs), risks, priority, and a goal "
        "(id, goal, acceptance with at least one objective check: run, file or metric)."),
        input_schema=schema)


def input_problem(spec: ToolSpec, args: Any) -> str | None:
    """Why a tool call's input does not fit the tool's own JSON Schema (the first problem, said
    plainly with its field), or None."""
    if not isinstance(args, dict):
        return "the input must be a JSON object"
    # Imported here: ~80 ms (python -X importtime), and only a tool call needs it.
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(spec.input_schema).iter_errors(args), key=lambda e: list(e.path))
    if not errors:
        return None
    error = errors[0]
    field = ".".join(str(p) for p in error.path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(spec.input_schema.get("properties", {})))
        return f"{error.message}; the fields are: {allowed}"
    if error.validator == "required":
        return str(error.message)
    return f"{field or 'input'}: {error.message}"


@dataclass
class ToolBox:
    root: Path
    sandbox: Sandbox
    deny_paths: list[str] = field(default_factory=list)
    deny_commands: list[str] = field(default_factory=list)
    plan_mode: bool = False
    mode: Mode = "edit"
    write_allow: list[str] | None = None
    output_cap_bytes: int = 16_000
    run_timeout_seconds: float = 300.0
    # Boundary crossings the tools refused; the guards turn them into a line stop.
    refusals: list[GuardViolation] = field(default_factory=list)
    # Plans proposed in audit mode that passed validation, and why the others did not.
    proposals: list[Any] = field(default_factory=list)
    refused_plans: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.plan_mode:
            self.mode = "plan"

    def specs(self) -> list[ToolSpec]:
        return [_propose_plan_spec() if n == "propose_plan" else SPECS[n] for n in MODE_TOOLS[self.mode]]

    def call(self, name: str, args: dict[str, Any]) -> ToolOutcome:
        allowed = {s.name for s in self.specs()}
        if name not in allowed:
            why = " (plan mode: read-only until you call diagnose)" if self.mode == "plan" and name in SPECS else ""
            return ToolOutcome(f"unknown or unavailable tool {name!r}{why}; available: {', '.join(sorted(allowed))}", True)
        spec = next(s for s in self.specs() if s.name == name)
        problem = input_problem(spec, args)
        if problem is not None:
            return ToolOutcome(f"invalid input for {name}: {problem}; nothing was done", True)
        try:
            handler: Callable[..., ToolOutcome] = getattr(self, f"_{name}")
            return handler(**args)
        except PathRefused as exc:
            if name in ("edit", "write") and self.mode == "edit":
                self.refusals.append(GuardViolation(guard="refused_write", path=str(args.get("path", "")),
                                                    message=str(exc)))
            return ToolOutcome(f"refused: {exc}", True)
        except OSError as exc:
            return ToolOutcome(f"{name} failed: {exc.strerror or 'the file system refused it'}", True)
        except Exception as exc:  # a tool's failure is the model's information, never the run's end
            return ToolOutcome(f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}", True)

    # -- read-only -------------------------------------------------------------------------
    def _list(self, path: str = ".") -> ToolOutcome:
        target = confine(self.root, path)
        if not target.is_dir():
            return ToolOutcome(f"{path}: not a directory", True)
        entries = sorted(e for e in os.listdir(target) if e != ".git")
        shown = [e + ("/" if (target / e).is_dir() else "") for e in entries[:LIST_LIMIT]]
        more = f"\n… {len(entries) - LIST_LIMIT} more" if len(entries) > LIST_LIMIT else ""
        return ToolOutcome("\n".join(shown) + more if shown else "(empty)")

    def _read(self, path: str, start_line: int = 1, end_line: int | None = None) -> ToolOutcome:
        target = confine(self.root, path)
        if not os.path.lexists(target):
            return ToolOutcome(f"{path}: no such file", True)
        try:
            lines = safefile.read_text(target, MAX_FILE_BYTES).splitlines()
        except safefile.FileRefused as exc:
            return ToolOutcome(f"{path}: cannot be read: {exc}; use search for large files", True)
        # Negative numbers count from the end (-1 is the last line), as models often ask.
        if start_line < 0:
            start_line = len(lines) + 1 + start_line
        if end_line is not None and end_line < 0:
            end_line = len(lines) + 1 + end_line
        start = max(1, start_line)
        end = min(len(lines), end_line if end_line else start + READ_LIMIT_LINES - 1, start + READ_LIMIT_LINES - 1)
        body = "\n".join(numbered(n, lines[n - 1]) for n in range(start, end + 1))
        note = f"\n[lines {start}-{end} of {len(lines)}]" if end < len(lines) or start > 1 else ""
        return ToolOutcome(body + note if lines else "(empty file)")

    def _search(self, pattern: str, path: str = ".") -> ToolOutcome:
        try:
            regex = SafePattern(pattern)
            anywhere = SafePattern(pattern, multiline=True)
        except RegexRefused as exc:
            return ToolOutcome(f"bad regex: {exc}", True)
        budget = SEARCH_BYTES_LIMIT
        base = confine(self.root, path)
        root = self.root.resolve()
        hits: list[str] = []
        # A file path searches that file; a directory, everything under it.
        walk = [(str(base.parent), [], [base.name])] if base.is_file() else os.walk(base)
        for dirpath, dirnames, filenames in walk:
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for filename in sorted(filenames):
                file = Path(dirpath) / filename
                try:
                    # Regular files only: a FIFO, device or link is skipped, never waited on.
                    data = safefile.read_bytes(file, MAX_FILE_BYTES)
                    text = data.decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                budget -= len(data)
                if budget < 0:
                    more = f"\n[stopped after {SEARCH_BYTES_LIMIT // 1_000_000} MB of files: narrow the path]"
                    return ToolOutcome(("\n".join(hits) if hits else "no matches so far") + more)
                if not anywhere.search(text):  # one linear pass; lines only for files that match
                    continue
                for number, line in enumerate(text.splitlines(), 1):
                    if regex.search(line):
                        hits.append(f"{file.relative_to(root).as_posix()}:{number}: {line.strip()[:200]}")
                        if len(hits) >= SEARCH_LIMIT:
                            return ToolOutcome("\n".join(hits) + f"\n[first {SEARCH_LIMIT} matches]")
        return ToolOutcome("\n".join(hits) if hits else "no matches")

    # -- writes ----------------------------------------------------------------------------
    def _write_checked(self, path: str, target: Path, old: str | None, new: str) -> ToolOutcome | None:
        error = syntax_error(path, new)
        if error and (old is None or syntax_error(path, old) is None):
            return ToolOutcome(f"refused: the result would not parse ({error}); the file is unchanged", True)
        target.parent.mkdir(parents=True, exist_ok=True)
        safefile.write_text(target, new)
        return None

    def _writable(self, path: str) -> Path:
        target = confine(self.root, path, deny=self.deny_paths, for_write=True)
        if self.write_allow is not None:
            rel = target.relative_to(self.root.resolve()).as_posix()
            if not matches(self.write_allow, rel):
                raise PathRefused(f"{path}: only {', '.join(self.write_allow)} may be written here")
        return target

    def _edit(self, path: str, search: str, replace: str, replace_all: bool = False) -> ToolOutcome:
        target = self._writable(path)
        if not os.path.lexists(target):
            return ToolOutcome(f"{path}: no such file (use write to create it)", True)
        old = safefile.read_text(target, MAX_FILE_BYTES)
        result = apply_edit(old, search, replace, replace_all=replace_all, max_chars=MAX_FILE_BYTES)
        if not result.ok:
            return ToolOutcome(f"edit not applied: {result.message}", True)
        if result.status != "already_applied":
            refused = self._write_checked(path, target, old, result.text)
            if refused:
                return refused
        return ToolOutcome(f"{path}: {result.message}")

    def _write(self, path: str, content: str) -> ToolOutcome:
        target = self._writable(path)
        if target.is_dir() and not target.is_symlink():
            return ToolOutcome(f"{path}: is a directory; give a file path inside it", True)
        old = safefile.read_text(target, MAX_FILE_BYTES) if os.path.lexists(target) else None
        refused = self._write_checked(path, target, old, content)
        if refused:
            return refused
        return ToolOutcome(f"{path}: wrote {len(content.splitlines())} lines")

    def _run(self, command: str, timeout_seconds: int | None = None) -> ToolOutcome:
        if "\0" in command:
            return ToolOutcome("invalid input for run: the command contains a NUL byte", True)
        denied = command_denied(command, self.deny_commands)
        if denied:
            self.refusals.append(GuardViolation(guard="deny_command", path=command[:200],
                                                message=f"matches deny_commands {denied!r}"))
            return ToolOutcome(f"refused: command matches boundaries.deny_commands ({denied!r})", True)
        timeout = min(float(timeout_seconds or self.run_timeout_seconds), self.run_timeout_seconds)
        result = self.sandbox.run(command, cwd=self.root, timeout_seconds=timeout)
        capped = CappedOutput(self.output_cap_bytes)
        capped.feed(result.output.encode("utf-8", errors="replace"))
        return ToolOutcome(f"exit code {result.exit_code}\n{capped.text()}", result.exit_code != 0)

    # -- endings ---------------------------------------------------------------------------
    def _done(self, summary: str, chunks_completed: list[int] | None = None, approach: str = "") -> ToolOutcome:
        chunks = [int(c) for c in (chunks_completed or []) if isinstance(c, int)]
        # Failure memory compares approaches as one line; the cap matches the APPROACH: line's.
        line = " ".join(approach.split())[:APPROACH_LIMIT]
        return ToolOutcome("iteration finished", done=Done(summary=summary, chunks_completed=chunks, approach=line))

    def _spec_conflict(self, check: str, requirement: str, evidence: str) -> ToolOutcome:
        values = [str(v).strip() for v in (check, requirement, evidence)]
        if not all(values):
            return ToolOutcome("a spec conflict needs the check, the requirement and the evidence, each non-empty", True)
        conflict = SpecConflict(check=values[0][:500], requirement=values[1][:1000], evidence=values[2][:4000])
        return ToolOutcome("spec conflict recorded; the loop stops for a human to decide", conflict=conflict)

    def _propose_plan(self, **plan: Any) -> ToolOutcome:
        from loopbot.plans import validate

        valid, why = validate(plan)
        if valid is None:
            self.refused_plans.append(f"{plan.get('title', '(untitled)')}: {why}")
            return ToolOutcome(f"plan refused: {why}", True)
        self.proposals.append(valid)
        return ToolOutcome(f"plan {valid.title!r} accepted for triage ({len(self.proposals)} so far)")

    def _diagnose(self, hypotheses: list[str], five_whys: list[str], next_approach: str) -> ToolOutcome:
        if not 2 <= len(hypotheses) <= 3:
            return ToolOutcome("a diagnosis needs 2 or 3 hypotheses", True)
        if len(five_whys) < 3:
            return ToolOutcome("a diagnosis needs the chain of whys (five whys, at least 3 steps)", True)
        if not next_approach.strip():
            return ToolOutcome("a diagnosis needs the next approach", True)
        return ToolOutcome("diagnosis recorded; editing resumes next",
                           diagnosis=Diagnosis(list(hypotheses), list(five_whys), next_approach))
