"""lsq-import: bulk-import CSV and Excel rows into LeadSquared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .exitcodes import ExitStatus  # noqa: E402

if TYPE_CHECKING:
    from .runner import run_import
    from .summary import Summary

__all__ = ["ExitStatus", "Summary", "__version__", "run_import"]

# Imported on first use (``from importer import run_import`` works as before): the runner
# pulls in aiohttp and pydantic, which ``lsq-import --help`` and ``--version`` don't need.
_LAZY = {"run_import": ".runner", "Summary": ".summary"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
