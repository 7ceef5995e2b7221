"""cluster.yaml passes the Ray launcher's own schema validation, offline."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


def test_cluster_yaml_is_a_valid_launcher_config() -> None:
    raw = yaml.safe_load(CLUSTER.read_text())
    validate_config(prepare_config(raw))
    types = raw["available_node_types"]
    assert {"head", "cpu_worker", "gpu_worker"} <= set(types)
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    # No key is written here: the head reads them from Secrets Manager into its own environment.
    assert not re.search(r"API_KEY=[^$]", CLUSTER.read_text())
    assert "secretsmanager get-secret-value" in " ".join(raw["head_start_ray_commands"])


def test_cluster_yaml_installs_the_working_tree_and_lets_the_driver_drain() -> None:
    raw = yaml.safe_load(CLUSTER.read_text())
    (target, source), *_ = raw["file_mounts"].items()
    assert source == "."
    assert any(f"pip install -e {target}" in cmd for cmd in raw["setup_commands"])
    assert "**/.venv" in raw["rsync_exclude"]
    head_start = " ".join(raw["head_start_ray_commands"])
    assert "RAY_JOB_STOP_WAIT_TIME_S=" in head_start and "--metrics-export-port" in head_start
    assert not any(k in CLUSTER.read_text() for k in ("sk-", "AKIA", "env_vars"))
