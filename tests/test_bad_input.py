"""Bad input of every kind: one clean line naming the file (and row, column or key), a
documented exit code, no traceback, and nothing written or sent; and bad rows in a good file:
those rows are invalid, the rest is imported."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from importer.cli import cli
from importer.exitcodes import ExitStatus

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, import_into, read_results

CORPUS = ROOT / "tests" / "corpus"
SAMPLE = ROOT / "sample_data" / "leads.csv"
HEADER = SAMPLE.read_text(encoding="utf-8-sig").splitlines()[0]
BIG_ROW = "A,B,a@x.com,9845098450,Pune,Pending,01/05/2024 10:00,100,P," + "y" * 10_000_000
# In the header, a 10 MB cell and a byte that is not UTF-8 are the file's problems; in a data row
# they are that row's (test_bad_rows_are_invalid_and_the_rest_is_imported).
BIG_HEADER = HEADER + "," + "y" * 10_000_000


def mapping_with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE_MAPPING.read_text()
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


CASES = {
    "empty file": lambda t: (["run", write(t, "e.csv", "")], ["e.csv", "empty"]),
    "header only": lambda t: (
        ["run", write(t, "h.csv", HEADER + "\n")],
        ["h.csv", "no data rows"],
    ),
    "binary file": lambda t: (
        ["run", write(t, "b.csv", b"\x00\x01\x02\xff" * 400)],
        ["b.csv", "binary"],
    ),
    "xlsx renamed to csv": lambda t: (
        ["run", CORPUS / "workbook_named.csv"],
        ["workbook_named.csv", ".xlsx"],
    ),
    "10 MB header cell": lambda t: (
        ["run", write(t, "big.csv", f"{BIG_HEADER}\n{BIG_ROW}\n")],
        ["big.csv", "row 1", "longer than"],
    ),
    "unsupported type": lambda t: (["run", write(t, "leads.pdf", "%PDF")], ["leads.pdf", ".pdf"]),
    "missing input": lambda t: (["run", t / "nope.csv"], ["nope.csv"]),
    "unknown encoding": lambda t: (["run", SAMPLE, "--encoding", "klingon"], ["klingon"]),
    "undecodable header": lambda t: (
        ["run", write(t, "w.csv", "first_name,e-mail (café)\nJose,j@x.com\n".encode("cp1252"))],
        ["w.csv", "line 1", "cp1252"],
    ),
    "duplicate header": lambda t: (
        ["run", write(t, "d.csv", "email,email\na@x,b@x\n")],
        ["d.csv", "duplicate", "email"],
    ),
    "missing mapped column": lambda t: (
        ["run", write(t, "m.csv", "first_name,emial\nA,a@x.com\n")],
        ["example.yaml", "lead.attributes.EmailAddress", "email"],
    ),
    "missing mapping file": lambda t: (["run", SAMPLE, "-m", t / "none.yaml"], ["none.yaml"]),
    "mapping YAML syntax": lambda t: (
        ["run", SAMPLE, "-m", write(t, "s.yaml", "lead: [unclosed\n")],
        ["s.yaml", "line"],
    ),
    "mapping not a mapping": lambda t: (
        ["run", SAMPLE, "-m", write(t, "l.yaml", "- a\n- b\n")],
        ["l.yaml"],
    ),
    "mapping nested too deeply": lambda t: (
        ["run", SAMPLE, "-m", write(t, "n.yaml", "version: 1\nx: " + "[" * 100_000 + "\n")],
        ["n.yaml", "line 2", "nested too deeply"],
    ),
    "mapping unknown key": lambda t: (
        ["run", SAMPLE, "-m", mapping_with(t, "activity:", "activty:")],
        ["bad.yaml", "activty"],
    ),
    "mapping event not a number": lambda t: (
        ["run", SAMPLE, "-m", mapping_with(t, "event: 105", "event: visit")],
        ["bad.yaml", "activity.event"],
    ),
    "mapping event negative": lambda t: (
        ["run", SAMPLE, "-m", mapping_with(t, "event: 105", "event: -1")],
        ["bad.yaml", "activity.event: -1 is not an activity type code"],
    ),
    "mapping filter backtracks": lambda t: (
        [
            "run",
            SAMPLE,
            "-m",
            mapping_with(
                t,
                "# filters:\n#   skip_if:\n#     - {column: email, matches: '@example\\.invalid$'}",
                "filters:\n  skip_if:\n    - {column: email, matches: '(a+)+$'}",
            ),
        ],
        ["bad.yaml", "filters.skip_if[0].matches: '(a+)+$' repeats a group"],
    ),
    "mapping unknown timezone": lambda t: (
        ["run", SAMPLE, "-m", mapping_with(t, "Asia/Kolkata", "Asia/Pune")],
        ["bad.yaml", "Asia/Pune"],
    ),
    "mapping search_by not mapped": lambda t: (
        ["run", SAMPLE, "-m", mapping_with(t, "search_by: EmailAddress", "search_by: Mobile")],
        ["bad.yaml", "lead.search_by"],
    ),
    "missing results folder": lambda t: (
        ["run", SAMPLE, "--results", t / "no" / "r.csv"],
        ["r.csv", "does not exist"],
    ),
    "results file is a folder": lambda t: (
        ["run", SAMPLE, "--results", (t / "dir.csv").mkdir() or t / "dir.csv"],
        ["dir.csv"],
    ),
    "results file not ours": lambda t: (
        ["run", SAMPLE, "--results", write(t, "other.csv", "a,b\n1,2\n")],
        ["other.csv", "not an lsq-import results file"],
    ),
    "missing env file": lambda t: (["run", SAMPLE, "--env-file", t / "none.env"], ["none.env"]),
    "plain http to a remote host": lambda t: (
        ["run", SAMPLE, "--host", "http://api.leadsquared.com"],
        ["--host", "https"],
    ),
    "folder without inputs": lambda t: (
        ["run", (t / "empty").mkdir() or t / "empty"],
        ["empty", "no input files"],
    ),
    "unknown sheet": lambda t: (
        ["run", ROOT / "sample_data" / "leads.xlsx", "--sheet", "Nope"],
        ["leads.xlsx", "Nope"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_clean_line_and_exit_2(case: str, tmp_path: Path) -> None:
    args, needles = CASES[case](tmp_path)
    if "-m" not in args:
        args += ["-m", EXAMPLE_MAPPING]
    if "--results" not in args:
        args += ["--results", tmp_path / "results.csv"]
    result = CliRunner().invoke(
        cli,
        [str(a) for a in args],
        env={
            "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
            "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
            "LSQ_HOST": "http://127.0.0.1:9",
        },  # nothing listens: a call would fail loudly
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    assert not (tmp_path / "results.csv").exists() or case == "results file not ours"


def test_bad_rows_are_invalid_and_the_rest_is_imported(sandbox_thread, tmp_path: Path) -> None:
    # Once a 10 MB cell or a cp1252 byte in a data row stopped the run with exit 2 ("nothing
    # was sent") even when rows before it had been sent. Each is now its row's problem.
    records = SAMPLE.read_text(encoding="utf-8-sig").split("\n")[:31]
    assert not any(r.count('"') % 2 for r in records)  # one record per line: line = row
    records[12 - 1] = BIG_ROW
    records[20 - 1] = records[20 - 1].replace(",", ",Jos\xe9 ", 1)  # cp1252 in one row
    path = tmp_path / "bad_rows.csv"
    path.write_bytes(
        b"\n".join(r.encode("cp1252" if n == 20 else "utf-8") for n, r in enumerate(records, 1))
        + b"\n"
    )
    summary = import_into(sandbox_thread(rate=100, per=1.0), path, tmp_path / "r.csv")
    assert summary.exit_status is ExitStatus.ROWS_FAILED
    assert summary.by_status == {"success": 28, "invalid": 2}, summary.to_text()
    invalid = {
        int(line["row"]): line["error_message"]
        for line in read_results(tmp_path / "r.csv")
        if line["status"] == "invalid"
    }
    assert invalid == {
        12: "line 12: a cell is longer than 131,072 characters (no LeadSquared field holds that "
        "much)",
        20: "line 20, column 'last_name': cannot decode as utf-8 (try --encoding cp1252)",
    }
