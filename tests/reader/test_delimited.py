"""Tests for importer.reader.delimited: CSV/TSV/TXT input as numbered rows of text cells."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from importer.exceptions import InputFileError
from importer.reader import Row, open_input

from .conftest import input_error, numbers_and_values, read_all, write

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


def test_stopping_early_closes_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "a\n1\n2\n")
    with open_input(path) as f:
        rows = f.rows()
        next(rows)
        rows.close()  # a consumer that stops early (a run aborted on a fatal API error)
        assert f._handle is None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# CSV: errors


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
# CSV: nothing in the file ends reading early

# The text the reader once appended after the last line to find the end of the file: a line
# holding exactly that, or a cell ending with it, ended reading there (2000 rows, 1500 sent).
OLD_END_MARK = "\x00lsq-import end of file\x00"


@pytest.mark.parametrize(
    "line", [OLD_END_MARK, f"x@y.in,{OLD_END_MARK}", f'x@y.in,"{OLD_END_MARK}"']
)
def test_no_line_of_the_file_ends_reading(tmp_path: Path, line: str) -> None:
    # row 1501 is the odd line, past the first 64 KiB; all 2000 rows must still come out
    rows_text = [f"lead{i:05}@example.com,{'n' * 40}" for i in range(2, 2002)]
    rows_text[1501 - 2] = line
    path = write(tmp_path, "m.csv", "email,note\n" + "\n".join(rows_text) + "\n")
    rows = read_all(path)[1]
    assert [r.number for r in rows] == list(range(2, 2002))
    assert rows[-1] == Row(2001, {"email": "lead02001@example.com", "note": "n" * 40})
    assert all(not r.error for r in rows if r.number != 1501)
