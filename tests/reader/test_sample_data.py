"""The sample data read through importer.reader: the CSV and the XLSX hold the same rows,
and sample_data/generate.py writes exactly the committed CSV."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .conftest import read_all

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


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
