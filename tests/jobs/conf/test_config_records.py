"""Config's schema nodes are the actors' own settings records; overrides reach them unchanged."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from actors.emulator.config import BatchBehaviour, FaultRates, LatencyModel, OutputQuirks, fingerprint
from actors.errors import ConfigError
from actors.limiter import AccountLimits
from actors.settings import RateLimits
from actors.types import Prices
from jobs.conf.loader import account_limits, endpoint, to_account_limits
from jobs.conf.schema import EmulatorConf
from jobs.config import load_config
from jobs.engine.emulation import to_emulator_config

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"


def test_emulator_nodes_are_the_emulators_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_ENV", "emu-key")
    conf = load_config(DEMO, ["emulator.faults.server_500=0.1", "emulator.limits.SOME_ENV.rpm=300"])
    emu = to_emulator_config(conf.emulator)
    assert type(conf.emulator.faults) is FaultRates and type(conf.emulator.quirks) is OutputQuirks
    assert emu.faults is conf.emulator.faults and emu.faults.server_500 == 0.1
    assert emu.faults.overloaded_529 == 0.01  # the rest of demo.yaml's faults stay
    assert emu.quirks == OutputQuirks(refusal=0.02, drop_tag=0.02, truncate=0.01, malformed_json=0.05)
    # the emulator enforces the rates only: max_in_flight bounds our clients, not the provider
    limits = emu.limits_for(fingerprint("emu-key"))
    assert type(limits) is RateLimits and limits == RateLimits(rpm=300)
    assert pickle.loads(pickle.dumps((emu.faults, emu.quirks, limits))) == (emu.faults, emu.quirks, limits)


def test_flat_emulator_keys_build_latency_and_batch_records() -> None:
    assert EmulatorConf().latency_model() == LatencyModel()
    assert EmulatorConf().batch_behaviour() == BatchBehaviour()
    conf = load_config(
        DEMO,
        ["emulator.latency_fixed_s=0.5", "emulator.batch_delay_s=5", "emulator.batch_failure_rate=0.2"],
    )
    emu = to_emulator_config(conf.emulator)
    assert emu.latency == LatencyModel(fixed_s=0.5, per_output_token_s=0.00005)  # the second from demo.yaml
    assert emu.batch == BatchBehaviour(delay_s=5.0, failure_rate=0.2)


def test_limiter_gets_the_accounts_rates_at_the_lease_margin() -> None:
    conf = load_config(DEMO, ["engine.lease_margin=0.9", "accounts.xai.limits.output_tpm=5000"])
    limits = to_account_limits(account_limits(conf)["xai"], conf.engine.lease_margin)
    assert limits == AccountLimits(rpm=600, input_tpm=1_000_000, output_tpm=5000, margin=0.9)
    assert account_limits(conf)["xai"].max_in_flight == 32


def test_clients_get_the_configs_prices_record() -> None:
    conf = load_config(DEMO, ["models.o3.prices.output=12.5"])
    prices = endpoint(conf, "o3").prices
    assert type(prices) is Prices and prices is conf.models["o3"].prices and prices.output == 12.5


def test_interpolations_inside_records_resolve() -> None:
    overrides = ["vars.rate=0.3", "vars.rpm=77", "emulator.faults.hang=${vars.rate}"]
    conf = load_config(DEMO, [*overrides, "models.o3.limits.rpm=${vars.rpm}"])
    assert conf.emulator.faults.hang == 0.3 and conf.models["o3"].limits.rpm == 77


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("models.o3.limits.rpm=-5", "config key 'models.o3.limits.rpm': must be > 0 or null, got -5.0"),
        (
            "accounts.openai.limits.max_in_flight=0",
            "config key 'accounts.openai.limits.max_in_flight': must be >= 1, got 0",
        ),
        (
            "emulator.limits.SOME_ENV.input_tpm=0",
            "config key 'emulator.limits.SOME_ENV.input_tpm': must be > 0 or null, got 0.0",
        ),
        (
            "emulator.faults.hang=1.5",
            "config key 'emulator.faults.hang': must be a probability in [0, 1], got 1.5",
        ),
        (
            "emulator.quirks.truncate=-0.1",
            "config key 'emulator.quirks.truncate': must be a probability in [0, 1], got -0.1",
        ),
        (
            "emulator.batch_failure_rate=2",
            "config key 'emulator.batch_failure_rate': must be a probability in [0, 1], got 2.0",
        ),
        ("emulator.batch_expire_s=0", "config key 'emulator.batch_expire_s': must be > 0, got 0.0"),
        (
            "models.o3.prices.cached_input=-1",
            "config key 'models.o3.prices.cached_input': must be >= 0, got -1.0",
        ),
        (
            "models.o3.prices.batch_discount=1.5",
            "config key 'models.o3.prices.batch_discount': must be in [0, 1], got 1.5",
        ),
        (
            "emulator.faults.server_500=0.99",
            "config key 'emulator.faults': rates must sum to <= 1, got 1.010",
        ),
    ],
)
def test_record_checks_name_the_config_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    assert str(err.value) == message
