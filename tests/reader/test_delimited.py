"""Tests for importer.reader.delimited: CSV/TSV/TXT input as numbered rows of text cells."""

from __future__ import annotations

import codecs
import csv
import errno
import io
import itertools
from pathlib import Path
from typing import Any

import pytest

from importer.exceptions import InputFileError, InputReadError
from importer.exitcodes import ExitStatus
from importer.reader import Row, delimited, open_input

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


def stray(line: int, column: str, resumed: bool = True) -> str:
    """The error of the row whose quote at ``line``/``column`` never closes."""
    message = (
        f"line {line}, column '{column}': a quoted cell opens here and is never closed, so it "
        "would run to the end of the file; check for a stray '\"' in this row"
    )
    return message + (f" (reading went on with line {line + 1})" if resumed else "")


def swallowing(line: int, column: str, last: int) -> str:
    """The error of the row whose quote at ``line``/``column`` swallows lines up to ``last``."""
    return (
        f"line {line}, column '{column}': a quoted cell opens here and swallows the lines after "
        f"it up to line {last}, where a quote ends it with text after it; check for a stray "
        f"'\"' in this row (reading went on with line {line + 1})"
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
def test_a_quote_never_closed_is_its_rows_error_and_the_lines_after_it_are_read(
    tmp_path: Path, end: str
) -> None:
    path = write(tmp_path, "q.csv", f'a,b\n1,2\n"3\n4",5\n6,"7\n8,9\n10,11{end}')
    # records: header 1, row 2, multi-line row 3; the quote opened on line 5 never closes:
    # row 4 is that line alone, and lines 6 and 7 are rows 5 and 6 as they would be without it
    assert read_all(path)[1] == [
        Row(2, {"a": "1", "b": "2"}),
        Row(3, {"a": "3\n4", "b": "5"}),
        Row(4, {"a": "6", "b": "7"}, error=stray(5, "b")),
        Row(5, {"a": "8", "b": "9"}),
        Row(6, {"a": "10", "b": "11"}),
    ]


def test_unclosed_quote_on_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'a\n1\n"2\n')
    assert read_all(path)[1] == [
        Row(2, {"a": "1"}),
        Row(3, {"a": "2"}, error=stray(3, "a", resumed=False)),
    ]


def test_an_unclosed_quote_after_a_multi_line_cell_of_the_same_row_names_its_own_line(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "q.csv", 'a,b,c\n"x\ny",2,"3\n4,5,6\n')
    assert read_all(path)[1] == [
        Row(2, {"a": "x\ny", "b": "2", "c": "3"}, error=stray(3, "c")),
        Row(3, {"a": "4", "b": "5", "c": "6"}),
    ]


def test_lines_read_again_after_a_stray_quote_keep_their_own_errors(tmp_path: Path) -> None:
    body = 'a,b\n1,"x\n2,Z\xfcrich\n3,y\n4,5,6\n'
    path = write(tmp_path, "q.csv", body, encoding="latin-1")
    assert read_all(path)[1] == [
        Row(2, {"a": "1", "b": "x"}, error=stray(2, "b")),
        Row(
            3,
            {"a": "2", "b": ""},
            error="line 3, column 'b': cannot decode as utf-8 (try --encoding cp1252)",
        ),
        Row(4, {"a": "3", "b": "y"}),
        Row(
            5,
            {"a": "4", "b": "5"},
            error="expected 2 cells, found 3; quote any cell that contains ','",
        ),
    ]


def test_a_stray_quote_closed_by_the_next_rows_quoted_note_is_found(tmp_path: Path) -> None:
    # The usual export: notes are quoted. A stray quote in row 3's city is closed by the quote
    # that opens row 4's note; csv.reader made one row of the two (too few cells, padded) and
    # row 4 vanished. A closing quote followed by text, in a cell that ran past a line end,
    # with the wrong number of cells: that is the stray quote's row, and row 4 is read again.
    path = write(
        tmp_path,
        "n.csv",
        "email,city,note\n"
        'a@x.in,Pune,"likes ""SIP"", calls back"\n'
        'b@x.in,"Goa,walk-in\n'
        'c@x.in,Agra,"Price sensitive, compare offers"\n'
        'd@x.in,Ooty,"two\nlines"\n',
    )
    assert read_all(path)[1] == [
        Row(2, {"email": "a@x.in", "city": "Pune", "note": 'likes "SIP", calls back'}),
        Row(
            3,
            {"email": "b@x.in", "city": "Goa,walk-in", "note": ""},
            error=swallowing(3, "city", 4),
        ),
        Row(4, {"email": "c@x.in", "city": "Agra", "note": "Price sensitive, compare offers"}),
        Row(5, {"email": "d@x.in", "city": "Ooty", "note": "two\nlines"}),
    ]


@pytest.mark.parametrize(
    "body",
    [
        'a,b,c\n1,"note\nwith ""quotes"", commas, and\n\nlines",3\n',  # the right cell count
        'a,b,c\n1,"short row\nof a multi-line note"\n',  # fewer cells: padded, as ever
        'a,b,c\n1,"a closing quote ""right""\nthen a comma",3,\n',  # a trailing delimiter
        'a,b,c\n1,"sloppy but right\ncount" with text after,3\n',  # text after, right count
    ],
)
def test_multi_line_cells_that_are_not_stray_quotes_read_as_before(
    tmp_path: Path, body: str
) -> None:
    path = write(tmp_path, "m.csv", body)
    with open(path, newline="", encoding="utf-8") as handle:
        expected = [cells for cells in csv.reader(handle)][1:]
    rows = read_all(path)[1]
    assert [r.error for r in rows] == [""]
    assert [list(r.values.values()) for r in rows] == [(expected[0] + ["", ""])[:3]]


def test_stray_quote_swallowing_a_huge_part_is_one_error_row_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    # Once a file error once rows were read (item 11), then the last row, swallowing 40,000
    # lines; now the row with the stray quote is the error row and the lines after it are rows.
    path = write(tmp_path, "q.csv", 'a,b\n1,2\n3,"4\n' + "5,6\n" * 40_000)
    rows = read_all(path)[1]
    assert rows[:2] == [
        Row(2, {"a": "1", "b": "2"}),
        Row(3, {"a": "", "b": ""}, error=stray(3, "b")),
    ]
    assert rows[2:] == [Row(n, {"a": "5", "b": "6"}) for n in range(4, 40_004)]


def test_a_ten_megabyte_cell_is_an_error_row_and_reading_goes_on(tmp_path: Path) -> None:
    # Once a file error; a cell that size is one row's problem, wherever the row is (item 11).
    path = write(tmp_path, "big.csv", "email,notes\na@x.com," + "x" * 10_000_000 + "\nb@x.com,ok\n")
    assert read_all(path)[1] == [
        Row(
            2,
            {"email": "", "notes": ""},
            error="line 2: a cell is longer than 131,072 characters "
            "(no LeadSquared field holds that much)",
        ),
        Row(3, {"email": "b@x.com", "notes": "ok"}),
    ]


def test_unclosed_quote_in_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'a,"b\n1,2\n')
    assert "row 1: a quoted cell in the header is never closed" in input_error(path)


def test_undecodable_bytes_suggest_an_encoding(tmp_path: Path) -> None:
    # The message is the row's error now, not the file's (item 11): the other rows are read.
    body = "name,city\n" + "".join(f"n{i},Pune\n" for i in range(5)) + "Renée,Zürich\nz,Goa\n"
    path = write(tmp_path, "leads.csv", body, encoding="cp1252")
    rows = read_all(path)[1]
    assert [r.number for r in rows] == [2, 3, 4, 5, 6, 7, 8]
    assert rows[5] == Row(
        7,
        {"name": "", "city": ""},
        error="line 7, column 'name': cannot decode as utf-8 (try --encoding cp1252)",
    )
    assert rows[6] == Row(8, {"name": "z", "city": "Goa"})


def test_undecodable_header(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", "näme\nx\n", encoding="cp1252")
    assert "line 1: cannot decode as utf-8" in input_error(path)


def test_undecodable_row_far_into_the_file(tmp_path: Path) -> None:
    # the bad byte sits past the first read buffer: once a file error after 5000 rows were
    # yielded (and sent), now that row's error (item 11)
    body = "a\n" + ("x" * 99 + "\n") * 5_000 + "é\n"
    path = write(tmp_path, "big.csv", body, encoding="latin-1")
    rows = read_all(path)[1]
    assert len(rows) == 5_001
    assert all(r == Row(n, {"a": "x" * 99}) for n, r in enumerate(rows[:-1], start=2))
    assert rows[-1] == Row(
        5002,
        {"a": ""},
        error="line 5002, column 'a': cannot decode as utf-8 (try --encoding cp1252)",
    )


def test_rows_before_an_undecodable_byte_in_the_same_block_come_out(tmp_path: Path) -> None:
    # The whole file is one 8 KiB read: a strict decoder failed for all of it, at open_input
    # (item 11). Now rows 2-4 come out, row 5 is the error row, and rows after it come out.
    body = "email,city\na@x.in,Pune\nb@x.in,Goa\nc@x.in,Agra\nd@x.in,Z\xfcrich\ne@x.in,Ooty\n"
    path = write(tmp_path, "w.csv", body, encoding="latin-1")
    assert read_all(path)[1] == [
        Row(2, {"email": "a@x.in", "city": "Pune"}),
        Row(3, {"email": "b@x.in", "city": "Goa"}),
        Row(4, {"email": "c@x.in", "city": "Agra"}),
        Row(
            5,
            {"email": "d@x.in", "city": ""},
            error="line 5, column 'city': cannot decode as utf-8 (try --encoding cp1252)",
        ),
        Row(6, {"email": "e@x.in", "city": "Ooty"}),
    ]


def test_undecodable_bytes_in_utf16_are_an_error_row_too(tmp_path: Path) -> None:
    # a lone surrogate half is not UTF-16: the decoder goes on after it, the rows with it
    data = codecs.BOM_UTF16_LE + "a,b\n1,2\n3,".encode("utf-16-le") + b"\x00\xd8"
    data += ",x\n5,6\n".encode("utf-16-le") + b"\x41"  # and an odd byte at the very end
    (tmp_path / "u.csv").write_bytes(data)
    rows = read_all(tmp_path / "u.csv")[1]
    hint = "cannot decode as utf-16 (check --encoding)"
    assert rows == [
        Row(2, {"a": "1", "b": "2"}),
        Row(3, {"a": "3", "b": ""}, error=f"line 3, column 'b': {hint}"),
        Row(4, {"a": "5", "b": "6"}),
        Row(5, {"a": "", "b": ""}, error=f"line 5, column 'a': {hint}"),
    ]


def test_a_long_cell_mid_file_is_an_error_row_and_reading_goes_on(tmp_path: Path) -> None:
    # row 400 holds a 200,000-character cell: once a file error after 398 rows were sent
    lines = [f"r{n}@x.in,{n}" for n in range(2, 600)]
    lines[400 - 2] = "big@x.in," + "y" * 200_000
    path = write(tmp_path, "l.csv", "email,n\n" + "\n".join(lines) + "\n")
    rows = read_all(path)[1]
    assert [r.number for r in rows] == list(range(2, 600))
    assert [r.number for r in rows if r.error] == [400]
    assert rows[400 - 2].error == (
        "line 400: a cell is longer than 131,072 characters (no LeadSquared field holds that much)"
    )
    assert rows[401 - 2] == Row(401, {"email": "r401@x.in", "n": "401"})


def test_a_long_quoted_cell_is_skipped_to_its_real_end(tmp_path: Path) -> None:
    # A huge quoted note whose lines look like rows: after csv.reader gives up on the cell,
    # none of those lines may come out as rows (they would be sent as leads).
    note = "".join(f'evil{i}@x.in,""quoted"",{i}\n' for i in range(20_000))
    body = f'email,note,n\na@x.in,ok,1\nb@x.in,"{note}",2\nc@x.in,"after\nit",3\nd@x.in,,4\n'
    path = write(tmp_path, "q.csv", body)
    rows = read_all(path)[1]
    assert rows == [
        Row(2, {"email": "a@x.in", "note": "ok", "n": "1"}),
        Row(
            3,
            {"email": "", "note": "", "n": ""},
            error="lines 3 to 20003: a cell is longer than 131,072 characters (no LeadSquared "
            "field holds that much); if the row has a stray '\"', it swallowed the lines after it",
        ),
        Row(4, {"email": "c@x.in", "note": "after\nit", "n": "3"}),
        Row(5, {"email": "d@x.in", "note": "", "n": "4"}),
    ]


@pytest.mark.parametrize("quoted", [False, True])
def test_following_the_quotes_agrees_with_csv_reader(quoted: bool) -> None:
    # every line of up to 7 characters of a , " with a line end, read from a record's start or
    # from inside a quoted cell: does csv.reader go on to the next line?
    for n in range(8):
        for chars in itertools.product('a,"', repeat=n):
            text = "".join(chars) + "\n"
            source = iter([('"' if quoted else "") + text, "next\n"])
            next(csv.reader(source))
            went_on = next(source, None) is None
            assert delimited._ends_in_quotes(text, quoted, ",") is went_on, (text, quoted)


def test_finding_a_stray_quote_agrees_with_csv_reader() -> None:
    # Every text of up to 7 characters of a , " and line ends, read as one record from its
    # start: the quote _stray_quote finds never closed is csv.reader's last cell of a record
    # that ran to the end; when it finds none, csv.reader's record ends before a line added
    # after the text, and when it finds one closed, the quote really is followed by text.
    for n in range(1, 8):
        for chars in itertools.product('a,"\n', repeat=n):
            text = "".join(chars)
            lines = text.splitlines(keepends=True)
            found = delimited._stray_quote(iter(lines), 1, ",")
            record = next(csv.reader(lines + ["#\n"]), [])
            if found is None:
                assert "#" not in "".join(record), text
            elif not found[2]:
                line, cell, _, _ = found
                assert "#" in record[-1] and cell == len(record) - 1, (text, found)
                assert lines[line - 1].count('"'), (text, found)
            else:
                line, cell, _, _ = found
                assert lines[line - 1].count('"') and line < len(lines), (text, found)


class _FailingRaw(io.RawIOBase):
    """A file whose disk fails after ``good`` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        self._data, self._good, self._pos = data, good, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._good:
            raise OSError(errno.EIO, "Input/output error")
        chunk = self._data[self._pos : min(self._good, self._pos + len(buffer))]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def test_an_io_error_mid_file_is_an_input_read_error_after_the_rows_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "email,n\n" + "".join(f"r{n}@x.in,{n}\n" for n in range(2, 20_002))
    path = write(tmp_path, "io.csv", body)
    real_open = open

    def failing_open(file: Any, mode: str = "r", **kwargs: Any) -> Any:
        if "b" in mode:
            return real_open(file, mode, **kwargs)
        raw = _FailingRaw(Path(file).read_bytes(), good=100_000)
        return io.TextIOWrapper(io.BufferedReader(raw), **kwargs)

    monkeypatch.setattr(delimited, "open", failing_open, raising=False)
    seen: list[Row] = []
    with open_input(path) as f, pytest.raises(InputReadError) as info:
        seen.extend(f.rows())
    assert len(seen) > 1_000 and seen == [
        Row(n, {"email": f"r{n}@x.in", "n": str(n)}) for n in range(2, len(seen) + 2)
    ]
    assert isinstance(info.value, InputFileError)
    assert info.value.exit_status is ExitStatus.INTERRUPTED
    assert str(info.value) == (
        f"{path}: reading broke off at row {len(seen) + 2} (Input/output error); "
        "the rows before it were read"
    )


@pytest.mark.parametrize("row", [5, 3_000])
def test_a_nul_anywhere_makes_its_row_an_error_row(tmp_path: Path, row: int) -> None:
    # Row 5 is in the first 64 KiB, where a NUL once refused the whole file; row 3000 is past
    # them, where it once went to LeadSquared inside a value (item 12). Both: that row's error.
    lines = [f"r{n}@x.in,note {n},{n}" for n in range(2, 4_000)]
    lines[row - 2] = f"r{row}@x.in,a\x00b,{row}"
    path = write(tmp_path, "n.csv", "email,note,n\n" + "\n".join(lines) + "\n")
    rows = read_all(path)[1]
    assert [r.number for r in rows] == list(range(2, 4_000))
    assert [r for r in rows if r.error] == [
        Row(
            row,
            {"email": f"r{row}@x.in", "note": "", "n": str(row)},
            error=f"line {row}, column 'note': holds a NUL character (binary data, not text); "
            "remove it",
        )
    ]
    assert all("\x00" not in v for r in rows for v in r.values.values())


def test_a_nul_in_a_multi_line_cell_names_its_line_and_extra_cells_by_number(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "n.csv", 'a,b\n1,"x\ny\x00"\n2,z\n3,q,\x00\n4,w\n')
    assert read_all(path)[1] == [
        Row(
            2,
            {"a": "1", "b": ""},
            error="line 3, column 'b': holds a NUL character (binary data, not text); remove it",
        ),
        Row(3, {"a": "2", "b": "z"}),
        Row(
            4,
            {"a": "3", "b": "q"},
            error="line 5, cell 3: holds a NUL character (binary data, not text); remove it",
        ),
        Row(5, {"a": "4", "b": "w"}),
    ]


def test_a_nul_in_the_header_is_a_binary_file(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", "email,ci\x00ty\na@x.in,Pune\n")
    assert input_error(path).endswith(
        "h.csv: contains binary data (NUL bytes), not CSV text; check the file "
        "(for UTF-16 text without a byte-order mark, use --encoding utf-16)"
    )


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
    assert "holds a NUL character" in rows[1501 - 2].error  # the old mark is made of NULs
