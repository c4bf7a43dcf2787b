"""Regular expressions written in a mapping: compiled and checked once, at load.

Python's ``re`` backtracks, and a pattern such as ``(a+)+$`` takes exponential time on a cell
like ``aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!`` (some 40 minutes: 2 s at 24 characters, doubling
with each one more), while ``.*a.*b``, ``\\d+\\d+$`` or ``[a-c]*[b-z]*!`` take time growing
with the cube of the cell's length (3 s at 1,000 characters, more than 10 s at 3,000).
``re`` cannot be stopped midway, so every user pattern goes through :func:`user_pattern`,
which refuses at load the shapes that make backtracking blow up, and returns a
:class:`UserPattern` that tries the pattern only on text of at most :data:`MAX_TEXT`
characters. Together they bound what one cell can cost: about the square of its length,
times the length of the pattern itself (each of its characters may be tried once per extent
of a loose repeat, as the 300 ``a`` of ``.*aaa...a!`` are). For the worst short patterns that
pass that is a few seconds at the limit, measured on a busy 2-core machine: 1 to 3 s for
``\\W{2,}(?:\\B\\w){2}`` (no ambiguous repeat at all: the search starts at each of 4,000
places, and the repeat gives back each of up to 4,000 characters) or, ignoring case,
``.*[A-Z]{2}\\d{4}$``.

The check reads the pattern as ``re`` parses it (``re._parser``: private, but exactly what
``re`` compiles, which a re-implementation of the syntax would not guarantee). Two parts that
match one character each (a literal, a class or range, ``\\d``, ``\\w``, ``\\s``, a negated
class, ``.``) *overlap* when some character matches both, as ``re`` reads them: tried on every
code point, with case ignored when the pattern ignores it anywhere (the condition's ``case:
insensitive``, ``(?i)``, or a group ``(?i:...)``), so that ``A`` overlaps ``a``, ``k`` the
Kelvin sign and ``[a-c]`` ``[b-z]``; a negated class, which ignoring case makes smaller, is
compared with case kept unless the whole pattern ignores it (in ``(?i:a)+[^a1]+1``, ``[^a1]``
matches ``A``). Then:

1. A group that repeats (``*``, ``+``, ``{m,n}`` with n > 1) may hold repeats or alternatives
   only if each repetition can match a given text one way: every inner repeat must be
   followed, within the group (and around to its start, for the next repetition), by a
   required character it cannot match, as in ``(\\w+\\.)+`` or ``(?:\\d{1,3}\\.){3}``; an
   alternation inside must have fixed-length branches that start with different characters,
   as in ``(?:com|org)+``. Otherwise the text splits between repetitions in exponentially
   many ways: ``(a+)+``, ``(\\w+\\s?)*``, ``(a|ab)+``.
2. A repeat is *ambiguous* when what follows it can also match its characters, or can fail
   after it (``.*`` in ``test.*example``, ``\\d+`` in ``\\d+$``): each multiplies the work by
   the number of extents it can take, ``n - m + 1`` for ``{m,n}`` (``a{1,3000}`` is as loose
   as ``a+``). Alternatives that can both match at one place are ambiguous in the same way
   (``(?:a|ab)b``, ``(?:x|x)y``; not ``(?:gmail|googlemail)``, which differ in their second
   character), and so is a repeat followed by a lookaround, which runs again each time the
   repeat gives back a character. Together they may take at most :data:`MAX_TEXT`: one
   unbounded ambiguous repeat, not two (``.*a.*b``, ``\\d+\\d+$``, ``\\w+\\s*\\w+``).
3. Whatever follows ambiguous repeats is tried once for each extent they can take, and a
   repeat there may read its run again each time: ``[b-z]*`` in ``[a-c]*[b-z]*!`` reads the
   rest of a run of ``b`` once for each ``b`` that ``[a-c]*`` gives back, cubic again, like
   ``(?i)A*a*!``, ``a{1,3000}a{1,3000}!`` or ``.*\\d+x``. What such a repeat can read, times
   those extents, may be at most :data:`MAX_REREAD`: four characters per extent of one
   unbounded repeat (``.*\\d{4}-``; not ``.*a{200}!``), unless the repeat cannot start
   inside a run of its own characters (``\\d+`` in ``.*x\\d+!`` comes after an ``x``: each
   extent hands it a different run), or cannot fail once it is reached without the match
   being over (``.*`` in ``.*@.*``).
4. No back-references (``\\1``, ``(?P=name)``, ``(?(1)...)``): matching them is not bounded by
   any such rule.

The ``replace`` transform (``transforms.py``) uses :func:`user_pattern` and
:meth:`UserPattern.sub`, as ``filters`` use :meth:`UserPattern.search`.
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
_casefix: Any = importlib.import_module("re._casefix")  # what re._compiler folds with
_sre_module: Any = importlib.import_module("_sre")

# The longest text a pattern is tried on. With the rules above a pattern's worst case grows
# with the square of the text's length: a few seconds at this length on a busy 2-core
# machine for the worst short patterns that pass.
MAX_TEXT = 4_000

# What a repeat may read, per starting position, again and again as the ambiguous repeats
# before it give way (rule 3): four characters per extent of one unbounded repeat, as the
# '\\d{4}' in '.*\\d{4}-', not a run of any length.
MAX_REREAD = 4 * MAX_TEXT

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


@functools.lru_cache(maxsize=1024)  # checked at load, compiled again: check it once
def user_pattern(pattern: str, *, ignore_case: bool = False) -> UserPattern:
    """Compile a pattern from a mapping, refusing one whose matching time has no bound.

    Raises ValueError (an :class:`UnsafePattern` for the checks above) with a message for the
    mapping key's line.
    """
    flags = re.IGNORECASE if ignore_case else 0
    try:
        compiled = re.compile(pattern, flags)
        parsed = _sre.parse(pattern, flags)
        folds, partly = _case_folding(compiled.flags, parsed)
        _Check(pattern, folds, partly).run(list(parsed))
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


def _case_folding(flags: int, parsed: Any) -> tuple[bool, bool]:
    """Whether the pattern ignores case anywhere, and whether only in part: in a group
    ``(?i:...)``, or everywhere but in a group ``(?-i:...)``."""
    scoped_on, scoped_off = _scoped_ignorecase(parsed)
    everywhere = bool(flags & re.IGNORECASE)
    folds = everywhere or scoped_on
    return folds, folds and (not everywhere or scoped_off)


def _scoped_ignorecase(items: Any) -> tuple[bool, bool]:
    on = off = False
    for op, av in items:
        if op == _op.SUBPATTERN:
            on = on or bool(av[1] & re.IGNORECASE)
            off = off or bool(av[2] & re.IGNORECASE)
        for sub in _subpatterns(op, av):
            sub_on, sub_off = _scoped_ignorecase(sub)
            on, off = on or sub_on, off or sub_off
    return on, off


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


def _atom_source(op: Any, av: Any, partly: bool) -> str:
    """A one-character regex matching what the atom matches, or more (never less): compared
    with case ignored if the pattern ignores it anywhere. That only adds characters to what
    an atom matches, except to a negated one (ignoring case, '[^a]' refuses 'A' too), which is
    compared with case kept if the pattern ignores it only in part (``partly``)."""
    if op == _op.NOT_LITERAL:
        return _kept_case(f"[^\\U{av:08x}]", partly)
    source = _class_source(op, av)
    return _kept_case(source, partly) if source.startswith("[^") else source


def _kept_case(source: str, partly: bool) -> str:
    return f"(?-i:{source})" if partly else source


def _class_source(op: Any, av: Any) -> str:
    if op == _op.LITERAL:
        return f"\\U{av:08x}"
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
    """Whether some character matches both one-character regexes, exactly as re reads them
    (case folding included): tried on every code point, or for a literal on the few
    characters it matches."""
    flags = re.IGNORECASE if folds else 0
    for literal, other in ((first, second), (second, first)):
        if _is_literal(literal):  # a literal matches a few characters: test those alone
            return any(re.fullmatch(other, each, flags) for each in _matching(literal, folds))
    pair = re.compile(f"(?={first}){second}", flags)
    return pair.search(_every_character()) is not None


@functools.lru_cache(maxsize=4096)
def _matching(literal: str, folds: bool) -> tuple[str, ...]:
    """The characters a literal matches. Ignoring case, re compiles a cased character to its
    lower case (and the few others of _casefix) and matches each character by its lower case:
    the candidates are the characters with those lower cases, each then tried by re itself."""
    char = chr(int(literal[2:], 16))
    if not folds or not _sre_module.unicode_iscased(ord(char)):
        return (char,)
    lower = _sre_module.unicode_tolower(ord(char))
    keys = (lower, *_casefix._EXTRA_CASES.get(lower, ()))
    candidates = {char, chr(lower)}.union(*(map(chr, _cased_by_lower().get(k, ())) for k in keys))
    return tuple(sorted(c for c in candidates if re.fullmatch(literal, c, re.IGNORECASE)))


@functools.cache  # some 3,000 code points, built once, the first time a check needs it
def _cased_by_lower() -> dict[int, tuple[int, ...]]:
    """The code points re treats as cased, by their lower case."""
    found: dict[int, list[int]] = {}
    for code in range(0x110000):
        if _sre_module.unicode_iscased(code):
            found.setdefault(_sre_module.unicode_tolower(code), []).append(code)
    return {lower: tuple(codes) for lower, codes in found.items()}


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


@dataclass(frozen=True, slots=True)
class _Paths:
    """How many ways the match can arrive at a point, from one starting position: the product
    of the extents of the ambiguous repeats (and alternatives) before it, and those."""

    count: int = 1
    sources: tuple[str, ...] = ()
    only_repeats: bool = True

    def times(self, factor: int, shown: str, repeat: bool) -> _Paths:
        return _Paths(
            min(self.count * factor, MAX_TEXT * MAX_TEXT),
            (*self.sources, shown),
            self.only_repeats and repeat,
        )


class _Check:
    def __init__(self, pattern: str, folds: bool, partly: bool) -> None:
        self.pattern = pattern
        self.folds = folds
        self.partly = partly
        self.ambiguous: list[str] = []
        self.alternatives = 0
        # How many extents the ambiguous repeats can take together, per starting position:
        # the factor by which they multiply the work. One unbounded repeat counts MAX_TEXT.
        self.extents = 1
        # A repeat that rereads too much (rule 3), reported after rule 2's plainer message.
        self.reread: UnsafePattern | None = None

    def refuse(self, why: str) -> UnsafePattern:
        return UnsafePattern(f"{_quoted(self.pattern)} {why}; {_HINT}")

    def run(self, items: list[Item]) -> None:
        self.walk(items, frozenset({_END}), frozenset(), _Paths(), final=True)
        if self.extents > MAX_TEXT:
            shown = ", ".join(self.ambiguous[:3])
            what = "repeats or alternatives" if self.alternatives else "repeats"
            raise self.refuse(
                f"has {len(self.ambiguous)} {what} whose extent is ambiguous ({shown}: each "
                "is followed by something that can match its characters too, or fail), and "
                "at most one unbounded one is allowed"
            )
        if self.reread is not None:
            raise self.reread

    # -- what text must start with, and what it may end with

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
            return frozenset({_atom_source(op, av, self.partly)})
        if op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):  # zero-width, and a test that can fail
            if rest is None:
                return None
            tested = frozenset(_TESTED_END if mark == _END else mark for mark in rest)
            if op == _op.AT:
                return tested
            # A repeat before a lookaround gives way one character at a time, running the
            # lookaround anew each time before what follows is tried: a lookahead reads its
            # own first characters there, a lookbehind any (those before the position).
            return _union(self.first(av[1]), tested) if av[0] == 1 else None
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

    def last(self, items: Sequence[Item], before: First) -> First:
        """The characters the text matched by ``items`` may end with, ``before`` being those
        of the text before them (the mirror of :meth:`first`)."""
        for item in items:
            before = self.last_of(item, before)
        return before

    def last_of(self, item: Item, before: First) -> First:
        op, av = item
        if op in _ATOMS:
            return frozenset({_atom_source(op, av, self.partly)})
        if op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
            return before
        if op == _op.SUBPATTERN:
            return self.last(av[3], before)
        if op == _op.ATOMIC_GROUP:
            return self.last(av, before)
        if op in _REPEATS:
            inner = self.last(av[2], before)
            return _union(inner, before) if av[0] == 0 else inner
        if op == _op.BRANCH:
            return _union(*(self.last(branch, before) for branch in av[1]))
        return None

    def chars(self, items: Sequence[Item]) -> First:
        """Every character ``items`` can read."""
        found: set[str] = set()
        for op, av in items:
            if op in _ATOMS:
                found.add(_atom_source(op, av, self.partly))
            elif op in (_op.GROUPREF, _op.GROUPREF_EXISTS):
                return None
            else:
                for sub in _subpatterns(op, av):
                    inner = self.chars(sub)
                    if inner is None:
                        return None
                    found |= inner
        return frozenset(found)

    def width(self, items: Sequence[Item]) -> int:
        """The most characters ``items`` can read, at most MAX_TEXT."""
        total = 0
        for op, av in items:
            if op in _ATOMS:
                total += 1
            elif op == _op.SUBPATTERN:
                total += self.width(av[3])
            elif op == _op.ATOMIC_GROUP:
                total += self.width(av)
            elif op in _REPEATS:
                total += av[1] * self.width(av[2])
            elif op == _op.BRANCH:
                total += max(self.width(branch) for branch in av[1])
            elif op not in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
                return MAX_TEXT  # a back-reference
            if total >= MAX_TEXT:
                return MAX_TEXT
        return total

    def disjoint(self, mine: First, others: First) -> bool:
        if mine is None or others is None:
            return False
        return not any(_overlap(a, b, self.folds) for a in mine - _MARKS for b in others - _MARKS)

    # -- the walk: rule 4 here, rule 2 in note_extent and branch_ways, rule 3 in
    # check_reread, rule 1 in check_repeated_body

    def walk(
        self, items: Sequence[Item], then: First, before: First, paths: _Paths, *, final: bool
    ) -> _Paths:
        """Check ``items``; ``then`` is the first characters of what follows them, ``before``
        the last ones of what precedes them, ``paths`` the ways the match arrives at them.
        ``final``: the match is over once what follows them matches nothing (false inside a
        lookaround or an atomic group). Returns the ways the match leaves them."""
        after = self.suffixes(items, then)
        for index, item in enumerate(items):
            op, av = item
            follow = after[index + 1]
            if op in (_op.GROUPREF, _op.GROUPREF_EXISTS):
                raise self.refuse("uses a back-reference, which is not supported")
            if op in _REPEATS:
                low, high, body = av
                if high != 1:
                    self.check_repeated_body(list(body))
                self.check_reread(item, before, follow, paths, final)
                # What follows one repetition: another one, or what follows the repeat; and
                # what precedes one: the text before the repeat, or the previous repetition.
                if high != 1:
                    inner_then = _union(self.first(body), follow)
                    inner_before = _union(before, self.last(body, before))
                else:
                    inner_then, inner_before = follow, before
                paths = self.walk(body, inner_then, inner_before, paths, final=final)
                if op != _op.POSSESSIVE_REPEAT and low != high:
                    ways = self.note_extent(item, follow)
                    if ways > 1:
                        paths = paths.times(ways, f"'{_shown(item)}'", repeat=True)
            elif op == _op.SUBPATTERN:
                paths = self.walk(av[3], follow, before, paths, final=final)
            elif op == _op.BRANCH:
                ways = self.branch_ways(av, follow)
                paths = max(
                    (self.walk(branch, follow, before, paths, final=final) for branch in av[1]),
                    key=lambda each: each.count,
                )
                if ways > 1:
                    paths = paths.times(ways, "'(...|...)'", repeat=False)
            elif op == _op.ATOMIC_GROUP:
                self.walk(av, frozenset({_END}), before, paths, final=False)  # no backtracking in
            elif op in (_op.ASSERT, _op.ASSERT_NOT):  # nor into a lookaround
                behind = before if av[0] == 1 else None
                self.walk(av[1], frozenset({_END}), behind, paths, final=False)
            before = self.last_of(item, before)
        return paths

    def note_extent(self, item: Item, follow: First) -> int:
        """A repeat whose count can vary is ambiguous unless what follows it must start with
        a character it cannot match (then only its longest extent can succeed), or the match
        is over after it whatever it took. Returns how many extents it can take: 1 if it is
        not ambiguous."""
        low, high, body = item[1]
        if (
            follow is not None
            and _TESTED_END not in follow
            and (_END in follow or self.disjoint(self.first(body), follow))
        ):
            return 1
        ways = MAX_TEXT if high == _op.MAXREPEAT else min(high - low + 1, MAX_TEXT)
        self.ambiguous.append(f"'{_shown(item)}'")
        self.extents *= ways
        return ways

    def branch_ways(self, av: Any, follow: First) -> int:
        """Alternatives are ambiguous, like a repeat, when two of them can both match at one
        place, as in '(?:a|ab)b' or '(?:x|x)y': both are then tried with what follows. Two
        that differ in a character at the same offset, as 'gmail' and 'googlemail', cannot.
        Returns how many can match at one place (at most one more than the pairs that can)."""
        branches = [list(branch) for branch in av[1]]
        starts = [self.suffixes(branch, follow) for branch in branches]
        pairs = 0
        for one in range(len(branches)):
            for other in range(one):
                if 1 + pairs >= len(branches):
                    break
                if not self.exclusive(branches[one], starts[one], branches[other], starts[other]):
                    pairs += 1
        ways = min(len(branches), 1 + pairs)
        if ways > 1:
            self.ambiguous.append("'(...|...)'")
            self.alternatives += 1
            self.extents *= ways
        return ways

    def exclusive(
        self, one: list[Item], one_at: list[First], other: list[Item], other_at: list[First]
    ) -> bool:
        """Whether no text matches both branches (each followed by what follows them) at once:
        read side by side, one character at a time, they come to an offset where what each
        must read next has nothing in common."""
        for index in range(min(len(one), len(other)) + 1):
            if self.disjoint(one_at[index], other_at[index]):
                return True
            if index == min(len(one), len(other)):
                return False
            if one[index][0] not in _ATOMS or other[index][0] not in _ATOMS:
                return False
        return False

    def check_reread(
        self, item: Item, before: First, follow: First, paths: _Paths, final: bool
    ) -> None:
        """A repeat is tried once for each way the match arrives at it, and each time it may
        read its whole extent again: '[b-z]*' in '[a-c]*[b-z]*!' reads the rest of a run of
        'b' once for each character '[a-c]*' gives back. That is bounded by MAX_REREAD unless
        the repeat cannot start inside a run of its own characters (what precedes it must end
        with one it cannot read, as '\\d+' in '.*x\\d+!': then its runs are different ones
        each time), or cannot fail without the match being over (nothing after it that can
        fail, and no minimum count it may miss)."""
        if paths.count == 1:
            return
        low, high, body = item[1]
        if final and follow is not None and _END in follow:
            if low == 0:
                return
            reads = low if self.single(list(body)) else high * self.width(body)
        else:
            reads = high * self.width(body)
        reads = min(reads, MAX_TEXT)
        if reads <= 1 or paths.count * reads <= MAX_REREAD:
            return
        one_repeat = len(paths.sources) == 1 and paths.only_repeats
        if one_repeat and self.disjoint(before, self.chars(body)):
            return
        which = "repeat" if len(paths.sources) == 1 else "repeats and alternatives"
        self.reread = self.reread or self.refuse(
            f"has a repeat ('{_shown(item)}') that can read up to {reads:,} characters again "
            f"for each of the {min(paths.count, MAX_TEXT * MAX_TEXT):,} ways the ambiguous "
            f"{which} before it ({', '.join(paths.sources[:3])}) can end, more than "
            f"{MAX_REREAD:,} in all"
        )

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
    single = len(inner) == 1 and inner[0][0] in _ATOMS
    text = _atom_text(*inner[0]) if single else "(...)"
    if low == high:
        count = f"{{{low}}}"
    elif (low, high) == (0, _op.MAXREPEAT):
        count = "*"
    elif (low, high) == (1, _op.MAXREPEAT):
        count = "+"
    elif (low, high) == (0, 1):
        count = "?"
    elif high == _op.MAXREPEAT:
        count = f"{{{low},}}"
    else:
        count = f"{{{low},{high}}}"
    lazy = {_op.MIN_REPEAT: "?", _op.POSSESSIVE_REPEAT: "+"}.get(op, "")
    return text + count + lazy


def _atom_text(op: Any, av: Any) -> str:
    if op == _op.ANY:
        return "."
    if op == _op.LITERAL:
        return re.escape(chr(av))
    if op == _op.IN and len(av) == 1 and av[0][0] == _op.CATEGORY:
        return _CATEGORIES.get(av[0][1], "[...]")
    return "[...]"
