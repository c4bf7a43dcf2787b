"""The reader on tests/corpus/: small real-world files, each with exactly what must come out.

The files are written by tests/corpus/make_corpus.py; a test below checks that the committed
text files are what that script writes, so the script documents their bytes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from importer.exceptions import InputFileError
from importer.reader import Row, open_input

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def read(name: str, **kwargs: object) -> tuple[list[str], list[Row]]:
    with open_input(CORPUS / name, **kwargs) as f:  # type: ignore[arg-type]
        return f.columns, list(f.rows())


def error(name: str, **kwargs: object) -> str:
    with pytest.raises(InputFileError) as info:
        read(name, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    prefix = f"{CORPUS / name}: "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


def test_bom_utf8() -> None:
    assert read("bom_utf8.csv") == (
        ["email", "city"],
        [
            Row(2, {"email": "asha@example.in", "city": "Pune"}),
            Row(3, {"email": "ravi@example.in", "city": "Kraków"}),
        ],
    )


def test_cp1252_needs_the_encoding_and_then_reads() -> None:
    # every row has an accent, so every row is an error row naming its line and first column
    hint = "cannot decode as utf-8 (try --encoding cp1252)"
    assert read("cp1252_accents.csv")[1] == [
        Row(2, {"name": "", "city": "", "note": ""}, error=f"line 2, column 'name': {hint}"),
        Row(3, {"name": "", "city": "", "note": ""}, error=f"line 3, column 'name': {hint}"),
    ]
    assert read("cp1252_accents.csv", encoding="cp1252")[1] == [
        Row(2, {"name": "Renée Dubois", "city": "Zürich", "note": "paid 5 €"}),
        Row(3, {"name": "José Nuñez", "city": "Málaga", "note": "señor"}),
    ]


def test_cp1252_read_as_latin1_differs_only_in_the_euro_sign() -> None:
    # latin-1 decodes every byte, so a wrong choice is silent: 0x80 is a control character there
    rows = read("cp1252_accents.csv", encoding="latin-1")[1]
    assert rows[0].values["note"] == "paid 5 \x80"
    assert rows[1].values == {"name": "José Nuñez", "city": "Málaga", "note": "señor"}


def test_semicolon_is_sniffed() -> None:
    with open_input(CORPUS / "semicolon.csv") as f:
        assert f.delimiter == ";"
        assert f.columns == ["Vorname", "Nachname", "Betrag", "Datum"]
        assert list(f.rows()) == [
            Row(2, {"Vorname": "Jürgen", "Nachname": "Müller", "Betrag": "1.234,56",
                    "Datum": "05.03.2024"}),
            Row(3, {"Vorname": "Anna", "Nachname": "Schmidt", "Betrag": "99,90",
                    "Datum": "06.03.2024"}),
        ]  # fmt: skip


def test_quoted_multiline() -> None:
    assert read("quoted_multiline.csv")[1] == [
        Row(2, {"name": "Rao, Priya", "notes": 'said "call me", then left',
                "phone": "09845098450"}),
        Row(3, {"name": "Iyer", "notes": "line one\nline two\nline three",
                "phone": "+91 98450 98450"}),
        # row 4 is the blank line; a spreadsheet numbers the three-line cell as one row
        Row(5, {"name": "Khan", "notes": "", "phone": ""}),
    ]  # fmt: skip


def test_ragged_long_row_is_an_error_row_short_row_is_padded() -> None:
    assert read("ragged.csv")[1] == [
        Row(2, {"name": "Asha", "city": "Pune", "amount": "100"}),
        Row(
            3,
            {"name": "Ravi", "city": "Mumbai", "amount": " MH"},
            error="expected 3 cells, found 4; quote any cell that contains ','",
        ),
        Row(4, {"name": "Meera", "city": "Delhi", "amount": ""}),
        Row(5, {"name": "John", "city": "Goa", "amount": "300"}),
    ]


def test_utf16_is_detected_by_its_bom() -> None:
    with open_input(CORPUS / "utf16.csv") as f:
        assert f.encoding == "utf-16"
        assert list(f.rows()) == [
            Row(2, {"name": "Renée", "city": "Zürich"}),
            Row(3, {"name": "李雷", "city": "北京"}),
        ]


def test_xlsx_dates_phones_header_on_row_2() -> None:
    with open_input(CORPUS / "dates_phones.xlsx") as f:
        assert (f.sheet_name, f.header_row) == ("Leads", 2)
        assert f.columns == ["name", "phone", "visited_at", "day", "amount"]
        assert list(f.rows()) == [
            Row(3, {"name": "Asha", "phone": "9845098450", "visited_at": "2024-03-05 14:30:00",
                    "day": "2024-03-05", "amount": "1499.5"},
                date_columns=frozenset({"visited_at", "day"})),
            # row 4 is empty; a date-time at midnight shows as a date, as Excel shows it
            Row(5, {"name": "Ravi", "phone": "919845098450", "visited_at": "2025-12-31",
                    "day": "2025-01-02", "amount": "250"},
                date_columns=frozenset({"visited_at", "day"})),
        ]  # fmt: skip


@pytest.mark.parametrize("sheet", ["Summary", 1, "1"])
def test_xlsx_second_sheet(sheet: str | int) -> None:
    assert read("dates_phones.xlsx", sheet=sheet) == (
        ["month", "leads"],
        [Row(2, {"month": "March", "leads": "2"})],
    )


def test_xlsx_1904_date_system() -> None:
    # stored as serial 43894.60..., which a reader ignoring the 1904 flag shows as 2020-03-04
    assert read("date1904.xlsx") == (
        ["name", "visited_at", "day"],
        [
            Row(
                2,
                {"name": "Asha", "visited_at": "2024-03-05 14:30:00", "day": "2024-03-05"},
                date_columns=frozenset({"visited_at", "day"}),
            )
        ],
    )


@pytest.mark.parametrize(
    ("name", "day"), [("legacy.xls", "2020-03-04"), ("legacy1904.xls", "2024-03-05")]
)
def test_xls_biff8_in_both_date_systems(name: str, day: str) -> None:
    # the same serial 43894 in both files; only the workbook's DATE1904 flag differs
    with open_input(CORPUS / name) as f:
        assert (f.sheet_name, f.columns) == ("Old", ["name", "phone", "day", "visited_at"])
        assert list(f.rows()) == [
            Row(2, {"name": "Asha", "phone": "9845098450", "day": day,
                    "visited_at": f"{day} 14:30:00"},
                date_columns=frozenset({"day", "visited_at"})),
            Row(4, {"name": "Renée", "phone": "", "day": "", "visited_at": f"{day} 12:00:00"},
                date_columns=frozenset({"visited_at"})),
        ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "duplicate_header.csv",
            "header has a duplicate column 'email' (columns 1 and 3); rename one of them",
        ),
        ("empty.csv", "the file is empty; expected a header row"),
        (
            "binary.csv",
            "contains binary data (NUL bytes), not CSV text; check the file "
            "(for UTF-16 text without a byte-order mark, use --encoding utf-16)",
        ),
        (
            "workbook_named.csv",
            "is a zip file, not CSV text (an Excel .xlsx workbook?); "
            "give it its .xlsx name, or export the sheet as CSV",
        ),
    ],
)
def test_file_errors(name: str, message: str) -> None:
    assert error(name) == message


def test_header_only() -> None:
    assert read("header_only.csv") == (["email", "name", "phone"], [])


def test_committed_text_files_are_what_make_corpus_writes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    make_corpus.main(tmp_path)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".py")
    for name, data in make_corpus.TEXT_FILES.items():
        assert (CORPUS / name).read_bytes() == data, name
    for name in ("legacy.xls", "legacy1904.xls"):
        assert (CORPUS / name).read_bytes() == (tmp_path / name).read_bytes(), name
    # xlsx bytes carry timestamps; what the reader makes of them must match
    for name in ("dates_phones.xlsx", "date1904.xlsx"):
        with open_input(tmp_path / name) as new, open_input(CORPUS / name) as old:
            assert (new.columns, list(new.rows())) == (old.columns, list(old.rows()))
