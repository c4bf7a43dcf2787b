"""What an installed lsq-import carries: the example files as package data, and its pins."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from click.testing import CliRunner

from importer.cli import cli
from importer.examples import EXAMPLE_FILES, example_file

from .conftest import ROOT


def test_example_init_mapping_writes_the_files_a_new_user_starts_from(tmp_path: Path) -> None:
    folder = tmp_path / "start"
    runner = CliRunner()
    made = runner.invoke(cli, ["init-mapping", "--example", "--output", str(folder)])
    assert made.exit_code == 0, made.output
    for name in EXAMPLE_FILES:
        assert (folder / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (
        f"try: lsq-import run {folder / 'sample_data/leads.csv'} --mapping "
        f"{folder / 'mappings/example.yaml'} --sandbox"
    ) in made.output
    # The files work together: the example maps the sample.
    checked = runner.invoke(
        cli,
        ["validate", str(folder / "sample_data/leads.csv")]
        + ["--mapping", str(folder / "mappings/example.yaml")],
    )
    assert checked.exit_code == 0, checked.output

    again = runner.invoke(cli, ["init-mapping", "--example", "--output", str(folder)])
    assert again.exit_code == 2
    assert "already exist; pass --force to overwrite" in again.stderr
    forced = runner.invoke(cli, ["init-mapping", "--example", "-o", str(folder), "--force"])
    assert forced.exit_code == 0, forced.output


def test_example_and_an_input_are_not_both_given(tmp_path: Path) -> None:
    both = CliRunner().invoke(cli, ["init-mapping", "leads.csv", "--example"])
    assert both.exit_code == 2 and "give INPUT or --example, not both" in both.stderr
    neither = CliRunner().invoke(cli, ["init-mapping"])
    assert neither.exit_code == 2 and "missing argument INPUT (or --example)" in neither.stderr


def test_help_points_to_the_example_command() -> None:
    for args in ([], ["run"], ["validate"]):
        shown = CliRunner().invoke(cli, [*args, "--help"]).output
        unwrapped = " ".join(re.sub(r"-\n\s*", "-", shown).split())  # click breaks at hyphens
        assert "lsq-import init-mapping --example" in unwrapped, args


def test_a_wheel_carries_the_example_files_as_package_data(tmp_path: Path) -> None:
    """Build the wheel (as `pip wheel .` or `python -m build` would), unpack it where no
    checkout is, and find the files through importlib.resources from there."""
    source = tmp_path / "src"
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", *EXAMPLE_FILES):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "importer", source / "importer", ignore=shutil.ignore_patterns("__pycache__")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("lsq_import-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {f"importer/data/{name}" for name in EXAMPLE_FILES} <= names
        assert not any(name.startswith(("mappings/", "sample_data/")) for name in names)
        archive.extractall(installed)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    found = subprocess.run(
        [sys.executable, "-c", "from importer.examples import example_file;"
         "print(example_file('mappings/README.md'))"],
        cwd=empty, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(found.stdout.strip()) == installed / "importer/data/mappings/README.md"
    wrote = subprocess.run(
        [sys.executable, "-m", "importer", "init-mapping", "--example"],
        cwd=empty, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    for name in EXAMPLE_FILES:
        assert (empty / name).read_bytes() == (ROOT / name).read_bytes(), name


def test_the_checkout_is_read_when_the_package_has_no_copy() -> None:
    assert Path(str(example_file("mappings/example.yaml"))) == ROOT / "mappings/example.yaml"


def test_the_runtime_install_never_caps_aiohttp() -> None:
    """aioresponses (0.7.9, the newest) breaks on aiohttp 3.14, so the test extra caps it;
    an installation without the test extra must take any aiohttp from 3.9 on."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (runtime,) = [dep for dep in project["dependencies"] if dep.startswith("aiohttp")]
    assert "<" not in runtime and "!=" not in runtime and "~=" not in runtime
    assert "aiohttp<3.14" in project["optional-dependencies"]["test"]


def test_postgresql_is_an_extra_and_a_run_without_it_never_imports_it(tmp_path: Path) -> None:
    """Team mode's driver is the [postgres] extra, not the base install: an SQLite run never
    imports it, and a postgresql:// ledger without it says what to install, in one line."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(dep.startswith("psycopg") for dep in project["dependencies"])
    assert any(dep.startswith("psycopg") for dep in project["optional-dependencies"]["postgres"])
    code = f"""
import sys
sys.modules["psycopg"] = None  # as if the extra were not installed
from importer.exceptions import LedgerError
from importer.ledger.store import open_ledger
from importer.ledger.pacing import share
from importer.sending.pacer import Pacer
ledger = open_ledger({str(tmp_path / "l.sqlite")!r})
share(Pacer(5, 1.0), ledger, "calls")
ledger.close()
try:
    open_ledger("postgresql://lsq:s3cret@127.0.0.1:1/db")
except LedgerError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ledger postgresql://lsq@127.0.0.1:1/db: a PostgreSQL ledger needs psycopg 3: "
        "pip install 'lsq-import[postgres]'"
    )
