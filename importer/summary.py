"""The summary of a run: counts by final status, calls, speed, and the exit status they imply."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exitcodes import ExitStatus
from .results.report import ResultsReport
from .results.status import FINAL_STATUSES, NOT_DONE, Status
from .sending.reconcile import Tally
from .sending.stop import StopReason
from .settings import ImportSettings

ERROR_GROUPS_SHOWN = 10
"""Error groups the end of a run lists; a last line counts the rest (``report`` lists them)."""

_DEFAULT_PER = ImportSettings.per  # LeadSquared's window: advice names --per for others only


def _limit_dict(limit: tuple[int, float] | None) -> dict[str, float] | None:
    return None if limit is None else {"calls": limit[0], "per": limit[1]}


@dataclass
class Summary:
    """What a run did. Returned by :func:`importer.run_import`; printed by the CLI."""

    input: str
    results: str
    by_status: Counter[Status] = field(default_factory=Counter)
    """Rows in the results file by final status, this run and earlier runs together."""
    this_run: Counter[Status] = field(default_factory=Counter)
    """Rows settled by this run, by status."""
    already_done: int = 0
    """Rows skipped because an earlier run recorded them ``success``."""
    unknown_kept: int = 0
    """Rows left ``unknown`` by an earlier run and not re-sent (see ``retry_unknown``)."""
    calls: int = 0
    """CreateCustom calls made by this run, retries included."""
    preflight_calls: int = 0
    """Metadata calls of the preflight check (they count against --max-calls too)."""
    max_calls: int | None = None
    """The call budget this run had (``max_calls``; in a batch, what the files before left)."""
    retries: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    stop_reason: StopReason = StopReason.NONE
    """``NONE`` when every row was attempted; why the run stopped early otherwise."""
    fatal_message: str = ""
    error_message: str = ""
    """Why the run stopped mid-way (``stop_reason`` ERROR): e.g. the disk filled up."""
    report: ResultsReport | None = None
    """The results file's own account (errors grouped, timeline), read after the run."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Digests of the input and mapping files the results file belongs to."""
    mode: str = "single"
    """How rows were sent (``single``, ``bulk``, ``auto``)."""
    bulk_calls: int = 0
    """Of ``calls``, those through the bulk endpoints (two a batch, retries included)."""
    batches: int = 0
    """Bulk batches sent (up to 25 rows each)."""
    lookup_calls: int = 0
    """Calls that looked rows up in LeadSquared (reconciliation); not in ``calls``."""
    reconciled: Tally = field(default_factory=Tally)
    """``unknown`` rows looked up: found, missing (sent again), ambiguous, failed."""
    learnt_limit: tuple[int, float] | None = None
    """``(calls, seconds)`` the run went on at after LeadSquared refused a call naming a
    stricter limit than ``--rate``/``--per`` (see :meth:`importer.sending.pacer.Pacer.learn`);
    in a batch, from the file where it was learnt on. None: nothing learnt."""
    learnt_bulk_limit: tuple[int, float] | None = None
    """The same for bulk calls (``--bulk-rate``/``--bulk-per``)."""
    ledger: str = ""
    """The ledger the run used (importer.ledger), "" for none."""
    already_imported: int = 0
    """Rows this run skipped because the ledger lists their activity as imported."""

    @property
    def rows(self) -> int:
        return sum(self.by_status.values())

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_status(self) -> ExitStatus:
        if self.stop_reason is StopReason.FATAL:
            return ExitStatus.API_FATAL
        if self.stop_reason in (StopReason.INTERRUPTED, StopReason.ERROR):
            return ExitStatus.INTERRUPTED
        if self.stop_reason is StopReason.BUDGET:
            return ExitStatus.BUDGET_REACHED
        if any(self.by_status[s] for s in NOT_DONE):
            return ExitStatus.ROWS_FAILED
        return ExitStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: what ``--summary-json`` writes."""
        report = self.report.to_dict() if self.report else {}
        return {
            "input": self.input,
            "results": self.results,
            "rows": self.rows,
            "by_status": {s: self.by_status[s] for s in FINAL_STATUSES if self.by_status[s]},
            "this_run": dict(self.this_run),
            "already_done": self.already_done,
            "unknown_kept": self.unknown_kept,
            "calls": self.calls,
            "preflight_calls": self.preflight_calls,
            "max_calls": self.max_calls,
            "retries": self.retries,
            "throttled": self.throttled,
            "elapsed": round(self.elapsed, 3),
            "calls_per_second": round(self.calls_per_second, 3),
            "stop_reason": self.stop_reason.value,
            "fatal_message": self.fatal_message,
            "error_message": self.error_message,
            "exit_status": int(self.exit_status),
            "errors": report.get("errors", []),
            "unknown_rows": report.get("unknown_rows", []),
            "timeline": report.get("timeline", []),
            "bucket_seconds": report.get("bucket_seconds", 0),
            "fingerprints": self.fingerprints,
            "lookup_calls": self.lookup_calls,
            "mode": self.mode,
            "bulk_calls": self.bulk_calls,
            "batches": self.batches,
            "reconciled": self.reconciled.to_dict(),
            "learnt_limit": _limit_dict(self.learnt_limit),
            "learnt_bulk_limit": _limit_dict(self.learnt_bulk_limit),
            "ledger": self.ledger,
            "already_imported": self.already_imported,
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def _budget_text(self) -> str:
        """'of 10 calls (7 for rows, 3 for the preflight check)': what the budget went to,
        adding up to the number the user gave (the preflight's calls count against it too)."""
        used = self.calls + self.preflight_calls
        budget = self.max_calls if self.max_calls is not None else used
        parts = [f"{self.calls} for rows"]
        if self.preflight_calls:
            parts.append(f"{self.preflight_calls} for the preflight check")
        return f"of {budget} calls ({', '.join(parts)})"

    def to_text(self) -> str:
        """A few human lines for the end of a run."""
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        lines = [
            f"{self.rows} rows in {self.results}: {counts or 'none'}",
            f"this run: {sum(self.this_run.values())} rows settled, {self.calls} calls"
            + (
                f" ({self.bulk_calls} bulk calls for {self.batches} batches)"
                if self.mode != "single"
                else ""
            )
            + f" ({self.retries} retries, {self.throttled} rate-limited) in {self.elapsed:.1f} s"
            f" = {self.calls_per_second:.2f} calls/s",
        ]
        progress = self.report.progress_text() if self.report is not None else ""
        incomplete = "incomplete" in progress and (
            "not reached yet" in progress or "row count is known" in progress
        )
        if incomplete:  # a --limit trial, or a stop: rows of the input were never reached
            lines.insert(1, f"the import is {progress}")
        if self.already_done:
            lines.append(f"{self.already_done} rows already succeeded earlier: not sent again")
        if self.already_imported:
            lines.append(
                f"{self.already_imported} rows skipped: their activity is already imported "
                f"(the ledger {self.ledger} says when and from where; --reimport sends them)"
            )
        tally = self.reconciled
        if tally.found or tally.missing or tally.ambiguous or tally.failed:
            lines.append(
                f"reconciled {tally.found + tally.missing + tally.ambiguous + tally.failed} "
                f"rows whose answer was lost: {tally.found} found in LeadSquared (success), "
                f"{tally.missing} had not landed (sent again), {tally.ambiguous} ambiguous, "
                f"{tally.failed} could not be looked up ({self.lookup_calls} lookup calls)"
            )
        if self.unknown_kept or self.by_status[Status.UNKNOWN]:
            lines.append(
                f"{self.by_status[Status.UNKNOWN]} rows are 'unknown' (sent, answer lost, and"
                " not settled by a lookup: they may exist in LeadSquared; the results file says"
                " why); run again to look them up again, or check them and rerun with"
                " --retry-unknown to send them again"
            )
        for what, limit, option, per_option in (
            ("limit", self.learnt_limit, "--rate", "--per"),
            ("bulk limit", self.learnt_bulk_limit, "--bulk-rate", "--bulk-per"),
        ):
            if limit is not None:
                calls, per = limit
                advice = f"{option} {calls}"
                if per != _DEFAULT_PER:
                    advice += f" {per_option} {per:g}"
                lines.append(
                    f"learnt {what} {calls} per {per:g} s from a refusal, and kept to it from "
                    f"then on (give {advice} next time)"
                )
        if self.report is not None:
            lines.extend(self.report.errors_text(limit=ERROR_GROUPS_SHOWN))
        if self.by_status[Status.FAILED] or self.by_status[Status.INVALID]:
            lines.append(
                f"failed and invalid rows are listed with their error in {self.results}; "
                "fix them and run the same command again to retry only those"
            )
        if self.stop_reason is StopReason.FATAL:
            lines.append(f"stopped: {self.fatal_message}")
        elif self.stop_reason is StopReason.BUDGET:
            lines.append(
                f"stopped at the call budget {self._budget_text()}: run the same command again"
                " (e.g. tomorrow) to continue"
            )
        elif self.error_message:
            lines.append(
                f"stopped: {self.error_message}"
                if "run the same command again" in self.error_message
                else f"stopped: {self.error_message}; run the same command again to resume"
            )
        elif self.stop_reason:
            lines.append(
                f"stopped early ({self.stop_reason}): run the same command again to resume"
            )
        if not self.stop_reason and self.by_status[Status.SUCCESS] == self.rows and self.rows:
            lines.append("all rows sent so far succeeded" if incomplete else "all rows succeeded")
        return "\n".join(lines)
