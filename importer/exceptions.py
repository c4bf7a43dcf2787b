"""Exceptions that end a run with a one-line message and a documented exit code.

Every message names what is wrong (file, row, column or mapping key) and, where it can,
what to do next. The CLI prints ``str(exc)`` and exits with ``exc.exit_status``; it never
shows a traceback for these.
"""

from __future__ import annotations

from .exitcodes import ExitStatus


class ImporterError(Exception):
    """Base class: a problem the user can fix, reported in one line."""

    exit_status: ExitStatus = ExitStatus.BAD_INPUT

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message would break log parsing in cron mails.
        super().__init__(" ".join(str(message).split()))


class InputFileError(ImporterError):
    """The input file cannot be read (missing, unreadable, undecodable, bad header)."""


class MappingError(ImporterError):
    """The mapping file is missing, unparsable, invalid, or does not fit the input file."""


class ConfigError(ImporterError):
    """Bad settings: host, credentials, rate limit, results file."""


class ResultsFileError(ImporterError):
    """The results file cannot be read or written."""


class JournalWriteError(ResultsFileError):
    """Writing the results file failed mid-run (disk full, file size limit, I/O error): the run
    stops at once; what was written stays, and the next run resumes from it."""

    exit_status = ExitStatus.INTERRUPTED


class FatalApiError(ImporterError):
    """LeadSquared refused the whole run (401 bad keys or wrong region, 404 bad host/path,
    a 3xx redirect, never followed)."""

    exit_status = ExitStatus.API_FATAL
