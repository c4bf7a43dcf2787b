"""The example files a new user starts from, shipped inside the package.

``mappings/example.yaml`` (the example mapping), ``mappings/README.md`` (the mapping
reference) and ``sample_data/leads.csv`` (the 200 rows the example maps) live in the
repository; a wheel carries them as package data under ``importer/data/`` (``setup.py``
copies them there when the wheel is built), so that ``lsq-import init-mapping --example`` can
write them out where no checkout is: every command in ``--help`` and the README then works
from that folder. Run from a checkout (or an editable install), they are read from the
checkout itself.

    from importer.examples import write_examples
    written = write_examples(".")     # ./mappings/example.yaml, ./mappings/README.md, ...
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from .exceptions import ConfigError

EXAMPLE_FILES = ("mappings/example.yaml", "mappings/README.md", "sample_data/leads.csv")
"""Their paths, relative to the repository's root and to ``importer/examples/``."""

PACKAGED = "data"
"""The folder inside the ``importer`` package that holds them in a wheel."""


def example_file(name: str) -> Traversable:
    """One of :data:`EXAMPLE_FILES`: the package's copy, else the checkout's."""
    if name not in EXAMPLE_FILES:
        raise ValueError(f"{name!r} is not one of {', '.join(EXAMPLE_FILES)}")
    packaged = resources.files("importer").joinpath(PACKAGED, *name.split("/"))
    if packaged.is_file():
        return packaged
    checkout = Path(__file__).resolve().parent.parent.joinpath(*name.split("/"))
    if checkout.is_file():
        return checkout
    raise ConfigError(
        f"{name} is missing from this installation of lsq-import (neither in the package nor "
        "in a checkout); reinstall it from a clone or a wheel built from one"
    )


def write_examples(folder: str | os.PathLike[str], *, force: bool = False) -> list[Path]:
    """Write :data:`EXAMPLE_FILES` under ``folder`` (made if missing) and return their paths.

    An existing file is kept, and nothing is written, unless ``force``: ConfigError naming it.
    """
    root = Path(folder)
    targets = [(root.joinpath(*name.split("/")), example_file(name)) for name in EXAMPLE_FILES]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise ConfigError(
            f"{', '.join(existing)}: already {verb}; pass --force to overwrite, or --output "
            "another folder"
        )
    written = []
    for path, source in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write ({exc.strerror})") from None
        written.append(path)
    return written
