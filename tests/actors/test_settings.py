"""Settings records check themselves, naming the field, and copy fields between records by name."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

from actors.emulator.config import BatchBehaviour, FaultRates, OutputQuirks
from actors.errors import ConfigError, SettingError
from actors.limiter import AccountLimits
from actors.settings import RateLimits, field_values


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (lambda: RateLimits(rpm=0), "RateLimits.rpm: must be > 0 or null, got 0"),
        (lambda: AccountLimits(output_tpm=-1), "AccountLimits.output_tpm: must be > 0 or null, got -1"),
        (lambda: FaultRates(hang=1.5), "FaultRates.hang: must be a probability in [0, 1], got 1.5"),
        (lambda: FaultRates(server_500=0.6, reset=0.5), "FaultRates: rates must sum to <= 1, got 1.100"),
        (lambda: OutputQuirks(drop_tag=-0.1), "OutputQuirks.drop_tag: must be a probability in [0, 1]"),
        (lambda: BatchBehaviour(expire_s=0), "BatchBehaviour.expire_s: must be > 0, got 0"),
    ],
)
def test_records_reject_bad_values_naming_the_field(build: object, text: str) -> None:
    with pytest.raises(SettingError) as err:
        build()  # type: ignore[operator]
    assert str(err.value).startswith(text)
    # a bad argument (ValueError) and a bad setting (ConfigError, which the CLI prints without a traceback)
    assert isinstance(err.value, ValueError) and isinstance(err.value, ConfigError)


def test_whole_record_problems_have_no_field() -> None:
    with pytest.raises(SettingError) as err:
        FaultRates(server_500=0.6, reset=0.5)
    assert err.value.field is None and err.value.problem == "rates must sum to <= 1, got 1.100"


@dataclass
class _Flat:
    batch_delay_s: float = 3.0
    batch_failure_rate: float = 0.25
    batch_expire_s: float = 9.0
    unrelated: str = "x"


def test_field_values_reads_the_records_fields_under_a_prefix() -> None:
    values = field_values(BatchBehaviour, _Flat(), prefix="batch_")
    assert values == {"delay_s": 3.0, "failure_rate": 0.25, "expire_s": 9.0}
    assert BatchBehaviour(**values) == BatchBehaviour(delay_s=3.0, failure_rate=0.25, expire_s=9.0)


def test_field_values_takes_only_the_shared_fields() -> None:
    limiter = AccountLimits(rpm=60, output_tpm=600, margin=0.5, lease_s=1.0)
    assert RateLimits(**field_values(RateLimits, limiter)) == RateLimits(rpm=60, output_tpm=600)


def test_records_pickle_as_plain_values() -> None:
    records = [FaultRates(reset=0.2), OutputQuirks(truncate=0.1), RateLimits(rpm=5), AccountLimits(rpm=5)]
    assert pickle.loads(pickle.dumps(records)) == records
