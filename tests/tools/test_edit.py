import pytest

from loopbot.tools.edit import apply_edit

SOURCE = "def f(x):\n    if x:\n        return 1\n    return 0\n\n\ndef g():\n    return 2\n"


@pytest.mark.parametrize(
    ("search", "replace", "status", "expected"),
    [
        ("        return 1\n", "        return 10\n", "applied", SOURCE.replace("return 1\n", "return 10\n")),
        # whitespace drift: the model dropped the indentation; the edit keeps the file's indentation
        ("if x:\n    return 1", "if x is not None:\n    return 1", "fuzzy",
         SOURCE.replace("    if x:\n", "    if x is not None:\n")),
        # trailing whitespace in the search block
        ("def g():   \n    return 2", "def g():\n    return 3", "fuzzy", SOURCE.replace("return 2", "return 3")),
        ("    return 0\n", "    return -1\n", "applied", SOURCE.replace("return 0", "return -1")),
    ],
)
def test_edits_that_apply(search, replace, status, expected):
    result = apply_edit(SOURCE, search, replace)
    assert (result.status, result.text) == (status, expected)


def test_ambiguous_exact_match_is_refused_with_lines():
    text = "x = 1\ny = 2\nx = 1\n"
    result = apply_edit(text, "x = 1", "x = 3")
    assert result.status == "ambiguous" and "lines 1, 3" in result.message and result.text == text


def test_ambiguous_fuzzy_match_is_refused():
    text = "if a:\n    pass\nif b:\n  pass\n"
    result = apply_edit(text, "pass", "return")
    assert result.status == "ambiguous"


def test_missing_shows_the_nearest_match():
    result = apply_edit(SOURCE, "def g():\n    return 22\n", "def g():\n    return 3\n")
    assert result.status == "missing"
    assert "line 7" in result.message and "def g():" in result.message


def test_already_applied_is_recognised():
    result = apply_edit(SOURCE, "return 9", "    return 0")
    assert result.status == "already_applied" and result.text == SOURCE


def test_empty_and_identical_are_invalid():
    assert apply_edit(SOURCE, "", "x").status == "invalid"
    assert apply_edit(SOURCE, "return 2", "return 2").status == "invalid"
