"""The ``lsq-import`` command line: parses options, calls the library, reports.

Every command's work is a library function (``run_import``, ``sandbox.serve``); this module
only turns options into arguments and outcomes into output and exit codes (see ``exitcodes``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .exceptions import ImporterError
from .exitcodes import ExitStatus
from .plans import DEFAULT_BULK_RATE, PLAN_NAMES, plan_named
from .settings import ENV_ACCESS_KEY, ENV_SECRET_KEY, MAX_BATCH, MODES, ImportSettings

if TYPE_CHECKING:
    from .batch import expand_inputs, is_many, run_batch
    from .ledger.store import open_ledger
    from .progress import terminal_observer
    from .results.errors_csv import write_errors_csv
    from .results.live import read_status
    from .results.report import read_report, rows_with_status, write_html, write_json
    from .runner import run_import

F = TypeVar("F", bound=Callable[..., Any])

# The library a command calls, imported when a command runs, not at start-up: the runner
# pulls in aiohttp and the mapping pydantic (~0.3 s), which `--help` and `--version` don't need.
_LAZY = {
    "expand_inputs": ".batch",
    "is_many": ".batch",
    "run_batch": ".batch",
    "open_ledger": ".ledger.store",
    "terminal_observer": ".progress",
    "read_status": ".results.live",
    "read_report": ".results.report",
    "rows_with_status": ".results.report",
    "write_html": ".results.report",
    "write_json": ".results.report",
    "write_errors_csv": ".results.errors_csv",
    "run_import": ".runner",
}


def _load(*names: str) -> None:
    """Make the library ``names`` globals of this module (a name already set, e.g. by a
    test's monkeypatch, is kept), so the commands' bodies call them by their plain names."""
    for name in names:
        if name not in globals():
            module = importlib.import_module(_LAZY[name], __package__)
            globals()[name] = getattr(module, name)


def __getattr__(name: str) -> Any:
    """``importer.cli.run_import`` and the other library names, as before they were lazy."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load(name)
    return globals()[name]


class CliError(click.ClickException):
    """A one-line error with the exit code the documentation promises."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click types exit_code as a class constant; each CliError carries its own.
        object.__setattr__(self, "exit_code", exit_code)


def reports_errors(func: F) -> F:
    """Turn library errors into one line on stderr and a documented exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImporterError as exc:
            raise CliError(str(exc), int(exc.exit_status)) from None
        except KeyboardInterrupt:
            raise CliError(
                "interrupted; run the same command again", int(ExitStatus.INTERRUPTED)
            ) from None
        except OSError as exc:  # e.g. a full disk or a file size limit while writing output
            where = f"{exc.filename}: " if exc.filename else ""
            raise CliError(
                f"{where}{exc.strerror or exc}; free space (or fix the error) and run the same "
                "command again",
                int(ExitStatus.INTERRUPTED),
            ) from None
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as exc:  # a bug: still one line, and a code that says so
            raise CliError(
                f"internal error ({type(exc).__name__}: {exc}); please report it",
                int(ExitStatus.INTERNAL_ERROR),
            ) from None

    return wrapper  # type: ignore[return-value]


def echo(text: str) -> bool:
    """Print ``text`` on stdout; False once stdout's reader has gone (``| head -1`` read what
    it wanted and closed the pipe).

    That is a normal end, as for ``cat``: the command stops writing, says nothing, and ends
    with the exit code it would have had (a run's outcome does not change because nobody
    read its summary). Python ignores SIGPIPE, so a closed pipe is a BrokenPipeError here;
    stdout is then pointed at the null device, so that what is still buffered, and Python's
    flush at exit, go nowhere instead of failing again.
    """
    try:
        click.echo(text)
        return True
    except BrokenPipeError:
        _stdout_gone()
        return False


def _stdout_gone() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


STDOUT = "-"
"""What an output option (``--json -``, ``--payloads -``) or INPUT (``validate -``) names to
mean stdout or stdin, as in csvkit, sqlite-utils and httpie."""


def is_std(path: str | os.PathLike[str] | None) -> bool:
    """Whether an option's value is ``-`` (stdout, or stdin for an INPUT)."""
    return path is not None and os.fspath(path) == STDOUT


def summary_out(
    json_file: Path | None,
    summary: Any,
    *,
    stdout_taken: bool = False,
    write_json: Callable[[Path], None] | None = None,
) -> None:
    """End a command with its summary (anything with ``to_text`` and ``to_dict``): the text on
    stdout; with ``--json -`` the JSON there instead; when another stream already fills
    stdout (``--payloads -``), the text on stderr. ``--json FILE`` writes the file (with
    ``write_json``, default ``summary.write_json``) and keeps the text on stdout."""
    if is_std(json_file):
        echo(json.dumps(summary.to_dict(), indent=2))
        return
    if json_file is not None:
        (write_json or summary.write_json)(json_file)
    if stdout_taken:
        click.echo(summary.to_text(), err=True)
    else:
        echo(summary.to_text())


class PipeStdout:
    """stdout as a stream of lines for the library (``validate --payloads -``). Once the
    reader has gone (``| head``) the rest goes to the null device and the command runs to its
    own end and exit code, as :func:`echo` does."""

    name = "<stdout>"

    def write(self, text: str) -> int:
        try:
            return sys.stdout.write(text)
        except BrokenPipeError:
            _stdout_gone()
            return len(text)


def json_option(*names: str, what: str) -> Callable[[F], F]:
    """``--json [FILE]``: ``what`` as JSON in FILE; ``-``, or the option alone, for stdout."""
    return click.option(
        *names,
        "json_file",
        type=click.Path(path_type=Path, allow_dash=True),
        is_flag=False,
        flag_value=STDOUT,
        metavar="[FILE|-]",
        help=f"Write {what} as JSON to FILE; alone or as '--json -', on stdout instead of "
        "the text summary.",
    )


def _all(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply several click options as one decorator (shared by the commands)."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


mapping_option = click.option(
    "--mapping",
    "-m",
    required=True,
    type=click.Path(path_type=Path),
    help="Column-mapping file (YAML), see mappings/README.md (`lsq-import init-mapping "
    "--example` writes it out).",
)
_INPUT_OPTIONS = (
    click.option("--sheet", help="Excel sheet name or 0-based index (default: the first)."),
    click.option("--encoding", help="CSV encoding (default: UTF-8, with or without BOM)."),
    click.option("--delimiter", help="CSV delimiter (default: detected; tab for .tsv)."),
)
input_options = _all(*_INPUT_OPTIONS)


_SCHEMA_HELP = (
    "With --sandbox: the sandbox mirrors this schema file (lsq-import account --output), "
    "not its default account."
)


class _Command(click.Command):
    """A command whose ``--help`` into a closed pipe (``lsq-import run --help | head -3``)
    ends quietly with exit 0, as its output does (see :func:`echo`): click's own handling
    exits 1, which means "rows failed"."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:  # --help or --version: written while the options are read
            _stdout_gone()
            raise click.exceptions.Exit(int(ExitStatus.SUCCESS)) from None


class _Group(_Command, click.Group):
    command_class = _Command


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.version_option(__version__, "-V", "--version", prog_name="lsq-import")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Bulk-import CSV and Excel rows into LeadSquared, one lead + activity per row.

    \b
    Try it on the bundled sample against a local sandbox (no account needed):
      lsq-import init-mapping --example    # not needed in a clone: writes the files below
      lsq-import run sample_data/leads.csv --mapping mappings/example.yaml --sandbox
    """
    if ctx.invoked_subcommand is None:  # a bare `lsq-import`: the help, and no error
        echo(ctx.get_help())
        ctx.exit(int(ExitStatus.SUCCESS))
    if not logging.getLogger().handlers:
        # Warnings (an env file others can read) on stderr; --log-level only sets what
        # --log-file gets, so a debug log does not also pour onto the terminal or cron mail.
        stderr = logging.StreamHandler()
        stderr.setLevel(logging.WARNING)
        logging.basicConfig(
            level=logging.WARNING,
            format="lsq-import: %(levelname)s: %(message)s",
            handlers=[stderr],
        )
    sigterm_as_ctrl_c(ctx)


def sigterm_as_ctrl_c(ctx: click.Context) -> None:
    """Make SIGTERM (``kill``, ``systemctl stop``, a scheduler's timeout) do what Ctrl-C does,
    until the command ends.

    Python dies of a SIGTERM at once, exit 143 and not a word, wherever it is; a Ctrl-C is a
    KeyboardInterrupt, which every stage turns into a documented ending (the start-up into one
    line and exit 4). While rows are sent, the runner's own handlers take both signals.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set there (a test runner's thread, say)
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(ctrl_c):  # Python's KeyboardInterrupt, or asyncio's: cancel the main task
            ctrl_c(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job of a shell script): SIGTERM still stops
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    ctx.call_on_close(
        lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    )


@cli.command(short_help="Import INPUT's rows into LeadSquared, resumably.")
@click.argument("input_file", metavar="INPUT")
@mapping_option
@click.option(
    "--results",
    "-r",
    type=click.Path(path_type=Path),
    help="Results file (CSV). Default: INPUT's name + .results.csv in the current "
    "folder. Running again with the same file resumes.",
)
@click.option(
    "--results-dir",
    type=click.Path(path_type=Path),
    help="With a folder or glob as INPUT: where each file's NAME.results.csv goes "
    "(default: the current folder).",
)
@click.option(
    "--archive-dir",
    type=click.Path(path_type=Path),
    help="Move each input file whose rows all succeeded into this folder.",
)
@click.option(
    "--host",
    help="Regional API host, e.g. api-in21.leadsquared.com (default: "
    "$LSQ_HOST, else api.leadsquared.com), or a full https:// URL.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    help="Calls allowed per --per seconds by your plan (default: --plan's, else 25).",
)
@click.option(
    "--per",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Rate-limit window, seconds.",
)
@click.option(
    "--plan",
    type=click.Choice(PLAN_NAMES, case_sensitive=False),
    help="Your LeadSquared plan: sets --rate and --bulk-rate from its published limits "
    "(given ones win); a refusal naming a lower limit is learnt during the run.",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="single",
    show_default=True,
    help="single: one CreateCustom call per row. bulk: batches of --batch-size rows, two bulk "
    "calls each (leads, then activities). auto: both at once, each under its own limit.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=MAX_BATCH,
    show_default=True,
    help="Rows per bulk batch.",
)
@click.option(
    "--bulk-rate",
    type=click.IntRange(min=1),
    help="Bulk calls allowed per --bulk-per seconds (default: --plan's, else 1).",
)
@click.option(
    "--bulk-per",
    type=click.FloatRange(min=0, min_open=True),
    help="The bulk limit's window, seconds (default: --per).",
)
@click.option(
    "--bulk-shares-limit/--no-bulk-shares-limit",
    default=True,
    show_default=True,
    help="Bulk calls also count against --rate (not documented either way; the safe "
    "assumption). --no-bulk-shares-limit if your account counts them apart.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Most calls in flight at once. Default: --rate.",
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    help="Stop cleanly before making more API calls than this (retries count): a daily "
    "quota. Exit code 5; run again to continue.",
)
@click.option("--start-row", type=click.IntRange(min=2), help="Trial run: start at this row.")
@click.option("--limit", type=click.IntRange(min=1), help="Trial run: at most this many rows.")
@click.option(
    "--sandbox",
    is_flag=True,
    help="Send to a local LeadSquared sandbox started for this run, not the real API.",
)
@click.option("--schema", "sandbox_schema", type=click.Path(path_type=Path), help=_SCHEMA_HELP)
@click.option(
    "--preflight/--no-preflight",
    "preflight_check",
    default=True,
    show_default=True,
    help="First check the mapping against the account's metadata (event code, fields, "
    "dropdown values): 2-3 calls, and a mapping that can't work stops before any row.",
)
@click.option(
    "--retry-unknown",
    is_flag=True,
    help="Send again rows left 'unknown' that a lookup could not settle (their call may "
    "have landed: check them first with: lsq-import report RESULTS --status unknown).",
)
@click.option(
    "--reconcile/--no-reconcile",
    default=True,
    show_default=True,
    help="Settle rows whose answer was lost by looking them up in LeadSquared (at the start "
    "of a resume and at the end of a run); the lookups are paced and count in --max-calls.",
)
@click.option(
    "--ledger",
    metavar="FILE|URL",
    help="The ledger of what was imported into the account (default: $LSQ_LEDGER, else one "
    "per account in your data directory; see docs/scheduling.md): a row whose activity it "
    "lists is skipped, whatever the file or results file. A postgresql:// URL: one ledger "
    "and one quota for several hosts (docs/team.md; the password from PGPASSWORD or "
    "~/.pgpass, not here).",
)
@click.option(
    "--no-ledger",
    is_flag=True,
    help="Use no ledger: only the results file decides what is sent (and pacing is not "
    "shared with other lsq-import processes on this account).",
)
@click.option(
    "--reimport",
    is_flag=True,
    help="Send rows the ledger lists as already imported, for this run (their activity is "
    "posted again).",
)
@click.option(
    "--settle-delay",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long after a lost answer before looking its row up, and again before "
    "re-sending a row whose lead exists but whose activity was not seen (a lagging read).",
)
@click.option(
    "--max-attempts",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Attempts per row for throttled or transient failures.",
)
@click.option(
    "--retry-delay",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Backoff before the first retry of a transient failure; each further retry may "
    "wait twice as long (a random wait up to that), at most --retry-max-delay.",
)
@click.option(
    "--retry-max-delay",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="The longest backoff between two attempts of a row.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per call.",
)
@input_options
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="File with LSQ_ACCESS_KEY=..., LSQ_SECRET_KEY=..., LSQ_HOST=... lines (chmod 600).",
)
@click.option(
    "--force-resume",
    is_flag=True,
    help="Resume even though the input file or mapping changed since the results file began, "
    "or its RESULTS.meta.json is gone (each recorded row's key is then checked).",
)
@json_option(
    "--summary-json",
    "--json",
    what="the summary (counts, grouped errors, timings, fingerprints)",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path),
    help="Append a log here (rotated at 10 MB, 5 kept).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning"]),
    default="info",
    show_default=True,
    help="Log detail; debug logs every retry and every failed row.",
)
@click.option(
    "--errors-csv",
    type=click.Path(path_type=Path),
    help="At the end, write the rows that did not succeed as report --errors-csv does.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--dry-run",
    "dry",
    is_flag=True,
    help="Send nothing: check the rows this run would send, as validate does, and print "
    "their exact request bodies (JSON Lines) on stdout, the summary on stderr.",
)
@click.option(
    "--payloads",
    type=click.Path(path_type=Path, allow_dash=True),
    help="With --dry-run: write the bodies to this file instead ('-': stdout).",
)
@click.option(
    "--online",
    is_flag=True,
    help="With --dry-run: also run the preflight check (metadata calls only) and check each "
    "row's dropdown values against the account.",
)
@reports_errors
def run(
    input_file: str,
    mapping: Path,
    results: Path | None,
    results_dir: Path | None,
    archive_dir: Path | None,
    errors_csv: Path | None,
    json_file: Path | None,
    log_file: Path | None,
    log_level: str,
    quiet: bool,
    dry: bool,
    payloads: Path | None,
    online: bool,
    **options: Any,
) -> None:
    """Import INPUT (CSV or XLSX) using a mapping; write one result line per row.

    INPUT may also be a folder or a quoted glob ("drop/*.csv"): its files are imported in
    name order, each with its own results file. Keys come from LSQ_ACCESS_KEY and
    LSQ_SECRET_KEY in the environment, or from --env-file.

    \b
    Example:
      export LSQ_ACCESS_KEY=... LSQ_SECRET_KEY=...
      lsq-import run leads.csv --mapping mappings/example.yaml \\
          --host api-in21.leadsquared.com --results leads.results.csv
      lsq-import run leads.csv -m mappings/example.yaml --dry-run --limit 3   # sends nothing
    """
    options["retry_delay"] = (options.pop("retry_delay"), options.pop("retry_max_delay"))
    if options.pop("no_ledger"):
        if options["ledger"] is not None:
            raise CliError(
                "--ledger and --no-ledger: give one or the other", int(ExitStatus.BAD_INPUT)
            )
        options["ledger"] = False
    _warn_password_in(options["ledger"])
    if is_std(input_file):
        raise CliError(
            "INPUT -: run does not read stdin: a resume matches the results file to the input "
            "by row number and fingerprint, so the rows must be a file it can read again; "
            "save them to one (validate reads '-')",
            int(ExitStatus.BAD_INPUT),
        )
    if is_std(results):
        raise CliError(
            "--results -: the results file is read back to resume; name a file",
            int(ExitStatus.BAD_INPUT),
        )
    kept = _kept_files(input_file, mapping, results)
    summary_json = None if is_std(json_file) else json_file
    check_output_path("--summary-json", summary_json, kept)
    check_output_path("--log-file", log_file, [*kept, summary_json])
    check_output_path("--errors-csv", errors_csv, [*kept, summary_json, log_file])
    click.get_current_context().with_resource(log_to_file(log_file, log_level))
    _load("terminal_observer", "is_many", "expand_inputs", "run_import", "run_batch")
    settings = ImportSettings(**options)
    progress = terminal_observer(quiet)
    if dry and errors_csv is not None:
        raise CliError(
            "--errors-csv: a dry run records no outcome to take rows from; give one or the other",
            int(ExitStatus.BAD_INPUT),
        )
    if dry or payloads or online:
        many = bool(is_many(input_file) or results_dir or archive_dir)
        _dry_run(
            dry, many, input_file, mapping, results, json_file, payloads, online, settings, progress
        )
    if not (is_many(input_file) or results_dir or archive_dir):
        summary = run_import(
            input_file, mapping, results=results, settings=settings, progress=progress
        )
        summary_out(json_file, summary)
        if errors_csv is not None and Path(summary.results).exists():
            _load("write_errors_csv")
            try:
                said = write_errors_csv(summary.results, errors_csv).to_text()
            except ImporterError as exc:  # the run's outcome, not this, makes the exit code
                said = f"lsq-import: --errors-csv: {exc}"
            click.echo(said, err=True)
        sys.exit(int(summary.exit_status))
    if errors_csv is not None:
        raise CliError(
            "--errors-csv names one file; with a folder or glob, write each results file's "
            "with: lsq-import report RESULTS --errors-csv FILE",
            int(ExitStatus.BAD_INPUT),
        )
    inputs = expand_inputs(input_file)
    if results is not None:
        raise CliError(
            "--results names one file's results; with a folder or glob use --results-dir",
            int(ExitStatus.BAD_INPUT),
        )
    batch = run_batch(
        inputs,
        mapping,
        settings=settings,
        results_dir=results_dir or Path("."),
        archive_dir=archive_dir,
        progress=progress,
    )
    summary_out(json_file, batch)
    sys.exit(int(batch.exit_status))


def _dry_run(
    dry: bool,
    many: bool,
    input_file: str,
    mapping: Path,
    results: Path | None,
    json_file: Path | None,
    payloads: Path | None,
    online: bool,
    settings: ImportSettings,
    progress: Any,
) -> None:
    """``run --dry-run``: the bodies on stdout (or ``--payloads FILE``), validate's summary
    and exit code."""
    from .dryrun import dry_run

    if not dry:
        used = "--payloads" if payloads else "--online"
        raise CliError(
            f"{used}: applies only with --dry-run (a run checks the account first anyway, "
            "unless --no-preflight)",
            int(ExitStatus.BAD_INPUT),
        )
    if many:
        raise CliError(
            "--dry-run: takes one input file (no folder or glob, --results-dir or "
            "--archive-dir); dry-run the files one at a time",
            int(ExitStatus.BAD_INPUT),
        )
    to_stdout = PipeStdout() if payloads is None or is_std(payloads) else None
    if to_stdout is not None and is_std(json_file):
        raise CliError(
            "--dry-run prints the bodies on stdout, so --json - cannot: write the summary to "
            "a file, or the bodies with --payloads FILE",
            int(ExitStatus.BAD_INPUT),
        )
    summary_json = None if is_std(json_file) else json_file
    file = None if to_stdout else payloads
    check_output_path(
        "--payloads", file, [*_kept_files(input_file, mapping, results), summary_json]
    )
    summary = dry_run(
        input_file,
        mapping,
        results=results,
        payloads=to_stdout or file,
        online=online,
        settings=settings,
        progress=progress,
    )
    summary_out(json_file, summary, stdout_taken=to_stdout is not None)
    sys.exit(int(summary.exit_status))


def check_output_path(
    option: str, path: Path | None, keep: Iterable[str | os.PathLike[str] | None] = ()
) -> None:
    """Refuse, before anything is sent, an output file that could not be written at the end,
    or that is one of the files ``keep`` names (the input, the mapping, the results file and
    its metadata: ``--summary-json leads.csv`` overwrote the input)."""
    if path is None:
        return
    if is_std(path):
        raise CliError(
            f"{option} -: this option writes a file, not stdout; name a file",
            int(ExitStatus.BAD_INPUT),
        )
    folder = path.parent
    problem = ""
    clash = next((Path(other) for other in keep if other and _same_file(path, Path(other))), None)
    if clash is not None:
        problem = f"names {clash}, a file this command reads or keeps; choose another file"
    elif not folder.is_dir():
        problem = f"the folder {str(folder)!r} does not exist"
    elif path.exists() and not path.is_file():
        problem = "not a regular file"
    elif not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        problem = "not writable"
    if problem:
        raise CliError(f"{option} {path}: {problem}", int(ExitStatus.BAD_INPUT))


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.resolve() == other.resolve() or (
            one.exists() and other.exists() and os.path.samefile(one, other)
        )
    except OSError:
        return False


def _beside(results: Path) -> list[Path]:
    """The metadata and lock files of a results file."""
    from .results.fingerprint import meta_path
    from .results.lock import lock_path

    return [meta_path(results), lock_path(results)]


def _kept_files(
    input_file: str | os.PathLike[str], mapping: Path, results: Path | None
) -> list[Path]:
    """What an output option must not name: the input, the mapping, the results file (the
    default one too) and the files beside it."""
    from .results.file import ResultsFile

    results_path = ResultsFile.for_input(input_file, results).path
    return [Path(input_file), mapping, results_path, *_beside(results_path)]


@contextlib.contextmanager
def log_to_file(log_file: Path | None, level: str) -> Iterator[None]:
    """Send the ``lsq_import`` log to a rotating file while the block runs (keys never reach
    it: nothing logs them); then the handler is closed and removed and the logger's level is
    what it was, so a second command in the same process (a test, a library user calling
    ``main`` twice) does not write into this one's file."""
    if log_file is None:
        yield
        return
    try:
        handler = _LogFile(log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"--log-file {log_file}: {exc.strerror}", int(ExitStatus.BAD_INPUT)
        ) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("lsq_import")
    before = logger.level
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before)
        handler.close()


class _LogFile(logging.handlers.RotatingFileHandler):
    """The ``--log-file`` handler. A write that fails mid-run (the disk filled up) is said in
    one line, once, and the log stops there; logging's default prints a traceback for every
    record. The run goes on: its results file, not the log, is what a resume needs."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed(sys.exc_info()[1])

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered: that write can fail too
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException | None) -> None:
        if self.failed:
            return
        self.failed = True
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        click.echo(
            f"lsq-import: --log-file {self.baseFilename}: cannot write ({why}); "
            "nothing more is logged there, the run goes on",
            err=True,
        )


@cli.command(short_help="Serve the local LeadSquared sandbox until Ctrl-C.")
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port to listen on (0: any free port; the line printed at start names it).",
)
@click.option(
    "--bind", default="127.0.0.1", show_default=True, help="Loopback address to listen on."
)
@click.option(
    "--plan",
    type=click.Choice(PLAN_NAMES, case_sensitive=False),
    help="Take the rate limits of this LeadSquared plan (calls and bulk calls per 5 s; see "
    "importer/plans.py); --rate, --per and --bulk-rate given as well win.",
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    help="Calls the sandbox accepts per --per seconds; more get LeadSquared's 429 "
    "(default 25, or the --plan's).",
)
@click.option(
    "--per",
    type=click.FloatRange(min=0, min_open=True),
    help="The rate limit's rolling window, seconds (default 5, or the --plan's).",
)
@click.option(
    "--bulk-rate",
    type=click.IntRange(min=1),
    help="Bulk calls (Lead/Bulk/CreateOrUpdate, Bulk/CustomActivity/Add/ByLeadField) the "
    f"sandbox accepts per --bulk-per seconds (default {DEFAULT_BULK_RATE}, or the --plan's).",
)
@click.option(
    "--bulk-per",
    type=click.FloatRange(min=0, min_open=True),
    help="The bulk limit's rolling window, seconds (default: --per).",
)
@click.option(
    "--bulk-shares-limit/--no-bulk-shares-limit",
    default=True,
    show_default=True,
    help="Whether a bulk call also counts against (and needs room in) the --rate window; "
    "LeadSquared does not say.",
)
@click.option(
    "--latency",
    type=click.FloatRange(min=0),
    help="Mean seconds added to each call, like a real network (default 0).",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0),
    help="Uniform +/- seconds around --latency (default 0).",
)
@click.option("--seed", type=int, help="Seed for the latency jitter and faults (repeatable runs).")
@click.option(
    "--faults",
    default="",
    help="Inject faults, e.g. 'drop_after=0.02,error_500_plain=0.05,throttle_403=0.01' "
    "(probabilities per CreateCustom or bulk call; record_error=P fails each record of a bulk "
    "call with probability P; read_lag=SECONDS delays what the activity reads list; see "
    "importer/sandbox/faults.py for every name).",
)
@click.option(
    "--schema",
    type=click.Path(path_type=Path),
    help="YAML/JSON with lead_fields and activity_types mirroring your account.",
)
@reports_errors
def sandbox(
    port: int,
    bind: str,
    plan: str | None,
    rate: int | None,
    per: float | None,
    bulk_rate: int | None,
    bulk_per: float | None,
    bulk_shares_limit: bool,
    latency: float | None,
    jitter: float | None,
    seed: int | None,
    faults: str,
    schema: Path | None,
) -> None:
    """Serve the local LeadSquared sandbox until Ctrl-C.

    It accepts the keys in LSQ_ACCESS_KEY/LSQ_SECRET_KEY, or the well-known
    sandbox-access-key / sandbox-secret-key when those are not set; a run at its address
    with no keys exported then uses those (and says so).

    \b
    Example (two terminals):
      lsq-import sandbox --port 8787 --plan pro
      lsq-import run sample_data/leads.csv -m mappings/example.yaml --host http://127.0.0.1:8787
    """
    from .sandbox import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, FaultConfig, SandboxSchema, serve

    # Options given on their own win over the --faults spec.
    overrides: dict[str, Any] = {
        k: v for k, v in (("latency", latency), ("jitter", jitter), ("seed", seed)) if v is not None
    }

    serve(
        host=bind,
        port=port,
        access_key=os.environ.get(ENV_ACCESS_KEY) or DEFAULT_ACCESS_KEY,
        secret_key=os.environ.get(ENV_SECRET_KEY) or DEFAULT_SECRET_KEY,
        **sandbox_limits(plan, rate=rate, per=per, bulk_rate=bulk_rate, bulk_per=bulk_per),
        bulk_shares_limit=bulk_shares_limit,
        schema=SandboxSchema.from_file(schema) if schema else None,
        faults=dataclasses.replace(
            FaultConfig.from_spec(faults) if faults else FaultConfig(), **overrides
        ),
    )


def sandbox_limits(
    plan: str | None,
    *,
    rate: int | None = None,
    per: float | None = None,
    bulk_rate: int | None = None,
    bulk_per: float | None = None,
) -> dict[str, Any]:
    """The sandbox's ``rate``, ``per``, ``bulk_rate`` and ``bulk_per``: each as given, else
    ``plan``'s (:mod:`importer.plans`), else the defaults (25 calls and 1 bulk call per 5 s;
    ``bulk_per`` None means the same window as ``per``)."""
    preset = plan_named(plan) if plan else None
    return {
        "rate": rate if rate is not None else preset.calls if preset else 25,
        "per": per if per is not None else preset.per if preset else 5.0,
        "bulk_rate": (
            bulk_rate
            if bulk_rate is not None
            else preset.bulk_calls
            if preset
            else DEFAULT_BULK_RATE
        ),
        "bulk_per": bulk_per,
    }


account_options = _all(
    click.option("--host", help="Regional API host (default: $LSQ_HOST), or a full https:// URL."),
    click.option(
        "--env-file",
        type=click.Path(path_type=Path),
        help="File with LSQ_ACCESS_KEY=..., LSQ_SECRET_KEY=..., LSQ_HOST=... lines (chmod 600).",
    ),
    click.option(
        "--rate",
        default=25,
        show_default=True,
        type=click.IntRange(min=1),
        help="Calls allowed per --per seconds by your plan: these calls are paced like a run's.",
    ),
    click.option(
        "--per",
        default=5.0,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="The window of --rate, in seconds.",
    ),
)
"""What the commands that only read the account (account, reconcile) take to reach it."""


_STATUSES = ("success", "failed", "invalid", "skipped", "unknown")
"""The final statuses (``results.status.FINAL_STATUSES``), spelt out so that ``--help`` does
not import the results package."""


class StatusList(click.ParamType):
    """``failed,unknown``: a comma-separated list of final statuses."""

    name = "STATUS[,STATUS...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        names = [part.strip() for part in str(value).split(",") if part.strip()]
        wrong = [name for name in names if name not in _STATUSES]
        if wrong or not names:
            what = f"{wrong[0]!r} is not a status" if wrong else "no status given"
            self.fail(f"{what}; use a comma-separated list of {', '.join(_STATUSES)}", param, ctx)
        return tuple(dict.fromkeys(names))

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[Any]:
        from click.shell_completion import CompletionItem

        done, _, last = incomplete.rpartition(",")
        prefix = f"{done}," if done else ""
        return [CompletionItem(prefix + name) for name in _STATUSES if name.startswith(last)]


@cli.command(short_help="Read the account's metadata: list it, or write a sandbox schema.")
@account_options
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Write the account as a sandbox schema (YAML; JSON for .json) instead of listing it.",
)
@click.option("--force", is_flag=True, help="With --output: replace an existing file.")
@click.option(
    "--event",
    "events",
    multiple=True,
    type=int,
    help="List the fields of this activity type (repeatable); with --output, only these types.",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per call.",
)
@reports_errors
def account(output: Path | None, events: tuple[int, ...], force: bool, **options: Any) -> None:
    """Read the account's activity types, their fields and the lead fields; list them, or
    write them as a schema for a sandbox that mirrors the account (keys as for run).

    \b
    Example:
      lsq-import account --host api-in21.leadsquared.com --event 212
      lsq-import account --host api-in21.leadsquared.com --output account-schema.yaml
      lsq-import run leads.csv -m my-mapping.yaml --sandbox --schema account-schema.yaml
    """
    from .account import read_account

    check_output_path("--output", output)
    if output is not None and output.exists() and not force:
        raise CliError(
            f"--output {output}: exists; pass --force to replace it (it may be your mapping)",
            int(ExitStatus.BAD_INPUT),
        )
    # A listing asks only for what it shows: the types' fields with --event, else the leads'.
    found = read_account(
        **options,
        events=events,
        activity_fields=bool(output or events),
        lead_fields=bool(output or not events),
    )
    if output is not None:
        found.write(output)
    echo(found.to_text())


@cli.command(short_help="Look up a results file's unknown rows in LeadSquared; send nothing.")
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="The input file (default: the one the results file's metadata names).",
)
@click.option(
    "--mapping",
    "-m",
    type=click.Path(path_type=Path),
    help="The mapping file (default: the one the results file's metadata names).",
)
@account_options
@click.option(
    "--settle-delay",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds after the results file was last written before looking rows up.",
)
@click.option(
    "--max-calls", type=click.IntRange(min=1), help="Stop before making more lookup calls."
)
@json_option("--json", what="the summary")
@reports_errors
def reconcile(results: Path, json_file: Path | None, **options: Any) -> None:
    """Look up RESULTS' 'unknown' rows (answers lost, runs killed) in LeadSquared, and send
    nothing: found rows become 'success', rows that never landed 'failed' (the next run
    sends them once), the rest stay 'unknown' with the reason. A run does this by itself at
    its start and end; this is for a results file from an older version or left by a crash.

    \b
    Example:
      lsq-import reconcile leads.results.csv --host api-in21.leadsquared.com
    """
    from .runner import reconcile_results

    summary = reconcile_results(results, **options)
    summary_out(json_file, summary)
    sys.exit(int(summary.exit_status))


@cli.command(short_help="Summarise a results file: counts, errors, JSON or HTML.")
@click.argument("results", type=click.Path(path_type=Path))
@json_option("--json", what="the report")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path),
    help="Write a self-contained HTML report (error table, chart over time).",
)
@click.option(
    "--status",
    type=StatusList(),
    help="Instead, list the rows with this status (row, key, error), one per line; with "
    "--errors-csv, the statuses of the rows it writes (default: failed,invalid; unknown rows "
    "are refused when the file is imported: reconcile them first).",
)
@click.option(
    "--errors-csv",
    type=click.Path(path_type=Path),
    help="Instead, write the input's rows that did not succeed, in its own columns plus "
    "lsq_row, lsq_status, lsq_error_type, lsq_error_message: fix them, import this file.",
)
@click.option(
    "--fail-on",
    type=StatusList(),
    default=(),
    help="Exit with code 1 (and say so in one line on stderr) when the file holds rows of "
    "these statuses, e.g. --fail-on failed,unknown for a morning check.",
)
@reports_errors
def report(
    results: Path,
    json_file: Path | None,
    html_file: Path | None,
    status: tuple[str, ...] | None,
    errors_csv: Path | None,
    fail_on: tuple[str, ...],
) -> None:
    """Summarise a results file: counts, errors grouped by kind and column, timings.

    \b
    Examples:
      lsq-import report leads.results.csv --html report.html
      lsq-import report leads.results.csv --status unknown   # rows that may be duplicated
      lsq-import report leads.results.csv --fail-on failed,unknown || alert.sh
      lsq-import report leads.results.csv --errors-csv leads.errors.csv   # fix, import it
    """
    _load("read_report", "rows_with_status", "write_html", "write_json", "write_errors_csv")
    if errors_csv is not None:
        check_output_path("--errors-csv", errors_csv, [results, *_beside(results)])
        echo(write_errors_csv(results, errors_csv, *([status] if status else [])).to_text())
        if fail_on:
            _fail_on(read_report(results), fail_on)
        return
    if status is not None:
        if len(status) > 1:
            raise CliError(
                "--status lists the rows of one status (several only with --errors-csv)",
                int(ExitStatus.BAD_INPUT),
            )
        for line in rows_with_status(results, status[0]):
            if not echo(line):
                break  # the reader has what it wanted: read no further
        if fail_on:
            _fail_on(read_report(results), fail_on)
        return
    to_file = None if is_std(json_file) else json_file
    check_output_path("--json", to_file, [results, *_beside(results)])
    check_output_path("--html", html_file, [results, *_beside(results), to_file])
    found = read_report(results)
    if html_file:
        write_html(found, html_file)
    summary_out(json_file, found, write_json=lambda path: write_json(found, path))
    _fail_on(found, fail_on)


def _fail_on(found: Any, statuses: tuple[str, ...]) -> None:
    """``--fail-on``: exit 1 with one line when the report counts rows of ``statuses``."""
    held = [(name, found.by_status[name]) for name in statuses if found.by_status[name]]
    if held:
        counts = ", ".join(f"{count} {name}" for name, count in held)
        raise CliError(
            f"{found.path} holds {counts} rows (--fail-on {','.join(statuses)})",
            int(ExitStatus.ROWS_FAILED),
        )


@cli.command(short_help="Say how an import on RESULTS stands, even mid-run; no lock taken.")
@click.argument("results", type=click.Path(path_type=Path))
@json_option("--json", what="the status")
@reports_errors
def status(results: Path, json_file: Path | None) -> None:
    """Say whether a run holds RESULTS (pid, host, since when) and how far it got: rows of
    the input's total by status, calls, the last minute's rate and an ETA. Reads RESULTS and
    the files beside it read-only and takes no lock: a running import goes on undisturbed.

    \b
    Examples:
      lsq-import status migration.results.csv
      lsq-import status migration.results.csv --json - | jq .eta
    """
    _load("read_status")
    to_file = None if is_std(json_file) else json_file
    check_output_path("--json", to_file, [results, *_beside(results)])
    summary_out(json_file, read_status(results))


_ONLINE_OPTIONS = (
    click.option(
        "--host",
        help="With --online: regional API host, e.g. api-in21.leadsquared.com (default: "
        "$LSQ_HOST, else api.leadsquared.com), or a full https:// URL.",
    ),
    click.option(
        "--sandbox",
        is_flag=True,
        help="Check against a throwaway local sandbox instead of the account (implies --online).",
    ),
    click.option(
        "--env-file",
        type=click.Path(path_type=Path),
        help="With --online: file with LSQ_ACCESS_KEY=..., LSQ_SECRET_KEY=..., LSQ_HOST=... lines.",
    ),
    *_INPUT_OPTIONS,
)


_online_options = _all(*_ONLINE_OPTIONS)


def _check_online_flags(online: bool, host: str | None, env_file: Path | None) -> None:
    if not online and (host or env_file):
        raise CliError(
            "--host and --env-file only apply with --online (or use --sandbox)",
            int(ExitStatus.BAD_INPUT),
        )


_FORMATS = ("csv", "txt", "tsv", "xlsx", "xlsm", "xls")
"""``reader.stdin.FORMATS``, spelt out so that ``--help`` does not import the readers."""


@cli.command(short_help="Map every row of INPUT and list the bad ones; send nothing.")
@click.argument("input_file", metavar="INPUT", type=click.Path(path_type=Path, allow_dash=True))
@mapping_option
@click.option(
    "--results",
    "-r",
    type=click.Path(path_type=Path),
    help="Write each invalid (and skipped) row with its problem to this results file (CSV).",
)
@click.option(
    "--payloads",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the exact request body of every valid row to this file (JSON Lines); '-' "
    "for stdout (the text summary then goes to stderr).",
)
@json_option("--json", what="the summary (counts, invalid rows by column, duplicates)")
@click.option(
    "--format",
    "input_format",
    type=click.Choice(_FORMATS),
    help="With INPUT '-' (rows from stdin): the file type stdin holds (default: csv).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also check the mapping against the account (activity code, field names, dropdown "
    "values; 3 metadata calls, keys as for run) and each row's dropdown values.",
)
@_online_options
@click.option("--schema", "sandbox_schema", type=click.Path(path_type=Path), help=_SCHEMA_HELP)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@reports_errors
def validate(
    input_file: Path,
    mapping: Path,
    results: Path | None,
    payloads: Path | None,
    json_file: Path | None,
    input_format: str | None,
    online: bool,
    host: str | None,
    sandbox: bool,
    env_file: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
    sandbox_schema: Path | None,
    quiet: bool,
) -> None:
    """Map every row of INPUT without sending anything; list the rows that would fail.

    INPUT '-' reads the rows from stdin (a CSV unless --format says otherwise).
    Exit code 0 when no row is invalid, 1 when some are, 2 for a bad file or mapping (or,
    with --online, a mapping that does not fit the account).

    \b
    Example:
      lsq-import validate leads.csv --mapping mappings/example.yaml \\
          --results leads.check.csv --payloads leads.payloads.jsonl
      lsq-import validate leads.csv -m mappings/example.yaml --online \\
          --host api-in21.leadsquared.com
      export-leads | lsq-import validate - -m mappings/example.yaml --json
    """
    from .preflight import check_account
    from .reader.stdin import STDIN_NAME, spooled
    from .validate import validate_file

    _load("terminal_observer")

    _check_online_flags(online or sandbox, host, env_file)
    from_stdin = is_std(input_file)
    if input_format is not None and not from_stdin:
        raise CliError(
            f"--format {input_format}: applies to INPUT '-' (stdin); {input_file}'s type "
            "comes from its extension",
            int(ExitStatus.BAD_INPUT),
        )
    if is_std(payloads) and is_std(json_file):
        raise CliError(
            "--payloads - and --json -: only one of them can write to stdout; send the other "
            "to a file",
            int(ExitStatus.BAD_INPUT),
        )
    to_stdout = PipeStdout() if is_std(payloads) else None
    payloads_file = None if to_stdout else payloads
    summary_file = None if is_std(json_file) else json_file
    inputs = [] if from_stdin else [input_file]
    kept = [*inputs, mapping, *([results, *_beside(results)] if results else [])]
    check_output_path("--payloads", payloads_file, kept)
    check_output_path("--results", results, [*inputs, mapping, payloads_file])
    check_output_path("--json", summary_file, [*kept, payloads_file])
    account = None
    if online or sandbox or sandbox_schema:

        def account(the_mapping: Any) -> Any:
            return check_account(
                the_mapping,
                host=host,
                env_file=env_file,
                sandbox=sandbox,
                sandbox_schema=sandbox_schema,
            )

    with contextlib.ExitStack() as stack:
        source: Path = input_file
        if from_stdin:
            source = stack.enter_context(spooled(sys.stdin.buffer, input_format or "csv"))
        summary = validate_file(
            source,
            mapping,
            results=results,
            payloads=to_stdout or payloads_file,
            sheet=sheet,
            encoding=encoding,
            delimiter=delimiter,
            progress=terminal_observer(quiet),
            online=account,
            input_name=STDIN_NAME if from_stdin else None,
        )
    summary_out(json_file, summary, stdout_taken=to_stdout is not None)
    sys.exit(int(summary.exit_status))


@cli.command("init-mapping", short_help="Write a commented mapping skeleton from INPUT's header.")
@click.argument("input_file", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Where to write the mapping. Default: INPUT's name + .mapping.yaml in the current "
    "folder. With --example: the folder to write into (default: the current one).",
)
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option(
    "--example",
    is_flag=True,
    help="Instead of reading INPUT, write the example mapping, the mapping reference and the "
    "sample rows (mappings/example.yaml, mappings/README.md, sample_data/leads.csv).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Match columns to the account's lead fields (LeadsMetaData; keys as for run).",
)
@click.option(
    "--timezone",
    metavar="ZONE",
    help="IANA time zone of INPUT's date-times (e.g. America/New_York). Default: a TODO "
    "placeholder that validate refuses until it is replaced.",
)
@click.option(
    "--country-code",
    metavar="CODE",
    help="Country code of phone numbers written without one (e.g. 1). Default: a TODO "
    "placeholder, if some are.",
)
@_online_options
@reports_errors
def init_mapping(
    input_file: Path | None,
    output: Path | None,
    force: bool,
    example: bool,
    online: bool,
    timezone: str | None,
    country_code: str | None,
    host: str | None,
    sandbox: bool,
    env_file: Path | None,
    sheet: str | None,
    encoding: str | None,
    delimiter: str | None,
) -> None:
    """Write a commented mapping skeleton from INPUT's header, to edit and then validate.

    Obvious columns (email, phone, names, city, a date-time) are mapped, the rest are listed
    as comments. What only you know is left as a TODO placeholder that validate refuses: the
    activity code, and the date-times' time zone and the phones' country code unless given.

    \b
    Example:
      lsq-import init-mapping leads.csv --output mappings/leads.yaml
      lsq-import init-mapping export.csv --timezone America/New_York --country-code 1
      lsq-import validate leads.csv --mapping mappings/leads.yaml
      lsq-import init-mapping --example --output lsq-example
    """
    if is_std(output):
        raise CliError(
            "--output -: init-mapping writes a file for you to edit (or, with --example, a "
            "folder of files); name it",
            int(ExitStatus.BAD_INPUT),
        )
    if example:
        if input_file is not None:
            raise click.UsageError("give INPUT or --example, not both")
        _write_examples(output or Path("."), force)
        return
    if input_file is None:
        raise click.UsageError("missing argument INPUT (or --example)")
    from .mapping.scaffold import write_mapping_skeleton
    from .preflight import read_lead_fields

    _check_online_flags(online or sandbox, host, env_file)
    lead_fields = None
    if online or sandbox:

        def lead_fields() -> Any:
            return read_lead_fields(host=host, env_file=env_file, sandbox=sandbox)

    made = write_mapping_skeleton(
        input_file,
        output,
        force=force,
        lead_fields=lead_fields,
        sheet=sheet,
        encoding=encoding,
        delimiter=delimiter,
        timezone=timezone,
        country_code=country_code,
    )
    echo(made.to_text())


def _write_examples(folder: Path, force: bool) -> None:
    from .examples import write_examples

    mapping, reference, sample = write_examples(folder, force=force)
    echo(
        f"wrote {mapping} (the example mapping), {reference} (the mapping reference) and "
        f"{sample} (the 200 rows it maps)"
    )
    echo(f"try: lsq-import run {sample} --mapping {mapping} --sandbox")


_LEDGER_OPTIONS = (
    click.option(
        "--ledger",
        "ledger_file",
        metavar="FILE",
        help="The ledger file, or a postgresql:// URL (default: $LSQ_LEDGER, else the account's, "
        "as a run finds it).",
    ),
    click.option(
        "--host",
        help="Without --ledger: the account whose default ledger to read, by its regional host "
        "(default: $LSQ_HOST, else api.leadsquared.com), or a full https:// URL.",
    ),
    click.option(
        "--env-file",
        type=click.Path(path_type=Path),
        help="Without --ledger: file with LSQ_ACCESS_KEY=..., LSQ_SECRET_KEY=..., LSQ_HOST=... "
        "lines (the access key picks the account's ledger).",
    ),
)
ledger_options = _all(*_LEDGER_OPTIONS)


@cli.group(
    "ledger",
    cls=_Group,
    invoke_without_command=True,
    short_help="Read the ledger of what was imported; forget activities to send them again.",
)
@click.pass_context
def ledger_group(ctx: click.Context) -> None:
    """The ledger of what was imported into an account (one per account, shared by every
    run; see docs/scheduling.md): its size, what it holds for a lead, all of it as CSV; and
    forgetting activities, so that the next run sends their rows again.

    \b
    Examples:
      lsq-import ledger stats
      lsq-import ledger show jane@example.com --host api-in21.leadsquared.com
      lsq-import ledger forget --input /srv/lsq/drop/leads-1130.csv
      lsq-import ledger export --output ledger.csv --ledger /srv/lsq/ledger.sqlite
    """
    if ctx.invoked_subcommand is None:  # a bare `lsq-import ledger`: the help, and no error
        echo(ctx.get_help())
        ctx.exit(int(ExitStatus.SUCCESS))


def _warn_password_in(ledger: object) -> None:
    """A ``--ledger`` URL holding a password: other users of the machine can read a command
    line (``ps``); said once, without the password."""
    from .ledger.location import is_url

    if not is_url(ledger):
        return
    from .ledger.postgres import shown_url

    assert isinstance(ledger, str)  # is_url
    if shown_url(ledger) != ledger.strip():
        click.echo(
            "lsq-import: WARNING: --ledger holds a password, which other users of this "
            "machine can read on the command line (ps): give it in PGPASSWORD, ~/.pgpass or "
            "LSQ_LEDGER instead",
            err=True,
        )


def _ledger_path(ledger_file: str | None, host: str | None, env_file: Path | None) -> Path | str:
    """The ledger a run would use (``--ledger``, else ``$LSQ_LEDGER``, else the account's
    default, keyed on the base URL and access key as the runner keys it), which must exist:
    reading one must not create it."""
    from .ledger.location import ENV_LEDGER, from_environment, resolve

    _warn_password_in(ledger_file)
    if ledger_file is not None and (host or env_file):
        raise CliError(
            "--ledger names the file; --host and --env-file only find an account's default "
            "one: give one or the other",
            int(ExitStatus.BAD_INPUT),
        )
    url = access_key = None
    if ledger_file is None and from_environment() is None:
        from .leadsquared.connect import resolve_endpoint

        try:
            endpoint = resolve_endpoint(host=host, env_file=env_file)
        except ImporterError as exc:
            raise CliError(
                f"{exc} (the account's host and access key find its ledger; or name the file "
                "with --ledger FILE)",
                int(exc.exit_status),
            ) from None
        url = endpoint.url
        access_key = endpoint.credentials.access_key if endpoint.credentials else None
    path = resolve(ledger_file, host=url, access_key=access_key)
    if path is None:
        where = "--ledger" if ledger_file is not None else f"${ENV_LEDGER}"
        raise CliError(
            f"{where} is off: runs use no ledger; name one with --ledger FILE",
            int(ExitStatus.BAD_INPUT),
        )
    if isinstance(path, Path) and not path.exists():  # a database: open_ledger(create=False)
        raise CliError(
            f"ledger {path}: does not exist (no import has used it yet)",
            int(ExitStatus.BAD_INPUT),
        )
    return path


def _ledger_files(path: Path | str) -> list[Path]:
    """The ledger and the SQLite files beside it: what an output option must not name."""
    if not isinstance(path, Path):
        return []  # in a database
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


@dataclasses.dataclass(frozen=True)
class _LedgerStats:
    """``Ledger.stats()`` (and the inputs), as ``summary_out`` shows a summary."""

    stats: dict[str, Any]
    inputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {**self.stats, "input_files": self.inputs}

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def to_text(self) -> str:
        found = self.stats
        lines = [
            f"ledger: {found['path']}",
            f"imported activities: {found['imported']}",
            f"claims in flight (or left by a run that stopped): {found['claimed']}",
            f"leads: {found['leads']}",
            f"inputs: {found['inputs']}",
            *(f"  {path}" for path in self.inputs),
            f"first import: {found['first_import'] + ' UTC' if found['first_import'] else '-'}",
            f"last import: {found['last_import'] + ' UTC' if found['last_import'] else '-'}",
            f"size: {found['bytes'] / 1e6:.2f} MB",
        ]
        return "\n".join(lines)


@ledger_group.command("stats", short_help="Say where the ledger is, what it holds, how big.")
@ledger_options
@json_option("--json", what="the statistics")
@reports_errors
def ledger_stats(
    ledger_file: str | None, host: str | None, env_file: Path | None, json_file: Path | None
) -> None:
    """Say where the ledger is and what it holds: imported activities, claims in flight,
    leads, input files, the first and last import (UTC) and its size.

    \b
    Examples:
      lsq-import ledger stats --host api-in21.leadsquared.com
      lsq-import ledger stats --ledger /srv/lsq/ledger.sqlite --json - | jq .imported
    """
    _load("open_ledger")
    path = _ledger_path(ledger_file, host, env_file)
    to_file = None if is_std(json_file) else json_file
    check_output_path("--json", to_file, _ledger_files(path))
    with open_ledger(path, create=False) as ledger:
        found = _LedgerStats(ledger.stats(), sorted(ledger.inputs()))
    summary_out(json_file, found)


@ledger_group.command("show", short_help="List what was imported for the lead with KEY.")
@click.argument("key")
@ledger_options
@reports_errors
def ledger_show(key: str, ledger_file: str | None, host: str | None, env_file: Path | None) -> None:
    """List what the ledger holds for the lead whose SearchBy value (email, phone) is KEY,
    one activity a line: when it was imported (UTC), its activity and lead ids, the input
    file and row it came from, and its state. Case and spaces in KEY do not matter, nor a
    phone number's punctuation.

    \b
    Example:
      lsq-import ledger show jane@example.com
    """
    _load("open_ledger")
    path = _ledger_path(ledger_file, host, env_file)
    with open_ledger(path, create=False) as ledger:
        entries = ledger.show(key)
    if not entries:
        echo(f"no activity in the ledger for {key}")
        return
    for entry in entries:
        state = f"{entry.state} by {entry.holder}" if entry.holder else entry.state
        line = (
            f"{entry.imported_at + ' UTC' if entry.imported_at else 'not imported yet'}  "
            f"activity {entry.activity_id or '-'}  lead {entry.lead_id or '-'}  "
            f"{entry.input or '-'} row {entry.row}  {state}"
        )
        if not echo(line):
            break


_UTC_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S")


def _utc_moment(text: str) -> str:
    """``--before``: a UTC date or date-time, as the ledger writes its times."""
    from datetime import datetime

    for form in _UTC_FORMATS:
        try:
            return datetime.strptime(text.strip(), form).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    raise CliError(
        f"--before {text!r}: not a UTC date YYYY-MM-DD or date-time 'YYYY-MM-DD HH:MM:SS'",
        int(ExitStatus.BAD_INPUT),
    )


@ledger_group.command("forget", short_help="Forget activities, so the next run sends them again.")
@click.option(
    "--input",
    "input_file",
    metavar="FILE",
    help="Forget the activities imported from this input file (matched by its absolute path, "
    "as the ledger recorded it; 'ledger stats' lists them).",
)
@click.option(
    "--before",
    metavar="DATE",
    help="Forget the activities imported before this UTC date (YYYY-MM-DD) or date-time "
    "('YYYY-MM-DD HH:MM:SS'); with --input, only that file's.",
)
@ledger_options
@reports_errors
def ledger_forget(
    input_file: str | None,
    before: str | None,
    ledger_file: str | None,
    host: str | None,
    env_file: Path | None,
) -> None:
    """Forget imported activities: those of an input file, those imported before a date, or
    (both given) those of the file imported before the date. The next run of a file that
    holds their rows sends them again, posting the activities once more; claims in flight
    are never forgotten. Asks for no confirmation: 'ledger export' first keeps a copy.

    \b
    Examples:
      lsq-import ledger forget --input /srv/lsq/drop/leads-1130.csv
      lsq-import ledger forget --before 2026-01-01
    """
    if input_file is None and before is None:
        raise CliError(
            "ledger forget: give --input FILE, --before DATE, or both", int(ExitStatus.BAD_INPUT)
        )
    moment = None if before is None else _utc_moment(before)
    _load("open_ledger")
    path = _ledger_path(ledger_file, host, env_file)
    with open_ledger(path, create=False) as ledger:
        recorded = None
        if input_file is not None:
            # Recorded by its absolute path (a DataFrame by its description, taken as given).
            known = ledger.inputs()
            recorded = os.path.abspath(input_file)
            if recorded not in known and input_file in known:
                recorded = input_file
        forgotten = ledger.forget(input=recorded, before=moment)
        shown = ledger.path
        known = ledger.inputs() if forgotten == 0 and recorded is not None else []
    what = (f" from {recorded}" if recorded is not None else "") + (
        f" imported before {before} UTC" if before is not None else ""
    )
    if forgotten == 0:
        echo(f"nothing forgotten: no activity{what} in {shown}")
        if recorded is not None:
            echo(f"the inputs it knows ({len(known)}):" if known else "it knows no input")
            for known_input in sorted(known):
                if not echo(f"  {known_input}"):
                    break
        return
    echo(
        f"forgot {forgotten} activit{'y' if forgotten == 1 else 'ies'}{what} in {shown}: the "
        "next run sends their rows again (a resumed results file still skips the rows it "
        "lists as done)"
    )


@ledger_group.command("export", short_help="Write every activity in the ledger as CSV.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, allow_dash=True),
    help="Write the CSV to this file (default, or '-': stdout).",
)
@ledger_options
@reports_errors
def ledger_export(
    output: Path | None, ledger_file: str | None, host: str | None, env_file: Path | None
) -> None:
    """Write every activity in the ledger as CSV (fingerprint, lead_key, state, activity_id,
    lead_id, imported_at, input, row), for an audit or a spreadsheet; the count goes to
    stderr.

    \b
    Examples:
      lsq-import ledger export --output ledger.csv
      lsq-import ledger export | grep jane@example.com
    """
    _load("open_ledger")
    path = _ledger_path(ledger_file, host, env_file)
    to_file = None if output is None or is_std(output) else output
    check_output_path("--output", to_file, _ledger_files(path))
    with open_ledger(path, create=False) as ledger:
        shown = ledger.path
        if to_file is None:
            count = ledger.export(PipeStdout())  # type: ignore[arg-type]
        else:
            # Written beside it and moved into place: an export cut short leaves no half file.
            partial = to_file.with_name(f".{to_file.name}.partial")
            try:
                with open(partial, "w", newline="", encoding="utf-8") as out:
                    count = ledger.export(out)
                os.replace(partial, to_file)
            finally:
                with contextlib.suppress(OSError):
                    partial.unlink()
    where = f" to {to_file}" if to_file is not None else ""
    click.echo(
        f"exported {count} activit{'y' if count == 1 else 'ies'} from {shown}{where}", err=True
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point.

    A SIGTERM is a Ctrl-C from the first line on, and a Ctrl-C that arrives before a command
    runs (while its options are read) is one line and exit 4, like one during its start-up:
    click's own "Aborted!" would exit 1, which means "rows failed".
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = cli.main(prog_name="lsq-import", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("Error: interrupted before anything was sent", err=True)
        sys.exit(int(ExitStatus.INTERRUPTED))
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
