"""scripts/launch against a fake `ray` on PATH that records its arguments (no cluster, no network)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "scripts" / "launch"

FAKE_RAY = """#!/usr/bin/env bash
# Records each call as one JSON line.
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$RECORD/calls.jsonl"
"""


@pytest.fixture
def fake_ray(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ray = bin_dir / "ray"
    ray.write_text(FAKE_RAY)
    ray.chmod(0o755)
    return tmp_path


def launch(record: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "RAY_ADDRESS"}
    full = {**base, "PATH": f"{record / 'bin'}:{os.environ['PATH']}", "RECORD": str(record), **env}
    return subprocess.run([str(LAUNCH), *args], env=full, capture_output=True, text=True, timeout=60)


def calls(record: Path) -> list[list[str]]:
    path = record / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_cluster_lifecycle_commands(fake_ray: Path) -> None:
    for args in (["up"], ["stop", "job-1"], ["logs", "job-1"], ["status"], ["status", "job-1"], ["down"]):
        assert launch(fake_ray, *args).returncode == 0, args
    assert calls(fake_ray) == [
        ["up", "-y", "cluster.yaml"],
        ["job", "stop", "--address", "http://127.0.0.1:8265", "job-1"],
        ["job", "logs", "--address", "http://127.0.0.1:8265", "--follow", "job-1"],
        ["job", "list", "--address", "http://127.0.0.1:8265"],
        ["job", "status", "--address", "http://127.0.0.1:8265", "job-1"],
        ["down", "-y", "cluster.yaml"],
    ]


def test_submit_sends_no_key_and_follows_the_logs(fake_ray: Path) -> None:
    secret = "sk-launch-test-0123456789"
    done = launch(
        fake_ray,
        "submit",
        "conf/demo.yaml",
        "run_dir=s3://bucket/runs/a",
        OPENAI_API_KEY=secret,
        SPECSTRESS_JOB_ID="job-7",
        RAY_ADDRESS="http://10.0.0.5:8265",
    )
    assert done.returncode == 0, done.stderr
    submit, logs = calls(fake_ray)
    cut = submit.index("--runtime-env-json")
    assert submit[:cut] == [
        "job",
        "submit",
        "--address",
        "http://10.0.0.5:8265",
        "--no-wait",
        "--submission-id",
        "job-7",
        "--working-dir",
        ".",
    ]
    assert json.loads(submit[cut + 1]) == {"excludes": [".venv", ".git", "runs", "__pycache__"]}
    assert submit[cut + 2 :] == [
        "--",
        "specstress",
        "run",
        "conf/demo.yaml",
        "run_dir=s3://bucket/runs/a",
        "ray.address=auto",
    ]
    assert secret not in json.dumps(calls(fake_ray)) and secret not in done.stdout + done.stderr
    assert "OPENAI_API_KEY set here: not sent with the job" in done.stderr
    assert "ANTHROPIC_API_KEY" not in done.stderr  # unset, so not mentioned
    assert logs == ["job", "logs", "--address", "http://10.0.0.5:8265", "--follow", "job-7"]


def test_resume_is_the_same_submit_and_detach_skips_the_logs(fake_ray: Path) -> None:
    for _ in range(2):
        assert launch(fake_ray, "submit", "conf/demo.yaml", SPECSTRESS_DETACH="1").returncode == 0
    first, second = calls(fake_ray)
    assert first[0:2] == second[0:2] == ["job", "submit"]
    assert first[first.index("--") :] == second[second.index("--") :]


@pytest.mark.parametrize(
    "args",
    [[], ["logs"], ["stop"], ["submit"], ["submit", "no/such/config.yaml"], ["frobnicate"]],
)
def test_bad_arguments_exit_2_with_usage_and_call_nothing(fake_ray: Path, args: list[str]) -> None:
    done = launch(fake_ray, *args)
    assert done.returncode == 2
    assert "scripts/launch" in done.stderr
    assert calls(fake_ray) == []
