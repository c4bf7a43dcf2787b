"""``ResultsFile``: a results file and the files that live beside it, owned in one place.

On disk a results file is four names: ``RESULTS`` (the journal while a run goes, then one line
per row), ``RESULTS.lock`` (one run at a time), ``RESULTS.meta.json`` (the fingerprints of the
input and mapping it belongs to, and whether it is complete) and ``.RESULTS.tmp`` (the final
atomic rewrite). The runner, the batch and ``validate`` talk to this object only::

    results = ResultsFile.for_input("leads.csv")          # ./leads.results.csv
    with results.claim():                                 # the lock, and the previous outcomes
        results.check_resume(fingerprints, force=False)
        results.journal.open(); ...
        counts, report = results.finish()
    results.mark_complete(fingerprints)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..exceptions import ResultsFileError
from .fingerprint import (
    Fingerprints,
    ResultsHash,
    check_resume,
    file_digest,
    hash_results,
    meta_path,
)
from .journal import (
    Journal,
    Outcomes,
    key_cell,
    key_digest,
    read_key_digests,
    read_outcomes,
)
from .lock import ResultsLock
from .report import ResultsReport, read_report
from .status import Status

if TYPE_CHECKING:  # the reader package is imported only by a run that reads
    from ..reader.base import ReadPosition

RESULTS_SUFFIX = ".results.csv"

MAX_POSITIONS = 512
"""Input positions kept in the metadata (see :meth:`ResultsFile.start_position`)."""


class ResultsFile:
    """One results file: naming, lock, previous outcomes, resume check, journal, completion."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.previous = Outcomes()
        """The latest status of each row before this run (read by :meth:`claim`)."""
        self.journal = Journal(self.path)
        self.journal.on_checkpoint = self._checkpointed
        self.journal.on_rewrite = self._rewriting
        self._lock: ResultsLock | None = None
        self._hashed: ResultsHash | None = None
        self._prefetched: _Hashing | None = None
        self.counted: tuple[int, bool] | None = None
        """The input's rows as the run counts them (rows, exact), set as it reads: noted
        beside the file at each journal checkpoint, for ``lsq-import status``."""

    @classmethod
    def for_input(
        cls,
        input_path: str | os.PathLike[str],
        results: str | os.PathLike[str] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> ResultsFile:
        """``results`` if given, else ``leads.csv`` -> ``leads.results.csv`` in ``folder``
        (default: the current folder)."""
        if results is not None:
            return cls(results)
        return cls(Path(folder or ".") / f"{Path(input_path).stem}{RESULTS_SUFFIX}")

    @property
    def meta_path(self) -> Path:
        return meta_path(self.path)

    def check_folder(self) -> None:
        """Refuse before anything is read or sent when the file could not be written."""
        if not self.path.parent.is_dir():
            raise ResultsFileError(
                f"{self.path}: the folder {str(self.path.parent)!r} does not exist"
            )
        if self.path.exists() and not self.path.is_file():
            # A device or a pipe (/dev/full reads zeros for ever): never a results file.
            raise ResultsFileError(
                f"{self.path}: not a regular file; pass a file name for --results"
            )

    def is_complete(self, input_path: str | os.PathLike[str]) -> bool:
        """Whether this file records every row of this very input file as ``success``."""
        recorded = Fingerprints.load(self.path) if self.path.exists() else None
        return bool(
            recorded and recorded.complete and recorded.input_digest == file_digest(input_path)
        )

    @contextmanager
    def claim(self) -> Iterator[ResultsFile]:
        """Hold the lock for a run and read what earlier runs recorded."""
        self.check_folder()
        lock = ResultsLock(self.path)
        with lock:
            self._lock = lock
            # A rewrite that a kill interrupted leaves its temporary file: the journal it was
            # made from is intact, so the half-written copy goes.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal.tmp_path)
            try:
                self.previous, self._hashed = self._read_previous()
                yield self
            finally:
                self._lock = None

    def prefetch(self) -> None:
        """Start hashing the file for the resume check now, in a thread, while the run loads
        its mapping and HTTP client (hashing lets go of the GIL): :meth:`claim` takes the
        result if the file is unchanged since (same size, time and inode), else reads again."""
        if self._prefetched is None:
            self._prefetched = _Hashing.start(self.path)

    def _open_from(self) -> tuple[int, int, int] | None:
        """Where to start reading outcomes (see :func:`read_outcomes`): recorded by the last
        rewrite, if the file is still that rewrite and what a run appended since (a rewrite
        that may have taken the name without its metadata: read it all)."""
        try:
            recorded = Fingerprints.load(self.path)
            size = self.path.stat().st_size
        except (ResultsFileError, OSError):
            return None
        if (
            recorded is None
            or not recorded.open_from[0]
            or recorded.pending_bytes
            or not recorded.written_bytes
            or size < recorded.written_bytes
            or recorded.open_from[1] > recorded.written_bytes
        ):
            return None
        return recorded.open_from

    def _read_previous(self) -> tuple[Outcomes, ResultsHash | None]:
        """The outcomes, and the file's SHA-256 for the resume check (see :meth:`prefetch`),
        hashed meanwhile: a resume of a long file waits for the slower of the two."""
        hashing, self._prefetched = self._prefetched or _Hashing.start(self.path), None
        outcomes = read_outcomes(self.path, self._open_from())
        return outcomes, hashing.result() if hashing is not None else None

    def last_written(self) -> float | None:
        """When a run last wrote this file (``time.time()``), or None for a new file."""
        try:
            return self.path.stat().st_mtime if self.path.stat().st_size else None
        except OSError:
            return None

    def check_resume(self, current: Fingerprints, *, force: bool) -> None:
        """Refuse to resume with another input or a changed mapping, unless ``force``; refuse
        a results file that is not as lsq-import last wrote it (cut, or edited)."""
        digest = check_resume(
            self.path, current, started=len(self.previous) > 0, force=force, hashed=self._hashed
        )
        if digest is not None:
            self.journal.continue_digest(digest)

    def note_count(self, rows: int, exact: bool) -> None:
        """The run counted the input's rows (see :attr:`counted`)."""
        self.counted = (rows, exact)

    def _checkpointed(self, size: int, sha256: str) -> None:
        """The journal was fsynced up to ``size`` bytes: record them as verified."""
        recorded = Fingerprints.load(self.path)
        if recorded is None:
            return  # validate's file, or its metadata was deleted: nothing to keep it in
        rows, exact = self.counted or (recorded.rows_counted, recorded.rows_counted_exact)
        with contextlib.suppress(ResultsFileError):  # a stale record is only more cautious
            dataclasses.replace(
                recorded,
                verified_bytes=size,
                verified_sha256=sha256,
                rows_counted=rows,
                rows_counted_exact=exact,
            ).save(self.path)

    def _rewriting(self, size: int, sha256: str) -> None:
        """The final rewrite (fsynced) is about to take the name: accept it from now on."""
        recorded = Fingerprints.load(self.path)
        if recorded is not None:
            dataclasses.replace(recorded, pending_bytes=size, pending_sha256=sha256).save(
                self.path, durable=True
            )

    def start_position(self, first_row: int, of: str) -> ReadPosition | None:
        """The last recorded position of the input (read with the settings and digest ``of``)
        at or before ``first_row``, the first row a run must read; None if there is none."""
        from ..reader.base import ReadPosition

        recorded = Fingerprints.load(self.path)
        if recorded is None or recorded.positions_of != of:
            return None
        before = [p for p in recorded.positions if p[0] <= first_row]
        return ReadPosition(*before[-1]) if before else None

    def keep_positions(self, positions: Iterable[ReadPosition], of: str) -> None:
        """Record where records of the input start (with those recorded for the same input and
        settings before): what :meth:`start_position` gives a later resume."""
        recorded = Fingerprints.load(self.path)
        if recorded is None:
            return
        known = dict.fromkeys(recorded.positions) if recorded.positions_of == of else {}
        known.update(dict.fromkeys((p.row, p.line, p.offset) for p in positions))
        merged = sorted(dict((p[0], p) for p in known).values())
        while len(merged) > MAX_POSITIONS:
            del merged[::2]
        if (tuple(merged), of) != (recorded.positions, recorded.positions_of):
            with contextlib.suppress(ResultsFileError):  # a resume then reads from the top
                dataclasses.replace(recorded, positions=tuple(merged), positions_of=of).save(
                    self.path
                )

    def token_seed(self) -> str:
        """The seed of this file's row tokens (see importer.sending.token), made from the
        input's fingerprint the first time it is asked for, then kept in the metadata."""
        recorded = Fingerprints.load(self.path)
        if recorded is None:
            raise ResultsFileError(f"{self.meta_path}: missing; run check_resume first")
        if not recorded.token_seed:
            from ..sending.token import seed_for

            seed = seed_for(recorded.input_digest)
            recorded = dataclasses.replace(recorded, token_seed=seed)
            recorded.save(self.path, durable=True)  # before any token is sent
        return recorded.token_seed

    def has_metadata(self) -> bool:
        """Whether the fingerprints of the input and mapping are kept beside the file."""
        return self.meta_path.exists()

    def check_metadata(self, *, force: bool) -> None:
        """Refuse to resume a file that has outcomes but no metadata, unless ``force``.

        lsq-import writes the metadata before the first row is sent; without it nothing says
        which input the rows belong to, or that the file is as it was written (a row inserted
        with the same key, or a line cut off, would go unnoticed). With ``force`` the caller
        checks the keys (:meth:`check_keys`).
        """
        if force or self.has_metadata() or not len(self.previous):
            return
        raise ResultsFileError(
            f"{self.path} has outcomes but no {self.meta_path.name} beside it: nothing says which "
            "input it was started with or that it is as lsq-import wrote it, and rows are "
            f"matched by number; put {self.meta_path.name} back, use a new --results file, or "
            "run with --force-resume to go on from what it lists (each recorded row's key is "
            "then checked against the input's row of that number)"
        )

    def check_keys(self, keys: Iterable[tuple[int, str]]) -> None:
        """Refuse a resume whose input no longer has, at a recorded row number, the key the
        results file recorded there (a row inserted or removed above it).

        For a results file without its metadata: with it, the input's SHA-256 says as much.
        ``keys``: (row number, SearchBy key) of every input row, in order.
        """
        recorded = read_key_digests(self.path)
        for row, key in keys:
            if row >= len(recorded):
                return  # no row past here was recorded
            if recorded[row] and key_digest(key_cell(key)) != recorded[row]:
                raise ResultsFileError(
                    f"{self.path}: row {row} was recorded for another lead than the input's "
                    f"row {row} ({key or 'no key'}): the input changed since, and without "
                    f"{self.meta_path.name} to check it against, rows matched by number would "
                    "be skipped or sent twice; use a new --results file"
                )

    def finish(self) -> tuple[Counter[Status], ResultsReport]:
        """Rewrite the journal to one line per row; the counts and the report of the file.

        The rewritten file's size (and its counts) are recorded beside it, so a later resume can
        tell a file that was cut short from one that was not (see :func:`check_resume`). A run
        that appended nothing to a file still as the last rewrite left it (every row it reached
        was skipped) rewrites nothing: the file already is one line per row.
        """
        recorded = Fingerprints.load(self.path)
        if not self.journal.appended and self._as_last_written(recorded):
            self.journal.close()
            return self.previous.counts(), read_report(self.path)
        counts = self.journal.finalize(lock=self._lock.adopt if self._lock else None)
        recorded = Fingerprints.load(self.path)
        if recorded is not None:
            dataclasses.replace(
                recorded,
                written_bytes=recorded.pending_bytes,
                written_rows=sum(counts.values()),
                counts={str(status): n for status, n in counts.items()},
                verified_bytes=recorded.pending_bytes,
                verified_sha256=recorded.pending_sha256,
                pending_bytes=0,
                pending_sha256="",
                open_from=self.journal.open_from or (0, 0, 0),
            ).save(self.path)
        return counts, read_report(self.path)

    def _as_last_written(self, recorded: Fingerprints | None) -> bool:
        """Whether the file is as lsq-import's last final rewrite left it (its size then)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        return (
            recorded is not None
            and bool(recorded.written_bytes)
            and (size == recorded.written_bytes)
        )

    def completed_counts(self, current: Fingerprints) -> Counter[Status] | None:
        """The counts of this file if it is complete for this very input and mapping and as
        its last rewrite left it; else None (then a run reads it and resumes as usual).

        Lets a rerun of a finished file end at once: without this, it reads every line,
        rewrites the file and rebuilds the report only to find nothing to send. Taken under
        the lock, so it never answers for a file another run is writing.
        """
        recorded = Fingerprints.load(self.path)
        if (
            recorded is None
            or not recorded.complete
            or not recorded.counts
            or (recorded.input_digest, recorded.mapping_digest)
            != (current.input_digest, current.mapping_digest)
        ):
            return None
        self.check_folder()
        with ResultsLock(self.path):
            if not self._as_last_written(recorded):
                return None
            counts = Counter({Status(s): n for s, n in recorded.counts.items()})
        if set(counts) != {Status.SUCCESS}:
            return None
        return counts

    def record_run(
        self,
        *,
        host: str | None = None,
        input_rows: int | None = None,
        read_as: dict[str, str] | None = None,
        errors_file: bool | None = None,
        bulk: tuple[int, int] = (0, 0),
    ) -> None:
        """Note beside the file where the run sends (``host``: no user info, never a key) and,
        once a run has read the whole input, its ``input_rows``: what ``report`` tells of the
        import ("76 of 620 rows, incomplete"); how it read the input (``read_as``) and whether
        that is an errors file (see :class:`Fingerprints`); ``bulk``: the bulk calls this run
        made and the row attempts they account for, added to the earlier runs'. A file
        without metadata is left without."""
        recorded = Fingerprints.load(self.path)
        if recorded is None:
            return
        changed = dataclasses.replace(
            recorded,
            host=recorded.host if host is None else host,
            input_rows=recorded.input_rows if input_rows is None else input_rows,
            read_as=recorded.read_as if read_as is None else read_as,
            errors_file=recorded.errors_file if errors_file is None else errors_file,
            bulk_calls=recorded.bulk_calls + bulk[0],
            bulk_row_calls=recorded.bulk_row_calls + bulk[1],
        )
        if changed != recorded:
            changed.save(self.path)

    def mark_complete(self, current: Fingerprints) -> None:
        """Every row of the input succeeded: a scheduled run may skip this input from now on."""
        recorded = Fingerprints.load(self.path) or current
        dataclasses.replace(recorded, complete=True).save(self.path)

    def open_for_validation(self) -> Journal:
        """A fresh file for ``validate``, which must never destroy a run's results: an
        existing file is replaced only if a validation wrote it (``invalid``/``skipped`` only).
        """
        self.check_folder()
        if self.path.exists():
            statuses = set(read_outcomes(self.path).counts())
            if statuses - {Status.INVALID, Status.SKIPPED}:
                raise ResultsFileError(
                    f"{self.path}: holds the outcomes of a run ({', '.join(sorted(statuses))}); "
                    "validate writes a file of its own: pass another --results file"
                )
            try:
                self.path.unlink()
            except OSError as exc:
                raise ResultsFileError(
                    f"{self.path}: cannot replace the file ({exc.strerror})"
                ) from None
        self.journal.open()
        return self.journal


class _Hashing:
    """:func:`hash_results` of a results file in a thread, and the file as it was then."""

    def __init__(self, path: Path, verified: int, identity: tuple[int, int, int]) -> None:
        self.path, self.verified, self.identity = path, verified, identity
        self.found: ResultsHash | None = None
        self.thread = threading.Thread(target=self._work, name="lsq-hash", daemon=True)

    @classmethod
    def start(cls, path: Path) -> _Hashing | None:
        """Hashing started, or None for a file whose metadata records no written bytes."""
        try:
            recorded = Fingerprints.load(path)
            stat = os.stat(path)
        except (ResultsFileError, OSError):
            return None  # check_resume says what is wrong, if anything
        if recorded is None or not (recorded.verified_bytes or recorded.written_bytes):
            return None
        hashing = cls(path, recorded.verified_bytes, _identity(stat))
        hashing.thread.start()
        return hashing

    def _work(self) -> None:
        with contextlib.suppress(OSError):  # check_resume reads it again and says what is wrong
            self.found = hash_results(self.path, self.verified)

    def result(self) -> ResultsHash | None:
        """The hash, if the file (and its verified size) is still as it was hashed."""
        self.thread.join()
        try:
            recorded = Fingerprints.load(self.path)
            now = _identity(os.stat(self.path))
        except (ResultsFileError, OSError):
            return None
        found = self.found
        if (
            found is None
            or recorded is None
            or now != self.identity
            or found.size != now[0]
            or recorded.verified_bytes != self.verified
        ):
            return None
        return found


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_size, stat.st_mtime_ns, stat.st_ino
