"""A run told a looser limit than the account's learns the real one from the first refusal
("exceeded the limit of N in M second(s)"), goes on at it, says so once, and the summary
keeps it for the next run. Over real loopback sockets, at a scaled limit (10 per 1 s)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from importer.batch import run_batch
from importer.sandbox import Sandbox

from .conftest import EXAMPLE_MAPPING, ROOT, SANDBOX_KEYS, import_into, read_results

WARNING = (
    "LeadSquared says the account's limit is 10 calls per 1 s: going on at that pace "
    "(was 25 per 1 s); give --rate 10 next time"
)


def assert_paced_at_the_account_limit_after_the_first_refusal(sandbox: Sandbox) -> None:
    """Refused calls: a few, all of the first episode; after it (and the window it closed
    the pacer for), no window at the server holds more than the account's 10 calls."""
    refused = [c.arrived for c in sandbox.calls if c.http_status == 429]
    assert 1 <= len(refused) <= 3, refused
    first = refused[0]
    assert all(when <= first + 1.0 for when in refused), refused
    metered = sorted(c.arrived for c in sandbox.calls if c.metered)
    later = [when for when in metered if when > first + 1.0]
    assert len(metered) - len(later) <= 15  # the first second's calls; the rest came after
    for when in later:
        assert sum(1 for t in metered if when - 1.0 < t <= when) <= 10


def test_a_run_given_a_looser_limit_learns_the_accounts_and_keeps_to_it(
    sandbox_thread, tmp_path, sample_rows, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    sandbox = sandbox_thread(rate=10, per=1.0)  # the account allows 10 calls per 1 s
    summary = import_into(sandbox, sample_rows(150), tmp_path / "r.csv", rate=25, per=1.0)

    assert summary.by_status == {"success": 150}, summary.to_text()
    assert len(sandbox.activities) == 150
    assert_paced_at_the_account_limit_after_the_first_refusal(sandbox)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warned == [WARNING]  # once, however many calls the first episode refused
    assert summary.learnt_limit == (10, 1.0)
    assert "learnt limit 10 per 1 s" in summary.to_text()
    assert "(give --rate 10 --per 1 next time)" in summary.to_text()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["learnt_limit"] == {"calls": 10, "per": 1.0}
    assert data["learnt_bulk_limit"] is None


def test_a_run_given_the_accounts_limit_learns_nothing(
    sandbox_thread, tmp_path, sample_rows, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    sandbox = sandbox_thread(rate=10, per=1.0)
    summary = import_into(sandbox, sample_rows(15), tmp_path / "r.csv", rate=10, per=1.0)
    assert summary.by_status == {"success": 15}
    assert summary.learnt_limit is None
    assert "learnt" not in summary.to_text()
    assert summary.to_dict()["learnt_limit"] is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_batch_reports_the_learnt_limit_on_every_file_from_where_it_was_learnt(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    sandbox = sandbox_thread(rate=10, per=1.0)
    files = [sample_rows(20, f"day{i}.csv") for i in range(2)]
    out = tmp_path / "out"
    out.mkdir()
    batch = run_batch(
        files,
        EXAMPLE_MAPPING,
        results_dir=out,
        host=sandbox.base_url,
        credentials=SANDBOX_KEYS,
        rate=25,
        per=1.0,
        ledger=False,  # the files repeat the same rows: with the ledger, only day0 is sent
    )
    summaries = [f.summary for f in batch.files]
    assert all(s is not None and s.by_status == {"success": 20} for s in summaries)
    # The first file learnt it; the second, sent through the same pacer, went at it from
    # the start: not one refusal after the first episode.
    assert [s.learnt_limit for s in summaries if s is not None] == [(10, 1.0), (10, 1.0)]
    assert [s.throttled for s in summaries if s is not None][1] == 0
    assert_paced_at_the_account_limit_after_the_first_refusal(sandbox)
    assert [f["summary"]["learnt_limit"] for f in batch.to_dict()["files"]] == [
        {"calls": 10, "per": 1.0},
        {"calls": 10, "per": 1.0},
    ]


def test_bulk_calls_learn_the_bulk_limit_and_say_it_is_theirs(
    sandbox_thread, tmp_path, sample_rows, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="lsq_import")
    sandbox = sandbox_thread(rate=100, per=1.0, bulk_rate=2, bulk_per=1.0, bulk_shares_limit=False)
    summary = import_into(
        sandbox, sample_rows(60), tmp_path / "r.csv", mode="bulk", bulk_rate=5, bulk_per=1.0
    )
    assert summary.by_status == {"success": 60}, summary.to_text()
    assert (summary.learnt_limit, summary.learnt_bulk_limit) == (None, (2, 1.0))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "LeadSquared says the account's limit is 2 bulk calls per 1 s: going on at that pace "
        "(was 5 per 1 s); give --bulk-rate 2 next time"
    ]
    assert "learnt bulk limit 2 per 1 s" in summary.to_text()
    assert "(give --bulk-rate 2 --bulk-per 1 next time)" in summary.to_text()
    assert summary.to_dict()["learnt_bulk_limit"] == {"calls": 2, "per": 1.0}


def test_the_command_line_warns_once_and_its_summary_gives_the_advice(
    sandbox_thread, tmp_path, sample_rows
) -> None:
    # A standing sandbox: `run --sandbox` starts one at the client's own rate.
    sandbox = sandbox_thread(rate=10, per=1.0)
    results, summary_json = tmp_path / "r.csv", tmp_path / "s.json"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LSQ_ACCESS_KEY": SANDBOX_KEYS.access_key,
        "LSQ_SECRET_KEY": SANDBOX_KEYS.secret_key,
    }
    done = subprocess.run(
        [
            sys.executable, "-m", "importer", "run", str(sample_rows(40)),
            "-m", str(EXAMPLE_MAPPING), "--results", str(results),
            "--host", sandbox.base_url, "--rate", "25", "--per", "1",
            "--summary-json", str(summary_json), "--quiet",
        ],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"lsq-import: WARNING: {WARNING}"]
    assert (
        "learnt limit 10 per 1 s from a refusal, and kept to it from then on "
        "(give --rate 10 --per 1 next time)"
    ) in done.stdout
    assert json.loads(summary_json.read_text())["learnt_limit"] == {"calls": 10, "per": 1.0}
    assert {line["status"] for line in read_results(results)} == {"success"}
    assert_paced_at_the_account_limit_after_the_first_refusal(sandbox)


def test_learnt_limits_are_given_as_the_options_to_pass_next_time() -> None:
    from importer.summary import Summary

    summary = Summary(input="in.csv", results="r.csv", learnt_limit=(10, 5.0))
    summary.learnt_bulk_limit = (1, 5.0)
    text = summary.to_text()
    assert "learnt limit 10 per 5 s from a refusal" in text
    assert "(give --rate 10 next time)" in text  # 5 s is LeadSquared's window: --per's default
    assert "learnt bulk limit 1 per 5 s" in text
    assert "(give --bulk-rate 1 next time)" in text
    assert summary.to_dict()["learnt_bulk_limit"] == {"calls": 1, "per": 5.0}
    summary.learnt_bulk_limit = (1, 10.0)
    assert "(give --bulk-rate 1 --bulk-per 10 next time)" in summary.to_text()
