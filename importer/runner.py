"""``run_import``: the whole import as one library call, for the CLI, a notebook or a scheduler.

    from importer import run_import
    summary = run_import("leads.csv", "mappings/example.yaml", results="leads.results.csv")
    print(summary.to_text()); raise SystemExit(summary.exit_status)

Data flows one way: input file -> rows -> mapping -> payloads -> queue -> workers (key order,
pacer, client, error classes, retries) -> results journal -> summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from .exceptions import (
    ConfigError,
    ImporterError,
    InputFileError,
    InterruptedBeforeSending,
    JournalWriteError,
    MappingError,
    ResultsFileError,
)
from .exitcodes import ExitStatus
from .progress import CountedTo, RunObserver, counted_rows, listens, observer_for
from .results.errors_csv import is_errors_file
from .results.file import ResultsFile
from .results.fingerprint import Fingerprints
from .results.journal import Journal, Outcomes, Result, utc_now
from .results.report import read_report
from .results.status import Status
from .settings import Credentials, ImportSettings
from .summary import Summary

if TYPE_CHECKING:
    import pandas

    from .leadsquared.classify import Outcome
    from .leadsquared.connect import Endpoint
    from .ledger.run import RunLedger
    from .mapping import Mapping, Payload
    from .reader import InputFile, Row
    from .sending.pacer import Pacer
    from .sending.pool import WorkerPool

# The mapping (pydantic), the reader, aiohttp and the sending stage are imported when a run
# has something to do: a rerun of a finished file (a nightly job's usual case) needs none of
# them, and their imports were most of its time.

logger = logging.getLogger("lsq_import")


class ImportOptions(TypedDict, total=False):
    """The keyword arguments :func:`run_import` takes: the fields of :class:`ImportSettings`."""

    host: str | None
    credentials: Credentials | None
    env_file: str | os.PathLike[str] | None
    sandbox: bool
    sandbox_schema: str | os.PathLike[str] | None
    rate: int
    per: float
    mode: str
    batch_size: int
    bulk_rate: int
    bulk_per: float
    bulk_shares_limit: bool
    plan: str | None
    concurrency: int | None
    timeout: float
    max_attempts: int
    retry_delay: tuple[float, float]
    max_calls: int | None
    start_row: int | None
    limit: int | None
    retry_unknown: bool
    reconcile: bool
    settle_delay: float
    reconcile_only: bool
    force_resume: bool
    preflight_check: bool
    sheet: str | int | None
    encoding: str | None
    delimiter: str | None
    ledger: str | os.PathLike[str] | bool | None
    reimport: bool


def run_import(
    input_path: str | os.PathLike[str] | pandas.DataFrame,
    mapping: str | os.PathLike[str] | Mapping,
    *,
    results: str | os.PathLike[str] | None = None,
    settings: ImportSettings | None = None,
    progress: bool | RunObserver = False,
    on_result: Callable[[Result], None] | None = None,
    pacer: Pacer | None = None,
    bulk_pacer: Pacer | None = None,
    **options: Unpack[ImportOptions],
) -> Summary:
    """Import every row of ``input_path`` and return the :class:`Summary`.

    Settings come as keyword arguments (``rate=10, max_calls=9000``, the fields of
    :class:`importer.settings.ImportSettings`), as one ``settings`` object, or both (the keyword
    arguments win). ``host`` defaults to ``$LSQ_HOST``, then ``api.leadsquared.com``;
    ``credentials`` to ``$LSQ_ACCESS_KEY``/``$LSQ_SECRET_KEY`` (``env_file``, an environment
    file with those names, overrides the environment). With ``sandbox=True`` a local
    LeadSquared sandbox is started on loopback for the run and both are ignored; it mirrors
    ``sandbox_schema`` when given (a file written by ``lsq-import account --output``).

    ``input_path`` may also be a pandas DataFrame (then ``results`` is required): its columns are
    the header, its rows are numbered from 2, cells are rendered as text as an Excel cell is
    (see :mod:`importer.reader.frame`), and its fingerprint is that of its content.

    Rerunning with the same ``results`` file resumes: rows already ``success`` are skipped,
    and ``unknown`` ones too unless ``retry_unknown``. A resume with another input file or a
    changed mapping is refused unless ``force_resume``. One run at a time per results file.

    ``retry_delay`` is (base, cap) in seconds of the exponential backoff between attempts.
    ``max_calls`` is a budget of API calls for this run (retries included): the run stops
    cleanly before exceeding it (exit status ``BUDGET_REACHED``) and the next run continues.
    ``start_row`` and ``limit`` make a trial run: only rows numbered ``start_row`` or later,
    and at most ``limit`` of them (rows already done don't count). ``preflight_check`` first
    checks the mapping against the account's metadata (event code, fields, dropdown values;
    two or three calls) and raises :class:`PreflightError` before any row is sent.
    ``progress``: ``True`` draws a bar on stderr; or pass a
    :class:`importer.progress.RunObserver` to be told of every row. ``on_result`` is called
    with each row's :class:`Result` as it settles. ``pacer``: a
    :class:`importer.sending.pacer.Pacer` shared with runs before it (what
    :func:`importer.batch.run_batch` passes each file), so that calls of those runs still in
    the server's window count; by default the run makes its own at ``rate``/``per``;
    ``bulk_pacer`` likewise for bulk calls (``mode`` ``bulk`` or ``auto``), at
    ``bulk_rate``/``bulk_per``. ``plan`` (``"pro"``, see :mod:`importer.plans`) gives the
    defaults of ``rate`` and ``bulk_rate``.
    Raises :class:`importer.exceptions.ImporterError` subclasses for bad input or settings
    before anything is sent, and :class:`importer.exceptions.InterruptedBeforeSending` for a
    Ctrl-C (KeyboardInterrupt) before the first row was sent; once rows go out, a first
    Ctrl-C or SIGTERM lets the calls in flight finish and the summary says it was interrupted.
    """
    if settings is not None and "plan" in options:
        # The plan's limits replace the settings' unless given here too.
        options.setdefault("rate", None)  # type: ignore[typeddict-item]
        options.setdefault("bulk_rate", None)  # type: ignore[typeddict-item]
    settings = dataclasses.replace(settings, **options) if settings else ImportSettings(**options)
    run: _Run | None = None
    frame = input_path if _is_dataframe(input_path) else None
    if frame is not None:
        from .reader.frame import describe, frame_digest

        if results is None:
            raise ConfigError(
                "a DataFrame has no file name to name its results file after: pass results=..."
            )
        frame_id: str | None = frame_digest(frame)
        input_path = describe(frame)
    else:
        frame_id = None
    try:
        results_file = ResultsFile.for_input(input_path, results)
        observer = observer_for(progress)
        mapping_path = Path(mapping) if isinstance(mapping, str | os.PathLike) else mapping.path
        try:
            fingerprints: Fingerprints | None = Fingerprints.of(
                input_path, mapping_path, input_digest=frame_id
            )
        except OSError:
            fingerprints = None  # a missing or unreadable file: the checks below say which
        done = results_file.completed_counts(fingerprints) if fingerprints else None
        if fingerprints is not None and done is not None:
            # Every row of this very input already succeeded (as the batch skips such a file):
            # send nothing, read and rewrite nothing; the counts were stored at the last rewrite.
            observer.started(Path(input_path))
            if listens(observer, "counted"):
                observer.counted(done[Status.SUCCESS], exact=True)
            observer.skipped(done[Status.SUCCESS])  # in one event: no row is read
            observer.finished()
            return Summary(
                input=str(input_path),
                results=str(results_file.path),
                by_status=done,
                already_done=done[Status.SUCCESS],
                fingerprints=fingerprints.digests(),
            )

        # A resume: hash the results file for its check while the modules below load.
        results_file.prefetch()
        from .leadsquared.connect import resolve_endpoint
        from .mapping import load_mapping
        from .reader import open_input
        from .sending.stop import StopReason

        the_mapping = load_mapping(mapping) if isinstance(mapping, str | os.PathLike) else mapping

        def open_source() -> InputFile:
            if frame is not None:
                from .reader.frame import open_frame

                return open_frame(frame, str(input_path))
            return open_input(
                input_path,
                sheet=settings.sheet,
                encoding=settings.encoding,
                delimiter=settings.delimiter,
            )

        with open_source() as source, contextlib.ExitStack() as later:
            the_mapping.check_columns(source.columns, str(input_path))
            if fingerprints is None:
                try:
                    fingerprints = Fingerprints.of(
                        input_path, the_mapping.path, input_digest=frame_id
                    )
                except OSError as exc:
                    raise InputFileError(
                        f"{exc.filename or input_path}: cannot be read to its end "
                        f"({exc.strerror}): a run needs a regular file, which a resume can "
                        "check is the same"
                    ) from None
            # A resume accepts a mapping edited without a change in meaning (a comment).
            meaning = the_mapping.meaning
            fingerprints = dataclasses.replace(
                fingerprints, mapping_meaning=meaning.digest, mapping_keys=meaning.keys
            )
            endpoint = resolve_endpoint(
                host=settings.host,
                credentials=settings.credentials,
                env_file=settings.env_file,
                sandbox=settings.sandbox,
                sandbox_schema=settings.sandbox_schema,
            )
            run_ledger = _open_ledger(settings, endpoint, the_mapping, input_path, results_file)
            if run_ledger is not None:
                later.callback(run_ledger.close)
            rows = source.rows()
            first = next(rows, None)
            if first is None and is_errors_file(source.columns):
                # An errors file without rows: every row of the import it came from is in.
                return Summary(input=str(input_path), results=str(results_file.path))
            if first is None:
                # An empty export is almost always an upstream failure: say so, don't report
                # success.
                raise InputFileError(
                    f"{input_path}: has a header but no data rows: nothing to import"
                )
            with results_file.claim():
                results_file.check_metadata(force=settings.force_resume)
                if not results_file.has_metadata() and len(results_file.previous):
                    # Nothing says this is the input the file was started with: its keys must.
                    with open_source() as again:
                        results_file.check_keys(
                            (row.number, the_mapping.key_of(row)) for row in again.rows()
                        )
                results_file.check_resume(fingerprints, force=settings.force_resume)
                reader: InputFile = source
                positions_of = f"{fingerprints.input_digest} {source.read_settings}"
                rows = itertools.chain([first], rows)
                done_before: Counter[Status] = Counter()
                unread: int | None = 0  # data rows the reader skips (None: not known)
                if source.read_settings and len(results_file.previous):
                    # A resume: start reading near the first row it must read, not at the top
                    # (the rows before are done: counted from the results, never parsed).
                    lowest = max(2, settings.start_row or 0)
                    # Unknown rows are read when they may be sent again (looked up first and
                    # found missing, or --retry-unknown): reading starts at the first of them.
                    first_row = results_file.previous.first_to_read(
                        lowest, keep_unknown=not (settings.retry_unknown or settings.reconcile)
                    )
                    start = results_file.start_position(first_row, positions_of)
                    if start is not None and start.row > max(lowest, first.number):
                        reader = later.enter_context(open_source())
                        rows = reader.rows(start=start)
                        done_before = results_file.previous.counts_between(lowest, start.row)
                        # Each of those rows has its line (the first row to read comes after
                        # them); rows before --start-row were not looked at.
                        unread = done_before.total() if lowest <= first.number else None
                # Counted for the progress bar, if any, and for `lsq-import status` (the
                # results file notes the count at its checkpoints); the rows done before
                # where reading starts took the file's first bytes.
                counted = CountedTo(results_file.note_count, observer)
                rows = counted_rows(reader, rows, counted, before=done_before.total())
                results_file.record_run(
                    host=_host_text(endpoint),
                    read_as=_read_as(input_path, source) if frame is None else {},
                    errors_file=is_errors_file(source.columns),
                )
                run = _Run(
                    results_file=results_file,
                    open_source=open_source,
                    positions_of=positions_of,
                    token_seed=results_file.token_seed() if the_mapping.row_token else "",
                    last_written=results_file.last_written(),
                    rows=rows,
                    done_before=done_before,
                    unread=unread,
                    mapping=the_mapping,
                    journal=results_file.journal,
                    previous=results_file.previous,
                    summary=Summary(input=str(input_path), results=str(results_file.path)),
                    observer=observer,
                    on_result=on_result,
                    settings=settings,
                    pacer=pacer,
                    bulk_pacer=bulk_pacer,
                    ledger=run_ledger,
                )
                run.summary.fingerprints = fingerprints.digests()
                if run_ledger is not None:
                    run.summary.ledger = str(run_ledger.ledger.path)
                run.summary.max_calls = settings.max_calls
                started = time.monotonic()
                observer.started(Path(input_path))
                try:
                    asyncio.run(run.main(endpoint))
                except asyncio.CancelledError:
                    # A second Ctrl-C abandoned the calls in flight; finalize marks them unknown.
                    run.summary.stop_reason = StopReason.INTERRUPTED
                finally:
                    observer.finished()
                    run.summary.elapsed = time.monotonic() - started
                    with contextlib.suppress(ResultsFileError):  # only makes a resume slower
                        results_file.keep_positions(reader.positions, positions_of)
                    if results_file.journal.failed is not None:
                        # It could not be written: leave it as it is (a valid journal) and
                        # report it.
                        with contextlib.suppress(JournalWriteError):
                            results_file.journal.close()
                        run.summary.report = read_report(results_file.path)
                        run.summary.by_status = Counter(
                            {Status(s): n for s, n in run.summary.report.by_status.items()}
                        )
                    elif results_file.journal.opened:
                        if run.input_rows is not None:  # before finish() reads the report
                            results_file.record_run(input_rows=run.input_rows)
                        if run.bulk_row_calls:
                            results_file.record_run(
                                bulk=(run.summary.bulk_calls, run.bulk_row_calls)
                            )
                        run.summary.by_status, run.summary.report = results_file.finish()
            if run.summary.exit_status is ExitStatus.SUCCESS and not settings.is_trial:
                results_file.mark_complete(fingerprints)
        return run.summary
    except KeyboardInterrupt:
        # Once rows go out, Ctrl-C and SIGTERM stop the pool (see _handle_signals) and the run
        # ends with its summary; one here, before that, finds nothing sent.
        if run is not None and run.sending:
            raise
        raise InterruptedBeforeSending(
            f"{input_path}: interrupted before any row was sent; run the same command again"
        ) from None


def reconcile_results(
    results: str | os.PathLike[str],
    *,
    input_path: str | os.PathLike[str] | None = None,
    mapping: str | os.PathLike[str] | None = None,
    **options: Unpack[ImportOptions],
) -> Summary:
    """Look up, in LeadSquared, the rows ``results`` lists as ``unknown``, and send nothing.

    Found rows become ``success`` (``error_type`` ``reconciled``); rows that never landed
    become ``failed`` (``not landed``), so the next run sends them once; the rest stay
    ``unknown`` with the reason. The input and mapping default to those the results file's
    metadata names (they must be unchanged: the same resume check as a run). Takes
    :func:`run_import`'s settings (``host``, ``credentials``, ``rate``, ``per``,
    ``settle_delay``, ``max_calls``, ...); what a results file from an older version, or
    one a crash left, needs.
    """
    recorded = Fingerprints.load(Path(results))
    if recorded is None and (input_path is None or mapping is None):
        raise ResultsFileError(
            f"{results}: no {Path(results).name}.meta.json beside it names the input and "
            "mapping: pass them (--input, --mapping)"
        )
    options.setdefault("preflight_check", False)
    options["reconcile_only"] = options["reconcile"] = True
    return run_import(
        input_path or recorded.input,  # type: ignore[union-attr]
        mapping or recorded.mapping,  # type: ignore[union-attr]
        results=results,
        **options,
    )


def _open_ledger(
    settings: ImportSettings,
    endpoint: Endpoint,
    mapping: Mapping,
    input_path: str | os.PathLike[str],
    results_file: ResultsFile,
) -> RunLedger | None:
    """The run's ledger (see importer.ledger), or None when it has none."""
    from .ledger.location import from_environment, resolve

    host = endpoint.url
    access_key = endpoint.credentials.access_key if endpoint.credentials else None
    path = resolve(settings.ledger, host=host, access_key=access_key, throwaway=settings.sandbox)
    if path is None or mapping.dedupe == "off":
        return None
    from .ledger.run import RunLedger
    from .ledger.store import open_ledger

    token_field = mapping.row_token
    seed: list[str] = []  # the results file's, once its resume check has run (at the feed)

    def token_of(row: int) -> str:
        if token_field is None:
            return ""
        from .sending.token import row_token

        if not seed:
            seed.append(results_file.token_seed())
        return row_token(seed[0], row)

    ledger = open_ledger(path)
    if ledger.created:
        # A new ledger knows nothing imported before: say so, and loudly when it was named
        # (a typo in --ledger or LSQ_LEDGER would otherwise pass unseen).
        named = settings.ledger not in (None, True) or from_environment() is not None
        (logger.warning if named else logger.info)(
            "ledger %s: new, empty: it knows of no activity imported into this account before%s",
            ledger.path,
            " (check the name, if this account had imports through a ledger)" if named else "",
        )
    return RunLedger(
        ledger,
        # A file by its absolute path (a DataFrame by its description).
        input=os.path.abspath(input_path) if os.path.exists(input_path) else str(input_path),
        results=str(results_file.path.resolve()),
        dedupe=mapping.dedupe,
        token_field=token_field,
        token_of=token_of,
        reimport=settings.reimport,
        hold_timeout=max(60.0, 3 * settings.settle_delay),
    )


def _is_dataframe(value: object) -> bool:
    """Whether ``value`` is a pandas DataFrame. (A DataFrame can only come from a process that
    imported pandas: without it, the reader package is not imported to find out.)"""
    if "pandas" not in sys.modules:
        return False
    from .reader.frame import is_dataframe

    return is_dataframe(value)


@dataclass
class _Run:
    """The state of one run, shared by the row feed, the pool callbacks and the summary."""

    rows: Iterator[Row]
    mapping: Mapping
    journal: Journal
    previous: Outcomes
    summary: Summary
    observer: RunObserver
    on_result: Callable[[Result], None] | None
    settings: ImportSettings
    last_written: float | None = None
    """When an earlier run last wrote the results file (wall clock), or None."""
    token_seed: str = ""
    """The results file's row-token seed, when the mapping writes a token."""
    done_before: Counter[Status] = dataclasses.field(default_factory=Counter)
    """Rows done earlier (``success``, kept ``unknown``) before the first row of ``rows``:
    a resume that starts reading part-way counts them from the results file."""
    pacer: Pacer | None = None
    """A pacer shared with earlier runs (a batch's files), or None for one of its own."""
    bulk_pacer: Pacer | None = None
    """The same for bulk calls."""
    bulk_row_calls: int = 0
    """Row attempts this run's bulk calls account for (see Fingerprints.bulk_row_calls)."""
    sending: bool = False
    """The pool has started: rows may have been sent (until then a Ctrl-C ends the start-up)."""
    unread: int | None = 0
    """Data rows before the reader's start that it skips (``done_before``), None when not
    known (a resume from a --start-row past the input's first rows)."""
    input_rows: int | None = None
    """The input's data rows, once the row feed has read it to the end (None before)."""
    results_file: ResultsFile | None = None
    open_source: Callable[[], InputFile] | None = None
    """Opens the input again: reconciliation reads the rows it settles."""
    positions_of: str = ""
    unknown_now: dict[int, int] = dataclasses.field(default_factory=dict)
    """Rows this run left ``unknown`` so far -> their attempts (bounded by the lost answers)."""
    unknown_at: float = 0.0
    """When the latest of them was recorded (``time.monotonic()``)."""
    lookups: Any = None
    """The run's :class:`importer.leadsquared.lookup.Lookups` (None: not reconciling)."""
    _max_calls: int | None = None
    _pool_calls: Callable[[], int] = lambda: 0  # noqa: E731 - replaced once the pool runs
    _looked_up: int = 0
    _stopping: Callable[[], bool] = lambda: False  # noqa: E731 - the pool's, once it runs
    _attempts_before: dict[int, int] = dataclasses.field(default_factory=dict)
    """Rows found missing -> the calls earlier attempts made (their resend adds to them)."""
    ledger: RunLedger | None = None
    """The account's ledger as this run uses it (None: ``--no-ledger``)."""

    def settled(self, result: Result) -> None:
        """A row has its outcome for this run (sent, or found invalid)."""
        if result.row in self.unknown_now:  # sent again after it was found missing
            self.summary.this_run[Status.UNKNOWN] -= 1
        if result.status is Status.UNKNOWN:
            self.unknown_now[result.row] = result.attempts
            self.unknown_at = time.monotonic()
        else:
            self.unknown_now.pop(result.row, None)
        self.summary.this_run[result.status] += 1
        if self.ledger is not None:
            self.ledger.settled(result)
        self.observer.settled(result)
        if self.on_result is not None:
            self.on_result(result)

    def rows_to_send(self) -> Iterator[Payload]:
        """Rows not done yet, mapped; invalid rows are recorded here and never sent."""
        from .mapping import RowError, RowSkipped
        from .outgoing import RowSelection, request_builder

        summary, observer = self.summary, self.observer
        if self.done_before:
            summary.already_done += self.done_before[Status.SUCCESS]
            summary.unknown_kept += self.done_before[Status.UNKNOWN]
            observer.skipped(self.done_before.total())

        def passed(status: Status | None) -> None:
            if status is Status.SUCCESS:
                summary.already_done += 1
            elif status is Status.UNKNOWN:
                summary.unknown_kept += 1
            observer.skipped()  # the bar shows how far into the file the run got

        select = RowSelection.of_run(self.settings, self.previous)
        build = request_builder(self.mapping, self.token_seed)
        for row in select.rows(self.rows, passed):
            try:
                payload = build(row)
            except (RowError, RowSkipped) as exc:
                skipped = isinstance(exc, RowSkipped)
                result = Result.not_sent(
                    row.number,
                    self.mapping.key_of(row),  # the lead it names, if its key can be read
                    skipped=skipped,
                    message=exc.reason if isinstance(exc, RowSkipped) else str(exc),
                )
                self.journal.record(result)
                self.settled(result)
                continue
            yield payload
        if select.to_the_end and self.unread is not None:
            # Every row was read (or skipped, done): the total.
            self.input_rows = self.unread + select.read

    async def main(self, endpoint: Endpoint) -> None:
        from .leadsquared.connect import connect, refused_message
        from .preflight import preflight
        from .sending.pacer import Pacer
        from .sending.pool import WorkerPool
        from .sending.retry import RetryPolicy

        settings = self.settings
        retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            base_delay=settings.retry_delay[0],
            max_delay=settings.retry_delay[1],
        )
        max_calls = settings.max_calls
        async with contextlib.AsyncExitStack() as stack:
            # One connection per call in flight: a smaller pool would cap throughput at
            # connections / latency, below the rate limit at scaled limits.
            client = await stack.enter_async_context(
                connect(
                    endpoint,
                    timeout=settings.timeout,
                    connections=settings.calls_in_flight,
                    rate=settings.rate,
                    per=settings.per,
                    bulk_rate=settings.bulk_rate,
                    bulk_per=settings.bulk_per,
                    bulk_shares_limit=settings.bulk_shares_limit,
                )
            )
            pacer = self.pacer if self.pacer is not None else Pacer(settings.rate, settings.per)
            bulk_pacer = self.bulk_pacer
            if bulk_pacer is None:
                bulk_pacer = Pacer.for_bulk(settings.bulk_rate, settings.bulk_per)
            # A shared pacer counts every run's calls: this run's are what it adds.
            calls_before, throttled_before = pacer.calls, pacer.throttled
            bulk_before = bulk_pacer.calls, bulk_pacer.throttled
            if self.last_written is not None:
                # An earlier run (stopped or killed just now) may have calls in the server's
                # window: they arrived before its last write, so one window after that is safe.
                ago = time.time() - self.last_written
                if ago < settings.per:
                    pacer.hold_until(time.monotonic() + settings.per - ago + pacer.margin)
                if ago < settings.bulk_per:
                    bulk_pacer.hold_until(
                        time.monotonic() + settings.bulk_per - ago + bulk_pacer.margin
                    )
            if settings.bulk:
                from .leadsquared.bulk import bulk_refusal

                refused = bulk_refusal(self.mapping)
                if refused:
                    raise MappingError(f"{self.mapping.path}: {refused}")
            if self.ledger is not None:
                # One quota per account on this machine: every process that shares the ledger
                # takes its calls' slots from one schedule (importer.ledger.pacing).
                from .ledger.pacing import share

                share(pacer, self.ledger.ledger, "calls")
                if settings.bulk:
                    share(bulk_pacer, self.ledger.ledger, "bulk")
            if settings.preflight_check:
                # Before the journal exists: a mapping the account can't take costs no row.
                found = await preflight(client, self.mapping, pacer=pacer)
                logger.info("preflight: %s", found.to_text().replace("\n", "; "))
                self.summary.preflight_calls = pacer.calls - calls_before
                if max_calls is not None:
                    max_calls = max(0, max_calls - self.summary.preflight_calls)
            self.journal.open()
            if settings.reconcile:
                from .leadsquared.lookup import Lookups

                self.lookups = Lookups(client, pacer, retry, may_call=self._may_look_up)
                self._max_calls = max_calls
                self._pool_calls = lambda: 0
                # Rows an earlier run left unknown: settled before anything is sent.
                lowest = settings.start_row or 0
                missing = await self._reconcile(
                    [row for row in self.previous.unknown_rows() if row >= lowest],
                    since=self.last_written,
                    earlier=True,
                )
                if settings.reconcile_only:
                    self._record_not_landed(missing)
                    if self.ledger is not None:  # what was found is imported
                        await self._finish_ledger()
                    self.summary.calls = 0
                    self.summary.lookup_calls = self.lookups.calls
                    self.summary.learnt_limit = pacer.learnt
                    return
                for row in missing:
                    # Never landed: sent below, once, as a failed row is (and counted as one
                    # until it is: a stop before it leaves the file incomplete, not complete).
                    self.previous.set(row, Status.FAILED, self.previous.attempts(row))
                if max_calls is not None:
                    max_calls = max(0, max_calls - self.lookups.calls)
            pool: WorkerPool
            if settings.bulk:
                from .sending.bulk import BulkPool

                pool = BulkPool(
                    sender=client,
                    pacer=pacer,
                    bulk_pacer=bulk_pacer,
                    shares_limit=settings.bulk_shares_limit,
                    batch_size=settings.batch_size,
                    single_workers=settings.calls_in_flight if settings.mode == "auto" else 0,
                    journal=self.journal,
                    retry=retry,
                    on_result=self.settled,
                    max_calls=max_calls,
                    earlier_attempts=self.previous.attempts,
                )
            else:
                pool = WorkerPool(
                    sender=client,
                    pacer=pacer,
                    journal=self.journal,
                    retry=retry,
                    concurrency=settings.calls_in_flight,
                    on_result=self.settled,
                    max_calls=max_calls,
                    earlier_attempts=self.previous.attempts,
                )
            _handle_signals(pool, stack, self.observer)
            self.sending = True
            try:
                await pool.run(self._feed())
                if self.ledger is not None:
                    await self._settle_stale(pool)
                if settings.reconcile and not pool.stats.stop_reason:
                    unshared = settings.bulk and not settings.bulk_shares_limit
                    self._pool_calls = lambda: (
                        pool.pacer.calls
                        - calls_before
                        + (bulk_pacer.calls - bulk_before[0] if unshared else 0)
                    )
                    await self._settle_this_runs(pool)
            except ImporterError as exc:
                # Rows were sent already (a file that breaks off mid-way, a full disk): not
                # "bad input, nothing sent" but a stop; every outcome so far is kept.
                self.summary.error_message = str(exc)
            finally:
                summary = self.summary
                if self.ledger is not None:
                    await self._finish_ledger()
                lookups = self.lookups.calls if self.lookups is not None else 0
                summary.lookup_calls = lookups
                summary.calls = pool.pacer.calls - calls_before - summary.preflight_calls - lookups
                summary.retries = pool.stats.retries
                summary.throttled = pool.pacer.throttled - throttled_before
                summary.learnt_limit = pool.pacer.learnt  # a batch's pacer keeps it for later files
                summary.mode = settings.mode
                if settings.bulk:
                    # A bulk call that also took an ordinary slot was counted there too.
                    summary.bulk_calls = bulk_pacer.calls - bulk_before[0]
                    if not settings.bulk_shares_limit:
                        summary.calls += summary.bulk_calls
                    summary.throttled += bulk_pacer.throttled - bulk_before[1]
                    summary.batches = getattr(pool, "batches", 0)
                    self.bulk_row_calls = getattr(pool, "row_calls", 0)
                    summary.learnt_bulk_limit = bulk_pacer.learnt
                summary.stop_reason = pool.stats.stop_reason
                fatal: Outcome | None = pool.stats.fatal
                if fatal is not None:
                    summary.fatal_message = refused_message(
                        fatal.http_status,
                        client.base_url,
                        fatal.error_type,
                        redirect_to=fatal.redirect_to,
                    )

    # ---- the ledger (see importer.ledger.run)

    def _feed(self) -> Iterator[Payload] | AsyncIterator[Payload]:
        """The rows the pool sends: those of :meth:`rows_to_send` the ledger lets through."""
        rows = self.rows_to_send()
        if self.ledger is None or not self.ledger.active:
            return rows
        return self.ledger.claimed(rows, self._not_sent_for_ledger, self._not_sent_for_ledger)

    def _not_sent_for_ledger(self, payload: Payload, error_type: str, reason: str) -> None:
        from .ledger.run import ALREADY_IMPORTED

        status = Status.SKIPPED if error_type == ALREADY_IMPORTED else Status.FAILED
        result = Result(
            payload.row,
            payload.key,
            status,
            error_type=error_type,
            error_message=reason,
            attempts=self.previous.attempts(payload.row),
            finished_at=utc_now(),
        )
        self.journal.record(result)
        self.settled(result)

    async def _settle_stale(self, pool: WorkerPool) -> None:
        """Rows whose activity a process that died had claimed (from another results file):
        look that process's attempt up; found: skipped as imported; never landed: sent now."""
        from .ledger.run import ALREADY_IMPORTED, HELD
        from .sending.reconcile import Verdict

        assert self.ledger is not None
        ledger = self.ledger
        items, ledger.stale = ledger.stale, []
        if not items:
            return
        if pool.stopping:
            for item in items:  # never started: no line; the next run meets the claim again
                ledger.keep_claim(item.payload.row)
            return
        # What the dead process's own results file says first: a row it has no line for (its
        # intent is journaled before its call leaves) or a refused one never landed; only
        # the others (sent, answer not recorded) need a lookup.
        never, items = _never_sent(items)
        missing_now = list(never)
        if self.lookups is None:
            for item in items:
                ledger.keep_claim(item.payload.row)
                self._not_sent_for_ledger(
                    item.payload,
                    HELD,
                    f"the same activity was claimed by an lsq-import process that died (from "
                    f"{item.previous.input} row {item.previous.row}): run without "
                    "--no-reconcile to look it up and settle it",
                )
            items = []
        found = []
        if items:
            found = await self._look_up_stale(items)
        missing = missing_now
        by_row = {item.payload.row: item for item in items}
        for verdict in found:
            item = by_row[verdict.row]
            self.summary.reconciled.add(verdict.verdict)
            if verdict.verdict is Verdict.FOUND:
                ledger.found_stale(item, verdict.activity_id, verdict.lead_id)
                ledger.already_imported += 1
                self._not_sent_for_ledger(
                    item.payload,
                    ALREADY_IMPORTED,
                    f"already imported from {item.previous.input} row {item.previous.row} "
                    f"(activity {verdict.activity_id}): found in LeadSquared, sent by an "
                    "lsq-import process that died before it recorded it",
                )
            elif verdict.verdict is Verdict.MISSING:
                missing.append(item)
            else:
                ledger.keep_claim(item.payload.row)
                self._not_sent_for_ledger(
                    item.payload,
                    HELD,
                    f"the same activity was claimed by an lsq-import process that died (from "
                    f"{item.previous.input} row {item.previous.row}) and the lookup could not "
                    f"settle it ({verdict.reason}): the next run looks again",
                )
        if not missing or pool.stopping:
            for item in missing:
                ledger.keep_claim(item.payload.row)
            return
        await ledger.retarget(missing)
        await self._send_again(pool, [item.payload for item in missing], self.previous.attempts)

    async def _look_up_stale(self, items: list[Any]) -> list[Any]:
        """Look up what the dead processes sent for these stale claims (their row tokens, or
        by content); looked at once more a settle delay later when the lead is there."""
        from .sending.reconcile import Pending, Verdict, settle

        assert self.ledger is not None and self.lookups is not None
        ledger = self.ledger
        token = self.mapping.row_token
        pending = [Pending(item.payload, item.previous.token) for item in items]
        found = await settle(
            pending,
            self.lookups,
            token_field=token,
            concurrency=self.settings.calls_in_flight,
        )
        recheck = {v.row for v in found if v.verdict is Verdict.MISSING and v.lead_exists}
        if recheck and await self._wait(self.settings.settle_delay):
            again = await settle(
                [p for p in pending if p.row in recheck],
                self.lookups,
                token_field=token,
                concurrency=self.settings.calls_in_flight,
            )
            found = [v for v in found if v.row not in recheck] + again
        elif recheck:
            found = [v for v in found if v.row not in recheck]  # stopped: left for next run
            for row in recheck:
                ledger.keep_claim(row)
        return found

    async def _finish_ledger(self) -> None:
        """Write the ledger's pending marks; release the claims of rows never sent."""
        assert self.ledger is not None
        try:
            await self.ledger.finish()
        except Exception as exc:  # noqa: BLE001 - the results file has every outcome
            logger.warning(
                "%s (at the end of the run, marking what it imported)",
                exc,
            )
        self.summary.already_imported = self.ledger.already_imported

    # ---- reconciliation (see importer.sending.reconcile)

    def _may_look_up(self) -> bool:
        """One more lookup call within ``--max-calls`` (what is left after the preflight)?"""
        if self._max_calls is not None and self._looked_up + self._pool_calls() >= self._max_calls:
            return False
        self._looked_up += 1
        return True

    async def _settle_this_runs(self, pool: WorkerPool) -> None:
        """This run's own lost answers: look them up once the read side had time; send again
        (once) the rows that never landed, and look up what that leaves unknown, up to three
        rounds."""

        self._stopping = lambda: pool.stopping  # a first Ctrl-C/SIGTERM ends the lookups too
        for _ in range(3):
            if not self.unknown_now or pool.stopping:
                return
            rows = sorted(self.unknown_now)
            wait = self.unknown_at + self.settings.settle_delay - time.monotonic()
            missing = await self._reconcile(rows, wait=max(0.0, wait))
            if not missing or pool.stopping:
                return
            payloads = list(self._payloads(missing))
            if not await self._send_again(pool, payloads, self._attempts_found_missing):
                return

    def _attempts_found_missing(self, row: int) -> int:
        """The calls earlier attempts made for a row found missing (its resend adds to them)."""
        return self._attempts_before.get(row, 0)

    async def _send_again(
        self, pool: WorkerPool, payloads: list[Payload], earlier: Callable[[int], int]
    ) -> bool:
        """Send ``payloads`` once more (rows found never landed) through ``pool``'s sender and
        pacer, within what is left of the budget; their outcomes count in ``pool``'s stats.
        False when that round stopped (its reason is then ``pool``'s)."""
        from .sending.pool import WorkerPool

        left = None
        if self._max_calls is not None:
            left = max(0, self._max_calls - self._looked_up - self._pool_calls())
        again = WorkerPool(
            sender=pool.sender,
            pacer=pool.pacer,
            journal=self.journal,
            retry=pool.retry,
            concurrency=pool.concurrency,
            on_result=self.settled,
            max_calls=left,
            earlier_attempts=earlier,
        )
        stats = await again.run(payloads)
        pool.stats.retries += stats.retries
        if stats.stop_reason:
            pool.stats.stop_reason, pool.stats.fatal = stats.stop_reason, stats.fatal
            return False
        return True

    def _payloads(self, rows: list[int]) -> Iterator[Payload]:
        """The payloads of ``rows`` (ascending), read again from the input."""
        from .mapping import RowError, RowSkipped
        from .outgoing import request_builder

        build = request_builder(self.mapping, self.token_seed)
        assert self.open_source is not None and self.results_file is not None
        results_file, of = self.results_file, self.positions_of
        for row in _rows_numbered(
            self.open_source, rows, lambda n: results_file.start_position(n, of)
        ):
            try:
                yield build(row)
            except (RowError, RowSkipped):
                continue  # it cannot be rebuilt (the mapping changed): left as it is

    async def _reconcile(
        self,
        rows: list[int],
        *,
        wait: float = 0.0,
        since: float | None = None,
        earlier: bool = False,
    ) -> list[int]:
        """Look up ``rows`` (unknown) in LeadSquared; record the verdicts; return the rows that
        never landed (to be sent again, once).

        ``wait``: seconds to let the read side catch up first; ``since``: the wall-clock time
        of the latest call among them, for rows an earlier run left (waits what is left of
        the settle delay). ``earlier``: rows of an earlier run (their attempts are in
        ``previous``)."""
        from .sending.reconcile import Pending, Tally, Verdict, settle

        if not rows:
            return []
        assert self.lookups is not None and self.results_file is not None
        delay = self.settings.settle_delay
        if since is not None:
            wait = max(wait, since + delay - time.time())
        tally: Tally = self.summary.reconciled
        missing: list[int] = []
        for batch in _batches(rows, 500):
            pending = [Pending(p, self._token_of(p.row)) for p in self._payloads(batch)]
            if not pending:
                continue
            if wait > 0:
                if not await self._wait(wait):
                    return missing  # stopped meanwhile: the rows left stay unknown
                wait = 0.0
            known: set[str] = set()
            if self.mapping.row_token is None:
                from .results.journal import read_success_ids

                known = read_success_ids(self.results_file.path, {p.payload.key for p in pending})
            token = self.mapping.row_token
            found = await settle(
                pending,
                self.lookups,
                token_field=token,
                known_ids=known,
                concurrency=self.settings.calls_in_flight,
            )
            recheck = {v.row for v in found if v.verdict is Verdict.MISSING and v.lead_exists}
            if recheck:
                # The lead is there but not the activity: a lagging read side would look the
                # same. Look once more, one settle delay later, before sending it again.
                if not await self._wait(delay):
                    return missing
                again = await settle(
                    [p for p in pending if p.row in recheck],
                    self.lookups,
                    token_field=token,
                    known_ids=known,
                    concurrency=self.settings.calls_in_flight,
                )
                found = [v for v in found if v.row not in recheck] + again
            by_row = {p.row: p for p in pending}
            for verdict in found:
                tally.add(verdict.verdict)
                payload = by_row[verdict.row].payload
                attempts = (
                    self.previous.attempts(verdict.row)
                    if earlier
                    else self.unknown_now.get(verdict.row, 0)
                )
                if verdict.verdict is Verdict.MISSING:
                    self._attempts_before[verdict.row] = attempts
                    missing.append(verdict.row)
                    continue
                result = Result(
                    verdict.row,
                    payload.key,
                    Status.SUCCESS if verdict.verdict is Verdict.FOUND else Status.UNKNOWN,
                    activity_id=verdict.activity_id,
                    lead_id=verdict.lead_id,
                    error_type="reconciled"
                    if verdict.verdict is Verdict.FOUND
                    else ("ambiguous" if verdict.verdict is Verdict.AMBIGUOUS else "lookup failed"),
                    error_message=verdict.reason,
                    attempts=attempts,
                    finished_at=utc_now(),
                )
                self.journal.record(result)
                if verdict.verdict is Verdict.FOUND:
                    if self.ledger is not None:
                        self.ledger.found(payload, verdict.activity_id, verdict.lead_id)
                    if earlier:
                        self.previous.set(verdict.row, Status.SUCCESS)
                    else:
                        self.unknown_now.pop(verdict.row, None)
                        self.summary.this_run[Status.UNKNOWN] -= 1
                        self.summary.this_run[Status.SUCCESS] += 1
                    if self.on_result is not None:
                        self.on_result(result)
                elif not earlier:
                    self.unknown_now.pop(verdict.row, None)  # settled as far as it can be
        tally.lookups = self.lookups.calls
        return missing

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, in slices, unless the run is stopped meanwhile (then False)."""
        end = time.monotonic() + seconds
        while not self._stopping():
            left = end - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.1))
        return False

    def _record_not_landed(self, rows: list[int]) -> None:
        """``lsq-import reconcile``: rows looked up and not found are ``failed``, so that the
        next run sends them (once); nothing is sent now."""
        for payload in self._payloads(rows):
            self.journal.record(
                Result(
                    payload.row,
                    payload.key,
                    Status.FAILED,
                    error_type="not landed",
                    error_message="looked up in LeadSquared and not found: its call never "
                    "landed; the next run sends it",
                    attempts=self._attempts_before.get(payload.row, 0),
                    finished_at=utc_now(),
                )
            )

    def _token_of(self, row: int) -> str:
        if self.mapping.row_token is None:
            return ""
        from .sending.token import row_token

        return row_token(self.token_seed, row)


def _never_sent(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Of stale claims (:class:`importer.ledger.run.Stale`), those whose call never left or
    never landed by their own results file (no line for the row, or ``failed``, ``invalid``,
    ``skipped``), and the rest. A results file that is gone tells nothing: its rows are
    looked up."""
    from .results.journal import read_outcomes

    never: list[Any] = []
    rest: list[Any] = []
    by_file: dict[str, list[Any]] = {}
    for item in items:
        by_file.setdefault(item.previous.results, []).append(item)
    for path, group in by_file.items():
        try:
            outcomes = read_outcomes(Path(path)) if path and Path(path).is_file() else None
        except (OSError, ImporterError):
            outcomes = None
        for item in group:
            status = outcomes.get(item.previous.row) if outcomes is not None else Status.UNKNOWN
            if status is None or status in (Status.FAILED, Status.INVALID, Status.SKIPPED):
                never.append(item)
            else:
                rest.append(item)
    return never, rest


def _batches(rows: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _rows_numbered(
    open_source: Callable[[], InputFile],
    numbers: list[int],
    position_for: Callable[[int], Any],
) -> Iterator[Row]:
    """The rows numbered ``numbers`` (ascending) of the input, each read once: reading starts
    again at a recorded position when the next wanted row is past it (a few rows of a long
    file cost a few thousand rows parsed, not the file)."""
    wanted = iter(numbers)
    target = next(wanted, None)
    with contextlib.ExitStack() as stack:
        rows: Iterator[Row] | None = None
        at = 0  # the number of the last row read
        while target is not None:
            start = position_for(target)
            if rows is None or (start is not None and start.row > at + 1):
                stack.close()
                source = stack.enter_context(open_source())
                use = start if start is not None and source.read_settings else None
                rows = source.rows(start=use)
            for row in rows:
                at = row.number
                while target is not None and target < at:
                    target = next(wanted, None)  # a blank row: not yielded by the reader
                if target == at:
                    yield row
                    target = next(wanted, None)
                    break
                if target is None:
                    return
            else:
                return  # the input ended


def _read_as(path: str | os.PathLike[str], source: InputFile) -> dict[str, str]:
    """How the run reads its input, as the metadata keeps it (see Fingerprints.read_as)."""
    found = {
        "path": os.path.abspath(path),
        "sheet": source.sheet_name,
        "encoding": source.encoding,
        "delimiter": source.delimiter,
    }
    return {name: value for name, value in found.items() if value is not None}


def _host_text(endpoint: Endpoint) -> str:
    """Where a run sends, as the metadata keeps it: no user info (a key could be there)."""
    from .leadsquared.classify import shown_url

    return (
        "a local sandbox for the run (--sandbox)"
        if endpoint.url is None
        else shown_url(endpoint.url)
    )


def _handle_signals(
    pool: WorkerPool, stack: contextlib.AsyncExitStack, observer: RunObserver
) -> None:
    """First Ctrl-C/SIGTERM: finish calls in flight, then stop; the observer is told at once
    (the calls may take seconds). Second: stop at once."""
    from .sending.stop import StopReason

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def first(again: str) -> None:
        if pool.stopping:
            if main is not None:
                main.cancel()
            return
        pool.stop(StopReason.INTERRUPTED)
        in_flight = pool.calls_in_flight
        logger.info("%s: stopping, finishing %d calls in flight", again, in_flight)
        if not listens(observer, "stopping"):
            return
        try:
            observer.stopping(in_flight, again)
        except Exception as exc:  # noqa: BLE001 - what is shown must not change how it stops
            logger.warning("the progress observer failed on the stop: %r", exc)

    for sig, again in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, first, again)
        except (NotImplementedError, RuntimeError, ValueError):
            return  # not the main thread (e.g. a scheduler's worker thread): no handlers
        stack.callback(_restore_signal, loop, sig, previous)


def _restore_signal(loop: asyncio.AbstractEventLoop, sig: int, previous: Any) -> None:
    """Give ``sig`` back to the handler it had before the pool: asyncio would reset it to the
    default, and a SIGTERM then would kill the run mid-rewrite with nothing said (the CLI's
    handler, or a scheduler's, is what should see it)."""
    loop.remove_signal_handler(sig)
    if previous is not None:
        signal.signal(sig, previous)
