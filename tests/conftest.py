"""Shared fixtures: one local Ray per test session, an emulator on loopback, run configs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local test Ray only; see DESIGN.md

TEST_KEY = "sk-test-" + secrets.token_hex(16)
"""A throwaway key, unique enough to grep for on disk. It is in the environment before Ray
starts, because Ray's worker processes inherit the environment of that moment."""
os.environ["SPECSTRESS_TEST_KEY"] = TEST_KEY


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray for the whole session: starting one costs ~5 s (DESIGN.md)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=4,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
    yield
    ray.shutdown()


@pytest.fixture
def api_key() -> str:
    """The session's throwaway key (in SPECSTRESS_TEST_KEY)."""
    return TEST_KEY


def emulator_config(**kwargs: Any) -> Any:
    from actors.emulator.config import EmulatorConfig, LatencyModel

    kwargs.setdefault("latency", LatencyModel(fixed_s=0.0, per_output_token_s=0.0))
    return EmulatorConfig(**kwargs)


@pytest.fixture
def emulator(api_key: str) -> Iterator[Any]:
    """An instant, fault-free emulator on a free loopback port."""
    from actors.emulator.server import EmulatorServer

    with EmulatorServer(emulator_config()) as server:
        yield server


def run_conf_yaml(
    url: str, run_dir: Path, *, models: tuple[str, ...] = ("m_openai", "m_anthropic", "m_gemini")
) -> str:
    """A small config: one model per wire format, all on the given emulator URL."""
    specs = {
        "m_openai": ("openai", "gpt-4.1-mini", f"{url}/v1"),
        "m_anthropic": ("anthropic", "claude-sonnet-4-20250514", url),
        "m_gemini": ("gemini", "gemini-2.5-pro", url),
        "m_xai": ("openai", "grok-4-0709", f"{url}/v1"),
    }
    lines = [
        f"run_dir: {run_dir}",
        "engine: {num_clients: 2, backoff_base_s: 0.01, backoff_max_s: 0.05, flush_s: 0.5, flush_rows: 50}",
        "models:",
    ]
    for key in models:
        provider, model_id, base = specs[key]
        lines.append(
            f"  {key}: {{provider: {provider}, model_id: {model_id}, base_url: '{base}', "
            "api_key_env: SPECSTRESS_TEST_KEY, prices: {input: 1.0, output: 2.0, cached_input: 0.1}, "
            "params: {max_tokens: 64}}"
        )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def release_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run directory of release 0.1.0, resumed once under the current code (`tests/release_run.py`)."""
    from tests.release_run import resume_release_run

    return resume_release_run(tmp_path_factory.mktemp("release"))
