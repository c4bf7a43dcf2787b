"""Transforms and value maps: parsed and checked at load, compiled to converters.

A converter turns a non-empty cell text into the text to send, or raises the RowError its
``fail`` makes; a compiled value chains them (see ``compile.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from .outcomes import RowError
from .patterns import TextTooLong, user_pattern
from .text import PLACEHOLDER, scalar_text, show

Converter = Callable[[str], str]
Fail = Callable[[str], RowError]

# A cache of results per distinct text is bounded: a file of unique values must not grow it
# without limit.
_CACHE_LIMIT = 100_000


def cached(convert: Converter) -> Converter:
    """Remember results per distinct text: amounts, a lead's phone and date-times repeat
    across rows. A text that fails is not remembered: it raises again on each row."""
    cache: dict[str, str] = {}

    def lookup(text: str) -> str:
        result = cache.get(text)
        if result is None:
            result = convert(text)
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[text] = result
        return result

    return lookup


NOT_DIGITS = re.compile(r"[^0-9]")


def _digits(text: str) -> str:
    return NOT_DIGITS.sub("", text)


SIMPLE_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "strip": str.strip,
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "digits": _digits,
}
_TRANSFORM_OPTIONS = {
    "phone": ("default_country_code", "national_length"),
    "number": ("decimals", "decimal"),
    "replace": ("pattern", "with", "case"),
}
_TRANSFORM_NAMES = ", ".join([*SIMPLE_TRANSFORMS, *_TRANSFORM_OPTIONS])

# E.164 country calling codes are prefix-free: 1 and 7 stand alone, these two-digit codes
# stand alone, and every other code is three digits. That is enough to split '+919845098450'
# into 91 and 9845098450 without a table of every country.
_TWO_DIGIT_CODES = frozenset(
    {
        "20",
        "27",
        "30",
        "31",
        "32",
        "33",
        "34",
        "36",
        "39",
        "40",
        "41",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "52",
        "53",
        "54",
        "55",
        "56",
        "57",
        "58",
        "60",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "81",
        "82",
        "84",
        "86",
        "90",
        "91",
        "92",
        "93",
        "94",
        "95",
        "98",
    }
)


def _country_code_length(digits: str) -> int | None:
    """How many leading digits of an international number are its country code."""
    if not digits or digits[0] == "0":
        return None
    if digits[0] in "17":
        return 1
    return 2 if digits[:2] in _TWO_DIGIT_CODES else 3


@dataclass(frozen=True, slots=True)
class Step:
    """One transform: its name and its options, as checked at load time."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


def _int_option(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: must be a whole number from {low} to {high}")
    return value


def _phone_options(options: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    code = options.get("default_country_code")
    if code is not None:
        text = scalar_text(code, "phone.default_country_code").strip().removeprefix("+")
        if not (text.isascii() and text.isdigit()) or _country_code_length(text) != len(text):
            what = (
                "is init-mapping's placeholder for the country of numbers written without one"
                if text == PLACEHOLDER
                else "is not a country calling code"
            )
            raise ValueError(
                f"phone.default_country_code: {code!r} {what}; write it without + or 00, "
                'e.g. "91" (India), "1" (US, Canada) or "44" (UK)'
            )
        checked["default_country_code"] = text
    if options.get("national_length") is not None:
        where = "phone.national_length"
        checked["national_length"] = _int_option(options["national_length"], where, 4, 14)
    return checked


def _number_options(options: dict[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    if options.get("decimals") is not None:
        checked["decimals"] = _int_option(options["decimals"], "number.decimals", 0, 10)
    if options.get("decimal") is not None:
        if options["decimal"] not in (".", ","):
            raise ValueError("number.decimal: must be '.' or ','")
        checked["decimal"] = options["decimal"]
    return checked


# The longest replacement text: each match of the pattern (at most MAX_TEXT + 1 of them, for
# one that matches the empty text) is replaced by it, so this bounds a result's length too.
MAX_REPLACEMENT = 1_000


def _replace_options(options: dict[str, Any]) -> dict[str, Any]:
    if "pattern" not in options:
        raise ValueError(
            "replace: give a pattern (a regular expression) and with (its replacement), "
            "e.g. {replace: {pattern: '\\s*ext\\.?\\s*\\d+$', with: ''}}"
        )
    pattern = options["pattern"]
    if not isinstance(pattern, str) or not pattern:
        raise ValueError("replace.pattern: must be a regular expression, in single quotes")
    replacement = "" if options.get("with") is None else scalar_text(options["with"], "with")
    if len(replacement) > MAX_REPLACEMENT:
        raise ValueError(f"replace.with: longer than {MAX_REPLACEMENT:,} characters")
    case = options.get("case", "sensitive")
    if case not in ("sensitive", "insensitive"):
        raise ValueError("replace.case: must be sensitive or insensitive")
    try:
        compiled = user_pattern(pattern, ignore_case=case == "insensitive")
    except ValueError as exc:
        raise ValueError(f"replace.pattern: {exc}") from None
    try:
        check_replacement(compiled.compiled, replacement)
    except (re.error, IndexError) as exc:
        shown = f"'{replacement}'" if replacement.isprintable() else repr(replacement)
        raise ValueError(
            f"replace.with: {shown} is not a replacement for this pattern ({exc}); "
            "\\1 or \\g<name> insert what a group matched, \\\\ a backslash"
        ) from None
    return {"pattern": pattern, "with": replacement, "case": case}


def check_replacement(pattern: re.Pattern[str], replacement: str) -> None:
    """Raise re.error (or IndexError) if ``replacement`` names a group ``pattern`` lacks or
    has a bad escape, as ``pattern.sub`` would on the first match: expanded on a match of a
    pattern with the same groups, all empty, which matches any text."""
    names = {index: name for name, index in pattern.groupindex.items()}
    groups = "".join(
        f"(?P<{names[i]}>)" if i in names else "()" for i in range(1, pattern.groups + 1)
    )
    found = re.match(groups, "")
    assert found is not None
    found.expand(replacement)


def _parse_step(item: Any) -> Step:
    if isinstance(item, str):
        name, options = item, None
    elif isinstance(item, dict) and len(item) == 1:
        ((name, options),) = item.items()
    else:
        raise ValueError(
            f"each transform is a name ({_TRANSFORM_NAMES}) or a name with options, "
            'e.g. {phone: {default_country_code: "91"}}'
        )
    if name in SIMPLE_TRANSFORMS:
        if options is not None:
            raise ValueError(f"transform {name!r} takes no options; write just {name}")
        return Step(name)
    if name not in _TRANSFORM_OPTIONS:
        raise ValueError(f"unknown transform {name!r}; allowed: {_TRANSFORM_NAMES}")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(f"{name}: its options must be a mapping, e.g. {{{name}: {{...}}}}")
    allowed = _TRANSFORM_OPTIONS[name]
    unknown = [str(key) for key in options if key not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown option {unknown[0]!r}; allowed: {', '.join(allowed)}")
    parse_options = {
        "phone": _phone_options,
        "number": _number_options,
        "replace": _replace_options,
    }[name]
    return Step(name, tuple(parse_options(options).items()))


def parse_transforms(value: Any) -> tuple[Step, ...]:
    if value is None:
        raise ValueError(f"is empty; give one of {_TRANSFORM_NAMES}, or a list of them")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError("must not be empty")
    return tuple(_parse_step(item) for item in items)


def parse_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(
            "must be a mapping of 'value in the file: value to send' lines, "
            'e.g. {Y: "Yes", N: "No"}'
        )
    if not value:
        raise ValueError("must not be empty")
    table: dict[str, str] = {}
    for key, sent in value.items():
        if isinstance(key, bool):
            raise ValueError(
                f"YAML read a key as {str(key).lower()} (from yes/no, on/off or "
                "true/false); quote it, e.g. 'yes': ..."
            )
        text = scalar_text(key, "a key").strip()
        table[text] = scalar_text(sent, f"the value for {text!r}")
    return table


# Country codes whose fixed-length numbering plans let us check the length and recognise a
# number written with its country code but without the '+' ('919845098450').
_NATIONAL_LENGTHS = {"1": 10, "91": 10}
# Where a leading 0 is part of the number, not a trunk prefix to drop (Italy, San Marino,
# Vatican City).
_NO_TRUNK_PREFIX = frozenset({"39", "378", "379"})
_MIN_NATIONAL_DIGITS = 6
_MAX_PHONE_DIGITS = 15  # E.164
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")


def phone_converter(step: Step, fail: Fail) -> Converter:
    """Normalise to LeadSquared's '+<country code>-<national number>' ('+91-9845098450')."""
    default_code: str | None = step.option("default_country_code")
    lengths = dict(_NATIONAL_LENGTHS)
    if default_code is not None and step.option("national_length") is not None:
        lengths[default_code] = step.option("national_length")

    def convert(text: str) -> str:
        # '+44 (0)20 ...': the bracketed 0 is the trunk prefix, dialled only nationally.
        compact = _PHONE_SEPARATORS.sub("", text.replace("(0)", ""))
        international = compact.startswith("+")
        digits = compact[1:] if international else compact
        if not (digits.isascii() and digits.isdigit()):
            raise fail(
                f"{show(text)} is not a phone number: only digits, a leading +, spaces, "
                "dashes, dots and parentheses are allowed"
            )
        if not international and digits.startswith("00"):  # international dialling prefix
            international, digits = True, digits[2:]
        if international:
            length = _country_code_length(digits)
            if length is None:
                raise fail(f"{show(text)} is not a phone number: no country code after the +")
            code, national = digits[:length], digits[length:]
        elif default_code is None:
            raise fail(
                f"{show(text)} has no country code; write it as +<code> <number>, or give "
                "the phone transform a default_country_code"
            )
        else:
            code, national = default_code, digits
            expected = lengths.get(code)
            if expected and len(digits) == len(code) + expected and digits.startswith(code):
                national = digits[len(code) :]  # written with its country code, without '+'
            elif national.startswith("0") and code not in _NO_TRUNK_PREFIX:
                national = national[1:]  # the trunk prefix
        expected = lengths.get(code)
        if expected is not None and len(national) != expected:
            raise fail(
                f"{show(text)} is not a +{code} phone number: {len(national)} digits after "
                f"the country code, expected {expected}"
            )
        if len(national) < _MIN_NATIONAL_DIGITS:
            raise fail(
                f"{show(text)} is not a phone number: too few digits ({len(national)} after "
                f"the country code, at least {_MIN_NATIONAL_DIGITS})"
            )
        if len(code) + len(national) > _MAX_PHONE_DIGITS:
            raise fail(
                f"{show(text)} is not a phone number: too many digits "
                f"(at most {_MAX_PHONE_DIGITS} with the country code)"
            )
        return f"+{code}-{national}"

    return convert


def replace_converter(step: Step, fail: Fail) -> Converter:
    """Replace each match of the step's pattern (checked at load, compiled here once) by its
    replacement. A text longer than the patterns' bound is refused rather than tried."""
    pattern = user_pattern(step.option("pattern"), ignore_case=step.option("case") == "insensitive")
    replacement: str = step.option("with")
    shown = step.option("pattern")

    def convert(text: str) -> str:
        try:
            return pattern.sub(replacement, text).strip()
        except TextTooLong as exc:
            raise fail(
                f"{exc} (transform replace '{shown}'); shorten the cell or clean it before "
                "the import"
            ) from None

    return convert


def number_converter(step: Step, fail: Fail) -> Converter:
    """Read a number written with thousands separators; send it with '.' and no grouping.

    A separator is accepted as a thousands separator only where one can stand (groups of
    three, or the Indian 1,49,999), so '1,5' is refused rather than read as 15.
    """
    decimals: int | None = step.option("decimals")
    point: str = step.option("decimal", ".")
    grouping = ("," if point == "." else ".") + " '\u00a0\u202f"
    sep = f"[{re.escape(grouping)}]"
    pattern = re.compile(
        rf"([+-]?)(\d+|\d{{1,3}}({sep})(?:\d{{2,3}}\3)*\d{{3}})?(?:{re.escape(point)}(\d*))?",
        re.ASCII,
    )
    quantum = Decimal(1).scaleb(-decimals) if decimals is not None else None
    comma_hint = (
        "if the file writes decimals with a comma, add decimal: ',' to the number transform"
    )

    def convert(text: str) -> str:
        found = pattern.fullmatch(text)
        if found is None or not (found[2] or found[4]):
            raise fail(
                f"{show(text)} is not a number (decimal separator {point!r}, thousands "
                f"separated by {grouping[0]!r}, a space or an apostrophe); "
                f"{comma_hint if point == '.' and ',' in text else 'fix the cell'}"
            )
        sign, whole, separator, fraction = found.groups()
        whole = (whole or "0").replace(separator, "") if separator else (whole or "0")
        number = Decimal(f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}")
        if quantum is not None:
            try:
                number = number.quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                raise fail(f"{show(text)} is too large a number") from None
        if number == 0:
            number = abs(number)  # no '-0.00'
        return format(number, "f")

    return convert


def map_converter(
    value_map: dict[str, str], key: str, fail: Fail, *, fold: bool, unmapped: str
) -> Converter:
    """Look the value up in the mapping's ``map``; ``unmapped`` says what to do when it is not
    there (error, keep or empty); ``fold`` compares casefolded."""
    table = {(k.casefold() if fold else k): v for k, v in value_map.items()}
    keys = list(value_map)
    allowed = ", ".join(repr(k) for k in keys[:20]) + (", ..." if len(keys) > 20 else "")

    def convert(text: str) -> str:
        found = table.get(text.casefold() if fold else text)
        if found is not None:
            return found
        if unmapped == "keep":
            return text
        if unmapped == "empty":
            return ""
        raise fail(
            f"{show(text)} is not in the map of {key}; allowed: {allowed}; add it to the map, "
            "or set unmapped: keep or empty"
        )

    return convert
