"""Exact matches that start after a line's indentation: the replacement takes the file's indentation."""

import time

import pytest

from loopbot.tools.edit import apply_edit

FUNC = "def f(x):\n    y = x + 1\n    return y\n"

CASES = [
    # (id, text, search, replace, expected text)
    ("lines added before, search without its indentation", FUNC, "y = x + 1\n", "x = abs(x)\ny = x + 1\n",
     "def f(x):\n    x = abs(x)\n    y = x + 1\n    return y\n"),
    ("inner match of one line is replaced inline", FUNC, "x + 1", "x + 2", FUNC.replace("x + 1", "x + 2")),
    ("inner match, several replacement lines", FUNC, "x + 1", "(\n    x + 2\n)",
     FUNC.replace("x + 1", "(\n    x + 2\n)")),
    ("search ending mid-line", FUNC, "y = x", "z = 0\ny = x",
     "def f(x):\n    z = 0\n    y = x + 1\n    return y\n"),
    ("deeper lines keep their relative depth", FUNC, "return y\n", "if y:\n    return y\nreturn 0\n",
     "def f(x):\n    y = x + 1\n    if y:\n        return y\n    return 0\n"),
    ("deleting an indented line leaves no stray indentation", FUNC, "y = x + 1\n", "",
     "def f(x):\n    return y\n"),
    ("tabs stay tabs", "def f():\n\treturn 1\n", "return 1\n", "x = 1\nreturn x\n", "def f():\n\tx = 1\n\treturn x\n"),
    ("later search lines already in file columns", "def f(x):\n    if x:\n        return 1\n",
     "if x:\n        return 1", "check(x)\nif x:\n        return 1",
     "def f(x):\n    check(x)\n    if x:\n        return 1\n"),
    # The search's unindented first line and its unindented last line are at different depths in the
    # file: which depth a replacement line means is unknowable, so the replacement is taken literally.
    ("conflicting depths fall back to the literal replacement", "def f():\n    return 1\ndef g():\n    pass\n",
     "return 1\ndef g():", "return 2\ndef g():", "def f():\n    return 2\ndef g():\n    pass\n"),
    ("search with part of the indentation", FUNC, "  y = x + 1\n", "  x = abs(x)\n  y = x + 1\n",
     "def f(x):\n    x = abs(x)\n    y = x + 1\n    return y\n"),
]


@pytest.mark.parametrize(("text", "search", "replace", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exact_match_after_indentation(text, search, replace, expected):
    result = apply_edit(text, search, replace)
    assert result.status == "applied", result.message
    assert result.text == expected


def test_the_model_is_told_when_the_replacement_was_reindented():
    assert "re-indented" in apply_edit(FUNC, "y = x + 1\n", "x = abs(x)\ny = x + 1\n").message
    assert "re-indented" not in apply_edit(FUNC, "x + 1", "x + 2").message


def test_replace_all_changes_every_exact_match():
    result = apply_edit("x = 1\ny = 2\nx = 1\n", "x = 1", "x = 3", replace_all=True)
    assert (result.status, result.text) == ("applied", "x = 3\ny = 2\nx = 3\n")
    assert "2 places" in result.message and "lines 1, 3" in result.message


def test_replace_all_reindents_each_match_to_its_own_depth():
    text = "def f():\n    log()\n\ndef g():\n    if x:\n        log()\n"
    result = apply_edit(text, "log()\n", "log()\nflush()\n", replace_all=True)
    assert result.text == "def f():\n    log()\n    flush()\n\ndef g():\n    if x:\n        log()\n        flush()\n"


def test_replace_all_with_whitespace_tolerant_matches():
    text = "if a:\n    go()\n    stop()\nif b:\n  go()\n  stop()\n"
    result = apply_edit(text, "go()\nstop()", "run()", replace_all=True)
    assert (result.status, result.text) == ("fuzzy", "if a:\n    run()\nif b:\n  run()\n")


def test_replace_all_with_one_match_is_a_plain_edit():
    assert apply_edit(FUNC, "return y", "return -y", replace_all=True).text == FUNC.replace("return y", "return -y")


@pytest.mark.parametrize(("text", "search"), [
    ("x = 1\ny = 2\nx = 1\n", "x = 1"),
    ("if a:\n    go()\nif b:\n  go()\n", "go()\n"),
    ("if a:\n    go()\n    go()\n", "go()\n"),
])
def test_several_matches_without_replace_all_say_how_many_where_and_what_to_do(text, search):
    result = apply_edit(text, search, "stop()")
    assert result.status == "ambiguous" and result.text == text
    assert "2 places" in result.message and "replace_all" in result.message and "context" in result.message
    assert "lines " in result.message


def test_many_matches_list_a_bounded_number_of_lines():
    result = apply_edit("x\n" * 500, "x", "y")
    assert "500 places" in result.message and len(result.message) < 400


def test_replace_all_that_would_multiply_the_file_is_refused_unbuilt():
    text = "x\n" * 200_000
    started = time.monotonic()
    result = apply_edit(text, "x", "y" * 100_000, replace_all=True, max_chars=2_000_000)
    assert result.status == "invalid" and result.text == text and "over 2,000,000 characters" in result.message
    assert time.monotonic() - started < 2


def test_many_matches_are_counted_in_linear_time():
    text = "    x\n" * 100_000
    started = time.monotonic()
    assert apply_edit(text, "x", "y" * 10_000).status == "ambiguous"
    assert apply_edit(text, "x", "y", replace_all=True).text == text.replace("x", "y")
    assert time.monotonic() - started < 5
