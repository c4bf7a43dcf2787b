"""``init-mapping``: a commented mapping skeleton written from an input file's header.

Why: the first mapping is the hardest step of a migration. Guessing the obvious columns
(``email`` -> EmailAddress, ``city`` -> mx_City), the date format of a date-time column and the
SearchBy attribute gets a user to a mapping that loads and validates at once; what cannot be
guessed (the activity code, columns with no obvious field) is left as a TODO comment.

    from importer.mapping.scaffold import write_mapping_skeleton
    made = write_mapping_skeleton("leads.csv", "leads.mapping.yaml")
    print(made.to_text())

With ``lead_fields`` (``LeadsMetaData.Get``, see :func:`importer.preflight.read_lead_fields`)
columns are matched to the account's schema and display names instead of a built-in list.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

from ..exceptions import MappingError
from ..reader import open_input
from .dates import check_zone
from .text import PLACEHOLDER
from .transforms import parse_transforms

__all__ = [
    "Skeleton",
    "default_output_path",
    "guess_datetime_formats",
    "skeleton_text",
    "write_mapping_skeleton",
]

# Header (lower case, letters and digits only) -> the standard lead field it usually holds.
_LEAD_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(
        ("email", "emailaddress", "emailid", "mail", "primaryemail", "emailaddr"), "EmailAddress"
    ),
    **dict.fromkeys(
        ("phone", "phonenumber", "phoneno", "telephone", "tel", "landline", "contactnumber"),
        "Phone",
    ),
    **dict.fromkeys(
        ("mobile", "mobilenumber", "mobileno", "mobilephone", "cell", "cellphone", "whatsapp"),
        "Mobile",
    ),
    **dict.fromkeys(("firstname", "fname", "givenname", "first", "forename"), "FirstName"),
    **dict.fromkeys(("lastname", "lname", "surname", "familyname", "last"), "LastName"),
    **dict.fromkeys(
        ("company", "companyname", "organisation", "organization", "employer", "account"),
        "Company",
    ),
    **dict.fromkeys(("jobtitle", "title", "designation", "position", "role"), "JobTitle"),
    **dict.fromkeys(("source", "leadsource"), "Source"),
    **dict.fromkeys(("stage", "leadstage", "prospectstage"), "ProspectStage"),
    **dict.fromkeys(("prospectid", "leadid"), "ProspectId"),
    **dict.fromkeys(("city", "town"), "mx_City"),
    **dict.fromkeys(("state", "province", "region"), "mx_State"),
    **dict.fromkeys(("country",), "mx_Country"),
    **dict.fromkeys(("zip", "zipcode", "pincode", "postcode", "postalcode"), "mx_Zip"),
}
_FULL_NAME = {"name", "fullname", "leadname", "contactname", "customername"}
_NOTE_HEADERS = {"note", "notes", "comment", "comments", "remark", "remarks", "description"}
_SEARCH_ORDER = ("EmailAddress", "Mobile", "Phone", "ProspectId")
_DATE_HINT = re.compile(r"date|time|_at$|\bat$|timestamp|created|updated|when|visited|dob|birth")
_BIRTH_HINT = re.compile(r"dob|birth", re.IGNORECASE)

# Tried in this order; the first that reads a value wins ties (day-first before month-first:
# most files outside the US are written that way, and the TODO says to check).
DATETIME_FORMATS = (
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %I:%M %p",
    "%d/%m/%Y %I:%M:%S %p",
    "%d/%m/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    # US exports (HubSpot, Salesforce): '3/7/2024 2:15 PM'
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %I:%M %p",
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%d-%b-%Y %H:%M",
    "%d-%b-%Y",
    "%d %b %Y",
)
SAMPLE_ROWS = 500

# A phone number as exports write them, an extension after it ('(206) 977-3615 ext. 12').
_EXTENSION = r"\s*(?:ext|x)\.?\s*\d+$"
_EXTENSION_RE = re.compile(_EXTENSION, re.IGNORECASE)
_PHONE_LIKE = re.compile(r"(?:\+|00)?[\d\s\-./()]{6,}")
_PHONE_TARGETS = ("Phone", "Mobile")
_COUNTRY_CODE_HINT = '"1" (US, Canada), "91" (India), "44" (UK)'


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def _q(text: str) -> str:
    """A YAML scalar for ``text``: plain when unambiguous, otherwise double-quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) and text.lower() not in {
        "yes",
        "no",
        "true",
        "false",
        "on",
        "off",
        "null",
        "y",
        "n",
    }:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _parses(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def guess_datetime_formats(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """Formats that together read every value (greedy, fewest first), and values none reads.

    ``(["%d/%m/%Y %H:%M"], [])`` for ``["27/07/2025 21:38"]``.
    """
    left = list(dict.fromkeys(v.strip() for v in values if v.strip()))
    chosen: list[str] = []
    # Most columns are not dates: give up early rather than try every format on every value.
    if not any(_parses(v, fmt) for v in left[:20] for fmt in DATETIME_FORMATS):
        return chosen, left
    while left:
        best, best_count = None, 0
        for fmt in DATETIME_FORMATS:
            if fmt in chosen:
                continue
            count = sum(_parses(v, fmt) for v in left)
            if count > best_count:
                best, best_count = fmt, count
        if best is None:
            break
        chosen.append(best)
        left = [v for v in left if not _parses(v, best)]
    return chosen, left


def _is_month_ambiguous(values: Sequence[str], formats: Sequence[str]) -> bool:
    """True when every value could be read day-first or month-first (e.g. 03/04/2024)."""
    swapped = [f.replace("%d", "%_").replace("%m", "%d").replace("%_", "%m") for f in formats]
    if swapped == list(formats):
        return False
    return all(any(_parses(v.strip(), f) for f in swapped) for v in values if v.strip())


# --------------------------------------------------------------------------------------------
# Matching columns to fields


@dataclass
class _Choice:
    column: str
    target: str | None = None  # lead attribute
    field_set: tuple[str, str] | None = None  # (CFS attribute, sub-field)
    comment: str = ""
    transform: list[str] = field(default_factory=list)  # YAML list items, comments included


def _looks_like_phones(values: Sequence[str]) -> bool:
    """Most filled values are phone numbers (an extension allowed), or none is filled."""
    filled = [v.strip() for v in values if v.strip()]
    phones = sum(bool(_PHONE_LIKE.fullmatch(_EXTENSION_RE.sub("", v))) for v in filled)
    return phones >= len(filled) * 0.9


def _phone_transform(values: Sequence[str], country_code: str | None) -> tuple[list[str], bool]:
    """The transform list of a phone column, and whether its country code is a placeholder."""
    filled = [v.strip() for v in values if v.strip()]
    steps = []
    if any(_EXTENSION_RE.search(v) for v in filled):
        steps.append(
            f"- {{replace: {{pattern: '{_EXTENSION}', case: insensitive}}}}  "
            '# drops an extension ("ext. 12"), which a phone number cannot hold'
        )
    international = bool(filled) and all(v.startswith(("+", "00")) for v in filled)
    if country_code is not None:
        steps.append(f"- {{phone: {{default_country_code: {_q(country_code)}}}}}")
    elif international:
        steps.append("- phone  # every number sampled has its country code")
    else:
        steps.append(
            f"- {{phone: {{default_country_code: {PLACEHOLDER}}}}}  # TODO: the country code of "
            f"numbers written without one, e.g. {_COUNTRY_CODE_HINT}"
        )
    return steps, country_code is None and not international


@dataclass
class _AccountFields:
    """LeadsMetaData.Get, indexed by normalised schema and display names."""

    by_name: dict[str, dict[str, Any]]
    index: dict[str, str]  # normalised name -> schema name
    sub_index: dict[str, tuple[str, str]]  # normalised "set + sub" -> (set, sub)

    @classmethod
    def of(cls, lead_fields: Sequence[dict[str, Any]]) -> _AccountFields:
        by_name: dict[str, dict[str, Any]] = {}
        index: dict[str, str] = {}
        sub_index: dict[str, tuple[str, str]] = {}
        for f in lead_fields:
            name = f.get("SchemaName")
            if not isinstance(name, str):
                continue
            by_name[name] = f
            names = {name, name.removeprefix("mx_"), str(f.get("DisplayName") or "")}
            if str(f.get("DataType", "")).lower() == "customobject":
                for sub in f.get("Fields") or ():
                    sub_name = sub.get("SchemaName") if isinstance(sub, dict) else None
                    if not isinstance(sub_name, str):
                        continue
                    for outer in names:
                        for inner in (sub_name, str(sub.get("DisplayName") or "")):
                            if outer and inner:
                                sub_index.setdefault(_norm(outer + inner), (name, sub_name))
                continue
            for each in names:
                if each:
                    index.setdefault(_norm(each), name)
        return cls(by_name, index, sub_index)

    def is_phone(self, name: str) -> bool:
        return str(self.by_name.get(name, {}).get("DataType", "")).lower() == "phone"

    def describe(self, name: str, sub: str | None = None) -> str:
        f = self.by_name[name]
        if sub is not None:
            subs = {s.get("SchemaName"): s for s in f.get("Fields") or () if isinstance(s, dict)}
            f = subs.get(sub, {})
        text = f"account field '{f.get('DisplayName') or name}' ({f.get('DataType') or '?'})"
        values = [o.get("Value") if isinstance(o, dict) else o for o in f.get("Options") or ()]
        options = [o for o in values if isinstance(o, str)]
        if options:
            text += f", dropdown: {', '.join(options[:10])}" + (
                ", ..." if len(options) > 10 else ""
            )
        return text


def _choose(column: str, account: _AccountFields | None) -> _Choice:
    key = _norm(column)
    guess = _LEAD_SYNONYMS.get(key)
    if account is None:
        if guess is not None:
            return _Choice(column, guess)
        if key in _FULL_NAME:
            return _Choice(column, "FirstName", comment="TODO: a full name; split it if you can")
        return _Choice(column)
    if key in account.index:
        name = account.index[key]
        return _Choice(column, name, comment=account.describe(name))
    if key in account.sub_index:
        outer, sub = account.sub_index[key]
        return _Choice(column, field_set=(outer, sub), comment=account.describe(outer, sub))
    if guess is not None and (guess in account.by_name or guess == "ProspectId"):
        comment = account.describe(guess) if guess in account.by_name else ""
        return _Choice(column, guess, comment=comment)
    if key in _FULL_NAME and "FirstName" in account.by_name:
        return _Choice(column, "FirstName", comment="TODO: a full name; split it if you can")
    return _Choice(column)


def _suggested_name(column: str) -> str:
    cleaned = re.sub(r"\W+", "_", column).strip("_") or "Field"
    return f"mx_{cleaned}"


# --------------------------------------------------------------------------------------------
# The skeleton


@dataclass
class Skeleton:
    """A written mapping skeleton and what it guessed."""

    path: Path
    input: str
    mapped: list[tuple[str, str]] = field(default_factory=list)
    """(column, mapping key) for each column put in the mapping."""
    unmapped: list[str] = field(default_factory=list)
    """Columns left commented out, for the user to place."""
    datetime_column: str | None = None
    online: bool = False
    placeholders: list[str] = field(default_factory=list)
    """Mapping keys written as a placeholder that fails ``validate`` until it is replaced
    (``activity.event`` always; ``source.timezone``, a phone's ``default_country_code``)."""

    def to_text(self) -> str:
        lines = [
            f"wrote {self.path}: {len(self.mapped)} of {len(self.mapped) + len(self.unmapped)} "
            f"columns of {self.input} mapped"
            + (" (matched to the account's lead fields)" if self.online else "")
        ]
        if self.unmapped:
            lines.append(f"left commented out, to place: {', '.join(self.unmapped)}")
        todo = self.placeholders or ["activity.event"]
        lines.append(
            f"next: set {_and(todo)} and review the TODO comments in {self.path}, then run "
            f"lsq-import validate {self.input} --mapping {self.path}"
        )
        return "\n".join(lines)


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def default_output_path(input_path: str | os.PathLike[str]) -> Path:
    """``leads.csv`` -> ``leads.mapping.yaml`` in the current folder."""
    return Path(f"{Path(input_path).stem}.mapping.yaml")


def skeleton_text(
    columns: Sequence[str],
    samples: Sequence[dict[str, str]],
    *,
    input_name: str,
    lead_fields: Sequence[dict[str, Any]] | None = None,
    timezone: str | None = None,
    country_code: str | None = None,
) -> tuple[str, Skeleton]:
    """The YAML text of a mapping skeleton for a file with ``columns``; and what it mapped.

    ``samples``: some of the file's rows, to recognise date-time columns and their format, and
    phone columns. ``timezone`` (of the date-times) and ``country_code`` (of phone numbers
    written without one) are written as given; without them, a date-time column gets
    ``source.timezone: TODO`` and a phone column without country codes
    ``default_country_code: TODO``, placeholders that fail ``validate`` until replaced (a
    guess such as UTC would pass it, and send every date-time hours off). The returned
    :class:`Skeleton` has a placeholder path.
    """
    account = _AccountFields.of(lead_fields) if lead_fields is not None else None
    made = Skeleton(path=Path("."), input=input_name, online=account is not None)
    attributes: list[_Choice] = []
    field_sets: dict[str, list[_Choice]] = {}
    taken: set[str | tuple[str, str]] = set()
    notes: list[str] = []
    dates: list[tuple[str, list[str], list[str], bool]] = []
    unknown: list[_Choice] = []

    for column in columns:
        values = [row.get(column, "") for row in samples]
        key = _norm(column)
        choice = _choose(column, account)
        target = choice.field_set or choice.target
        if target is not None and target not in taken:
            taken.add(target)
            is_phone = choice.target in _PHONE_TARGETS or bool(
                account and choice.target and account.is_phone(choice.target)
            )
            if choice.target is not None and is_phone and _looks_like_phones(values):
                choice.transform, placeholder = _phone_transform(values, country_code)
                if placeholder:
                    made.placeholders.append(
                        f"the country code in lead.attributes.{choice.target}.transform"
                    )
            if choice.field_set is not None:
                field_sets.setdefault(choice.field_set[0], []).append(choice)
            else:
                attributes.append(choice)
            continue
        if key in _NOTE_HEADERS:
            notes.append(column)
            continue
        formats, unread = guess_datetime_formats(values)
        filled = [v for v in values if v.strip()]
        looks_like_date = bool(formats) and len(unread) <= len(filled) // 10
        if looks_like_date or (_DATE_HINT.search(column.lower()) and not filled):
            dates.append((column, formats, unread, _is_month_ambiguous(filled, formats)))
            continue
        if target is not None:
            choice.comment = f"TODO: {target} is already mapped from another column"
        unknown.append(choice)

    search_by = next((name for name in _SEARCH_ORDER if name in taken), None)
    if search_by is None:
        # Nothing identifies a lead: propose the first column, loudly.
        first = unknown.pop(0) if unknown else _Choice(columns[0])
        first.target = "EmailAddress"
        first.comment = (
            "TODO: no e-mail or phone column found; map the column that identifies a lead "
            "and set search_by to its attribute"
        )
        attributes.insert(0, first)
        search_by = "EmailAddress"

    activity_dt = next((d for d in dates if not _BIRTH_HINT.search(d[0])), None)
    other_dates = [d for d in dates if d is not activity_dt]

    out: list[str] = [
        f"# lsq-import mapping for {input_name}, written by `lsq-import init-mapping`.",
        "# Review every TODO, then check it (nothing is sent):",
        f"#   lsq-import validate {input_name} --mapping <this file>",
        "# The language is described in mappings/README.md; names on the left are LeadSquared",
        "# schema names (Settings > Leads > Lead Fields), names on the right your columns.",
        "",
        "version: 1",
        "",
    ]
    if activity_dt is not None and timezone is not None:
        out += [
            "source:",
            "  # The IANA time zone the file's date-times are written in; they are converted to",
            "  # UTC for LeadSquared.",
            f"  timezone: {_q(timezone)}",
            "",
        ]
    elif activity_dt is not None:
        out += [
            "source:",
            "  # TODO: the IANA time zone the file's date-times are written in, e.g.",
            "  # America/New_York, Europe/London or Asia/Kolkata; they are converted to UTC for",
            f"  # LeadSquared. {PLACEHOLDER} fails `lsq-import validate` until you write it.",
            f"  timezone: {PLACEHOLDER}",
            "",
        ]
        made.placeholders.insert(0, "source.timezone")
    out += [
        "lead:",
        "  # The attribute LeadSquared finds the lead by (updated if found, created if not).",
        f"  search_by: {_q(search_by)}",
        "  attributes:",
    ]
    for choice in attributes:
        assert choice.target is not None
        comment = f"  # {choice.comment}" if choice.comment else ""
        if choice.transform:
            out += [
                f"    {_q(choice.target)}:{comment}",
                f"      column: {_q(choice.column)}",
                "      transform:",
                *(f"        {step}" for step in choice.transform),
            ]
        else:
            out.append(f"    {_q(choice.target)}: {_q(choice.column)}{comment}")
        made.mapped.append((choice.column, f"lead.attributes.{choice.target}"))
    for outer, subs in field_sets.items():
        out += [f"    {_q(outer)}:  # a custom field set", "      fields:"]
        for choice in subs:
            assert choice.field_set is not None
            sub = choice.field_set[1]
            comment = f"  # {choice.comment}" if choice.comment else ""
            out.append(f"        {_q(sub)}: {_q(choice.column)}{comment}")
            made.mapped.append((choice.column, f"lead.attributes.{outer}.fields.{sub}"))
    if unknown or other_dates:
        out += [
            "    # Columns not matched to a lead field. TODO: map each to the right lead field",
            "    # (or move it under activity.fields), or leave it out:",
        ]
        for choice in unknown:
            why = f"  # {choice.comment}" if choice.comment else ""
            out.append(f"    # {_q(_suggested_name(choice.column))}: {_q(choice.column)}{why}")
            made.unmapped.append(choice.column)
        for column, formats, _, _ in other_dates:
            shown = f" ({', '.join(formats)})" if formats else ""
            out.append(
                f"    # {_q(_suggested_name(column))}: {_q(column)}  # TODO: a date{shown}; "
                "LeadSquared wants YYYY-MM-DD"
            )
            made.unmapped.append(column)

    out += [
        "",
        "activity:",
        "  event: 0  # TODO: your activity code (Settings > Activities > Custom Activities)",
    ]
    made.placeholders.insert(0, "activity.event")
    if notes:
        template = " ".join(f"{{{column}}}" for column in notes)
        out.append(f"  note: {{template: {_q(template)}}}")
        made.mapped += [(column, "activity.note") for column in notes]
    if activity_dt is not None:
        column, formats, unread, ambiguous = activity_dt
        out.append("  # When the activity happened; sent to LeadSquared as UTC.")
        if formats:
            out += ["  datetime:", f"    column: {_q(column)}"]
            fmt_list = ", ".join(_q(f) for f in formats)
            todo = []
            if ambiguous:
                todo.append("check day and month order")
            if unread:
                todo.append(f"some values match no format, e.g. {unread[0]!r}")
            comment = f"  # TODO: {'; '.join(todo)}" if todo else "  # guessed from the data"
            out.append(f"    format: [{fmt_list}]{comment}")
            made.mapped.append((column, "activity.datetime"))
        else:
            out += [
                "  # TODO: no date format recognised; give strptime formats, e.g.:",
                "  # datetime:",
                f"  #   column: {_q(column)}",
                "  #   format: ['%d/%m/%Y %H:%M']",
            ]
            made.unmapped.append(column)
        made.datetime_column = column
    out += [
        "  # Custom activity fields by schema name, e.g.:",
        "  # fields:",
        "  #   mx_Custom_1: <column>",
        "",
        "options:",
        "  # true: LeadSquared skips its check of dropdown values on activity fields.",
        "  validate_dropdown_options: false",
        "",
    ]
    return "\n".join(out), made


def write_mapping_skeleton(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    lead_fields: Sequence[dict[str, Any]] | Callable[[], Sequence[dict[str, Any]]] | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    timezone: str | None = None,
    country_code: str | None = None,
) -> Skeleton:
    """Read ``input_path``'s header and first rows; write the skeleton to ``output``.

    ``output`` defaults to ``<input stem>.mapping.yaml`` in the current folder. An existing
    file is kept (MappingError) unless ``force``. ``lead_fields`` may be a callable (e.g.
    fetching ``LeadsMetaData``): it is called only once the input file has been read.
    ``timezone`` and ``country_code``: see :func:`skeleton_text`; checked before anything
    is read.
    """
    _check_choices(timezone, country_code)
    path = Path(output) if output is not None else default_output_path(input_path)
    if path.exists() and not force:
        raise MappingError(
            f"{path}: already exists; pass --force to overwrite it, or --output another file"
        )
    with open_input(input_path, sheet=sheet, encoding=encoding, delimiter=delimiter) as source:
        columns = list(source.columns)
        samples = [row.values for row in islice(source.rows(), SAMPLE_ROWS)]
    if callable(lead_fields):
        lead_fields = lead_fields()
    text, made = skeleton_text(
        columns,
        samples,
        input_name=os.fspath(input_path),
        lead_fields=lead_fields,
        timezone=timezone,
        country_code=country_code,
    )
    try:
        with open(path, "w" if force else "x", encoding="utf-8", newline="\n") as out:
            out.write(text)
    except FileExistsError:
        raise MappingError(
            f"{path}: already exists; pass --force to overwrite it, or --output another file"
        ) from None
    except OSError as exc:
        raise MappingError(f"{path}: cannot write the mapping ({exc.strerror})") from None
    made.path = path
    return made


def _check_choices(timezone: str | None, country_code: str | None) -> None:
    """Refuse a time zone or country code the mapping check would refuse, in its words."""
    try:
        check_zone(timezone)
    except ValueError as exc:
        raise MappingError(f"--timezone: {exc}") from None
    if country_code is not None:
        try:
            parse_transforms({"phone": {"default_country_code": country_code}})
        except ValueError as exc:
            raise MappingError(f"--country-code: {str(exc).split(': ', 1)[-1]}") from None
