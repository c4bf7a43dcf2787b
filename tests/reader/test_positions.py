"""Read positions: a reader started where an earlier one noted a record start reads on exactly as
a reader from the top would (same numbers, same values, same errors), whatever the file holds.

That is what lets a resume skip the rows already done without parsing them: a wrong number
there would skip a row never sent, or send one twice.
"""

from __future__ import annotations

import codecs
import contextlib
from pathlib import Path

import pytest

from importer.exceptions import InputFileError
from importer.reader import ReadPosition, Row, delimited, open_input

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture
def every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """A position at every row, so that each kind of record start is tried."""
    monkeypatch.setattr(delimited, "_FIRST_POSITION_EVERY", 1)


def read_with_positions(path: Path, **kwargs: object) -> tuple[list[Row], list[ReadPosition], str]:
    with open_input(path, **kwargs) as f:  # type: ignore[arg-type]
        rows = list(f.rows())
        return rows, f.positions, f.read_settings


def read_from(path: Path, start: ReadPosition, **kwargs: object) -> list[Row]:
    with open_input(path, **kwargs) as f:  # type: ignore[arg-type]
        return list(f.rows(start=start))


def check_every_position(path: Path, **kwargs: object) -> int:
    rows, positions, settings = read_with_positions(path, **kwargs)
    assert settings
    for position in positions:
        expected = [row for row in rows if row.number >= position.row]
        assert read_from(path, position, **kwargs) == expected, position
    return len(positions)


TRICKY = (
    "email,name,note\n"
    'a@x.in,Asha,"two\nlines"\n'
    "\n"  # a blank line is a row too
    'b@x.in,Ravi,"a ""quoted"" word, and a comma"\n'
    'c@x.in,"Stray,quote\n'  # a stray quote: swallows the lines after it
    "d@x.in,Meera,plain\n"
    "e@x.in,Kiran,plain\r\n"
    "f@x.in,Dev,extra,cells\n"
    'g@x.in,Ana,"three\nline\nnote"\n'
    "h@x.in,Zoë,ünïcödé\n"
    "i@x.in,Last,end\n"
)


@pytest.mark.usefixtures("every_row")
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_a_reader_started_at_any_position_reads_on_as_from_the_top(
    tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "tricky.csv"
    path.write_bytes(TRICKY.encode(encoding))
    kwargs = {"encoding": encoding} if encoding == "cp1252" else {}
    # Positions at the rows after the stray quote too (read again from the kept lines first).
    assert check_every_position(path, **kwargs) >= 5


@pytest.mark.usefixtures("every_row")
def test_positions_in_the_corpus_files(tmp_path: Path) -> None:
    taken = 0
    for path in sorted(CORPUS.glob("*.csv")) + sorted(CORPUS.glob("*.tsv")):
        with contextlib.suppress(InputFileError):  # refused before any row: no position
            taken += check_every_position(path)
    assert taken > 5


@pytest.mark.usefixtures("every_row")
def test_undecodable_bytes_and_an_oversized_cell(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    big = "x" * 140_000
    path.write_bytes(
        b"email,note\n"
        b"a@x.in,fine\n"
        b"b@x.in,caf\xe9\n"  # not UTF-8: an error row naming line 3
        + f'c@x.in,"{big}\nstill the same cell"\n'.encode()
        + b"d@x.in,after\n"
        b"e@x.in,end\n"
    )
    rows, positions, _ = read_with_positions(path)
    assert [r.number for r in rows] == [2, 3, 4, 5, 6]
    assert rows[1].error and rows[2].error and not rows[3].error
    check_every_position(path)


def test_positions_stay_few_and_spread_over_a_long_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delimited, "_FIRST_POSITION_EVERY", 16)
    monkeypatch.setattr(delimited, "_MAX_POSITIONS", 8)
    path = tmp_path / "long.csv"
    path.write_text("email,n\n" + "".join(f"l{i}@x.in,{i}\n" for i in range(1000)))
    rows, positions, _ = read_with_positions(path)
    assert 4 <= len(positions) <= 8
    gaps = [b.row - a.row for a, b in zip(positions, positions[1:], strict=False)]
    assert max(gaps) <= 2 * min(gaps)  # evenly spread, not all at the start
    assert positions[-1].row > 1000 - 2 * gaps[0]
    last = positions[-1]
    assert read_from(path, last) == rows[last.row - 2 :]


def test_a_bom_file_started_part_way_does_not_lose_its_first_characters(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        codecs.BOM_UTF8 + "".join(["email\n"] + [f"é{i}@x.in\n" for i in range(9000)]).encode()
    )
    rows, positions, _ = read_with_positions(path)
    assert positions
    start = positions[0]
    assert read_from(path, start)[0] == rows[start.row - 2]


def test_excel_takes_no_position(tmp_path: Path) -> None:
    xlsx = next(CORPUS.glob("*.xlsx"))
    with open_input(xlsx) as f:
        assert f.positions == [] and f.read_settings == ""
        with pytest.raises(ValueError):
            f.rows(start=ReadPosition(5, 4, 100))
