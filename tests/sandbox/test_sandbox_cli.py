"""``lsq-import sandbox``'s limits: plan presets, the bulk options, and what wins."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import importer.sandbox
from importer.cli import cli
from importer.plans import DEFAULT_BULK_RATE, PLAN_NAMES, PLANS


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments each ``lsq-import sandbox`` hands to ``serve`` (which then
    returns at once instead of serving until Ctrl-C)."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(importer.sandbox, "serve", lambda **kwargs: calls.append(kwargs))
    return calls


def limits(kwargs: dict[str, Any]) -> tuple[Any, ...]:
    names = ("rate", "per", "bulk_rate", "bulk_per", "bulk_shares_limit")
    return tuple(kwargs[name] for name in names)


def test_sandbox_help_lists_the_plans_and_the_bulk_options() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--plan", "pro", "--help"])
    assert result.exit_code == 0, result.output
    assert "|".join(PLAN_NAMES) in result.output
    for option in ("--bulk-rate", "--bulk-per", "--bulk-shares-limit / --no-bulk-shares-limit"):
        assert option in result.output


@pytest.mark.parametrize("name", PLAN_NAMES)
def test_a_plan_sets_the_rate_and_the_bulk_rate(name: str, served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0", "--plan", name.upper()])
    assert result.exit_code == 0, result.output
    plan = PLANS[name]
    assert limits(served[0]) == (plan.calls, plan.per, plan.bulk_calls, None, True)


def test_pro_is_10_calls_and_5_bulk_calls_per_5_s(served: list[dict[str, Any]]) -> None:
    # The newer rate-limits page's numbers (see importer/plans.py).
    assert CliRunner().invoke(cli, ["sandbox", "--plan", "pro"]).exit_code == 0
    assert limits(served[0]) == (10, 5.0, 5, None, True)


@pytest.mark.parametrize(
    ("args", "want"),
    [
        ([], (25, 5.0, DEFAULT_BULK_RATE, None, True)),
        (["--plan", "pro", "--rate", "3"], (3, 5.0, 5, None, True)),
        (["--plan", "super", "--bulk-rate", "2", "--per", "1"], (20, 1.0, 2, None, True)),
        (
            ["--bulk-rate", "4", "--bulk-per", "10", "--no-bulk-shares-limit"],
            (25, 5.0, 4, 10.0, False),
        ),
    ],
)
def test_explicit_limits_win_over_the_plan(
    args: list[str], want: tuple[Any, ...], served: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(cli, ["sandbox", *args])
    assert result.exit_code == 0, result.output
    assert limits(served[0]) == want


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--plan", "gold"], "--plan"),
        (["--bulk-rate", "0"], "--bulk-rate"),
        (["--bulk-per", "0"], "--bulk-per"),
    ],
)
def test_bad_limits_are_a_usage_error(
    args: list[str], option: str, served: list[dict[str, Any]]
) -> None:
    result = CliRunner().invoke(cli, ["sandbox", *args])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output  # a known option, a bad value
    assert served == []
