"""A pandas DataFrame as input: cells rendered as a reader renders them, rows numbered from 2,
the same payloads as the same data in a CSV, and a resume keyed to the frame's content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from importer import run_import
from importer.exceptions import ConfigError, InputFileError, ResultsFileError
from importer.reader.frame import frame_digest, open_frame
from importer.validate import validate_file

from ..conftest import EXAMPLE_MAPPING, SAMPLE_CSV, SANDBOX_KEYS, read_results

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


def rows_of(frame: Any) -> list[tuple[int, dict[str, str]]]:
    with open_frame(frame) as source:
        return [(row.number, row.values) for row in source.rows()]


def test_cells_are_rendered_as_text_the_way_the_readers_render_them() -> None:
    frame = pd.DataFrame(
        {
            "email": ["a@x.in", None, "c@x.in"],
            "phone": [9845098450.0, np.nan, 1.5],  # what read_csv makes of a phone column
            "visited": [pd.Timestamp("2024-03-07 14:15"), pd.NaT, pd.Timestamp("2024-03-08")],
            "count": pd.array([1, None, 3], dtype="Int64"),
            "flag": [True, False, None],
            "local": [pd.Timestamp("2024-03-07 14:15", tz="Asia/Kolkata")] * 3,
        }
    )
    assert rows_of(frame) == [
        (
            2,
            {
                "email": "a@x.in",
                "phone": "9845098450",
                "visited": "2024-03-07 14:15:00",
                "count": "1",
                "flag": "TRUE",
                "local": "2024-03-07 14:15:00+05:30",
            },
        ),
        (
            3,
            {
                "email": "",
                "phone": "",
                "visited": "",
                "count": "",
                "flag": "FALSE",
                "local": "2024-03-07 14:15:00+05:30",
            },
        ),
        (
            4,
            {
                "email": "c@x.in",
                "phone": "1.5",
                "visited": "2024-03-08",
                "count": "3",
                "flag": "",
                "local": "2024-03-07 14:15:00+05:30",
            },
        ),
    ]


def test_a_blank_row_keeps_its_number_and_a_bad_header_is_refused() -> None:
    frame = pd.DataFrame({"email": ["a@x.in", None, "c@x.in"], "city": ["Pune", None, ""]})
    assert [number for number, _ in rows_of(frame)] == [2, 4]
    with pytest.raises(InputFileError, match="duplicate column 'email'"):
        open_frame(pd.DataFrame([[1, 2]], columns=["email", "email"]))


def test_the_fingerprint_is_the_content() -> None:
    frame = pd.read_csv(SAMPLE_CSV, encoding="utf-8-sig")
    assert frame_digest(frame) == frame_digest(frame.copy())
    changed = frame.copy()
    changed.loc[5, "city"] = "Delhi"
    assert frame_digest(changed) != frame_digest(frame)


def test_a_dataframe_gives_the_payloads_of_the_same_data_in_a_csv(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE_CSV, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    from_frame, from_csv = tmp_path / "frame.jsonl", tmp_path / "csv.jsonl"
    by_frame = validate_file(frame, EXAMPLE_MAPPING, payloads=from_frame)
    by_csv = validate_file(SAMPLE_CSV, EXAMPLE_MAPPING, payloads=from_csv)
    assert by_frame.valid == by_csv.valid == 200
    assert from_frame.read_text() == from_csv.read_text()


def test_a_dataframe_imports_into_the_sandbox_and_resumes_by_its_content(
    tmp_path: Path, sandbox_thread
) -> None:
    frame = pd.read_csv(SAMPLE_CSV, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    frame = frame.head(30)
    results = tmp_path / "frame.results.csv"
    sandbox, twin = sandbox_thread(rate=100, per=1.0), sandbox_thread(rate=100, per=1.0)

    def into(box: Any, source: Any, **kwargs: Any) -> Any:
        return run_import(
            source,
            EXAMPLE_MAPPING,
            host=box.base_url,
            credentials=SANDBOX_KEYS,
            rate=100,
            per=1.0,
            **kwargs,
        )

    first = into(sandbox, frame, results=results, limit=10)
    assert first.calls == 10 and first.input.startswith("DataFrame (30 rows")
    again = into(sandbox, frame.copy(), results=results)  # the same data, another object
    assert (again.already_done, again.calls) == (10, 20)
    assert [r["status"] for r in read_results(results)] == ["success"] * 30
    meta = json.loads((tmp_path / "frame.results.csv.meta.json").read_text())
    assert meta["input_digest"] == frame_digest(frame) and meta["complete"] is True

    # The same rows from a CSV make the same leads and activities.
    csv_file = tmp_path / "frame.csv"
    frame.to_csv(csv_file, index=False)
    into(twin, csv_file, results=tmp_path / "csv.results.csv")

    def content(box: Any) -> list[dict[str, Any]]:
        return sorted(
            (
                {k: v for k, v in a.items() if k not in ("Id", "LeadId", "CreatedAt")}
                for a in box.activities
            ),
            key=lambda a: json.dumps(a, sort_keys=True),
        )

    assert content(sandbox) == content(twin) and len(sandbox.activities) == 30

    changed = frame.copy()
    changed.loc[3, "city"] = "Delhi"
    with pytest.raises(ResultsFileError, match="not the file"):
        into(sandbox, changed, results=results)
    with pytest.raises(ConfigError, match="results="):
        into(sandbox, frame)


def test_timestamps_in_a_frame_are_date_cells_whatever_the_mappings_formats(
    tmp_path: Path,
) -> None:
    """A midnight Timestamp renders as a date alone, a tz-aware one with its offset: neither is
    in the example mapping's formats, yet both are typed dates (as an Excel date cell is)."""
    frame = pd.read_csv(SAMPLE_CSV, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    frame = frame.head(3).copy()
    frame["visited_at"] = [
        pd.Timestamp("2024-05-02"),  # midnight
        pd.Timestamp("2024-05-02 15:00", tz="Asia/Kolkata"),
        pd.Timestamp("2024-05-02 15:00:00"),
    ]
    out = tmp_path / "p.jsonl"
    summary = validate_file(frame, EXAMPLE_MAPPING, payloads=out)
    assert summary.valid == 3, summary.to_text()
    sent = [json.loads(line)["body"]["Activity"]["ActivityDateTime"] for line in out.open()]
    # Asia/Kolkata is the mapping's zone (UTC+05:30); the aware one is converted by its offset.
    assert sent == ["2024-05-01 18:30:00", "2024-05-02 09:30:00", "2024-05-02 09:30:00"]
