"""What a run sends: which rows of the input, and the request body of each.

``run`` and the dry run (``run --dry-run``, :func:`importer.dryrun.dry_run`) both take their
rows through :class:`RowSelection` and their bodies from :func:`request_builder`, so what a
dry run prints is what the run would send, row for row and byte for byte: a step added to
either (a body field the run fills in, a row it passes over) reaches both at once.

    select = RowSelection(start_row=10, limit=3, previous=read_outcomes(results))
    build = request_builder(mapping)
    for row in select.rows(source.rows()):
        payload = build(row)  # RowError: invalid; RowSkipped: a filter's choice
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .results.journal import Outcomes
from .results.status import Status

if TYPE_CHECKING:
    from .mapping import Mapping, Payload
    from .reader import Row
    from .settings import ImportSettings

__all__ = ["RowSelection", "request_builder"]


def request_builder(mapping: Mapping, token_seed: str = "") -> Callable[[Row], Payload]:
    """The function from an input row to the :class:`Payload` a run sends for it: the
    mapping's body, then whatever the run adds to every body: the row's token when the mapping
    has ``options.row_token`` (made from ``token_seed``, the results file's; see
    :mod:`importer.sending.token`). It raises what :meth:`Mapping.build` raises. Every path
    that sends a body, or shows one as sent, takes it from here."""
    field_name = mapping.row_token

    def build(row: Row) -> Payload:
        status = row.values.get("lsq_status")
        if status is not None and status.strip() == "unknown":
            # A row of an errors file that may have landed: never sent blindly from there.
            from .mapping import RowError
            from .results.errors_csv import UNKNOWN_IN_ERRORS_FILE

            raise RowError(UNKNOWN_IN_ERRORS_FILE, column="lsq_status")
        payload = mapping.build(row)
        if field_name is not None:
            from .sending.token import add_row_token, row_token

            add_row_token(payload.body, field_name, row_token(token_seed, payload.row))
        return payload

    return build


@dataclass
class RowSelection:
    """Which rows a run maps: from ``start_row`` on, not those an earlier run settled
    (``success``, and ``unknown`` unless ``retry_unknown``: ``previous`` holds their statuses),
    and at most ``limit`` of the others (invalid and filtered rows count, as they are taken).
    """

    start_row: int | None = None
    limit: int | None = None
    previous: Outcomes = field(default_factory=Outcomes)
    retry_unknown: bool = False
    read: int = 0
    """Rows the last :meth:`rows` read from its input, passed over or not."""
    to_the_end: bool = False
    """Whether the last :meth:`rows` read its input to the end (``limit`` did not stop it)."""

    @classmethod
    def of_run(cls, settings: ImportSettings, previous: Outcomes | None = None) -> RowSelection:
        """The selection of a run with these settings, resuming from ``previous``."""
        return cls(
            start_row=settings.start_row,
            limit=settings.limit,
            previous=previous if previous is not None else Outcomes(),
            retry_unknown=settings.retry_unknown,
        )

    def rows(
        self, rows: Iterable[Row], passed: Callable[[Status | None], object] | None = None
    ) -> Iterator[Row]:
        """The rows of ``rows`` a run maps, in order. ``passed`` is told of each row passed
        over: ``None`` for one before ``start_row``, else the status an earlier run left."""
        start_row, limit = self.start_row or 0, self.limit
        get, keep_unknown = self.previous.get, not self.retry_unknown
        self.read, self.to_the_end = 0, False
        taken = read = 0
        for row in rows:
            read += 1
            if row.number < start_row:
                if passed is not None:
                    passed(None)
                continue
            before = get(row.number)
            if before is Status.SUCCESS or (before is Status.UNKNOWN and keep_unknown):
                if passed is not None:
                    passed(before)
                continue
            if limit is not None and taken >= limit:
                self.read = read
                return
            taken += 1
            self.read = read
            yield row
        self.read, self.to_the_end = read, True
