"""Tests for importer.reader: CSV and Excel input as numbered rows of text cells."""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from importer.exceptions import InputFileError
from importer.reader import InputFile, Row, open_input, render_cell

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def read_all(path: Path, **kwargs: object) -> tuple[list[str], list[Row]]:
    with open_input(path, **kwargs) as f:  # type: ignore[arg-type]
        return f.columns, list(f.rows())


def numbers_and_values(rows: list[Row]) -> list[tuple[int, list[str]]]:
    return [(r.number, list(r.values.values())) for r in rows]


def input_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputFileError) as info:
        read_all(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# --------------------------------------------------------------------------------------------
# CSV: cells as text


def test_csv_cells_stay_text_exactly_as_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "leads.csv",
        "phone,alt,flag,amount,empty\n"
        "09845098450,+91 98450 98450,NA,1499.00,\n"
        "+1 415 555 0100,null,N/A,250,\n"
        "0001,NaN,None,1e3,\n",
    )
    columns, rows = read_all(path)
    assert columns == ["phone", "alt", "flag", "amount", "empty"]
    assert rows == [
        Row(2, {"phone": "09845098450", "alt": "+91 98450 98450", "flag": "NA",
                "amount": "1499.00", "empty": ""}),
        Row(3, {"phone": "+1 415 555 0100", "alt": "null", "flag": "N/A",
                "amount": "250", "empty": ""}),
        Row(4, {"phone": "0001", "alt": "NaN", "flag": "None", "amount": "1e3", "empty": ""}),
    ]  # fmt: skip


def test_csv_quoted_cells_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        'name,note\n"Rao, Priya","said ""hi"", left"\n"Iyer","line one\nline two\nthree"\nX,Y\n',
    )
    _, rows = read_all(path)
    assert numbers_and_values(rows) == [
        (2, ["Rao, Priya", 'said "hi", left']),
        (3, ["Iyer", "line one\nline two\nthree"]),
        # three physical lines above are one record: the next row is still row 4
        (4, ["X", "Y"]),
    ]


def test_csv_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", "\ufeffemail,city\na@x.in,Pune\n")
    columns, rows = read_all(path)
    assert columns == ["email", "city"]
    assert rows[0].values == {"email": "a@x.in", "city": "Pune"}


def test_csv_explicit_utf8_still_strips_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.csv", "\ufeffemail\na@x.in\n")
    assert read_all(path, encoding="UTF8")[0] == ["email"]


def test_csv_blank_lines_count_but_are_not_yielded(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "a,b\r\n1,2\r\n\r\n,\r\n3,4\r\n\r\n\r\n")
    _, rows = read_all(path)
    assert numbers_and_values(rows) == [(2, ["1", "2"]), (5, ["3", "4"])]


def test_csv_leading_blank_lines_before_header(tmp_path: Path) -> None:
    path = write(tmp_path, "lead.csv", "\n,,\na,b,c\n1,2,3\n\n4,5,6\n")
    with open_input(path) as f:
        assert f.header_row == 3
        assert f.columns == ["a", "b", "c"]
        assert numbers_and_values(list(f.rows())) == [(4, ["1", "2", "3"]), (6, ["4", "5", "6"])]


def test_csv_no_trailing_newline_and_cr_only_line_ends(tmp_path: Path) -> None:
    assert numbers_and_values(read_all(write(tmp_path, "n.csv", "a,b\n1,2\n3,4"))[1]) == [
        (2, ["1", "2"]),
        (3, ["3", "4"]),
    ]
    assert numbers_and_values(read_all(write(tmp_path, "r.csv", "a,b\r1,2\r3,4\r"))[1]) == [
        (2, ["1", "2"]),
        (3, ["3", "4"]),
    ]


def test_csv_header_names_are_stripped_and_kept_as_written(tmp_path: Path) -> None:
    # pandas would call these "Email Id" "a.1"-style names; we must keep the user's names.
    path = write(tmp_path, "h.csv", " Email Id ,Unnamed: 3,a.1\nx,y,z\n")
    columns, rows = read_all(path)
    assert columns == ["Email Id", "Unnamed: 3", "a.1"]
    assert rows[0].values == {"Email Id": "x", "Unnamed: 3": "y", "a.1": "z"}


def test_tsv_uses_tab_and_txt_uses_comma(tmp_path: Path) -> None:
    tsv = write(tmp_path, "t.tsv", "a\tb\n1,5\t2\n")
    assert read_all(tsv)[1][0].values == {"a": "1,5", "b": "2"}
    txt = write(tmp_path, "t.txt", "a,b\n1,2\n")
    assert read_all(txt)[1][0].values == {"a": "1", "b": "2"}


def test_csv_custom_delimiter_and_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "semi.csv", "name;city\nRenée;Zürich\n", encoding="cp1252")
    _, rows = read_all(path, delimiter=";", encoding="cp1252")
    assert rows[0].values == {"name": "Renée", "city": "Zürich"}


def test_csv_short_row_is_padded_with_empty_cells(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a,b,c\n1,2\n4,5,6\n")
    assert numbers_and_values(read_all(path)[1]) == [(2, ["1", "2", ""]), (3, ["4", "5", "6"])]


def test_csv_multiline_blank_and_quoted_rows_keep_their_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.csv",
        'a,b\n1,"x\ny"\n\n3,z\n4,w\n,\n6,"q,r"\n7,s\n',
    )
    expected = [
        (2, ["1", "x\ny"]),
        (4, ["3", "z"]),
        (5, ["4", "w"]),
        (7, ["6", "q,r"]),
        (8, ["7", "s"]),
    ]
    assert numbers_and_values(read_all(path)[1]) == expected


def test_csv_header_only_gives_no_rows(tmp_path: Path) -> None:
    assert read_all(write(tmp_path, "h.csv", "a,b\n")) == (["a", "b"], [])
    assert read_all(write(tmp_path, "h2.csv", "a,b")) == (["a", "b"], [])


def test_rows_streams_and_may_be_called_once(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a\n1\n2\n3\n")
    with open_input(path) as f:
        assert isinstance(f, InputFile)
        rows = f.rows()
        assert next(rows) == Row(2, {"a": "1"})
        with pytest.raises(RuntimeError):
            f.rows()
    # leaving the block closed the file; the generator is finished cleanly
    rows.close()


def test_stopping_early_closes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a\n1\n2\n")
    with open_input(path) as f:
        rows = f.rows()
        next(rows)
        rows.close()  # a consumer that stops early (a run aborted on a fatal API error)
        assert f._handle is None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# CSV: errors


def test_missing_file(tmp_path: Path) -> None:
    assert input_error(tmp_path / "leads.csv").endswith("leads.csv: no such file")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert "is a directory" in input_error(tmp_path / "dir.csv")


@pytest.mark.parametrize("name", ["report.pdf", "leads.json", "leads"])
def test_unsupported_extension(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "a,b\n1,2\n")
    message = input_error(path)
    assert "unsupported file type" in message
    assert ".csv, .txt, .tsv, .xlsx, .xlsm, .xls" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "the file is empty" in input_error(write(tmp_path, "e.csv", ""))


def test_only_blank_lines_has_no_header(tmp_path: Path) -> None:
    assert "no header row" in input_error(write(tmp_path, "e.csv", "\n\n,,\n"))


def test_duplicate_header(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", "a,b,email,c,d,e,Email ,email\n")
    message = input_error(path)
    assert message.endswith(
        "leads.csv: header has a duplicate column 'email' (columns 3 and 8); rename one of them"
    )


def test_blank_header_name(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", "a,b,c, ,e\n1,2,3,4,5\n")
    assert "leads.csv: header has a blank column name (column 4)" in input_error(path)


def test_trailing_delimiter_in_header_is_a_blank_name(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "a,b,\n1,2,\n")
    assert "blank column name (column 3)" in input_error(path)


TOO_LONG = "expected 3 cells, found 4; quote any cell that contains ','"
UNCLOSED = (
    "a quoted cell is never closed, so the row runs to the end of the file; "
    "check for a stray '\"' in this row"
)


def test_long_row_is_an_error_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", 'a,b,c\n1,2,3\n"x\ny",2,3\n\n4,5,6\n7,8,9,10\n11,12,13\n')
    # records: header 1, 2, multi-line 3, blank 4, 5, the long row is 6
    assert read_all(path)[1] == [
        Row(2, {"a": "1", "b": "2", "c": "3"}),
        Row(3, {"a": "x\ny", "b": "2", "c": "3"}),
        Row(5, {"a": "4", "b": "5", "c": "6"}),
        Row(6, {"a": "7", "b": "8", "c": "9"}, error=TOO_LONG),
        Row(7, {"a": "11", "b": "12", "c": "13"}),
    ]


def test_long_first_data_row_is_an_error_row(tmp_path: Path) -> None:
    # pandas only warned (and dropped the extra cell) when the *first* data row was too long.
    path = write(tmp_path, "leads.csv", "a,b,c\n1,2,3,4\n5,6,7\n")
    assert read_all(path)[1] == [
        Row(2, {"a": "1", "b": "2", "c": "3"}, error=TOO_LONG),
        Row(3, {"a": "5", "b": "6", "c": "7"}),
    ]


def test_extra_empty_cells_are_not_an_error(tmp_path: Path) -> None:
    # some exports end every data row with a delimiter: nothing is lost, as in a spreadsheet
    path = write(tmp_path, "t.csv", "a,b\n1,2,\n3,4,, \n,,\n")
    assert read_all(path)[1] == [Row(2, {"a": "1", "b": "2"}), Row(3, {"a": "3", "b": "4"})]


def test_error_row_uses_the_delimiter_in_its_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a;b\n1;2\n3;4;5\n")
    assert read_all(path)[1][1] == Row(
        3, {"a": "3", "b": "4"}, error="expected 2 cells, found 3; quote any cell that contains ';'"
    )


def test_many_ragged_rows_each_become_error_rows(tmp_path: Path) -> None:
    lines = [f"{i},x" if i % 3 else f"{i},x,y" for i in range(1, 3001)]
    path = write(tmp_path, "r.csv", "n,v\n" + "\n".join(lines) + "\n")
    rows = read_all(path)[1]
    assert [r.number for r in rows] == list(range(2, 3002))
    bad = [r.number for r in rows if r.error]
    assert bad == [i + 1 for i in range(3, 3001, 3)]


@pytest.mark.parametrize("end", ["\n", ""])
def test_unclosed_quote_is_the_last_row_with_an_error(tmp_path: Path, end: str) -> None:
    path = write(tmp_path, "q.csv", f'a,b\n1,2\n"3\n4",5\n6,"7\n8,9{end}')
    # records: header 1, row 2, multi-line row 3, the quote opened on row 4 never closes
    assert read_all(path)[1] == [
        Row(2, {"a": "1", "b": "2"}),
        Row(3, {"a": "3\n4", "b": "5"}),
        Row(4, {"a": "6", "b": f"7\n8,9{end}"}, error=UNCLOSED),
    ]


def test_unclosed_quote_in_a_one_column_file(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'a\n1\n"2\n')
    assert read_all(path)[1] == [Row(2, {"a": "1"}), Row(3, {"a": "2\n"}, error=UNCLOSED)]


def test_stray_quote_swallowing_a_huge_part_is_a_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'a,b\n1,2\n3,"4\n' + "5,6\n" * 40_000)
    message = input_error(path)
    assert message.endswith(
        "row 3: a cell is longer than 131,072 characters (no LeadSquared field holds that "
        "much); if that row has a stray '\"', it swallowed the rows after it"
    )


def test_a_ten_megabyte_cell_is_a_clean_file_error(tmp_path: Path) -> None:
    path = write(tmp_path, "big.csv", "email,notes\na@x.com," + "x" * 10_000_000 + "\n")
    assert input_error(path).endswith(
        "row 2: a cell is longer than 131,072 characters "
        "(no LeadSquared field holds that much); if that row has "
        "a stray '\"', it swallowed the rows after it"
    )


def test_unclosed_quote_in_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'a,"b\n1,2\n')
    assert "row 1: a quoted cell in the header is never closed" in input_error(path)


def test_undecodable_bytes_suggest_an_encoding(tmp_path: Path) -> None:
    body = "name,city\n" + "".join(f"n{i},Pune\n" for i in range(5)) + "Renée,Zürich\n"
    path = write(tmp_path, "leads.csv", body, encoding="cp1252")
    message = input_error(path)
    assert message.endswith("leads.csv: line 7: cannot decode as utf-8 (try --encoding cp1252)")


def test_undecodable_header(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", "näme\nx\n", encoding="cp1252")
    assert "line 1: cannot decode as utf-8" in input_error(path)


def test_undecodable_row_far_into_the_file(tmp_path: Path) -> None:
    # the bad byte sits past the first read buffer, so earlier rows are yielded first
    body = "a\n" + ("x" * 99 + "\n") * 5_000 + "é\n"
    path = write(tmp_path, "big.csv", body, encoding="latin-1")
    seen = 0
    with (
        open_input(path) as f,
        pytest.raises(InputFileError, match="line 5002: cannot decode as utf-8"),
    ):
        for _ in f.rows():
            seen += 1
    assert seen > 0  # earlier chunks were yielded before the bad one was reached


@pytest.mark.parametrize("name", ["klingon", "base64", "rot13"])
def test_unknown_encoding(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, "a.csv", "a\n1\n")
    assert input_error(path, encoding=name).endswith(
        f"a.csv: unknown encoding '{name}' (try utf-8, cp1252, latin-1 or utf-16)"
    )


@pytest.mark.parametrize("delimiter", [";;", "", "\n", '"'])
def test_bad_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = write(tmp_path, "a.csv", "a\n1\n")
    assert "delimiter must be one character" in input_error(path, delimiter=delimiter)


# --------------------------------------------------------------------------------------------
# CSV: encodings and binary files


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_detected(tmp_path: Path, codec: str) -> None:
    text = "name,city\nRenée,Zürich\n"
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    if codec == "utf-16-be":
        data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    elif codec == "utf-16":
        data = text.encode("utf-16")
    path = tmp_path / "u.csv"
    path.write_bytes(data)
    with open_input(path) as f:
        assert f.encoding == "utf-16"
        assert list(f.rows()) == [Row(2, {"name": "Renée", "city": "Zürich"})]
    assert read_all(path, encoding="utf-16")[1] == [Row(2, {"name": "Renée", "city": "Zürich"})]


def test_utf16_without_bom_needs_the_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "u.csv", "a,b\n1,2\n", encoding="utf-16-le")
    assert "use --encoding utf-16" in input_error(path)
    assert read_all(path, encoding="utf-16-le") == (["a", "b"], [Row(2, {"a": "1", "b": "2"})])


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "ISO-8859-1", "windows-1252"])
def test_single_byte_encodings(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "e.csv", "name,note\nRenée,Müller señor\n", encoding=encoding)
    assert read_all(path, encoding=encoding)[1] == [
        Row(2, {"name": "Renée", "note": "Müller señor"})
    ]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00", "is a zip file, not CSV text (an Excel .xlsx workbook?)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "is an Office file, not CSV text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "contains binary data (NUL bytes)"),
    ],
)
def test_binary_file_named_csv(tmp_path: Path, head: bytes, expected: str) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(head + bytes(range(256)) * 4)
    assert f"leads.csv: {expected}" in input_error(path)


# --------------------------------------------------------------------------------------------
# CSV: delimiter


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("name;city;amount\nRenée;Zürich;1,5\nAsha;Pune;2,25\n", ";"),
        ("name\tcity\nRao, Asha\tPune\n", "\t"),
        ("name|city\nRao, Asha|Pune; MH\n", "|"),
        ("a,b,notes\n1,2,x;y;z\n", ","),
        ('"a;b",c\n"1;2",3\n', ","),
        ("a,b,c\n1,2,3\n4,5,6,7\n", ","),  # a ragged row does not flip the choice
        ("a;b;c\n", ";"),  # header only
        ("email\na@x.in\n", ","),  # one column: nothing to choose
        ("a;b,c\n1;2,3\n", ","),  # truly ambiguous: the earlier in the list wins
    ],
)
def test_delimiter_is_sniffed(tmp_path: Path, text: str, delimiter: str) -> None:
    path = write(tmp_path, "d.csv", text)
    with open_input(path) as f:
        assert f.delimiter == delimiter
    with open_input(path.rename(tmp_path / "d.txt")) as f:
        assert f.delimiter == delimiter


def test_semicolon_export_reads_without_options(tmp_path: Path) -> None:
    path = write(tmp_path, "eu.csv", "Name;Stadt;Betrag\r\nRenée;Zürich;1,5\r\n", encoding="cp1252")
    assert read_all(path, encoding="cp1252") == (
        ["Name", "Stadt", "Betrag"],
        [Row(2, {"Name": "Renée", "Stadt": "Zürich", "Betrag": "1,5"})],
    )


def test_sniffing_sees_past_a_long_first_chunk(tmp_path: Path) -> None:
    # the sample is cut mid-line; the cut line must not count as a too-long row
    body = "a;b\n" + "x,y;z\n" * 20_000
    path = write(tmp_path, "big.csv", body)
    with open_input(path) as f:
        assert f.delimiter == ";"
        assert sum(1 for _ in f.rows()) == 20_000


def test_explicit_delimiter_wins_and_tsv_stays_tab(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "a;b,c\n1;2,3\n")
    assert read_all(path, delimiter=";")[1] == [Row(2, {"a": "1", "b,c": "2,3"})]
    tsv = write(tmp_path, "d.tsv", "a;b;c\n1;2;3\n")
    assert read_all(tsv) == (["a;b;c"], [Row(2, {"a;b;c": "1;2;3"})])


# --------------------------------------------------------------------------------------------
# Excel


def make_xlsx(path: Path, sheets: dict[str, dict[str, object]]) -> Path:
    """sheets: name -> {cell reference: value}."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, cells in sheets.items():
        ws = wb.create_sheet(name)
        for ref, value in cells.items():
            ws[ref] = value
    wb.save(path)
    return path


def test_xlsx_values_rendered_as_text(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "x.xlsx",
        {
            "Leads": {
                "A1": "phone", "B1": "amount", "C1": "visited", "D1": "day", "E1": "at",
                "F1": "ok", "G1": "text_phone", "H1": "ratio", "I1": "blank",
                "A2": 9845098450, "B2": 1499.5, "C2": dt.datetime(2024, 3, 5, 14, 30),
                "D2": dt.date(2024, 1, 2), "E2": dt.time(9, 5, 7), "F2": True,
                "G2": "09845098450", "H2": 0.1, "I2": None,
                "A3": 919845098450.0, "B3": 250, "C3": dt.datetime(2025, 12, 31, 0, 0),
                "D3": "NA", "E3": "+91 98450 98450", "F3": False, "G3": "null", "H3": -2.5e-7,
            }
        },
    )  # fmt: skip
    columns, rows = read_all(path)
    assert columns == ["phone", "amount", "visited", "day", "at", "ok", "text_phone", "ratio",
                       "blank"]  # fmt: skip
    assert rows == [
        Row(2, {"phone": "9845098450", "amount": "1499.5", "visited": "2024-03-05 14:30:00",
                "day": "2024-01-02", "at": "09:05:07", "ok": "TRUE", "text_phone": "09845098450",
                "ratio": "0.1", "blank": ""}),
        Row(3, {"phone": "919845098450", "amount": "250", "visited": "2025-12-31",
                "day": "NA", "at": "+91 98450 98450", "ok": "FALSE", "text_phone": "null",
                "ratio": "-2.5e-07", "blank": ""}),
    ]  # fmt: skip


def test_xlsx_header_not_on_row_1_keeps_excel_row_numbers(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "x.xlsx",
        {"S": {"B3": "name", "C3": "email", "B4": "Asha", "C4": "a@x.in", "B6": "Ravi",
               "C9": "r@x.in"}},
    )  # fmt: skip
    with open_input(path) as f:
        assert f.header_row == 3
        assert f.sheet_name == "S"
        assert f.columns == ["name", "email"]
        assert numbers_and_values(list(f.rows())) == [
            (4, ["Asha", "a@x.in"]),
            (6, ["Ravi", ""]),
            (9, ["", "r@x.in"]),
        ]


def test_xlsx_multiline_cell_and_trailing_empty_rows(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["a", "b"])
    ws.append(["x\ny", 1])
    ws.append([None, None])
    ws.append(["z", 2])
    ws["A10"].number_format = "0.00"  # a formatted but empty cell far below
    wb.save(tmp_path / "m.xlsx")
    _, rows = read_all(tmp_path / "m.xlsx")
    assert numbers_and_values(rows) == [(2, ["x\ny", "1"]), (4, ["z", "2"])]


def two_sheets(tmp_path: Path) -> Path:
    return make_xlsx(
        tmp_path / "two.xlsx",
        {
            "January": {"A1": "email", "A2": "jan@x.in"},
            "February": {"A1": "mail", "A2": "feb@x.in", "A3": "feb2@x.in"},
        },
    )


@pytest.mark.parametrize(
    ("sheet", "expected"),
    [
        (None, [(2, ["jan@x.in"])]),
        (0, [(2, ["jan@x.in"])]),
        (1, [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),
        ("February", [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),
        ("1", [(2, ["feb@x.in"]), (3, ["feb2@x.in"])]),  # as a CLI would pass it
    ],
)
def test_xlsx_sheet_by_name_or_index(
    tmp_path: Path, sheet: str | int | None, expected: list[tuple[int, list[str]]]
) -> None:
    assert numbers_and_values(read_all(two_sheets(tmp_path), sheet=sheet)[1]) == expected


def test_xlsx_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    assert input_error(path, sheet="March").endswith(
        "no sheet named 'March' (sheets: 'January', 'February')"
    )
    assert "no sheet number 2 (sheets, counted from 0: 'January', 'February')" in input_error(
        path, sheet=2
    )


def test_xlsx_empty_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "e.xlsx", {"Blank": {}})
    assert "sheet 'Blank' is empty" in input_error(path)


def test_xlsx_duplicate_and_blank_header_use_column_letters(tmp_path: Path) -> None:
    dup = make_xlsx(tmp_path / "d.xlsx", {"S": {"B2": "email", "C2": "x", "D2": "email"}})
    assert "sheet 'S' header (row 2) has a duplicate column 'email' (columns B and D)" in (
        input_error(dup)
    )
    blank = make_xlsx(tmp_path / "b.xlsx", {"S": {"A1": "a", "C1": "c", "B2": "data"}})
    assert "has a blank column name (column B)" in input_error(blank)


def test_not_really_an_excel_file(tmp_path: Path) -> None:
    path = write(tmp_path, "fake.xlsx", "a,b\n1,2\n")
    assert "cannot read as an Excel workbook" in input_error(path)


def test_xlsm_suffix_is_read_as_excel(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "x.xlsx", {"S": {"A1": "a", "A2": 7}})
    path = path.rename(tmp_path / "x.xlsm")
    assert read_all(path) == (["a"], [Row(2, {"a": "7"})])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (9845098450.0, "9845098450"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-0.0, "0"),
        (1499.5, "1499.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (7, "7"),
        (True, "TRUE"),
        (dt.datetime(2024, 3, 5, 14, 29, 59, 999_999), "2024-03-05 14:30:00"),
        (dt.datetime(2024, 3, 5, 23, 59, 59, 600_000), "2024-03-06"),
        (dt.time(9, 5, 7), "09:05:07"),
        (dt.timedelta(hours=30, minutes=5), "30:05:00"),
    ],
)
def test_render_cell(value: object, text: str) -> None:
    assert render_cell(value) == text


# --------------------------------------------------------------------------------------------
# Sample data


def test_sample_csv_and_xlsx_hold_the_same_rows() -> None:
    csv_columns, csv_rows = read_all(SAMPLE_DIR / "leads.csv")
    xlsx_columns, xlsx_rows = read_all(SAMPLE_DIR / "leads.xlsx")
    assert csv_columns == xlsx_columns == [
        "first_name", "last_name", "email", "phone", "city", "kyc_status", "visited_at",
        "amount", "product", "notes",
    ]  # fmt: skip
    assert len(csv_rows) == len(xlsx_rows) == 200
    for c, x in zip(csv_rows, xlsx_rows, strict=True):
        assert c.number == x.number
        c_visited = dt.datetime.strptime(c.values["visited_at"], "%d/%m/%Y %H:%M")
        x_visited = dt.datetime.strptime(x.values["visited_at"], "%Y-%m-%d %H:%M:%S")
        assert c_visited == x_visited
        assert dt.datetime(2024, 1, 1) <= c_visited <= dt.datetime(2025, 12, 31, 23, 59)
        assert {**c.values, "visited_at": ""} == {**x.values, "visited_at": ""}
    # the multi-line notes must not shift the numbering: 200 records -> rows 2..201
    assert [r.number for r in csv_rows] == list(range(2, 202))


def test_sample_data_shape() -> None:
    _, rows = read_all(SAMPLE_DIR / "leads.csv")
    emails = [r.values["email"] for r in rows]
    repeated = {e for e in emails if emails.count(e) > 1}
    assert len(repeated) == 3 and all(emails.count(e) == 2 for e in repeated)
    assert sum("\n" in r.values["notes"] for r in rows) == 2
    assert any('"' in r.values["notes"] for r in rows)
    assert any("," in r.values["notes"] for r in rows)
    assert {r.values["kyc_status"] for r in rows} == {"Pending", "Verified", "Rejected"}
    phones = [r.values["phone"] for r in rows]
    assert any(p.startswith("+91 ") for p in phones)
    assert any(p.startswith("0") for p in phones)
    assert any(p.startswith("+1 ") for p in phones)


def test_generate_is_deterministic(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", SAMPLE_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    generate.main(tmp_path)
    assert (tmp_path / "leads.csv").read_bytes() == (SAMPLE_DIR / "leads.csv").read_bytes()
