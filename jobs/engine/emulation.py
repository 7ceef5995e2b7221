"""Running the provider emulator for a run: its record from config, and throwaway keys.

The emulator is a stand-in for real providers (see README). A run whose config enables it
starts it in-process on the configured port; its models' key variables get throwaway
values when unset, so the demo needs no API key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from actors.emulator.config import EmulatorConfig
from actors.emulator.server import EmulatorServer, main_emulate
from actors.settings import RateLimits, field_values
from jobs.conf.schema import EmulatorConf, RunConf


def to_emulator_config(conf: EmulatorConf) -> EmulatorConfig:
    """The emulator's record of `emulator:`: config's own records, less `max_in_flight` per key."""
    return EmulatorConfig(
        seed=conf.seed,
        latency=conf.latency_model(),
        accounts={env: RateLimits(**field_values(RateLimits, lim)) for env, lim in conf.limits.items()},
        faults=conf.faults,
        quirks=conf.quirks,
        hang_s=conf.hang_s,
        batch=conf.batch_behaviour(),
    )


def emulated_key_envs(conf: RunConf) -> list[str]:
    """Key variables of the models whose base URL points at the emulator."""
    url = conf.emulator.url
    return sorted(
        {m.api_key_env for m in conf.models.values() if m.api_key_env and m.base_url.startswith(url)}
    )


def fill_throwaway_keys(conf: RunConf) -> None:
    for env in [*emulated_key_envs(conf), *conf.emulator.limits]:
        os.environ.setdefault(env, "emu-" + secrets.token_hex(8))


@contextlib.contextmanager
def emulator_for(conf: RunConf) -> Iterator[EmulatorServer | None]:
    """The in-process emulator when `emulator.enabled`, else None."""
    if not conf.emulator.enabled:
        yield None
        return
    fill_throwaway_keys(conf)
    with EmulatorServer(to_emulator_config(conf.emulator), port=conf.emulator.port) as server:
        yield server


def serve_forever(conf: RunConf, host: str, port: int) -> None:
    """`specstress emulate`: serve until interrupted."""
    fill_throwaway_keys(conf)
    main_emulate(port, to_emulator_config(conf.emulator), host=host)
