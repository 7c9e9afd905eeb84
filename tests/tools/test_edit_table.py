"""The edit engine, case by case: every status and the exact resulting text."""

import pytest

from loopbot.tools.edit import apply_edit
from loopbot.tools.syntax import syntax_error

PY = "class Store:\n    def get(self, key):\n        return self._data[key]\n\n    def put(self, key, value):\n        self._data[key] = value\n"
TWICE = "x = 1\nprint(x)\nx = 1\n"
TABS = "def f():\n\treturn 1\n"
CRLF = "a = 1\r\nb = 2\r\n"

CASES = [
    # (id, text, search, replace, status, expected text)
    ("exact", PY, "return self._data[key]", "return self._data.get(key)", "applied",
     PY.replace("return self._data[key]", "return self._data.get(key)")),
    ("exact multi-line", PY, "    def put(self, key, value):\n        self._data[key] = value\n",
     "    def put(self, key, value):\n        self._data[key] = value\n        return value\n", "applied",
     PY + "        return value\n"),
    ("delete lines", PY, "\n    def put(self, key, value):\n        self._data[key] = value\n", "", "applied",
     "class Store:\n    def get(self, key):\n        return self._data[key]\n"),
    ("insert at end", "a\n", "a\n", "a\nb\n", "applied", "a\nb\n"),
    ("drift: indentation lost", PY, "def get(self, key):\n    return self._data[key]",
     "def get(self, key, default=None):\n    return self._data.get(key, default)", "fuzzy",
     PY.replace("    def get(self, key):\n        return self._data[key]",
                "    def get(self, key, default=None):\n        return self._data.get(key, default)")),
    ("drift: too much indentation", PY, "            return self._data[key]", "            return None", "fuzzy",
     PY.replace("        return self._data[key]", "        return None")),
    ("drift: trailing spaces", PY, "def put(self, key, value):   \n    self._data[key] = value  ",
     "def put(self, key, value):\n    self._data[key] = value\n    self.dirty = True", "fuzzy",
     PY.replace("        self._data[key] = value\n", "        self._data[key] = value\n        self.dirty = True\n")),
    ("drift: tabs vs spaces", TABS, "def f():\n    return 1", "def f():\n    return 2", "fuzzy", "def f():\n\treturn 2\n"),
    ("drift: blank lines around", PY, "\n\n    def put(self, key, value):\n", "\n\n    def put(self, key, value=None):\n",
     "applied", PY.replace("value):", "value=None):")),
    ("crlf file", CRLF, "b = 2", "b = 3", "applied", "a = 1\r\nb = 3\r\n"),
    ("ambiguous exact", TWICE, "x = 1", "x = 2", "ambiguous", TWICE),
    ("ambiguous whitespace", "if a:\n    go()\nif b:\n  go()\n", "go()", "stop()", "ambiguous",
     "if a:\n    go()\nif b:\n  go()\n"),
    ("ambiguous resolved by context", TWICE, "print(x)\nx = 1", "print(x)\nx = 2", "applied", "x = 1\nprint(x)\nx = 2\n"),
    ("missing", PY, "def delete(self, key):", "def remove(self, key):", "missing", PY),
    ("missing near miss", PY, "return self.data[key]", "return None", "missing", PY),
    ("already applied", PY.replace("[key]\n\n", ".get(key)\n\n"), "return self._data[key]",
     "return self._data.get(key)", "already_applied", PY.replace("[key]\n\n", ".get(key)\n\n")),
    ("already applied, drifted", PY + "    def size(self):\n        return 0\n", "def size(self):\n    return 1",
     "    def size(self):\n        return 0", "already_applied", PY + "    def size(self):\n        return 0\n"),
    ("empty search", PY, "", "x", "invalid", PY),
    ("no-op", PY, "return self._data[key]", "return self._data[key]", "invalid", PY),
    ("unicode", "name = 'café'\n", "'café'", "'naïve'", "applied", "name = 'naïve'\n"),
    ("regex characters literal", "pattern = r'^a+(b|c)$'\n", "r'^a+(b|c)$'", "r'^a*$'", "applied", "pattern = r'^a*$'\n"),
]


@pytest.mark.parametrize(("text", "search", "replace", "status", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_edit_case(text, search, replace, status, expected):
    result = apply_edit(text, search, replace)
    assert result.status == status, result.message
    assert result.text == expected


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_messages_help_the_model():
    assert "lines 1, 3" in apply_edit(TWICE, "x = 1", "x = 2").message
    missing = apply_edit(PY, "return self.data[key]", "return None").message
    assert "nearest match" in missing and "line 3" in missing and "return self._data[key]" in missing


@pytest.mark.parametrize(
    ("path", "text", "broken"),
    [
        ("a.py", "def f(:\n", True), ("a.py", "def f():\n    pass\n", False),
        ("a.json", '{"a": 1,}', True), ("a.json", '{"a": 1}', False),
        ("a.yaml", "a: [1, 2\n", True), ("a.yml", "a: [1, 2]\n", False),
        ("a.toml", "a = \n", True), ("a.toml", "a = 1\n", False),
        ("a.txt", "anything (\n", False),
    ],
)
def test_syntax_checks(path, text, broken):
    found = syntax_error(path, text)
    assert (found is not None) == broken
    if broken:
        assert found.startswith(path)
