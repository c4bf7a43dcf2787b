"""User regular expressions (filters' ``matches``): refused at load when backtracking could
blow up, tried only on text of bounded length. No test here runs a dangerous pattern: each
proof is that the pattern never reaches ``re`` at all, or that the text is refused first."""

from __future__ import annotations

import pytest

from importer.exceptions import MappingError
from importer.mapping import RowError, RowSkipped
from importer.mapping.patterns import MAX_TEXT, TextTooLong, UnsafePattern, user_pattern

from .conftest import build, with_changes

# The attacker's pattern and cell: about 40 minutes of re.search today, per row.
EVIL = r"(a+)+$"
EVIL_CELL = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"


def filter_mapping(load, matches: str, **condition: str):
    skip_if = [{"column": "city", "matches": matches, **condition}]
    return load(with_changes(filters={"skip_if": skip_if}))


def test_a_catastrophic_pattern_is_refused_when_the_mapping_loads(load):
    # Before, it loaded, and build() on EVIL_CELL (or validate, or run) hung on that row.
    with pytest.raises(MappingError) as caught:
        filter_mapping(load, EVIL)
    message = str(caught.value)
    assert ": filters.skip_if[0].matches: '(a+)+$' repeats a group whose repetitions can " in (
        message
    )
    assert "\n" not in message


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(a*)*$", "repeats a group whose repetitions can split the text"),
        (r"(\w+\s?)+$", "repeats a group whose repetitions can split the text"),
        (r"(a|ab)+$", "repeats a group whose repetitions can split the text"),
        (r"(a|a)*$", "repeats a group whose repetitions can split the text"),
        (r"(a{1,2})+$", "repeats a group whose repetitions can split the text"),
        (r"^(?:[a-z]+\.?)+@", "repeats a group whose repetitions can split the text"),
        (r"((ab)*c)+", "repeats a group holding another repeated group"),
        (r"\d+\d+$", "has 2 repeats whose extent is ambiguous ('\\d+', '\\d+'"),
        (r".*a.*b", "has 2 repeats whose extent is ambiguous ('.*', '.*'"),
        (r"\w+\s*\w+$", r"'\w+\s*\w+$' has 2 repeats whose extent is ambiguous"),
        (r"(a)x\1", "uses a back-reference"),
        ("(" * 2_000 + "a" + ")" * 2_000, "nests its groups too deeply"),  # RecursionError
    ],
)
def test_patterns_that_backtrack_badly_are_refused(load, pattern, why):
    with pytest.raises(MappingError) as caught:
        filter_mapping(load, pattern)
    message = str(caught.value)
    assert "filters.skip_if[0].matches: '" in message
    assert why in message
    assert "\n" not in message and len(message) < 600


@pytest.mark.parametrize(
    ("pattern", "skipped", "kept"),
    [
        (r"@(example|test)\.com$", "a@test.com", "a@test.com.au"),  # the README's example
        (r"^test$", "test", "tests"),
        (r"test.*example", "test of example", "example test"),
        (r"(\w+\.)+com$", "mail.example.com", "example.org"),
        (r"^(?:\d{1,3}\.){3}\d{1,3}$", "10.0.0.1", "10.0.0"),
        (r"(?:com|org)+$", "comorg", "net"),
        (r"\bdemo\b", "a demo lead", "demolition"),
        (r"^\s*$", "", "x"),
        (r"^[^@]+@[^@]+$", "a@b", "a@b@c"),
        (r"(?=.*x)", "box", "bob"),
    ],
)
def test_ordinary_patterns_load_and_filter_as_before(load, pattern, skipped, kept):
    mapping = filter_mapping(load, pattern)
    with pytest.raises(RowSkipped):
        build(mapping, email="a@x.io", city=skipped)
    assert build(mapping, email="a@x.io", city=kept).key == "a@x.io"


def test_case_insensitive_matching_is_checked_with_its_folding(load):
    # Case-sensitively '[a-z]+' stops at 'A'; ignoring case it can run through it, so with
    # the '.*' after, two repeats are ambiguous.
    pattern = r"^[a-z]+A.*x"
    with pytest.raises(RowSkipped):
        build(filter_mapping(load, pattern), email="a@x.io", city="abcAyyx")
    with pytest.raises(MappingError, match="has 2 repeats whose extent is ambiguous"):
        filter_mapping(load, pattern, case="insensitive")


def test_a_cell_longer_than_the_bound_is_a_row_error_not_a_slow_match(load):
    mapping = filter_mapping(load, r"\d+$")
    with pytest.raises(RowSkipped):
        build(mapping, email="a@x.io", city="1" * MAX_TEXT)
    with pytest.raises(RowError) as caught:
        build(mapping, email="a@x.io", city="1" * MAX_TEXT + "x")
    assert caught.value.column == "city"
    assert str(caught.value) == (
        "column 'city': 4,001 characters, more than the 4,000 a regular expression is tried "
        "on (filters.skip_if[0]); shorten the cell, or filter it with equals, in or empty"
    )


def test_the_helper_serves_substitution_too():
    # What a future `replace` transform is to call: the same check, the same bound.
    with pytest.raises(UnsafePattern):
        user_pattern(EVIL)
    pattern = user_pattern(r"[ .-]+")
    assert pattern.sub("-", "a .b--c") == "a-b-c"
    with pytest.raises(TextTooLong):
        pattern.sub("-", "x" * (MAX_TEXT + 1))
    with pytest.raises(ValueError, match=r"'\(' is not a regular expression"):
        user_pattern("(")
