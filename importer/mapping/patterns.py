"""Regular expressions written in a mapping: compiled and checked once, at load.

Python's ``re`` backtracks, and a pattern such as ``(a+)+$`` takes exponential time on a cell
like ``aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!`` (some 40 minutes: 2 s at 24 characters, doubling
with each one more), while ``.*a.*b`` or ``\\d+\\d+$`` take time growing with the cube of
the cell's length (3 s at 1,000 characters).
``re`` cannot be stopped midway, so every user pattern goes through :func:`user_pattern`,
which refuses at load the shapes that make backtracking blow up, and returns a
:class:`UserPattern` that tries the pattern only on text of at most :data:`MAX_TEXT`
characters. Together they bound what one cell can cost: about the square of its length for
the worst patterns that pass (0.2 s at the limit, measured on a busy 2-core machine).

The check reads the pattern as ``re`` parses it (``re._parser``: private, but exactly what
``re`` compiles, which a re-implementation of the syntax would not guarantee):

1. A group that repeats (``*``, ``+``, ``{m,n}`` with n > 1) may hold repeats or alternatives
   only if each repetition can match a given text one way: every inner repeat must be
   followed, within the group (and around to its start, for the next repetition), by a
   required character it cannot match, as in ``(\\w+\\.)+`` or ``(?:\\d{1,3}\\.){3}``; an
   alternation inside must have fixed-length branches that start with different characters,
   as in ``(?:com|org)+``. Otherwise the text splits between repetitions in exponentially
   many ways: ``(a+)+``, ``(\\w+\\s?)*``, ``(a|ab)+``.
2. A repeat is *ambiguous* when what follows it can also match its characters, or can fail
   after it (``.*`` in ``test.*example``, ``\\d+`` in ``\\d+$``): each multiplies the work by
   the number of extents it can take. Together they may take at most :data:`MAX_TEXT`: one
   unbounded ambiguous repeat, not two (``.*a.*b``, ``\\d+\\d+$``, ``\\w+\\s*\\w+``).
3. No back-references (``\\1``, ``(?P=name)``, ``(?(1)...)``): matching them is not bounded by
   any such rule.

A future ``replace`` transform is to use :func:`user_pattern` and :meth:`UserPattern.sub`.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# re's own parser (see above); typeshed stubs only its deprecated alias, sre_parse.
_sre: Any = importlib.import_module("re._parser")
_op: Any = importlib.import_module("re._constants")

# The longest text a pattern is tried on. With the rules above a pattern's worst case grows
# with the square of the text's length: about 0.2 s at this length on a busy 2-core machine.
MAX_TEXT = 4_000

_REPEATS = (_op.MAX_REPEAT, _op.MIN_REPEAT, _op.POSSESSIVE_REPEAT)
_ATOMS = (_op.LITERAL, _op.NOT_LITERAL, _op.ANY, _op.IN)
_CATEGORIES = {
    _op.CATEGORY_DIGIT: r"\d",
    _op.CATEGORY_NOT_DIGIT: r"\D",
    _op.CATEGORY_SPACE: r"\s",
    _op.CATEGORY_NOT_SPACE: r"\S",
    _op.CATEGORY_WORD: r"\w",
    _op.CATEGORY_NOT_WORD: r"\W",
}
_HINT = (
    "such a pattern can take minutes on one cell; anchor or simplify it, e.g. '@example\\.com$' "
    "rather than '.*@.*example.*'"
)


class UnsafePattern(ValueError):
    """A pattern refused at load; the message says which part and why."""


class TextTooLong(ValueError):
    """Text longer than :data:`MAX_TEXT`, which a user pattern is not tried on."""

    def __init__(self, length: int) -> None:
        super().__init__(
            f"{length:,} characters, more than the {MAX_TEXT:,} a regular expression is tried on"
        )


@dataclass(frozen=True, slots=True)
class UserPattern:
    """A checked user pattern. Its methods raise :class:`TextTooLong` rather than try a
    longer text, so that the bound on their time holds."""

    source: str
    compiled: re.Pattern[str]

    def search(self, text: str) -> re.Match[str] | None:
        if len(text) > MAX_TEXT:
            raise TextTooLong(len(text))
        return self.compiled.search(text)

    def sub(self, replacement: str | Callable[[re.Match[str]], str], text: str) -> str:
        if len(text) > MAX_TEXT:
            raise TextTooLong(len(text))
        return self.compiled.sub(replacement, text)


def user_pattern(pattern: str, *, ignore_case: bool = False) -> UserPattern:
    """Compile a pattern from a mapping, refusing one whose matching time has no bound.

    Raises ValueError (an :class:`UnsafePattern` for the checks above) with a message for the
    mapping key's line.
    """
    flags = re.IGNORECASE if ignore_case else 0
    try:
        compiled = re.compile(pattern, flags)
        parsed = _sre.parse(pattern, flags)
        folds = bool(compiled.flags & re.IGNORECASE) or _has_scoped_ignorecase(parsed)
        _Check(pattern, folds).run(list(parsed))
    except re.error as exc:
        raise ValueError(
            f"{_quoted(pattern)} is not a regular expression ({exc}); quote it in single quotes "
            "so YAML keeps backslashes"
        ) from None
    except RecursionError:
        # re's parser and compiler recurse per group: a few hundred nested groups end here.
        raise UnsafePattern(f"{_quoted(pattern)} nests its groups too deeply") from None
    return UserPattern(pattern, compiled)


def _quoted(pattern: str) -> str:
    """The pattern as the user wrote it, backslashes single, on one line, cut when long."""
    shown = f"'{pattern}'" if pattern.isprintable() else repr(pattern)
    return shown if len(shown) <= 80 else shown[:76] + "...'"


# ---- the check

Item = tuple[Any, Any]  # (opcode, argument), as re._parser gives them


def _has_scoped_ignorecase(items: Any) -> bool:
    for op, av in items:
        if op == _op.SUBPATTERN and av[1] & re.IGNORECASE:
            return True
        if any(_has_scoped_ignorecase(sub) for sub in _subpatterns(op, av)):
            return True
    return False


def _subpatterns(op: Any, av: Any) -> list[Any]:
    """The nested sequences of one item."""
    if op == _op.SUBPATTERN:
        return [av[3]]
    if op in _REPEATS:
        return [av[2]]
    if op == _op.BRANCH:
        return list(av[1])
    if op in (_op.ASSERT, _op.ASSERT_NOT):
        return [av[1]]
    if op == _op.ATOMIC_GROUP:
        return [av]
    if op == _op.GROUPREF_EXISTS:
        return [part for part in av[1:] if part is not None]
    return []


def _atom_source(op: Any, av: Any) -> str:
    """A one-character regex matching what the atom matches, or more (never less)."""
    if op == _op.LITERAL:
        return f"\\U{av:08x}"
    if op == _op.NOT_LITERAL:
        return f"[^\\U{av:08x}]"
    if op == _op.ANY:
        return "(?s:.)"  # with or without DOTALL: the larger set is the safe side
    parts = []
    negate = ""
    for sub_op, sub_av in av:
        if sub_op == _op.NEGATE:
            negate = "^"
        elif sub_op == _op.LITERAL:
            parts.append(f"\\U{sub_av:08x}")
        elif sub_op == _op.RANGE:
            parts.append(f"\\U{sub_av[0]:08x}-\\U{sub_av[1]:08x}")
        elif sub_op == _op.CATEGORY and sub_av in _CATEGORIES:
            parts.append(_CATEGORIES[sub_av])
        else:
            return "(?s:.)"
    return f"[{negate}{''.join(parts)}]"


@functools.cache  # 4 MB, built once, the first time a check needs it
def _every_character() -> str:
    return "".join(map(chr, range(0x110000)))


@functools.lru_cache(maxsize=4096)
def _overlap(first: str, second: str, folds: bool) -> bool:
    """Whether some character matches both one-character regexes: tried on every code point,
    so it is exact for re's own reading of them (case folding included)."""
    if not folds:  # a literal matches itself alone: one test instead of a scan
        for literal, other in ((first, second), (second, first)):
            if _is_literal(literal):
                return re.fullmatch(other, chr(int(literal[2:], 16))) is not None
    pair = re.compile(f"(?={first}){second}", re.IGNORECASE if folds else 0)
    return pair.search(_every_character()) is not None


def _is_literal(source: str) -> bool:
    return len(source) == 10 and source.startswith("\\U")


# In a set of first characters: the match may end here without consuming more, for sure
# (_END) or only if a zero-width test ($, \b, a lookaround) passes (_TESTED_END).
_END = "end"
_TESTED_END = "tested end"
_MARKS = frozenset({_END, _TESTED_END})

First = frozenset[str] | None  # one-character regexes (and marks); None: anything


def _union(*sets: First) -> First:
    if any(each is None for each in sets):
        return None
    return frozenset().union(*(each for each in sets if each is not None))


class _Check:
    def __init__(self, pattern: str, folds: bool) -> None:
        self.pattern = pattern
        self.folds = folds
        self.ambiguous: list[str] = []
        # How many extents the ambiguous repeats can take together, per starting position:
        # the factor by which they multiply the work. One unbounded repeat counts MAX_TEXT.
        self.extents = 1

    def refuse(self, why: str) -> UnsafePattern:
        return UnsafePattern(f"{_quoted(self.pattern)} {why}; {_HINT}")

    def run(self, items: list[Item]) -> None:
        self.walk(items, frozenset({_END}))
        if self.extents > MAX_TEXT:
            shown = ", ".join(self.ambiguous[:3])
            raise self.refuse(
                f"has {len(self.ambiguous)} repeats whose extent is ambiguous ({shown}: each "
                "is followed by something that can match its characters too, or fail), and "
                "at most one unbounded one is allowed"
            )

    # -- what text must start with

    def suffixes(self, items: Sequence[Item], then: First) -> list[First]:
        """For each position in ``items``, the characters the text matched from there on
        starts with, ``then`` being those of what follows ``items``. Right to left, without
        recursion along the sequence (a literal pattern can be thousands of items long)."""
        firsts: list[First] = [then] * (len(items) + 1)
        for index in range(len(items) - 1, -1, -1):
            firsts[index] = self.first_of(items[index], firsts[index + 1])
        return firsts

    def first(self, items: Sequence[Item], then: First = frozenset()) -> First:
        return self.suffixes(items, then)[0]

    def first_of(self, item: Item, rest: First) -> First:
        op, av = item
        if op in _ATOMS:
            return frozenset({_atom_source(op, av)})
        if op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):  # zero-width, and a test that can fail
            if rest is None:
                return None
            return frozenset(_TESTED_END if mark == _END else mark for mark in rest)
        if op == _op.SUBPATTERN:
            return self.first(av[3], rest)
        if op == _op.ATOMIC_GROUP:
            return self.first(av, rest)
        if op in _REPEATS:
            inner = self.first(av[2], rest)
            return _union(inner, rest) if av[0] == 0 else inner
        if op == _op.BRANCH:
            return _union(*(self.first(branch, rest) for branch in av[1]))
        return None  # a back-reference: anything

    def disjoint(self, mine: First, others: First) -> bool:
        if mine is None or others is None:
            return False
        return not any(_overlap(a, b, self.folds) for a in mine - _MARKS for b in others - _MARKS)

    # -- the walk: rule 3 here, rule 2 in note_extent, rule 1 in check_repeated_body

    def walk(self, items: Sequence[Item], then: First) -> None:
        """Check ``items``, ``then`` being the first characters of what follows them."""
        after = self.suffixes(items, then)
        for index, (op, av) in enumerate(items):
            follow = after[index + 1]
            if op in (_op.GROUPREF, _op.GROUPREF_EXISTS):
                raise self.refuse("uses a back-reference, which is not supported")
            if op in _REPEATS:
                low, high, body = av
                if high != 1:
                    self.check_repeated_body(list(body))
                if op != _op.POSSESSIVE_REPEAT and low != high:
                    self.note_extent(items[index], follow)
                # What follows one repetition: another one, or what follows the repeat.
                self.walk(body, _union(self.first(body), follow) if high != 1 else follow)
            elif op == _op.SUBPATTERN:
                self.walk(av[3], follow)
            elif op == _op.BRANCH:
                for branch in av[1]:
                    self.walk(branch, follow)
            elif op == _op.ATOMIC_GROUP:
                self.walk(av, frozenset({_END}))  # re never backtracks into it
            elif op in (_op.ASSERT, _op.ASSERT_NOT):
                self.walk(av[1], frozenset({_END}))  # nor into a lookaround

    def note_extent(self, item: Item, follow: First) -> None:
        """A repeat whose count can vary is ambiguous unless what follows it must start with
        a character it cannot match (then only its longest extent can succeed), or the match
        is over after it whatever it took."""
        low, high, body = item[1]
        tested = follow is None or _TESTED_END in follow
        if not tested and self.disjoint(self.first(body), follow):
            return
        self.ambiguous.append(f"'{_shown(item)}'")
        self.extents *= MAX_TEXT if high == _op.MAXREPEAT else min(high - low + 1, MAX_TEXT)

    # -- rule 1

    def check_repeated_body(self, body: list[Item]) -> None:
        flat = self.flatten(body)
        if flat is None:
            raise self.refuse(
                "repeats a group holding another repeated group, a lookaround or a back-reference"
            )
        if all(self.fixed(item) for item in flat):
            return
        if not self.delimited(flat):
            raise self.refuse(
                "repeats a group whose repetitions can split the text in many ways (a "
                "repeat inside a repeat, or alternatives that start alike); end each "
                "repetition with a character its inner repeat cannot match, as in '(\\w+\\.)+'"
            )

    def flatten(self, body: list[Item]) -> list[Item] | None:
        """``body`` with its groups opened, or None if it holds more than single characters,
        repeats of one character, alternations of such and anchors."""
        flat: list[Item] = []
        for op, av in body:
            if op == _op.SUBPATTERN:
                inner = self.flatten(list(av[3]))
                if inner is None:
                    return None
                flat.extend(inner)
            elif self.flat_item(op, av):
                flat.append((op, av))
            else:
                return None
        return flat

    def flat_item(self, op: Any, av: Any) -> bool:
        if op in _ATOMS or op == _op.AT:
            return True
        if op in _REPEATS:
            return self.single(list(av[2]))
        if op == _op.BRANCH:
            return all(self.flatten(list(branch)) is not None for branch in av[1])
        return False

    def single(self, body: list[Item]) -> bool:
        """One character, perhaps in a group: ``a``, ``[a-z]``, ``(?:\\d)``."""
        while len(body) == 1 and body[0][0] == _op.SUBPATTERN:
            body = list(body[0][1][3])
        return len(body) == 1 and body[0][0] in _ATOMS

    def fixed(self, item: Item) -> bool:
        """Matches a given text one way only, whatever follows."""
        op, av = item
        if op in _ATOMS or op == _op.AT:
            return True
        if op in _REPEATS:
            return bool(av[0] == av[1])
        return self.unambiguous_branch(av)

    def unambiguous_branch(self, av: Any) -> bool:
        """Non-empty fixed branches that start with different characters: the first character
        decides which one matches."""
        firsts: list[First] = []
        for branch in av[1]:
            flat = self.flatten(list(branch))
            start = self.first(branch)
            if flat is None or not all(self.fixed(item) for item in flat):
                return False
            if start is None or not start - _MARKS or start & _MARKS:
                return False
            if any(not self.disjoint(start, other) for other in firsts):
                return False
            firsts.append(start)
        return True

    def delimited(self, flat: list[Item]) -> bool:
        """Every variable repeat is followed, cyclically, by a required character it cannot
        match: its extent is then the whole run of its characters, one way only."""
        consuming = [item for item in flat if item[0] != _op.AT]
        for index, (op, av) in enumerate(consuming):
            if op == _op.BRANCH:
                if not self.unambiguous_branch(av):
                    return False
                continue
            if op not in _REPEATS or av[0] == av[1]:
                continue
            after = consuming[(index + 1) % len(consuming)]
            if len(consuming) == 1 or not self.is_required_character(after):
                return False
            if not self.disjoint(self.first(av[2]), self.first([after])):
                return False
        return True

    @staticmethod
    def is_required_character(item: Item) -> bool:
        op, av = item
        return bool(op in _ATOMS or (op in _REPEATS and av[0] == av[1] and av[0] >= 1))


def _shown(item: Item) -> str:
    """A short rendering of a repeat for a message: '.*', '\\d+', '[a-z]{2,}'."""
    op, (low, high, body) = item
    inner = list(body)
    text = "".join(_atom_text(*each) for each in inner) if len(inner) == 1 else "(...)"
    if (low, high) == (0, _op.MAXREPEAT):
        count = "*"
    elif (low, high) == (1, _op.MAXREPEAT):
        count = "+"
    elif (low, high) == (0, 1):
        count = "?"
    elif high == _op.MAXREPEAT:
        count = f"{{{low},}}"
    else:
        count = f"{{{low},{high}}}"
    return text + count + ("?" if op == _op.MIN_REPEAT else "")


def _atom_text(op: Any, av: Any) -> str:
    if op == _op.ANY:
        return "."
    if op == _op.LITERAL:
        return re.escape(chr(av))
    if op == _op.IN and len(av) == 1 and av[0][0] == _op.CATEGORY:
        return _CATEGORIES.get(av[0][1], "[...]")
    return "[...]"
