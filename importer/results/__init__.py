"""The results file: one line per input row with its outcome, and what lives beside it.

- :mod:`.file`: :class:`ResultsFile`, the one object the runner talks to;
- :mod:`.status`: the status vocabulary;
- :mod:`.journal`: append-while-running, the atomic in-order rewrite, resume planning;
- :mod:`.lock`: one run per results file; :mod:`.fingerprint`: the input/mapping check;
- :mod:`.report`: counts, grouped errors and a timeline from the file alone (``report``);
- :mod:`.errors_csv`: the rows that did not get in, in the input's own columns
  (``--errors-csv``), to fix and import again.
"""

from .file import ResultsFile
from .journal import Journal, Result
from .report import ResultsReport, read_report
from .status import FINAL_STATUSES, Status

__all__ = [
    "FINAL_STATUSES",
    "Journal",
    "Result",
    "ResultsFile",
    "ResultsReport",
    "Status",
    "read_report",
]
