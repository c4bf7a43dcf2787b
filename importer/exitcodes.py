"""The process exit codes of ``lsq-import``: a contract for cron jobs and schedulers."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What a run's exit code means. Documented in the README; each one has a test."""

    SUCCESS = 0
    """Every row ended ``success`` (or was skipped on purpose)."""
    ROWS_FAILED = 1
    """The run finished, but some rows are ``failed``, ``invalid`` or ``unknown``."""
    BAD_INPUT = 2
    """Bad command line, mapping, input file, results file or credentials: nothing was sent."""
    API_FATAL = 3
    """LeadSquared refused the whole run (bad keys, wrong regional host, bad path, a redirect)."""
    INTERRUPTED = 4
    """Stopped early (Ctrl-C, SIGTERM, also before the first row): what was not attempted can
    be resumed."""
    BUDGET_REACHED = 5
    """Stopped cleanly at ``--max-calls``: run again (e.g. the next night) to continue."""
    INTERNAL_ERROR = 70
    """A bug in lsq-import: please report it with the log."""
