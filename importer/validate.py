"""``validate_file``: map every row of an input file without calling the API.

Why: a migration file of 300,000 rows with a dozen broken ones should be fixed *before* the
first call touches the account. Validation builds each body as ``run`` does (both take it from
:func:`importer.outgoing.request_builder`), so a row it accepts is a row ``run`` would send, and
``--payloads`` shows exactly that body.

    from importer.validate import validate_file
    summary = validate_file("leads.csv", "mappings/example.yaml", results="leads.check.csv")
    print(summary.to_text()); raise SystemExit(summary.exit_status)

It streams: memory holds one row at a time plus, for the duplicate-key report, 8 bytes per
distinct SearchBy key (a 62-bit digest in an open-addressing table, :class:`_KeyDigests`; about
32 MB at 3,000,000 distinct keys, where a dict of the keys took 554 MiB). Payloads go straight to
their file.

The report is exact although the table holds digests: two keys with one digest look like one
key there. So when some digest came on more than one valid row, a second pass reads the file
again and, for the rows whose key has such a digest (and only those: ``Mapping.key_of`` first,
``Mapping.build`` for a match, to leave out invalid and skipped rows exactly as the first pass
did), counts the keys themselves. That pass holds those keys (the ones on more than one row, or
sharing a digest with one) and costs a second read of the file; a file without duplicate keys
is read once.
"""

from __future__ import annotations

import json
import os
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import outgoing
from .exceptions import ResultsFileError
from .exitcodes import ExitStatus
from .mapping import Mapping, RowError, RowSkipped, load_mapping
from .outgoing import RowSelection
from .progress import RunObserver, counted_rows, listens, observer_for
from .reader import InputFile, open_input
from .reader.frame import describe, is_dataframe, open_frame
from .results.file import ResultsFile
from .results.journal import Journal, Result
from .results.status import Status

if TYPE_CHECKING:
    import pandas

    from .preflight import PreflightReport
    from .reader import Row

__all__ = ["ValidationSummary", "validate_file"]

# How many duplicate keys, and rows of each, the summary names (the counts are always exact).
DUPLICATE_EXAMPLES = 5
ROWS_PER_EXAMPLE = 5
# How many invalid rows the printed summary quotes; the results file has them all.
PROBLEM_EXAMPLES = 5
# How many warnings (values sent as documented that may not be what was meant) it quotes.
WARNING_EXAMPLES = 5


@dataclass
class ValidationSummary:
    """What :func:`validate_file` found. ``to_text()`` for people, ``exit_status`` for cron."""

    input: str
    results: str | None = None
    payloads: str | None = None
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    skipped: int = 0
    duplicate_keys: int = 0
    """SearchBy keys found on more than one row."""
    duplicate_rows: int = 0
    """Rows whose key an earlier row already had (several activities for one lead)."""
    duplicate_examples: list[tuple[str, int, list[int]]] = field(default_factory=list)
    """A few duplicate keys: (key, rows with it, the first row numbers)."""
    invalid_by_column: Counter[str] = field(default_factory=Counter)
    """Invalid rows by the column to fix ("" when the problem is not one column's)."""
    problems: list[tuple[int, str]] = field(default_factory=list)
    """The first few invalid rows: (row number, message)."""
    warnings: int = 0
    """Values of valid rows sent as documented that may not be what was meant (a local time
    that happens twice): see :class:`importer.mapping.RowWarning`."""
    warnings_by_column: Counter[str] = field(default_factory=Counter)
    """Warnings by column ("" when one is not one column's)."""
    warning_examples: list[tuple[int, str]] = field(default_factory=list)
    """The first few warnings: (row number, message)."""
    already_done: int = 0
    """Rows the row selection passed over as ``success`` in ``earlier_results`` (a dry run's
    resume: a run does not send them again)."""
    unknown_kept: int = 0
    """Rows passed over as ``unknown`` there (a run sends them only with ``retry_unknown``)."""
    earlier_results: str | None = None
    """The results file of earlier runs that a dry run read (never wrote), or None."""
    elapsed: float = 0.0
    account: PreflightReport | None = None
    """The account check, when validating ``--online``."""

    @property
    def exit_status(self) -> ExitStatus:
        return ExitStatus.ROWS_FAILED if self.invalid else ExitStatus.SUCCESS

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def duplicates_text(self) -> str:
        """'3 leads appear on more than one row: a@x (rows 4, 17), ...' or ''."""
        if not self.duplicate_keys:
            return ""
        shown = []
        for key, count, rows in self.duplicate_examples:
            listed = ", ".join(str(r) for r in rows)
            more = f" and {count - len(rows)} more" if count > len(rows) else ""
            shown.append(f"{key} (rows {listed}{more})")
        if self.duplicate_keys > len(shown):
            shown.append("...")
        noun = "lead appears" if self.duplicate_keys == 1 else "leads appear"
        return (
            f"{self.duplicate_keys} {noun} on more than one row: {', '.join(shown)} "
            "(allowed: each row adds one activity to the same lead, sent in file order)"
        )

    def to_text(self) -> str:
        """A few lines for the terminal: counts, where the details are, what to do next."""
        lines = []
        if self.account is not None:
            lines.append(self.account.to_text())
        lines.append(
            f"{self.input}: {self.rows} rows checked in {self.elapsed:.1f} s: {self.valid} valid, "
            f"{self.invalid} invalid, {self.skipped} skipped"
        )
        if self.already_done or self.unknown_kept:
            passed = [f"{self.already_done} rows already success"] if self.already_done else []
            if self.unknown_kept:
                passed.append(f"{self.unknown_kept} unknown (sent again with --retry-unknown)")
            lines.append(
                f"not checked, as a run would not send them: {' and '.join(passed)} in "
                f"{self.earlier_results}"
            )
        if self.invalid:
            by_column = ", ".join(
                f"{column or '(whole row)'} {count}"
                for column, count in self.invalid_by_column.most_common()
            )
            lines.append(f"invalid rows by column: {by_column}")
            for number, message in self.problems:
                lines.append(f"  row {number}: {message}")
            if self.invalid > len(self.problems):
                lines.append(f"  ... and {self.invalid - len(self.problems)} more")
        if self.warnings:
            noun = "value" if self.warnings == 1 else "values"
            lines.append(
                f"warning: {self.warnings} {noun} of valid rows may not be sent as meant; "
                "check them (a time that happens twice is sent as the first; write the offset "
                "into the cell, and %z into the format, to send the other):"
            )
            for number, message in self.warning_examples:
                lines.append(f"  row {number}: {message}")
            if self.warnings > len(self.warning_examples):
                lines.append(f"  ... and {self.warnings - len(self.warning_examples)} more")
        duplicates = self.duplicates_text()
        if duplicates:
            lines.append(duplicates)
        if self.results is not None and (self.invalid or self.skipped):
            lines.append(f"invalid and skipped rows, each with its problem: {self.results}")
        if self.payloads is not None:
            lines.append(f"request bodies of the {self.valid} valid rows: {self.payloads}")
        if self.invalid:
            lines.append("fix the invalid rows (or the mapping) and validate again")
        else:
            lines.append("no invalid rows")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, e.g. for a scheduler's log."""
        return {
            "input": self.input,
            "results": self.results,
            "payloads": self.payloads,
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "duplicate_keys": self.duplicate_keys,
            "duplicate_rows": self.duplicate_rows,
            "already_done": self.already_done,
            "unknown_kept": self.unknown_kept,
            "invalid_by_column": dict(self.invalid_by_column),
            "warnings": self.warnings,
            "warnings_by_column": dict(self.warnings_by_column),
            "elapsed": round(self.elapsed, 3),
            "exit_status": int(self.exit_status),
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """``to_dict()`` as pretty JSON (``validate --json FILE``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


class TextSink(Protocol):
    """Where ``--payloads -`` writes: stdout, or any object with a ``write(str)``."""

    def write(self, text: str, /) -> object: ...


def _open_payloads(path: Path) -> Any:
    if not path.parent.is_dir():
        raise ResultsFileError(f"{path}: the folder {str(path.parent)!r} does not exist")
    try:
        return open(path, "w", encoding="utf-8", newline="\n", buffering=1 << 20)  # noqa: SIM115
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot write the payloads file ({exc.strerror})") from None


def validate_file(
    input_path: str | os.PathLike[str] | pandas.DataFrame,
    mapping: str | os.PathLike[str] | Mapping,
    *,
    results: str | os.PathLike[str] | None = None,
    payloads: str | os.PathLike[str] | TextSink | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    progress: bool | RunObserver = False,
    account: PreflightReport | None = None,
    online: Callable[[Mapping], PreflightReport] | None = None,
    key_digest: Callable[[str], int] = hash,
    input_name: str | None = None,
    select: RowSelection | None = None,
    token_seed: str = "",
) -> ValidationSummary:
    """Map every row of ``input_path``; report invalid, skipped and duplicate-key rows.

    Nothing is sent. ``results``: a results file (same format as ``run``'s) listing each
    invalid row (status ``invalid``, the message names the column and the problem) and each
    row a filter skipped (``skipped``). ``payloads``: a JSON Lines file with
    ``{"row": N, "key": "...", "body": {...}}`` for every valid row, ``body`` being exactly the
    CreateCustom body ``run`` would send; or a stream to write those lines to (``sys.stdout``),
    left open. ``account``: a :class:`PreflightReport` from
    :func:`importer.preflight.check_account`; with it, each row's dropdown values are also
    checked against the account's options. ``online``: a function making that report (e.g.
    ``importer.preflight.check_account``), called once the mapping and the file's header are
    known to be good, so a bad file costs no API call. ``key_digest``: the digest the
    duplicate-key check keeps per key (``hash``: the report never depends on it being free of
    collisions; a test passes one that collides). ``input_name``: how the summary and the
    messages name the input (default ``input_path``; ``<stdin>`` for a copy of stdin, see
    :func:`importer.reader.stdin.spooled`). ``select``: check only the rows a run with this
    :class:`importer.outgoing.RowSelection` would map (a start row, a limit, the rows earlier
    runs settled), as :func:`importer.dryrun.dry_run` does. Raises ``ImporterError`` subclasses for
    a bad file, mapping, account check or output path, before any row is read.
    """
    the_mapping = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    frame = input_path if is_dataframe(input_path) else None
    if frame is not None:
        input_path = describe(frame)

    observer = observer_for(progress)
    name = str(input_path) if input_name is None else input_name
    payloads_path: str | os.PathLike[str] | None = None
    stream: TextSink | None = None
    if isinstance(payloads, str | os.PathLike):
        payloads_path, shown = payloads, str(payloads)
    elif payloads is not None:
        stream, shown = payloads, str(getattr(payloads, "name", "<stream>"))
    summary = ValidationSummary(
        input=name,
        results=None if results is None else str(results),
        payloads=None if payloads is None else shown,
        account=account,
    )
    started = time.monotonic()

    def read() -> InputFile:
        if frame is not None:
            return open_frame(frame, name)
        return open_input(
            input_path, sheet=sheet, encoding=encoding, delimiter=delimiter, display=name
        )

    with read() as source:
        the_mapping.check_columns(source.columns, name)
        if online is not None:
            account = summary.account = online(the_mapping)
        row_check = account.row_checker() if account is not None else None
        journal = ResultsFile(results).open_for_validation() if results is not None else None
        out: Any = None
        try:
            if stream is not None:
                out = stream
            elif payloads_path is not None:
                out = _open_payloads(Path(payloads_path))
            observer.started(Path(input_path))
            rows = source.rows()
            if listens(observer, "counted"):
                rows = counted_rows(source, rows, observer)
            if select is not None:
                rows = select.rows(rows, _passed_over(summary, observer))
            try:
                digests = _check_rows(
                    rows,
                    the_mapping,
                    summary,
                    journal,
                    out,
                    row_check,
                    observer,
                    key_digest,
                    token_seed,
                )
            finally:
                observer.finished()
        finally:
            if out is not None and out is not stream:
                out.close()
            if journal is not None:
                journal.finalize()
    if digests.repeated:
        with read() as again:
            rows = again.rows() if select is None else select.rows(again.rows())
            _count_duplicates(
                rows, the_mapping, summary, row_check, digests, key_digest, token_seed
            )
    summary.elapsed = time.monotonic() - started
    return summary


def _passed_over(
    summary: ValidationSummary, observer: RunObserver
) -> Callable[[Status | None], None]:
    """What a row the selection passes over adds to the summary and the bar."""
    tick = observer.skipped if listens(observer, "skipped") else None

    def passed(status: Status | None) -> None:
        if status is Status.SUCCESS:
            summary.already_done += 1
        elif status is Status.UNKNOWN:
            summary.unknown_kept += 1
        if tick is not None:
            tick()

    return passed


def _check_rows(
    rows: Any,
    mapping: Mapping,
    summary: ValidationSummary,
    journal: Journal | None,
    out: Any,
    row_check: Callable[[dict[str, Any]], None] | None,
    observer: RunObserver,
    key_digest: Callable[[str], int],
    token_seed: str = "",
) -> _KeyDigests:
    """The row loop: kept lean, since it runs a million times (see the module docstring).
    Returns the digests of the valid rows' keys, for :func:`_count_duplicates`."""
    build = outgoing.request_builder(mapping, token_seed)  # looked up here: a test adds a step
    write = out.write if out is not None else None
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    digests = _KeyDigests()
    add = digests.add
    update = observer.skipped if listens(observer, "skipped") else None
    count = valid = 0

    key_of = mapping.key_of

    def problem(row: Row, message: str, column: str | None) -> None:
        summary.invalid += 1
        summary.invalid_by_column[column or ""] += 1
        if len(summary.problems) < PROBLEM_EXAMPLES:
            summary.problems.append((row.number, message))
        if journal is not None:
            journal.record(Result.not_sent(row.number, key_of(row), skipped=False, message=message))

    for row in rows:
        count += 1
        if update is not None and not count & 0x3FF:
            update(0x400)
        try:
            payload = build(row)  # also raises RowError for a row the reader could not read
            if row_check is not None:
                row_check(payload.body)
        except RowError as exc:
            problem(row, str(exc), exc.column)
            continue
        except RowSkipped as exc:
            summary.skipped += 1
            if journal is not None:
                journal.record(
                    Result.not_sent(row.number, key_of(row), skipped=True, message=exc.reason)
                )
            continue
        valid += 1
        if payload.warnings:
            for warning in payload.warnings:
                summary.warnings += 1
                summary.warnings_by_column[warning.column or ""] += 1
                if len(summary.warning_examples) < WARNING_EXAMPLES:
                    summary.warning_examples.append((row.number, str(warning)))
        key = payload.key
        add(key_digest(key))
        if write is not None:
            write(encode({"row": payload.row, "key": key, "body": payload.body}))
            write("\n")
    if update is not None:
        update(count & 0x3FF)
    summary.rows = count
    summary.valid = valid
    return digests


def _count_duplicates(
    rows: Any,
    mapping: Mapping,
    summary: ValidationSummary,
    row_check: Callable[[dict[str, Any]], None] | None,
    digests: _KeyDigests,
    key_digest: Callable[[str], int],
    token_seed: str = "",
) -> None:
    """The second pass: count the duplicate keys exactly, by the keys themselves, among the
    valid rows whose key's digest came more than once in the first pass (a real duplicate, or
    different keys sharing a digest). Other rows cost a ``key_of`` and a table lookup."""
    key_of, build, came_again = (
        mapping.key_of,
        outgoing.request_builder(mapping, token_seed),
        digests.came_again,
    )
    seen: dict[str, list[int]] = {}  # key -> [rows with it, the first of them]
    examples: dict[str, list[int]] = {}  # the first keys found twice -> their first rows
    for row in rows:
        key = key_of(row)
        if not key or not came_again(key_digest(key)):
            continue
        try:  # exactly the first pass's test of a valid row
            payload = build(row)
            if row_check is not None:
                row_check(payload.body)
        except (RowError, RowSkipped):
            continue
        key = payload.key
        entry = seen.get(key)
        if entry is None:
            seen[key] = [1, row.number]
            continue
        entry[0] += 1
        if entry[0] == 2:
            if len(examples) < DUPLICATE_EXAMPLES:
                examples[key] = [entry[1], row.number]
        elif key in examples and len(examples[key]) < ROWS_PER_EXAMPLE:
            examples[key].append(row.number)
    counts = [entry[0] for entry in seen.values() if entry[0] > 1]
    summary.duplicate_keys = len(counts)
    summary.duplicate_rows = sum(counts) - len(counts)
    summary.duplicate_examples = [(key, seen[key][0], rows) for key, rows in examples.items()]


# A slot of _KeyDigests: 0 when empty, else _USED | the digest's low 62 bits | _REPEATED once
# the digest came a second time.
_USED = 1 << 63
_REPEATED = 1 << 62
_DIGEST = _REPEATED - 1


class _KeyDigests:
    """A set of 62-bit key digests in one ``array('Q')`` (open addressing, linear probing,
    at most 3/4 full): 8 to 16 bytes per distinct key, where a ``dict`` of the keys and their
    first rows took ~180. It also marks the digests that came more than once (``repeated``
    counts them), which is all the first pass needs: the second one counts keys exactly."""

    __slots__ = ("_mask", "_slots", "_used", "repeated")

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._slots = array("Q", bytes(8 * capacity))  # capacity: a power of two
        self._mask = capacity - 1
        self._used = 0
        self.repeated = 0
        """How many digests came more than once."""

    def add(self, digest: int) -> None:
        value = (digest & _DIGEST) | _USED
        slots, mask = self._slots, self._mask
        at = value & mask
        while True:
            slot = slots[at]
            if not slot:
                slots[at] = value
                self._used += 1
                if self._used * 4 > len(slots) * 3:
                    self._grow()
                return
            if slot & ~_REPEATED == value:
                if not slot & _REPEATED:
                    slots[at] = slot | _REPEATED
                    self.repeated += 1
                return
            at = (at + 1) & mask

    def came_again(self, digest: int) -> bool:
        """Whether ``digest`` was added more than once."""
        value = (digest & _DIGEST) | _USED
        slots, mask = self._slots, self._mask
        at = value & mask
        while slot := slots[at]:
            if slot & ~_REPEATED == value:
                return bool(slot & _REPEATED)
            at = (at + 1) & mask
        return False

    def _grow(self) -> None:
        old = self._slots
        self._slots = slots = array("Q", bytes(16 * len(old)))
        self._mask = mask = len(slots) - 1
        for slot in filter(None, old):  # the empty slots skipped in C
            at = slot & mask
            while slots[at]:
                at = (at + 1) & mask
            slots[at] = slot
