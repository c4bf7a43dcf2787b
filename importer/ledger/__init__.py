"""The ledger: what lsq-import imported into an account, across files, results files and nights.

* :mod:`.fingerprint`: what makes two rows the same activity (``options.dedupe``);
* :mod:`.store`: the SQLite database, its claims (intent before send, across processes) and
  imports; :func:`.store.open_ledger` opens either backend;
* :mod:`.postgres`: the same ledger in PostgreSQL, for several hosts (team mode, docs/team.md);
* :mod:`.run`: one run's use of it (claim before queueing, skip, settle, release);
* :mod:`.pacing`: one slot schedule per account shared by every process (a file on one
  machine, a table of the PostgreSQL ledger across hosts);
* :mod:`.location`: where it lives by default (one per account in the user's data directory).
"""

from .store import ClaimState, Entry, Intent, Ledger

__all__ = ["ClaimState", "Entry", "Intent", "Ledger"]
