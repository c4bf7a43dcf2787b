"""LeadSquared's plans and their API limits, from the rate-limits pages (two versions exist).

=========== ============= ================== =============================================
plan        calls / 5 s   bulk calls / 5 s   calls / day
=========== ============= ================== =============================================
lite        2             1                  34,560 (older page)
pro         10 (older 5)  5 (older 1)        10,000 + 1,000 per user, at most 250,000
super       20 (older 10) 10 (older 1)       100,000 + 1,000 per user, at most 1,000,000
standard    15            1                  259,200 (older page)
enterprise  25            1                  432,000 (older page)
=========== ============= ================== =============================================

Where the two pages differ, a preset takes the newer page's (higher) numbers: a run that
starts above the account's real limit learns it from the first refusal, which names it
("exceeded the limit of N in 5 second(s)", see :meth:`importer.sending.pacer.Pacer.learn`),
and goes on at N; a run that starts below it never finds out it could go faster. The older
page also says bulk calls are limited to 1 per 5 s on every plan unless the account has a
dedicated database. Whether bulk calls also count against the ordinary limit is not
documented (``bulk_shares_limit``: by default lsq-import assumes they do).

Daily caps are listed for the documentation only: a run's ``--max-calls`` is the budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import ConfigError


@dataclass(frozen=True)
class Plan:
    """One plan's limits: ``calls`` and ``bulk_calls`` per ``per`` seconds."""

    name: str
    calls: int
    bulk_calls: int
    per: float = 5.0
    daily: str = ""


PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan("lite", 2, 1, daily="34,560"),
        Plan("pro", 10, 5, daily="10,000 + 1,000 per user, at most 250,000"),
        Plan("super", 20, 10, daily="100,000 + 1,000 per user, at most 1,000,000"),
        Plan("standard", 15, 1, daily="259,200"),
        Plan("enterprise", 25, 1, daily="432,000"),
    )
}

PLAN_NAMES = tuple(PLANS)

DEFAULT_BULK_RATE = 1
"""Bulk calls per ``per`` seconds without ``--plan`` or ``--bulk-rate``: the older page's
limit for every plan, the safe assumption."""


def plan_named(name: str) -> Plan:
    """The plan called ``name`` (any case), or ConfigError naming the known ones."""
    plan = PLANS.get(name.strip().lower())
    if plan is None:
        raise ConfigError(f"--plan {name}: unknown plan; one of {', '.join(PLAN_NAMES)}")
    return plan
