"""FaultConfig: the --faults spec, its round trip and its one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from importer.exceptions import ConfigError
from importer.sandbox import FAULTS, FaultConfig, Sandbox


def test_fault_spec_parses_round_trips_and_validates() -> None:
    config = FaultConfig.from_spec(
        " drop_after=0.05, error_500_plain=0.1,seed=7,latency=0.2,"
        "nonatomic_upsert,upsert_pause=0.01"
    )
    assert config == FaultConfig(
        latency=0.2,
        seed=7,
        error_500_plain=0.1,
        drop_after=0.05,
        nonatomic_upsert=True,
        upsert_pause=0.01,
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
