"""Fingerprints of the input and mapping a results file belongs to.

Resume matches rows by their row number, so it is only right while the input file is the one
the results file was started with: a row inserted near the top would shift every number after
it, and the run would skip rows never sent and resend rows already sent. The fingerprints are
kept next to the results file (``<results>.meta.json``) and checked before a resume.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..exceptions import ResultsFileError
from .status import Status


def file_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes (about 1 s per GB); OSError for a path that is not a
    regular file (``/dev/zero`` or a pipe would be read for ever)."""
    if not stat.S_ISREG(os.stat(path).st_mode):  # before open: opening a pipe blocks
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return f"sha256:{size_and_sha256(path)[1]}"


def size_and_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """A file's size in bytes and the SHA-256 hex of its bytes, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _counts(found: object) -> dict[str, int]:
    """The ``counts`` of a metadata file; ValueError if they are not status -> count."""
    if not found:
        return {}
    if not isinstance(found, dict) or not set(found) <= {status.value for status in Status}:
        raise ValueError("counts")
    return {str(k): int(v) for k, v in found.items()}


def _positions(found: object) -> tuple[tuple[int, int, int], ...]:
    """The ``positions`` of a metadata file; ValueError unless (row, line, offset) triples of
    non-negative integers in ascending row order."""
    if not found:
        return ()
    if not isinstance(found, list):
        raise ValueError("positions")
    triples = tuple((int(row), int(line), int(offset)) for row, line, offset in found)
    if any(min(t) < 0 for t in triples) or [t[0] for t in triples] != sorted(
        {t[0] for t in triples}
    ):
        raise ValueError("positions")
    return triples


def _keys(found: object) -> dict[str, str]:
    """The ``mapping_keys`` of a metadata file; ValueError if they are not key -> digest."""
    return _texts(found, "mapping_keys")


def _texts(found: object, name: str) -> dict[str, str]:
    """A name -> text object of a metadata file; ValueError if it is not one."""
    if not found:
        return {}
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise ValueError(name)
    return {str(k): v for k, v in found.items()}


def changed_keys(recorded: dict[str, str], current: dict[str, str], limit: int = 10) -> str:
    """'lead.attributes.FirstName changed, activity.fields.mx_Custom_3 added': the mapping
    keys whose digests differ, at most ``limit`` of them named; "" if none can be named."""

    def change(key: str) -> str:
        return "added" if key not in recorded else "removed" if key not in current else "changed"

    changes = [
        f"{key} {change(key)}"
        for key in sorted(recorded.keys() | current.keys())
        if recorded.get(key) != current.get(key)
    ]
    if len(changes) > limit:
        changes[limit:] = [f"and {len(changes) - limit} more"]
    return ", ".join(changes)


def same_mapping(recorded: Fingerprints, current: Fingerprints) -> bool:
    """The same bytes, or the same meaning (a comment or the layout edited)."""
    return recorded.mapping_digest == current.mapping_digest or bool(
        recorded.mapping_meaning and recorded.mapping_meaning == current.mapping_meaning
    )


def _triple(found: object) -> tuple[int, int, int]:
    """``open_from`` of a metadata file: three non-negative integers; ValueError otherwise."""
    if not found:
        return (0, 0, 0)
    if not isinstance(found, list) or len(found) != 3:
        raise ValueError("open_from")
    row, offset, line = (int(v) for v in found)
    if min(row, offset, line) < 0:
        raise ValueError("open_from")
    return row, offset, line


def meta_path(results: Path) -> Path:
    """Where the fingerprints of ``results`` are kept."""
    return results.with_name(results.name + ".meta.json")


@dataclass(frozen=True)
class Fingerprints:
    input: str
    input_digest: str
    mapping: str
    mapping_digest: str
    """``sha256:<hex>`` of the mapping file's bytes: a rerun of a complete file compares it
    before loading the mapping (see :meth:`ResultsFile.completed_counts`)."""
    mapping_meaning: str = ""
    """``sha256:<hex>`` of what the mapping means (:mod:`importer.mapping.meaning`): a resume
    accepts a mapping whose bytes changed but not this. Empty in files recorded before it
    existed, and until the mapping is loaded; those resume on unchanged bytes only."""
    mapping_keys: dict[str, str] = field(default_factory=dict)
    """Dotted mapping key -> digest of what it holds, to name the keys that changed."""
    complete: bool = False
    """Every row of this input ended ``success``: a scheduled run may skip the file."""
    written_bytes: int = 0
    written_rows: int = 0
    """The results file's size and rows when lsq-import last rewrote it: a resume refuses a
    file that is shorter (cut, or edited), whose missing rows would be sent again."""
    counts: dict[str, int] = field(default_factory=dict)
    """Rows by final status at that rewrite: a rerun of a complete file is answered from these
    without reading (or rewriting) the file."""
    verified_bytes: int = 0
    verified_sha256: str = ""
    """The SHA-256 of the results file's first ``verified_bytes`` bytes, recorded each time the
    journal is fsynced (about once a second while a run goes, at its end, and at the final
    rewrite): the file only grows past them, so a resume refuses a file whose first
    ``verified_bytes`` bytes are not these (cut after a crash, or edited, even to the same
    size): the rows it lost or changed would be sent again."""
    pending_bytes: int = 0
    pending_sha256: str = ""
    """The final rewrite about to take the file's name: until the metadata says it did, a
    resume accepts either the journal (``verified_*``) or the rewrite (these)."""
    positions: tuple[tuple[int, int, int], ...] = ()
    """Where records of the input start, as (row, physical lines before it, offset) that the
    reader noted (:class:`importer.reader.ReadPosition`): a resume starts reading at the last
    one before the first row it must read, instead of parsing every row already done."""
    positions_of: str = ""
    """The input's digest and the reader's settings those positions belong to."""
    input_rows: int = 0
    """The input's data rows, counted by the last run that read it to the end (0: no run has
    yet): what ``report`` says "76 of 620 rows" with."""
    host: str = ""
    """Where the last run sent its rows (scheme, host, port and path: never user info, never
    a key)."""
    open_from: tuple[int, int, int] = (0, 0, 0)
    """Of the file as last rewritten (``written_bytes``): (row, byte offset, line number) of
    the first row not in an unbroken run of ``success`` rows from row 2 (see
    importer.results.journal.read_outcomes); (0, 0, 0): not recorded."""
    token_seed: str = ""
    """What the row tokens of this results file are made from (see importer.sending.token):
    set once, when a run first sends with a token, and kept for the file's life."""
    read_as: dict[str, str] = field(default_factory=dict)
    """How the last run read the input: its absolute ``path`` and the reader's settings in use,
    ``sheet`` (Excel) or ``encoding`` and ``delimiter`` (CSV): what ``report --errors-csv``
    reads the same rows back with. Empty for a DataFrame, and in files recorded before."""
    errors_file: bool = False
    """The input is an errors file (:mod:`.errors_csv`, its ``lsq_`` columns): ``report``
    names each row's original row (``lsq_row``)."""
    bulk_calls: int = 0
    bulk_row_calls: int = 0
    """Calls through the bulk endpoints by every run that finished (``--mode bulk``/``auto``),
    and the row attempts they account for: a bulk call carries up to 25 rows and counts in
    each one's ``attempts``, so ``report`` counts the calls made as the attempts, less
    ``bulk_row_calls``, plus ``bulk_calls``."""
    rows_counted: int = 0
    rows_counted_exact: bool = False
    """The input's rows as the run (the latest) counted them at its last journal checkpoint,
    about once a second: exact for an Excel sheet (or a CSV read to its end), else estimated
    from the share of the file's bytes read, as its progress bar showed them (0: not
    counted). What ``lsq-import status`` gives a running import's total by, until
    ``input_rows`` is known."""

    @classmethod
    def of(
        cls,
        input_path: str | os.PathLike[str],
        mapping_path: str | os.PathLike[str],
        *,
        input_digest: str | None = None,
    ) -> Fingerprints:
        """The fingerprints of an input file (or, given ``input_digest``, of an input that is
        not a file, named ``input_path``) and a mapping file."""
        return cls(
            input=str(input_path),
            input_digest=input_digest or file_digest(input_path),
            mapping=str(mapping_path),
            mapping_digest=file_digest(mapping_path),
        )

    def save(self, results: Path, *, durable: bool = False) -> None:
        """Write atomically next to the results file; ``durable``: fsynced, with its folder,
        before this returns (the final rewrite's ``pending_*`` must be on disk before the
        rewrite takes the results file's name)."""
        target = meta_path(results)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(self), indent=2) + "\n")
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
            if durable:
                fsync_dir(target.parent)
        except OSError as exc:
            raise ResultsFileError(f"{target}: cannot write ({exc.strerror})") from None

    def digests(self) -> dict[str, str]:
        """The input's and mapping's SHA-256, as a run's summary reports them."""
        return {"input": self.input_digest, "mapping": self.mapping_digest}

    def written(self) -> dict[str, object]:
        """What lsq-import wrote into the results file (to carry into new fingerprints)."""
        return {
            name: getattr(self, name)
            for name in (
                "written_bytes",
                "written_rows",
                "verified_bytes",
                "verified_sha256",
                "pending_bytes",
                "pending_sha256",
                "token_seed",
                "open_from",
                "bulk_calls",
                "bulk_row_calls",
            )
        }

    @classmethod
    def load(cls, results: Path) -> Fingerprints | None:
        target = meta_path(results)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            return cls(
                **{k: str(data[k]) for k in ("input", "input_digest", "mapping", "mapping_digest")},
                mapping_meaning=str(data.get("mapping_meaning") or ""),
                mapping_keys=_keys(data.get("mapping_keys")),
                complete=data.get("complete") is True,
                written_bytes=int(data.get("written_bytes") or 0),
                written_rows=int(data.get("written_rows") or 0),
                bulk_calls=int(data.get("bulk_calls") or 0),
                bulk_row_calls=int(data.get("bulk_row_calls") or 0),
                counts=_counts(data.get("counts")),
                verified_bytes=int(data.get("verified_bytes") or 0),
                verified_sha256=str(data.get("verified_sha256") or ""),
                pending_bytes=int(data.get("pending_bytes") or 0),
                pending_sha256=str(data.get("pending_sha256") or ""),
                positions=_positions(data.get("positions")),
                positions_of=str(data.get("positions_of") or ""),
                input_rows=int(data.get("input_rows") or 0),
                host=str(data.get("host") or ""),
                token_seed=str(data.get("token_seed") or ""),
                open_from=_triple(data.get("open_from")),
                read_as=_texts(data.get("read_as"), "read_as"),
                errors_file=data.get("errors_file") is True,
                rows_counted=int(data.get("rows_counted") or 0),
                rows_counted_exact=data.get("rows_counted_exact") is True,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise ResultsFileError(
                f"{target}: damaged; delete it to resume without the input/mapping check"
            ) from None


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a file just created or renamed into it) durable. Best effort:
    a folder that cannot be opened for reading, or a file system without directory fsync, is
    left as it is."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ResultsHash:
    """A results file as :func:`hash_results` read it."""

    size: int
    upto: int
    prefix: str
    """SHA-256 hex of the first ``upto`` bytes ("" if the file is shorter)."""
    whole: hashlib._Hash
    last: bytes
    """The file's last byte (b"" when empty)."""


def hash_results(results: Path, upto: int) -> ResultsHash:
    """Read ``results`` once: the SHA-256 of its first ``upto`` bytes and of all of it.

    hashlib lets go of the GIL while it hashes a block, so a thread can run this while the
    outcomes are parsed (see :meth:`importer.results.file.ResultsFile.claim`).
    """
    digest = hashlib.sha256()
    prefix = ""
    last = b""
    done = 0
    with open(results, "rb") as handle:
        while block := handle.read(1 << 20):
            if done < upto <= done + len(block):
                cut = upto - done
                digest.update(block[:cut])
                prefix = digest.hexdigest()
                digest.update(block[cut:])
            else:
                digest.update(block)
            done += len(block)
            last = block[-1:]
    return ResultsHash(done, upto, prefix, digest, last)


def verify_written(
    results: Path, recorded: Fingerprints, hashed: ResultsHash | None = None
) -> hashlib._Hash | None:
    """Refuse ``results`` if it is not what lsq-import last wrote: shorter than its verified
    prefix, or with other bytes in it (and not the final rewrite about to take its name).

    ``hashed``: the file as read already (by :func:`hash_results` with ``upto`` the verified
    bytes); read here if not given, or if it no longer fits the file.

    Returns the SHA-256 of the whole file as read (for the journal to go on from when it
    appends), or None when the file does not end with a complete line (the journal cuts that
    torn line and hashes again).
    """
    try:
        size = results.stat().st_size
    except OSError:
        size = 0
    verified = recorded.verified_bytes or recorded.written_bytes
    if size < verified and not (recorded.pending_bytes and size == recorded.pending_bytes):
        raise ResultsFileError(
            f"{results} is shorter ({size} bytes) than when lsq-import last wrote it "
            f"({verified} bytes): it was cut or edited, and the rows it lost would be sent "
            f"again; {_WAY_OUT.format(meta=meta_path(results).name)}"
        )
    if hashed is None or (hashed.size, hashed.upto) != (size, recorded.verified_bytes):
        hashed = hash_results(results, recorded.verified_bytes)
    digest, prefix, last = hashed.whole, hashed.prefix, hashed.last
    pending = ""
    whole = digest.hexdigest()
    if recorded.pending_bytes and size == recorded.pending_bytes:
        pending = whole
    prefix_ok = not recorded.verified_sha256 or prefix == recorded.verified_sha256
    pending_ok = bool(recorded.pending_sha256) and pending == recorded.pending_sha256
    if pending_ok and not prefix_ok:
        # The rewrite took the name before its metadata said so: it is what was written.
        replace(
            recorded,
            verified_bytes=recorded.pending_bytes,
            verified_sha256=recorded.pending_sha256,
            pending_bytes=0,
            pending_sha256="",
        ).save(results, durable=True)
    elif recorded.pending_bytes and prefix_ok:
        # The rewrite never took the name: forget it, or a later cut to its size would pass.
        replace(recorded, pending_bytes=0, pending_sha256="").save(results, durable=True)
    if not (prefix_ok or pending_ok):
        raise ResultsFileError(
            f"{results} was changed since lsq-import last wrote it (its first "
            f"{recorded.verified_bytes} bytes are not what was written): a row whose line was "
            f"edited or removed would be sent again; "
            + _WAY_OUT.format(meta=meta_path(results).name)
        )
    return digest if last in (b"", b"\n") else None


_WAY_OUT = (
    "restore it from a backup, or, to resume from what it lists now (rows it no longer "
    "lists as sent are sent again), delete {meta} and run again with --force-resume"
)


def refuse_changed(results: Path, recorded: Fingerprints, current: Fingerprints) -> None:
    """Raise ResultsFileError when ``current``'s input or mapping is not the one ``recorded``
    (the metadata of ``results``, which holds outcomes) was started with: what refuses a
    resume, and a dry run of one (which reads the metadata and writes nothing)."""
    if recorded.input_digest != current.input_digest:
        raise ResultsFileError(
            f"{current.input} is not the file {results} was started with ({recorded.input}):"
            " rows are matched by number, so an added or removed row would skip or resend"
            " the wrong rows; use a new --results file, or --force-resume if you only"
            " corrected cells in place"
        )
    if not same_mapping(recorded, current):
        what = ""
        if recorded.mapping_meaning and current.mapping_meaning:
            changes = changed_keys(recorded.mapping_keys, current.mapping_keys)
            what = f" in what it sends ({changes})" if changes else " in what it sends"
        raise ResultsFileError(
            f"{current.mapping} changed since {results} was started{what}; use"
            " --force-resume to go on with the new mapping (rows already 'success' are not"
            " sent again), or a new --results file"
        )


def check_resume(
    results: Path,
    current: Fingerprints,
    *,
    started: bool,
    force: bool,
    hashed: ResultsHash | None = None,
) -> hashlib._Hash | None:
    """Refuse to resume ``results`` with a changed input or mapping, unless ``force``; refuse a
    results file that is not what lsq-import last wrote (:func:`verify_written`, given
    ``hashed``).

    ``started``: the results file already holds outcomes. The current fingerprints are saved
    when the check passes, so the next resume compares against this run's files. Returns the
    results file's running SHA-256, if it was read.
    """
    on_disk = Fingerprints.load(results)
    digest = None
    if on_disk is not None and (on_disk.verified_bytes or on_disk.written_bytes):
        # Also when no outcome can be read: a file cut to its header, emptied or deleted
        # under its metadata would otherwise be sent again from the first row.
        digest = verify_written(results, on_disk, hashed)
        on_disk = Fingerprints.load(results)  # as verify_written may have updated it
    recorded = on_disk if started else None
    if recorded is not None and not force:
        refuse_changed(results, recorded, current)
    if (
        recorded is not None
        and recorded.input_digest == current.input_digest
        and same_mapping(recorded, current)
    ):
        if (recorded.mapping_digest, recorded.mapping_meaning, recorded.mapping_keys) != (
            current.mapping_digest,
            current.mapping_meaning,
            current.mapping_keys,
        ):
            # The same meaning in other bytes (or recorded before meanings were): record the
            # file as it is now, and keep what the results file's state says (complete, counts).
            replace(
                recorded,
                mapping=current.mapping,
                mapping_digest=current.mapping_digest,
                mapping_meaning=current.mapping_meaning or recorded.mapping_meaning,
                mapping_keys=current.mapping_keys or recorded.mapping_keys,
            ).save(results)
    elif recorded is None or (recorded.input_digest, recorded.mapping_digest) != (
        current.input_digest,
        current.mapping_digest,
    ):
        kept = recorded or current  # what was written stays recorded
        same_input = on_disk is not None and on_disk.input_digest == current.input_digest
        replace(
            current,
            **kept.written(),  # type: ignore[arg-type]
            input_rows=on_disk.input_rows if same_input and on_disk else 0,
            host=on_disk.host if on_disk else "",
        ).save(results)
    return digest
