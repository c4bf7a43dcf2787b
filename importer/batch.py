"""Several input files in one run: a folder or a glob, processed in name order.

For the nightly drop folder: each file gets its own results file in a results folder, a file
whose results already record every row as ``success`` is skipped, and a fully successful file
can be moved to an archive folder so tomorrow's run doesn't see it again.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from .exceptions import ConfigError, ImporterError, InputFileError
from .exitcodes import ExitStatus
from .progress import RunObserver
from .reader import CSV_SUFFIXES, EXCEL_SUFFIXES
from .results.file import ResultsFile
from .runner import ImportOptions, run_import
from .settings import PREFLIGHT_CALLS, ImportSettings
from .summary import Summary

if TYPE_CHECKING:
    from .mapping import Mapping

SUPPORTED = tuple(CSV_SUFFIXES) + tuple(EXCEL_SUFFIXES)

# When files end differently, the batch's exit status is the most serious one.
_SEVERITY = [
    ExitStatus.SUCCESS,
    ExitStatus.ROWS_FAILED,
    ExitStatus.BUDGET_REACHED,
    ExitStatus.INTERRUPTED,
    ExitStatus.BAD_INPUT,
    ExitStatus.API_FATAL,
    ExitStatus.INTERNAL_ERROR,
]


def is_many(spec: str | os.PathLike[str]) -> bool:
    """Whether INPUT names a folder or a glob pattern rather than one file."""
    text = str(spec)
    return Path(text).is_dir() or any(ch in text for ch in "*?[")


def expand_inputs(spec: str | os.PathLike[str]) -> list[Path]:
    """The input files a folder or glob names, in name order (hidden files left out)."""
    text = str(spec)
    if Path(text).is_dir():
        candidates = list(Path(text).iterdir())
    else:
        candidates = [Path(p) for p in glob.glob(text)]
    files = sorted(
        (
            p
            for p in candidates
            if p.is_file() and p.suffix.lower() in SUPPORTED and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
    )
    if not files:
        raise InputFileError(f"{text}: no input files there (looked for {', '.join(SUPPORTED)})")
    return files


@dataclass
class FileOutcome:
    input: Path
    results: Path
    exit_status: ExitStatus
    summary: Summary | None = None
    message: str = ""
    archived_to: Path | None = None


@dataclass
class BatchSummary:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def exit_status(self) -> ExitStatus:
        if not self.files:
            return ExitStatus.SUCCESS
        return max((f.exit_status for f in self.files), key=_SEVERITY.index)

    def to_text(self) -> str:
        lines = []
        for f in self.files:
            lines.append(f"== {f.input} -> {f.results}: exit {int(f.exit_status)}")
            if f.summary is not None:
                lines.append(f.summary.to_text())
            if f.message:
                lines.append(f.message)
            if f.archived_to is not None:
                lines.append(f"archived to {f.archived_to}")
        done = sum(f.exit_status is ExitStatus.SUCCESS for f in self.files)
        lines.append(f"{len(self.files)} files: {done} fully done")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``--summary-json`` writes for a folder or glob."""
        return {
            "exit_status": int(self.exit_status),
            "files": [
                {
                    "input": str(f.input),
                    "results": str(f.results),
                    "exit_status": int(f.exit_status),
                    "message": f.message,
                    "archived_to": str(f.archived_to or ""),
                    "summary": f.summary.to_dict() if f.summary else None,
                }
                for f in self.files
            ],
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def run_batch(
    inputs: list[Path],
    mapping: str | os.PathLike[str] | Mapping,
    *,
    settings: ImportSettings | None = None,
    results_dir: str | os.PathLike[str] = ".",
    archive_dir: str | os.PathLike[str] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
    progress: bool | RunObserver = False,
    **options: Unpack[ImportOptions],
) -> BatchSummary:
    """Run :func:`run_import` on each input in order; see the module docstring.

    ``settings``/``options`` are those of :func:`run_import`; ``max_calls`` is a budget for
    the whole batch. A file with bad input is reported and the batch goes on; a fatal API
    error (bad keys), an interruption or the call budget stops the batch (the rest is for the
    next run). All files go through one :class:`Pacer`, so the batch as a whole stays under
    ``rate`` calls per ``per`` seconds: a file starts with the slots the file before it used
    still held, not with every slot free.
    """
    settings = dataclasses.replace(settings, **options) if settings else ImportSettings(**options)
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ConfigError(f"--results-dir: {folder} is not a folder")
    archive = Path(archive_dir) if archive_dir is not None else None
    if archive is not None and not archive.is_dir():
        raise ConfigError(f"--archive-dir: {archive} is not a folder")
    stems = [p.stem for p in inputs]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise ConfigError(
            f"{', '.join(clash)}: two input files share a name, so they would share a results "
            "file; rename one"
        )
    from .mapping import load_mapping
    from .sending.pacer import Pacer

    the_mapping = load_mapping(mapping) if isinstance(mapping, str | os.PathLike) else mapping
    batch = BatchSummary()
    budget = settings.max_calls  # for the whole batch: what each file used is taken off
    pacer = Pacer(settings.rate, settings.per)
    bulk_pacer = Pacer.for_bulk(settings.bulk_rate, settings.bulk_per)  # bulk and auto modes
    for source in inputs:
        results = ResultsFile.for_input(source, folder=folder)
        if results.is_complete(source):
            outcome = FileOutcome(
                source, results.path, ExitStatus.SUCCESS, message="already fully imported: skipped"
            )
        elif budget is not None and (
            budget < 1 or (settings.preflight_check and budget <= PREFLIGHT_CALLS)
        ):
            # What is left would go to the preflight check, if not more: no row would be sent.
            outcome = FileOutcome(
                source,
                results.path,
                ExitStatus.BUDGET_REACHED,
                message=f"not started: {max(budget, 0)} calls left of the budget, too few for "
                "the preflight check and a row; run again to continue",
            )
        else:
            try:
                summary = run_import(
                    source,
                    the_mapping,
                    results=results.path,
                    settings=dataclasses.replace(settings, max_calls=budget),
                    progress=progress,
                    pacer=pacer,
                    bulk_pacer=bulk_pacer,
                )
                outcome = FileOutcome(source, results.path, summary.exit_status, summary)
            except ImporterError as exc:
                outcome = FileOutcome(source, results.path, exc.exit_status, message=str(exc))
            else:
                if budget is not None:
                    budget -= summary.calls + summary.preflight_calls
        if archive is not None and outcome.exit_status is ExitStatus.SUCCESS:
            outcome.archived_to = _archive(source, archive)
        batch.files.append(outcome)
        if on_file is not None:
            on_file(outcome)
        if outcome.exit_status in (
            ExitStatus.API_FATAL,
            ExitStatus.INTERRUPTED,
            ExitStatus.BUDGET_REACHED,
        ):
            break
    return batch


def _archive(source: Path, archive: Path) -> Path:
    target = archive / source.name
    if target.exists():  # never overwrite an earlier file of the same name
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = archive / f"{source.stem}.{stamp}{source.suffix}"
    try:
        shutil.move(str(source), str(target))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot move it to {archive} ({exc.strerror})") from None
    return target
