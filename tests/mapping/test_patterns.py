"""User regular expressions (filters' ``matches``): refused at load when backtracking could
blow up, tried only on text of bounded length. No test here runs a dangerous pattern: each
proof is that the pattern never reaches ``re`` at all, or that the text is refused first."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from importer.exceptions import MappingError
from importer.mapping import RowError, RowSkipped, patterns
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


# ---- repeats that reread what an ambiguous repeat gave back
#
# Each of these passed the check before and takes seconds to minutes on a 3,000-character
# cell of one repeated letter: the first repeat gives back one character at a time, and for
# each the next repeat reads the rest of the run again before the match fails.

REREAD = "that can read up to"


def assert_refused(load, pattern: str, why: str, **condition: str) -> None:
    with pytest.raises(MappingError) as caught:
        filter_mapping(load, pattern, **condition)
    message = str(caught.value)
    assert f"filters.skip_if[0].matches: {patterns._quoted(pattern)} " in message
    assert why in message
    assert "\n" not in message and len(message) < 600


@pytest.mark.parametrize(
    ("pattern", "case"),
    [
        (r"(?i)A*a*!", "sensitive"),  # > 30 s: ignoring case, 'A*' and 'a*' overlap
        (r"(?i:A*)a*!", "sensitive"),
        (r"A*a*!", "insensitive"),
        (r"(?i)k*\u212a*!", "sensitive"),  # the Kelvin sign folds to 'k'
        # '[^a]' keeps case outside the group, so it matches 'A': the two overlap after all.
        (r"(?i:a)+[^a1]+1", "sensitive"),
        (r"(?i)a+(?-i:[^a1])+1", "sensitive"),
    ],
)
def test_repeats_that_overlap_once_case_is_folded_are_refused(load, pattern, case):
    assert_refused(load, pattern, REREAD, case=case)


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-c]*[b-z]*[a]*!",  # 12.9 s: '[a-c]*' and '[b-z]*' share 'b' and 'c'
        r"[a-c]*[b-z]*!",
        r"\w*\d+!",
        r"[^x]*\d+!",
        r".*\s+!",
        r"\d+\d+!",
        r".*\d+x",
        r"(?:\d+)(?:\d+)!",
        r"(?:x|\d+)\d+!",
        r".*(?:\w+\.)+!",
    ],
)
def test_repeats_whose_character_sets_overlap_are_refused(load, pattern):
    assert_refused(load, pattern, REREAD)


@pytest.mark.parametrize(
    "pattern",
    [
        r"a{1,3000}a{1,3000}!",  # 10.5 s: a counted repeat with a large maximum is unbounded
        r"a{1,3000}a+!",
        r"\d{0,4000}\d{1,4000}x",
        r".*a{200}!",  # a fixed count reads its 200 characters again for every extent
        r".*(?:ab){500}!",
    ],
)
def test_counted_repeats_with_a_large_maximum_are_refused_like_unbounded_ones(load, pattern):
    assert_refused(load, pattern, REREAD)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        # A lookaround runs again each time the repeat before it gives back a character.
        (r"\d+(?=.*x)!", "has 2 repeats whose extent is ambiguous ('\\d+', '.*'"),
        (r"\d+(?!\d*x)!", REREAD),
        (r"\w*(?<=a{100})!", REREAD),
        # Alternatives that both match 'a': 2 ** 25 ways to try before the '!' fails.
        ("(?:a|a)" * 25 + "!", "has 25 repeats or alternatives whose extent is ambiguous"),
        ("(?:a|b|ab)" * 14 + "!", "alternatives whose extent is ambiguous"),
    ],
)
def test_repeats_before_lookarounds_and_alternatives_alike_are_refused(load, pattern, why):
    assert_refused(load, pattern, why)


SAFE = [
    r"^\d+-\d+$",
    r"^[A-Z]{2}\d{4}$",
    r"(?i)^[a-z]{2}\d{4}$",
    r"@example\.com$",
    r"(?i)@(gmail|yahoo)\.com$",
    r"^(?:foo|bar)$",
    r"\s+",
    r"^\+?\d[\d -]{6,14}\d$",
    r"^(?:\+91)?[6-9]\d{9}$",
    r"^[\w.+-]+@[\w-]+\.[\w.]+$",
    r"^\w+@\w+\.com$",
    r"^\d{4}-\d{2}-\d{2}$",
    r"^[A-Z][a-z]+ [A-Z][a-z]+$",
    r"(?i)^(?:mr|mrs|ms)\.? ",
    r"(?i)^[^a]*a+!",  # ignoring case everywhere, '[^a]' refuses 'A' too
    r"(?i)\b(?:test|dummy|sample)\b",
    r"^N/?A$",
    r"^.{0,2}$",
    r"^\s*$",
    r"test.*example",
    r"(\w+\.)+com$",
    r"^(?:\d{1,3}\.){3}\d{1,3}$",
    r"^[^@]+@[^@]+$",
    r"(?=.*x)",
]

# Accepted, and close to what is refused: an ambiguous repeat followed by a repeat that must
# start after a character it cannot read, or that reads a few characters only.
TRICKY = [
    r".*x\d+!",
    r"test.*\(\d+\)",
    r".*\d{4}-",
    r".*@.*",
    r"a*!",
    r"\d+-\d+!",
    r"(?i)^[a-z]+\d+!",
    r"(\w+\.)+com$",
    r"(?=.*x)",
    r"test.*example",
    r"(?i)@(gmail|yahoo)\.com$",
    r"\s+",
]


@pytest.mark.parametrize("pattern", SAFE + TRICKY)
def test_common_safe_patterns_are_accepted(load, pattern):
    filter_mapping(load, pattern)
    filter_mapping(load, pattern, case="insensitive")


@pytest.mark.parametrize("char", list("kKsiI\u0130\u00b5\u03c9\u00df1"))
def test_a_folded_literal_matches_the_characters_re_matches(char):
    # The check's shortcut for literals ignoring case, against a scan of every code point.
    literal = f"\\U{ord(char):08x}"
    every = patterns._every_character()
    assert set(patterns._matching(literal, True)) == set(re.findall(literal, every, re.I))


def test_accepted_tricky_patterns_finish_on_adversarial_cells():
    # No timing asserted (about 3 s in all): the timeout only turns a hang into a failure,
    # and the last line printed names the pattern that hung.
    script = (
        "from importer.mapping.patterns import MAX_TEXT, user_pattern\n"
        "n = MAX_TEXT\n"
        "cells = ['a' * n, '1' * n, 'x' + '1' * (n - 2) + '!', ('ab' * n)[: n - 1] + '!']\n"
        f"for source in {TRICKY!r}:\n"
        "    print(source, flush=True)\n"
        "    pattern = user_pattern(source)\n"
        "    for cell in cells:\n"
        "        pattern.search(cell)\n"
        "print('done')\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=Path(__file__).parents[2],
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        printed = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"still matching after 20 s: {(printed or '').splitlines()[-1:]}")
    assert done.stdout.endswith("done\n"), done.stderr
