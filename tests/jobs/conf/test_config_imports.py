"""Loading and checking a config imports no heavy library, so a config error comes back at once.

Each case loads in a fresh interpreter, whose `sys.modules` then shows what loading imported.
The import-linter contract on `jobs.config` holds the same statically (pyproject.toml).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs.stages.compliance_scope import DEMO_SPEC

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "conf" / "demo.yaml"
DEFAULT = ROOT / "conf" / "default.yaml"
HEAVY = (
    "polars",
    "pyarrow",
    "numpy",
    "pandas",
    "ray",
    "aiohttp",
    "faiss",
    "scipy",
    "statsmodels",
    "torch",
    "sentence_transformers",
    "pydantic",
)

LOAD = """
import json, sys
from actors.errors import ConfigError
from jobs.config import load_config
outcomes = []
for path, overrides in json.loads(sys.argv[1]):
    try:
        load_config(path, overrides)
        outcomes.append("ok")
    except ConfigError as exc:
        outcomes.append(str(exc))
print(json.dumps({"outcomes": outcomes, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""
"""Loads each (path, overrides) in turn; prints each outcome and the top-level modules imported."""


def load_fresh(*cases: tuple[Path, list[str]]) -> tuple[list[str], list[str]]:
    """Each case's outcome ("ok" or the `ConfigError`), and the heavy libraries imported by them all."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD, json.dumps([[str(path), overrides] for path, overrides in cases])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out["outcomes"], sorted(set(out["modules"]) & set(HEAVY))


def test_a_config_error_and_both_shipped_configs_load_without_heavy_libraries() -> None:
    outcomes, heavy = load_fresh(
        (DEMO, ["stages.pairs.nn_pairs=1"]), (DEMO, []), (DEFAULT, [f"stages.compliance.spec={DEMO_SPEC}"])
    )
    assert outcomes[0].startswith("config key 'stages.pairs.nn_pairs': Key 'nn_pairs' not in 'PairsConf'")
    assert outcomes[1:] == ["ok", "ok"]
    assert heavy == []


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stages.responses.models=[nobody]", "stages.responses.models"),  # a model key the stage names
        ("stages.responses.samples=0", "stages.responses.samples"),  # the stage's own check
        ("stages.compliance.scope=every", "stages.compliance.scope"),
        ("batch.providers.xai.max_requests=10", "batch.providers.xai"),  # the run's sections too
    ],
)
def test_an_error_found_by_the_checks_loads_no_heavy_library(override: str, key: str) -> None:
    (outcome,), heavy = load_fresh((DEMO, [override]))
    assert outcome.startswith(f"config key '{key}'") and heavy == []
