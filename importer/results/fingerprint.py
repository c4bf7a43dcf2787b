"""Fingerprints of the input and mapping a results file belongs to.

Resume matches rows by their row number, so it is only right while the input file is the one
the results file was started with: a row inserted near the top would shift every number after
it, and the run would skip rows never sent and resend rows already sent. The fingerprints are
kept next to the results file (``<results>.meta.json``) and checked before a resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..exceptions import ResultsFileError


def file_digest(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file's bytes (about 1 s per GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def meta_path(results: Path) -> Path:
    """Where the fingerprints of ``results`` are kept."""
    return results.with_name(results.name + ".meta.json")


@dataclass(frozen=True)
class Fingerprints:
    input: str
    input_digest: str
    mapping: str
    mapping_digest: str
    complete: bool = False
    """Every row of this input ended ``success``: a scheduled run may skip the file."""
    written_bytes: int = 0
    written_rows: int = 0
    """The results file's size and rows when lsq-import last rewrote it: a resume refuses a
    file that is shorter (cut, or edited), whose missing rows would be sent again."""
    counts: dict[str, int] = field(default_factory=dict)
    """Rows by final status at that rewrite: a rerun of a complete file is answered from these
    without reading (or rewriting) the file."""

    @classmethod
    def of(
        cls, input_path: str | os.PathLike[str], mapping_path: str | os.PathLike[str]
    ) -> Fingerprints:
        return cls(
            input=str(input_path),
            input_digest=file_digest(input_path),
            mapping=str(mapping_path),
            mapping_digest=file_digest(mapping_path),
        )

    def save(self, results: Path) -> None:
        """Write atomically next to the results file."""
        target = meta_path(results)
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            raise ResultsFileError(f"{target}: cannot write ({exc.strerror})") from None

    @classmethod
    def load(cls, results: Path) -> Fingerprints | None:
        target = meta_path(results)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            return cls(
                **{k: str(data[k]) for k in ("input", "input_digest", "mapping", "mapping_digest")},
                complete=data.get("complete") is True,
                written_bytes=int(data.get("written_bytes") or 0),
                written_rows=int(data.get("written_rows") or 0),
                counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise ResultsFileError(
                f"{target}: damaged; delete it to resume without the input/mapping check"
            ) from None


def check_resume(results: Path, current: Fingerprints, *, started: bool, force: bool) -> None:
    """Refuse to resume ``results`` with a changed input or mapping, unless ``force``.

    ``started``: the results file already holds outcomes. The current fingerprints are saved
    when the check passes, so the next resume compares against this run's files.
    """
    recorded = Fingerprints.load(results) if started else None
    if recorded is not None and recorded.written_bytes:
        size = results.stat().st_size if results.exists() else 0
        if size < recorded.written_bytes:
            raise ResultsFileError(
                f"{results} is shorter ({size} bytes) than when lsq-import last wrote it "
                f"({recorded.written_bytes} bytes, {recorded.written_rows} rows): it was cut or "
                "edited, and the rows it lost would be sent again; restore it from a backup, or "
                f"delete {meta_path(results).name} to resume from what it still lists (rows it "
                "no longer lists are then sent again)"
            )
    if recorded is not None and not force:
        if recorded.input_digest != current.input_digest:
            raise ResultsFileError(
                f"{current.input} is not the file {results} was started with ({recorded.input}):"
                " rows are matched by number, so an added or removed row would skip or resend"
                " the wrong rows; use a new --results file, or --force-resume if you only"
                " corrected cells in place"
            )
        if recorded.mapping_digest != current.mapping_digest:
            raise ResultsFileError(
                f"{current.mapping} changed since {results} was started; use --force-resume to"
                " go on with the new mapping (rows already 'success' are not sent again), or a"
                " new --results file"
            )
    if recorded is None or (recorded.input_digest, recorded.mapping_digest) != (
        current.input_digest,
        current.mapping_digest,
    ):
        kept = recorded or current  # what was written stays recorded
        replace(current, written_bytes=kept.written_bytes, written_rows=kept.written_rows).save(
            results
        )
