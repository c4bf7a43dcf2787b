"""The summary of a run: counts by final status, calls, speed, and the exit status they imply."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .exitcodes import ExitStatus
from .journal import FAILED, FINAL_STATUSES, INVALID, SUCCESS, UNKNOWN


@dataclass
class Summary:
    """What a run did. Returned by :func:`importer.run_import`; printed by the CLI."""

    input: str
    results: str
    by_status: Counter[str] = field(default_factory=Counter)
    """Rows in the results file by final status, this run and earlier runs together."""
    this_run: Counter[str] = field(default_factory=Counter)
    """Rows settled by this run, by status."""
    already_done: int = 0
    """Rows skipped because an earlier run recorded them ``success``."""
    unknown_kept: int = 0
    """Rows left ``unknown`` by an earlier run and not re-sent (see ``retry_unknown``)."""
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    stop_reason: str = ""
    """"" when every row was attempted; "fatal", "interrupted" or "error" otherwise."""
    fatal_message: str = ""

    @property
    def rows(self) -> int:
        return sum(self.by_status.values())

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_status(self) -> ExitStatus:
        if self.stop_reason == "fatal":
            return ExitStatus.API_FATAL
        if self.stop_reason in ("interrupted", "error"):
            return ExitStatus.INTERRUPTED
        if any(self.by_status[s] for s in (FAILED, INVALID, UNKNOWN)):
            return ExitStatus.ROWS_FAILED
        return ExitStatus.SUCCESS

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            rows=self.rows,
            calls_per_second=round(self.calls_per_second, 3),
            exit_status=int(self.exit_status),
            elapsed=round(self.elapsed, 3),
        )
        return data

    def to_text(self) -> str:
        """A few human lines for the end of a run."""
        counts = ", ".join(f"{self.by_status[s]} {s}" for s in FINAL_STATUSES if self.by_status[s])
        lines = [
            f"{self.rows} rows in {self.results}: {counts or 'none'}",
            f"this run: {sum(self.this_run.values())} rows settled, {self.calls} calls"
            f" ({self.retries} retries, {self.throttled} rate-limited) in {self.elapsed:.1f} s"
            f" = {self.calls_per_second:.2f} calls/s",
        ]
        if self.already_done:
            lines.append(f"{self.already_done} rows already succeeded earlier: not sent again")
        if self.unknown_kept or self.by_status[UNKNOWN]:
            lines.append(
                f"{self.by_status[UNKNOWN]} rows are 'unknown' (sent, answer lost: they may exist"
                " in LeadSquared); check them, then rerun with --retry-unknown to send them again"
            )
        if self.by_status[FAILED] or self.by_status[INVALID]:
            lines.append(
                f"failed and invalid rows are listed with their error in {self.results}; "
                "fix them and run the same command again to retry only those"
            )
        if self.stop_reason == "fatal":
            lines.append(f"stopped: {self.fatal_message}")
        elif self.stop_reason:
            lines.append(
                f"stopped early ({self.stop_reason}): run the same command again to resume"
            )
        if not self.stop_reason and self.by_status[SUCCESS] == self.rows and self.rows:
            lines.append("all rows succeeded")
        return "\n".join(lines)
