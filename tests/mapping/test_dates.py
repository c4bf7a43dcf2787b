"""Dates and date-times: formats, time zones, DST, and the fast parser against strptime."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from importer.exceptions import MappingError
from importer.mapping import Mapping, RowError, RowWarning, load_mapping
from importer.mapping.dates import fast_parser

from .conftest import base_mapping, build, map_mapping, sent_attribute, with_changes

# --------------------------------------------------------------------------- date-times


def datetime_mapping(load, zone: str, *formats: str, field_zone: str | None = None) -> Mapping:
    spec: dict[str, Any] = {"column": "at", "format": list(formats)}
    if field_zone:
        spec["timezone"] = field_zone
    return load(with_changes(source={"timezone": zone}, activity={"datetime": spec}))


def sent_time(mapping: Mapping, text: str) -> str:
    return build(mapping, email="a@x.io", at=text).body["Activity"]["ActivityDateTime"]


def test_datetime_formats_are_tried_in_order(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
    assert sent_time(mapping, "01/05/2024 15:00") == "2024-05-01 09:30:00"
    assert sent_time(mapping, "2024-05-01 15:00:00") == "2024-05-01 09:30:00"
    assert sent_time(mapping, "02/05/2024 01:00") == "2024-05-01 19:30:00"


def test_field_timezone_overrides_source_timezone(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%Y-%m-%d %H:%M", field_zone="Europe/London")
    assert sent_time(mapping, "2024-07-01 12:00") == "2024-07-01 11:00:00"


def test_unparsable_datetime_is_a_row_error_quoting_value_and_format(load):
    mapping = load(
        with_changes(activity={"datetime": {"column": "visited_at", "format": "%d/%m/%Y %H:%M"}})
    )
    with pytest.raises(RowError) as caught:
        build(mapping, email="a@x.io", visited_at="31/02/2024 10:00")
    assert (
        str(caught.value)
        == "column 'visited_at': cannot parse '31/02/2024 10:00' with format %d/%m/%Y %H:%M"
    )
    assert caught.value.column == "visited_at"


def test_unparsable_datetime_lists_every_format(load):
    mapping = datetime_mapping(load, "UTC", "%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
    with pytest.raises(RowError, match="with any of the formats %d/%m/%Y %H:%M, %Y-%m-%d %H:%M:%S"):
        sent_time(mapping, "tomorrow")


def test_datetime_default_is_parsed_too(load):
    spec = {"column": "at", "format": "%Y-%m-%d", "default": "2024-01-01"}
    mapping = load(with_changes(source={"timezone": "UTC"}, activity={"datetime": spec}))
    assert sent_time(mapping, "") == "2024-01-01 00:00:00"


def test_datetime_with_offset_in_the_text_keeps_that_offset(load):
    mapping = datetime_mapping(load, "Asia/Kolkata", "%Y-%m-%dT%H:%M:%S%z")
    assert sent_time(mapping, "2024-05-01T15:00:00+0200") == "2024-05-01 13:00:00"


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2024-03-09 12:00", "2024-03-09 17:00:00"),  # EST, -5
        ("2024-03-10 01:59", "2024-03-10 06:59:00"),  # last minute of EST
        ("2024-03-10 03:00", "2024-03-10 07:00:00"),  # EDT, -4
        ("2024-03-11 12:00", "2024-03-11 16:00:00"),
        ("2024-11-03 00:30", "2024-11-03 04:30:00"),  # EDT
        ("2024-11-03 01:30", "2024-11-03 05:30:00"),  # happens twice: the first (EDT) one
        ("2024-11-03 02:00", "2024-11-03 07:00:00"),  # EST
        ("2024-11-04 12:00", "2024-11-04 17:00:00"),
    ],
)
def test_dst_transitions_in_new_york(load, local, utc):
    mapping = datetime_mapping(load, "America/New_York", "%Y-%m-%d %H:%M")
    assert sent_time(mapping, local) == utc


# Both parsers: %b is not one the fast parser handles, so that format goes to strptime.
FAST_AND_STRPTIME = [
    ("%Y-%m-%d %H:%M", "2024-03-10 02:30"),
    ("%d %b %Y %H:%M", "10 Mar 2024 02:30"),
]


@pytest.mark.parametrize(("fmt", "text"), FAST_AND_STRPTIME, ids=["fast parser", "strptime"])
def test_a_time_in_the_spring_forward_gap_is_a_row_error(load, fmt, text):
    # 02:00 became 03:00 in New York that night: 02:30 names no instant. It used to be sent
    # as 07:30 UTC (03:30 local) without a word.
    assert (fast_parser(fmt) is None) == ("%b" in fmt)  # each parser is exercised
    mapping = datetime_mapping(load, "America/New_York", fmt)
    with pytest.raises(RowError) as caught:
        sent_time(mapping, text)
    assert caught.value.column == "at"
    assert str(caught.value) == (
        f"column 'at': '{text}' does not exist in America/New_York (the clocks skipped it); "
        "check the time and the time zone"
    )


def test_the_gap_is_refused_in_any_date_time_value_and_in_a_default(load):
    spec = {"column": "seen", "datetime": {"format": "%Y-%m-%d %H:%M:%S"}}
    mapping = load(
        with_changes(
            source={"timezone": "Europe/London"},
            lead={"attributes": {"EmailAddress": "email", "mx_Seen": spec}},
        )
    )
    with pytest.raises(RowError, match="'2024-03-31 01:15:00' does not exist in Europe/London"):
        build(mapping, email="a@x.io", seen="2024-03-31 01:15:00")
    spec["default"] = "2024-03-31 01:15:00"
    with pytest.raises(MappingError, match=r"mx_Seen\.default: .* does not exist in Europe/London"):
        load(
            with_changes(
                source={"timezone": "Europe/London"},
                lead={"attributes": {"EmailAddress": "email", "mx_Seen": spec}},
            )
        )


@pytest.mark.parametrize(
    ("fmt", "text"),
    [("%Y-%m-%d %H:%M", "2024-11-03 01:30"), ("%d %b %Y %H:%M", "03 Nov 2024 01:30")],
    ids=["fast parser", "strptime"],
)
def test_a_time_in_the_fall_back_fold_is_its_first_occurrence(load, fmt, text):
    # 01:30 happened twice (EDT, then EST): the first, 05:30 UTC, whichever parser reads it.
    mapping = datetime_mapping(load, "America/New_York", fmt)
    assert sent_time(mapping, text) == "2024-11-03 05:30:00"


def test_a_time_in_the_fold_is_a_warning_of_its_row_every_time(load):
    mapping = datetime_mapping(load, "America/New_York", "%Y-%m-%d %H:%M")
    fold = RowWarning(
        "'2024-11-03 01:30' happens twice in America/New_York (-04:00, then -05:00); "
        "sent as the first, 2024-11-03 05:30:00 UTC",
        "at",
    )
    # the converter caches its results: the second row with that text is warned about too
    for _ in range(2):
        assert build(mapping, email="a@x.io", at="2024-11-03 01:30").warnings == (fold,)
    assert build(mapping, email="a@x.io", at="2024-11-03 02:30").warnings == ()
    assert build(mapping, email="a@x.io", at="2024-11-03 00:30").warnings == ()
    # a row that fails after the fold leaves nothing behind for the next row
    with pytest.raises(RowError):
        build(mapping, email="", at="2024-11-03 01:30")
    assert build(mapping, email="a@x.io", at="2024-07-01 12:00").warnings == ()
    assert str(fold) == f"column 'at': {fold.message}"


def test_a_date_without_a_time_at_a_fold_midnight_is_no_warning(load):
    # Havana goes back from 01:00 to 00:00: midnight of that day happens twice, but a date
    # means the day's first instant, as documented.
    mapping = datetime_mapping(load, "America/Havana", "%Y-%m-%d")
    payload = build(mapping, email="a@x.io", at="2024-11-03")
    assert payload.warnings == ()


def test_a_template_date_time_in_the_fold_names_its_mapping_key(load):
    spec = {"template": "{day} {time}", "format": "%Y-%m-%d %H:%M"}
    mapping = load(
        with_changes(source={"timezone": "America/New_York"}, activity={"datetime": spec})
    )
    payload = build(mapping, email="a@x.io", day="2024-11-03", time="01:30")
    assert [str(w) for w in payload.warnings] == [
        "activity.datetime: '2024-11-03 01:30' happens twice in America/New_York "
        "(-04:00, then -05:00); sent as the first, 2024-11-03 05:30:00 UTC"
    ]


@pytest.mark.parametrize(
    ("zone", "fmt", "text"),
    [
        ("Asia/Kolkata", "%Y-%m-%d %H:%M", "0001-01-01 00:00"),
        ("America/New_York", "%Y-%m-%d %H:%M", "9999-12-31 23:00"),
        ("UTC", "%Y-%m-%dT%H:%M%z", "0001-01-01T00:00+0100"),
    ],
)
def test_a_date_time_beyond_the_calendar_in_utc_is_a_row_error(load, zone, fmt, text):
    # It raised OverflowError out of build(): an internal error (exit 70) for one cell.
    mapping = datetime_mapping(load, zone, fmt)
    with pytest.raises(RowError, match="outside the years 1 to 9999 once converted to UTC"):
        sent_time(mapping, text)


def test_a_skipped_midnight_is_the_first_instant_of_a_date_only_value(load):
    # Chile's clocks went from 00:00 to 01:00 on 8 September 2024: a date alone means that
    # day, which began at 01:00 local (04:00 UTC); a written 00:00 is refused.
    mapping = datetime_mapping(load, "America/Santiago", "%Y-%m-%d", "%Y-%m-%d %H:%M")
    assert sent_time(mapping, "2024-09-08") == "2024-09-08 04:00:00"
    with pytest.raises(RowError, match="does not exist in America/Santiago"):
        sent_time(mapping, "2024-09-08 00:00")


@pytest.mark.parametrize(
    "zone",
    [
        "Asia/Kolkata",
        "America/New_York",
        "America/Havana",  # its clocks jump at midnight: 2024-03-10 00:00 does not exist
        "Pacific/Kiritimati",  # UTC+14
        "Pacific/Pago_Pago",  # UTC-11
        "UTC",
    ],
)
@pytest.mark.parametrize("day", ["2024-01-01", "2024-03-10", "2024-11-03", "2024-12-31"])
def test_date_only_values_never_shift_a_day(load, zone, day):
    """A date is local midnight: sent in UTC, it is still that date in the file's zone."""
    mapping = datetime_mapping(load, zone, "%Y-%m-%d")
    sent = datetime.strptime(sent_time(mapping, day), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    local = sent.astimezone(ZoneInfo(zone))
    assert local.date() == date.fromisoformat(day)
    assert local.hour <= 1  # midnight, or 01:00 where midnight was skipped


@pytest.mark.parametrize(
    "fmt", ["%d/%m/%Y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y %H.%M"]
)
@pytest.mark.parametrize(
    "text",
    [
        "01/05/2024 15:00",
        "1/5/2024 3:07",
        " 1/05/2024 15:00",
        "01/05/2024   15:00",
        "01/05/2024\t15:00",
        "31/02/2024 10:00",
        "12/31/2024",
        "01/05/2024 15:00:00",
        "2024-05-01 15:00:00",
        "2024-05-01",
        "2024-5-1",
        "2024-05-01 24:00:00",
        "2024-05-01 23:59:60",
        "01.05.2024 15.00",
        "",
        "x",
    ],
)
def test_fast_parser_agrees_with_strptime(fmt, text):
    try:
        expected: datetime | None = datetime.strptime(text, fmt)
    except ValueError:
        expected = None
    parser = fast_parser(fmt)
    assert parser is not None
    assert parser(text) == expected


def test_formats_with_names_use_strptime(load):
    mapping = datetime_mapping(load, "UTC", "%d %b %Y %I:%M %p")
    assert sent_time(mapping, "01 May 2024 03:00 PM") == "2024-05-01 15:00:00"


# --------------------------------------------------------------------------- dates on any value


UTC_TEXT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def test_date_is_sent_as_written_without_time_zone(load):
    mapping = map_mapping(load, date="%d/%m/%Y")
    assert sent_attribute(mapping, opt="01/05/1990") == "1990-05-01"
    mapping = map_mapping(load, date={"format": ["%d/%m/%Y", "%Y-%m-%d %H:%M:%S"]})
    assert sent_attribute(mapping, opt="1990-05-01 00:00:00") == "1990-05-01"  # an Excel date


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize("day", ["2024-01-01", "2024-03-10", "2024-11-03"])
def test_date_never_shifts_a_day_whatever_the_source_zone(load, zone, day):
    attributes = {"EmailAddress": "email", "mx_Opt_In": {"column": "opt", "date": "%Y-%m-%d"}}
    mapping = load(with_changes(source={"timezone": zone}, lead={"attributes": attributes}))
    assert sent_attribute(mapping, opt=day) == day


def test_two_digit_year_is_refused_by_four_digit_year_format(load):
    mapping = map_mapping(load, date="%d/%m/%Y")
    with pytest.raises(RowError) as caught:
        sent_attribute(mapping, opt="01/05/24")
    assert "cannot parse '01/05/24' with format %d/%m/%Y" in str(caught.value)
    assert "two-digit year" in str(caught.value)
    assert sent_attribute(map_mapping(load, date="%d/%m/%y"), opt="01/05/24") == "2024-05-01"


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("Asia/Kolkata", "2024-03-10 01:00", "2024-03-09 19:30:00"),
        ("Asia/Kolkata", "2024-11-03 12:00", "2024-11-03 06:30:00"),
        ("America/New_York", "2024-03-10 01:00", "2024-03-10 06:00:00"),  # EST
        ("America/New_York", "2024-03-10 12:00", "2024-03-10 16:00:00"),  # EDT
        ("America/New_York", "2024-11-03 00:30", "2024-11-03 04:30:00"),  # EDT
        ("America/New_York", "2024-11-03 12:00", "2024-11-03 17:00:00"),  # EST
    ],
)
def test_datetime_on_a_lead_attribute_and_an_activity_field(load, zone, local, utc):
    spec = {"column": "at", "datetime": {"format": "%Y-%m-%d %H:%M", "timezone": zone}}
    data = with_changes(
        lead={"attributes": {"EmailAddress": "email", "mx_Seen": spec}},
        activity={"fields": {"mx_Custom_5": {**spec, "datetime": "%Y-%m-%d %H:%M"}}},
        source={"timezone": zone},
    )
    body = build(load(data), email="a@x.io", at=local).body
    assert body["LeadDetails"][1] == {"Attribute": "mx_Seen", "Value": utc}
    assert body["Activity"]["Fields"] == [{"SchemaName": "mx_Custom_5", "Value": utc}]
    assert re.fullmatch(UTC_TEXT, utc)


def test_datetime_value_needs_a_time_zone(write):
    data = base_mapping()
    del data["source"]
    data["lead"]["attributes"]["mx_City"] = {"column": "c", "datetime": "%Y-%m-%d %H:%M"}
    with pytest.raises(MappingError, match=r"give lead\.attributes\.mx_City\.datetime\.timezone"):
        load_mapping(write(data))


def test_constant_date_is_converted_once_at_load(load):
    attributes = {"EmailAddress": "email", "mx_Since": {"value": "01/04/2024", "date": "%d/%m/%Y"}}
    mapping = load(with_changes(lead={"attributes": attributes}))
    assert build(mapping, email="a@x.io").body["LeadDetails"][1]["Value"] == "2024-04-01"
