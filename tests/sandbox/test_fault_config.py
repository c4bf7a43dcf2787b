"""FaultConfig (the --faults spec, its round trip, its one-line errors) and its seeded draws."""

from __future__ import annotations

import dataclasses

import pytest

from importer.exceptions import ConfigError
from importer.sandbox import FAULTS, FaultConfig, FaultDraws, Sandbox


def test_fault_spec_parses_round_trips_and_validates() -> None:
    config = FaultConfig.from_spec(
        " drop_after=0.05, error_500_plain=0.1,seed=7,latency=0.2,"
        "nonatomic_upsert,upsert_pause=0.01,read_lag=2.5"
    )
    assert config == FaultConfig(
        latency=0.2,
        seed=7,
        error_500_plain=0.1,
        drop_after=0.05,
        nonatomic_upsert=True,
        upsert_pause=0.01,
        read_lag=2.5,
    )
    assert FaultConfig.from_spec(config.to_spec()) == config
    assert FaultConfig.from_spec("") == FaultConfig()
    assert FaultConfig.from_spec("nonatomic_upsert=off").nonatomic_upsert is False
    assert set(FAULTS) <= {f.name for f in dataclasses.fields(FaultConfig)}


@pytest.mark.parametrize(
    ("spec", "in_message"),
    [
        ("drop_later=0.1", "unknown fault 'drop_later'"),
        ("drop_after=lots", "must be a number"),
        ("seed=1.5", "whole number"),
        ("drop_after=1.5", "probability"),
        ("drop_after=-0.1", "probability"),
        ("drop_after=nan", "probability"),
        ("drop_after=0.6,drop_before=0.6", "add up to 1.2"),
        ("seed=1,seed=2", "twice"),
        ("latency=-1", "latency"),
        ("read_lag=-1", "read_lag must be a number of seconds >= 0"),
        ("read_lag=inf", "read_lag must be a number of seconds >= 0"),
        ("read_lag=soon", "read_lag='soon' must be a number"),
        ("nonatomic_upsert=maybe", "true or false"),
    ],
)
def test_bad_fault_spec_is_one_line_config_error(spec: str, in_message: str) -> None:
    with pytest.raises(ConfigError) as info:
        FaultConfig.from_spec(spec)
    message = str(info.value)
    assert "\n" not in message and "--faults" in message and in_message in message


def test_bad_fault_config_built_in_python_is_refused() -> None:
    with pytest.raises(ConfigError, match="throttle_429"):
        Sandbox(faults=FaultConfig(throttle_429=2.0))


def test_fault_draws_repeat_under_a_seed_and_take_nothing_when_off() -> None:
    config = FaultConfig(latency=0.1, jitter=0.05, seed=7, error_500_plain=0.5, drop_after=0.2)

    def sequence(draws: FaultDraws) -> list[object]:
        return [(draws.latency_halves(), draws.fault(), draws.coin()) for _ in range(20)]

    first = sequence(FaultDraws(config))
    assert sequence(FaultDraws(config)) == first
    assert {fault for _, fault, _ in first} == {"", "error_500_plain", "drop_after"}
    assert all(0.025 <= up == down <= 0.075 for (up, down), _, _ in first)

    # Latency and faults off: their draws leave the generator alone, so the coins a seed
    # gives do not depend on how many calls came before.
    off = FaultDraws(FaultConfig(seed=3))
    assert [(off.latency_halves(), off.fault()) for _ in range(5)] == [((0.0, 0.0), "")] * 5
    fresh = FaultDraws(FaultConfig(seed=3))
    assert [off.coin() for _ in range(10)] == [fresh.coin() for _ in range(10)]
