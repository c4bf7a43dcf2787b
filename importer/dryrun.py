"""``dry_run``: what a run would send, shown and not sent (``lsq-import run --dry-run``).

A run's first bodies are worth seeing before they reach the account, like httpie's
``--offline``. The dry run takes the very rows the run would map (its ``start_row`` and
``limit``, minus the rows its results file already settled) and the very body of each (both
from :mod:`importer.outgoing`), checks them as ``validate`` does and writes the bodies as
``validate --payloads`` does. It sends nothing and writes nothing beside the bodies: the results
file and its metadata are only read (no lock is taken, no file is created), and no call is
made unless ``online``, which makes the metadata calls of the run's preflight check.

    from importer.dryrun import dry_run
    summary = dry_run("leads.csv", "mappings/example.yaml", limit=3, payloads=sys.stdout)
    raise SystemExit(summary.exit_status)
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Unpack, cast

from .exceptions import MappingError
from .mapping import Mapping, load_mapping
from .outgoing import RowSelection
from .progress import RunObserver
from .reader.frame import describe, frame_digest, is_dataframe
from .results.file import ResultsFile
from .results.fingerprint import Fingerprints, file_digest, refuse_changed
from .results.journal import Outcomes, read_outcomes
from .settings import ImportSettings
from .validate import TextSink, ValidationSummary, validate_file

if TYPE_CHECKING:
    import pandas

    from .preflight import PreflightReport
    from .runner import ImportOptions

__all__ = ["dry_run"]


def dry_run(
    input_path: str | os.PathLike[str] | pandas.DataFrame,
    mapping: str | os.PathLike[str] | Mapping,
    *,
    results: str | os.PathLike[str] | None = None,
    payloads: str | os.PathLike[str] | TextSink | None = None,
    online: bool = False,
    settings: ImportSettings | None = None,
    progress: bool | RunObserver = False,
    **options: Unpack[ImportOptions],
) -> ValidationSummary:
    """Check and show what ``run_import`` with the same arguments would send; send nothing.

    Settings as for :func:`importer.runner.run_import` (``start_row``, ``limit``,
    ``retry_unknown``, ``force_resume``, the reader's options; with ``online``: ``host``,
    ``credentials``, ``env_file``, ``sandbox``, ``sandbox_schema``, ``timeout``; the rest
    are ignored). ``results``: the run's results file (default: as ``run_import`` names it),
    read if it exists, to pass over the rows a resume would not send, and to refuse a resume
    that the run would refuse (another input, a changed mapping, unless ``force_resume``).
    ``payloads``: where the bodies go, as for :func:`importer.validate.validate_file`
    (``{"row": N, "key": "...", "body": {...}}`` per line). ``online``: first check the mapping
    against the account (the run's preflight, metadata calls only), then each row's dropdown
    values. Returns the :class:`ValidationSummary` (its ``exit_status`` is ``validate``'s);
    raises ``ImporterError`` subclasses as ``validate_file`` does.
    """
    settings = dataclasses.replace(settings, **options) if settings else ImportSettings(**options)
    the_mapping = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    if settings.bulk:  # what the run would refuse, said offline too
        from .leadsquared.bulk import bulk_refusal

        if refused := bulk_refusal(the_mapping):
            raise MappingError(f"{the_mapping.path}: {refused}")
    previous, earlier = _previous_outcomes(input_path, the_mapping, results, settings)
    seed = _token_seed(input_path, the_mapping, results) if the_mapping.row_token else ""
    check = None
    if online:

        def check(checked: Mapping) -> PreflightReport:
            from .preflight import check_account

            return check_account(
                checked,
                host=settings.host,
                credentials=settings.credentials,
                env_file=settings.env_file,
                sandbox=settings.sandbox,
                sandbox_schema=settings.sandbox_schema,
                timeout=settings.timeout,
            )

    summary = validate_file(
        input_path,
        the_mapping,
        payloads=payloads,
        sheet=settings.sheet,
        encoding=settings.encoding,
        delimiter=settings.delimiter,
        progress=progress,
        online=check,
        select=RowSelection.of_run(settings, previous),
        token_seed=seed,
    )
    summary.earlier_results = earlier
    return summary


def _token_seed(
    input_path: str | os.PathLike[str] | pandas.DataFrame,
    mapping: Mapping,
    results: str | os.PathLike[str] | None,
) -> str:
    """The seed of the row tokens the run would send (read only): its results file's, or the
    one a new results file on this input would take."""
    from .sending.token import seed_for

    frame = input_path if is_dataframe(input_path) else None
    if frame is None or results is not None:
        name = describe(frame) if frame is not None else cast("str | os.PathLike[str]", input_path)
        recorded = Fingerprints.load(ResultsFile.for_input(name, results).path)
        if recorded is not None and recorded.token_seed:
            return recorded.token_seed
    if frame is not None:
        return seed_for(frame_digest(frame))
    return seed_for(file_digest(cast("str | os.PathLike[str]", input_path)))


def _previous_outcomes(
    input_path: str | os.PathLike[str] | pandas.DataFrame,
    mapping: Mapping,
    results: str | os.PathLike[str] | None,
    settings: ImportSettings,
) -> tuple[Outcomes, str | None]:
    """What the run's results file holds (empty when there is none yet), read only, and its
    name when it holds outcomes; ResultsFileError for a resume the run would refuse."""
    frame = input_path if is_dataframe(input_path) else None
    if frame is not None and results is None:
        return Outcomes(), None  # a frame's run names its results file: here none was named
    name = describe(frame) if frame is not None else cast("str | os.PathLike[str]", input_path)
    results_file = ResultsFile.for_input(name, results)
    results_file.check_folder()  # the run could not write it: say so now, as the run would
    previous = read_outcomes(results_file.path)
    if not len(previous):
        return previous, None
    recorded = Fingerprints.load(results_file.path)
    if recorded is not None and not settings.force_resume:
        digest = frame_digest(frame) if frame is not None else None
        current = Fingerprints.of(name, mapping.path, input_digest=digest)
        # As the run's: a mapping edited without a change in meaning (a comment) still resumes.
        meaning = mapping.meaning
        current = dataclasses.replace(
            current, mapping_meaning=meaning.digest, mapping_keys=meaning.keys
        )
        refuse_changed(results_file.path, recorded, current)
    return previous, str(results_file.path)
