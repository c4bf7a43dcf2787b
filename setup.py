"""Build hook; the project's metadata is in pyproject.toml.

A wheel carries the example mapping, the mapping reference and the sample rows as package
data (``importer/data/``, see ``importer/examples.py``): they live outside the package in
the repository, where the README and the docs point, so they are copied into the build here.
An editable install reads them from the checkout instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# importer.examples.EXAMPLE_FILES; tests/test_packaging.py checks that a built wheel has each.
EXAMPLE_FILES = ("mappings/example.yaml", "mappings/README.md", "sample_data/leads.csv")


class BuildWithExamples(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        for name in EXAMPLE_FILES:
            target = Path(self.build_lib, "importer", "data", name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, target)


setup(cmdclass={"build_py": BuildWithExamples})
