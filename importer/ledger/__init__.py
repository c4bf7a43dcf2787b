"""The ledger: what lsq-import imported into an account, across files, results files and nights.

* :mod:`.fingerprint`: what makes two rows the same activity (``options.dedupe``);
* :mod:`.store`: the SQLite database, its claims (intent before send, across processes) and
  imports;
* :mod:`.run`: one run's use of it (claim before queueing, skip, settle, release);
* :mod:`.pacing`: one slot schedule per account shared by the processes on this machine;
* :mod:`.location`: where it lives by default (one per account in the user's data directory).
"""

from .store import ClaimState, Entry, Intent, Ledger

__all__ = ["ClaimState", "Entry", "Intent", "Ledger"]
