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


class InputReadError(InputFileError):
    """The file broke off mid-way: rows before it were yielded; the run stops (exit 4, resumable).

    Raised by the row iterator of :func:`importer.reader.open_input` (never by ``open_input``
    itself) when reading cannot go on past a point and the reader cannot find the start of a
    next row: an I/O error from the disk or network share half-way through the file, or bytes
    the decoder cannot get past. Every row before that point was yielded, and may have been
    sent; nothing after it was. A problem confined to one row (a cell over the size limit,
    bytes that do not decode) is not raised: that row comes out with ``Row.error`` set.

    It is an :class:`InputFileError` so that code which only knows "the input file is bad"
    still stops, but unlike an up-front InputFileError (exit 2, nothing was sent) it exits 4:
    the results file records what was done, and the same command resumes once the file reads.
    """

    exit_status = ExitStatus.INTERRUPTED


class InterruptedBeforeSending(ImporterError):
    """Ctrl-C or SIGTERM during a run's start-up (reading and hashing the input, checking the
    mapping and the results file, connecting, the preflight), before its first row was sent.

    Nothing was imported, so there is nothing to resume: the same command starts again. Exit 4,
    like every interruption. Raised by :func:`importer.run_import` instead of letting the
    KeyboardInterrupt through, as a Ctrl-C once rows go out ends in a summary rather than an
    exception.
    """

    exit_status = ExitStatus.INTERRUPTED


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


class LedgerError(ImporterError):
    """The ledger (importer.ledger) cannot be opened (exit 2, before anything is sent) or
    written mid-run (the run stops, exit 4: its claims stay, and the next run settles them
    by lookups, never by sending blindly)."""


class LedgerWriteError(LedgerError):
    exit_status = ExitStatus.INTERRUPTED


class FatalApiError(ImporterError):
    """LeadSquared refused the whole run (401 bad keys or wrong region, 404 bad host/path,
    a 3xx redirect, never followed)."""

    exit_status = ExitStatus.API_FATAL
