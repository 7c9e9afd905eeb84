"""Search text pasted from `read` output, line-number prefixes and all."""

import pytest

from loopbot.tools.edit import apply_edit, numbered

SOURCE = "def f():\n    return 1\n\n\ndef g():\n    return 2\n"


def test_the_read_prefix_is_right_aligned_numbers_and_a_bar():
    assert numbered(12, "text") == "   12 | text"


@pytest.mark.parametrize(("search", "replace"), [
    ("    1 | def f():\n    2 |     return 1\n", "    1 | def f():\n    2 |     return 10\n"),
    ("    1 | def f():\n    2 |     return 1\n", "def f():\n    return 10\n"),
    ("    2 |     return 1", "    return 10"),
])
def test_a_search_carrying_the_read_prefix_on_every_line_is_stripped(search, replace):
    result = apply_edit(SOURCE, search, replace)
    assert result.ok and result.text == SOURCE.replace("return 1\n", "return 10\n")
    assert "line-number prefix" in result.message


def test_blank_lines_whose_trailing_space_was_lost_still_count():
    search = "    2 |     return 1\n    3 |\n    4 | \n    5 | def g():"
    result = apply_edit(SOURCE, search, "    return 1\n\n\ndef h():")
    assert result.ok and "def h():" in result.text


def test_large_line_numbers_widen_the_field():
    text = "x\n" * 123_455 + "target\n"
    result = apply_edit(text, "123456 | target", "hit")
    assert result.ok and result.text.endswith("x\nhit\n")


@pytest.mark.parametrize("search", [
    "    1 | def f():\n    return 1",           # one line without the prefix
    "    1 | def f():\n    3 |     return 1",    # not consecutive lines of a read
    "1| def f():",                               # not the read shape
])
def test_a_search_not_wholly_in_read_shape_is_left_alone(search):
    result = apply_edit(SOURCE, search, "x")
    assert result.status == "missing" and "prefix" not in result.message.split("nearest")[0]


def test_a_file_that_really_contains_the_shape_is_matched_literally():
    table = "    1 | a\n    2 | b\n"
    result = apply_edit(table, "    1 | a", "    1 | z")
    assert result.text == "    1 | z\n    2 | b\n" and "prefix" not in result.message


def test_a_replace_with_prefixes_on_only_some_lines_is_refused():
    result = apply_edit(SOURCE, "    2 |     return 1\n", "    2 |     x = 1\n    return x\n")
    assert result.status == "invalid" and result.text == SOURCE and "prefix" in result.message
