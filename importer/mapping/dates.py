"""Dates and date-times: formats and time zones checked at load, the parsers, the converters.

A date is sent as the calendar day written (``YYYY-MM-DD``); a date-time is read in its time
zone and sent in UTC (``YYYY-MM-DD HH:MM:SS``), the form LeadSquared stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .text import PLACEHOLDER, show
from .transforms import Converter, Fail, cached

TIME_ZONE_HINT = "use an IANA name such as Asia/Kolkata, America/New_York or UTC"


def _zone(name: str) -> ZoneInfo:
    if name == PLACEHOLDER:
        raise ValueError(
            f"{PLACEHOLDER} is init-mapping's placeholder: write the time zone the file's "
            f"date-times are written in ({TIME_ZONE_HINT})"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; {TIME_ZONE_HINT}") from None


def check_zone(name: str | None) -> str | None:
    if name is not None:
        _zone(name)
    return name


def check_formats(formats: list[str]) -> list[str]:
    for fmt in formats:
        _check_format(fmt)
    return formats


_DATE_DIRECTIVES = re.compile(r"%[Yy]|%[cx]")


def _check_format(fmt: str) -> None:
    """Refuse formats strptime cannot use, and the common 'dd/mm/yyyy' mistake."""
    if not _DATE_DIRECTIVES.search(fmt.replace("%%", "")):
        raise ValueError(
            f"format {fmt!r} has no year directive; write it with strptime codes, "
            "e.g. '%d/%m/%Y %H:%M' or '%Y-%m-%d'"
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        datetime.strptime(sample.strftime(fmt), fmt)
    except (ValueError, re.error) as exc:  # re.error: a directive given twice
        raise ValueError(
            f"format {fmt!r} cannot be used by strptime ({exc}); see "
            "https://docs.python.org/3/library/datetime.html#format-codes"
        ) from None


# strptime's own regexes for these directives (CPython's _strptime.TimeRE): a format made of
# only these is parsed by fast_parser, several times faster than strptime, same results.
_FAST_DIRECTIVES = {
    "Y": r"(\d\d\d\d)",
    "m": r"(1[0-2]|0[1-9]|[1-9])",
    "d": r"(3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])",
    "H": r"(2[0-3]|[0-1]\d|\d)",
    "M": r"([0-5]\d|\d)",
    "S": r"(6[0-1]|[0-5]\d|\d)",
}
_FAST_FIELDS = {"Y": "year", "m": "month", "d": "day", "H": "hour", "M": "minute", "S": "second"}


def fast_parser(fmt: str) -> Callable[[str], datetime | None] | None:
    """A strptime equivalent for numeric formats such as '%d/%m/%Y %H:%M', or None.

    Mirrors strptime: literals match case-insensitively, a whitespace run matches any
    whitespace run, the match must start at the beginning and end at the end, and an
    out-of-range value (31 February) is no match.
    """
    pattern: list[str] = []
    fields: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            directive = fmt[i + 1 : i + 2]
            if directive == "%":
                pattern.append("%")
            elif directive in _FAST_DIRECTIVES and _FAST_FIELDS[directive] not in fields:
                pattern.append(_FAST_DIRECTIVES[directive])
                fields.append(_FAST_FIELDS[directive])
            else:
                return None
            i += 2
        elif ch.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            pattern.append(r"\s+")
        else:
            pattern.append(re.escape(ch))
            i += 1
    if "year" not in fields:
        return None
    regex = re.compile("".join(pattern), re.IGNORECASE)
    # Positions in groups() + ("1", "0") of year, month, day, hour, minute, second: a field
    # the format lacks takes strptime's default (month and day 1, time 0).
    defaults = {"month": -2, "day": -2}
    picks = [
        fields.index(name) if name in fields else defaults.get(name, -1)
        for name in ("year", "month", "day", "hour", "minute", "second")
    ]

    def parse(text: str) -> datetime | None:
        found = regex.match(text)
        if found is None or found.end() != len(text):
            return None
        groups = (*found.groups(), "1", "0")
        year, month, day, hour, minute, second = (int(groups[pick]) for pick in picks)
        try:
            return datetime(year, month, day, hour, minute, second)
        except ValueError:
            return None

    return parse


def _strptime_parser(fmt: str) -> Callable[[str], datetime | None]:
    def parse(text: str) -> datetime | None:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            return None

    return parse


_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}[^\d\s]\d{1,2}[^\d\s]\d{2}(?!\d)")


def _date_parser(formats: list[str]) -> Callable[[str], datetime | None]:
    parsers = [fast_parser(fmt) or _strptime_parser(fmt) for fmt in formats]
    if len(parsers) == 1:
        return parsers[0]

    def parse(text: str) -> datetime | None:
        for parser in parsers:
            parsed = parser(text)
            if parsed is not None:
                return parsed
        return None

    return parse


def _unparsed(text: str, formats: list[str]) -> str:
    shown = ", ".join(formats)
    tried = f"with format {shown}" if len(formats) == 1 else f"with any of the formats {shown}"
    message = f"cannot parse {show(text)} {tried}"
    uses_short_year = any("%y" in fmt.replace("%%", "") for fmt in formats)
    if not uses_short_year and not re.search(r"\d{4}", text) and _TWO_DIGIT_YEAR.search(text):
        # strptime's %Y wants four digits, so '01/05/24' is refused rather than read as year 24.
        message += (
            "; it looks like a two-digit year, which %Y does not accept: write the year in "
            "full, or use %y in the format if two-digit years are intended"
        )
    return message


# Directives that read a time of day. A format without any (a date alone) means local
# midnight, and where a zone's clocks skip midnight (Chile, Cuba, Lebanon, Egypt and others
# start daylight saving time at 00:00) that is the day's first instant, not an error.
_TIME_DIRECTIVES = re.compile(r"%[HIMSfpXcTRr]")


def _reads_time(fmt: str) -> bool:
    return _TIME_DIRECTIVES.search(fmt.replace("%%", "")) is not None


def datetime_converter(
    formats: list[str], zone: ZoneInfo, fail: Fail, warn: Callable[[str], None] | None = None
) -> Converter:
    """Parse local text with the first matching format; return UTC 'YYYY-MM-DD HH:MM:SS'.

    Files repeat date-times a lot (one import batch, one event day), so results are cached per
    distinct text. A local time the clocks skipped (a spring-forward gap) names no instant: it
    is a row error rather than a guess an hour off. A time the clocks went through twice (a
    fall-back fold) is its first occurrence (zoneinfo's fold=0, PEP 495's default): one fixed
    reading, and the file gives nothing to tell the two apart; ``warn`` is called with a
    one-line message naming both readings each time such a text is converted, cached or not.
    A date without a time is never warned about: it means the day's first instant.
    """
    parsers = [(fast_parser(fmt) or _strptime_parser(fmt), _reads_time(fmt)) for fmt in formats]
    folds: dict[str, str] = {}  # text -> its warning, for the texts in a fold

    def parse(text: str) -> tuple[datetime, bool]:
        """The value and whether its format read a time of day."""
        for parser, reads_time in parsers:
            parsed = parser(text)
            if parsed is not None:
                return parsed, reads_time
        raise fail(_unparsed(text, formats))

    def convert(text: str) -> str:
        parsed, reads_time = parse(text)
        try:
            return _to_utc(text, parsed, reads_time)
        except OverflowError:  # year 1 east of Greenwich, year 9999 west of it
            raise fail(
                f"{show(text)} is outside the years 1 to 9999 once converted to UTC; check the year"
            ) from None

    def _to_utc(text: str, parsed: datetime, reads_time: bool) -> str:
        if parsed.tzinfo is None:
            local = parsed.replace(tzinfo=zone)
            utc = local.astimezone(UTC)
            # A skipped time does not survive the round trip: 02:30 on the night New York
            # goes from 02:00 to 03:00 comes back as 03:30.
            if reads_time and utc.astimezone(zone).replace(tzinfo=None) != parsed:
                raise fail(
                    f"{show(text)} does not exist in {zone.key} (the clocks skipped it); "
                    "check the time and the time zone"
                )
            if reads_time and warn is not None:
                second = local.replace(fold=1)
                if second.utcoffset() != local.utcoffset():
                    folds[text] = (
                        f"{show(text)} happens twice in {zone.key} ({_offset(local)}, then "
                        f"{_offset(second)}); sent as the first, {_utc_text(utc)} UTC"
                    )
        else:
            utc = parsed.astimezone(UTC)
        return _utc_text(utc)

    converted = cached(convert)
    if warn is None:
        return converted

    def convert_and_warn(text: str) -> str:
        result = converted(text)
        if folds:  # empty unless the file has a time in a fold: one truth test a value
            message = folds.get(text)
            if message is not None:
                warn(message)
        return result

    return convert_and_warn


def _utc_text(utc: datetime) -> str:
    # isoformat zero-pads the year (strftime('%Y') does not before 1000 on glibc); the first
    # 19 characters drop microseconds and the '+00:00'.
    return utc.isoformat(" ")[:19]


def _offset(local: datetime) -> str:
    """'-04:00': the UTC offset of an aware local time."""
    offset = local.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def date_converter(formats: list[str], fail: Fail) -> Converter:
    """Parse with the first matching format; return the date as written, 'YYYY-MM-DD'.

    No time zone is involved on purpose: a date of birth or a due date is a calendar day, and
    converting its midnight to UTC would move it to the previous day east of Greenwich.
    """
    parse = _date_parser(formats)

    def convert(text: str) -> str:
        parsed = parse(text)
        if parsed is None:
            raise fail(_unparsed(text, formats))
        return parsed.date().isoformat()

    return cached(convert)
