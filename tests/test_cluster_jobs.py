"""The demo through Ray Jobs on a real two-node cluster, started with `ray start` as a user would.

A head (dashboard on) and a second node, each a `ray start` process with its own temp dir;
`scripts/launch submit` runs the demo there with `RAY_ADDRESS` pointing at the head, `stop`
stops it mid-stage (it drains and stays resumable), `submit` again resumes it and makes only
the missing calls. The OpenAI models use a marker key from the head's environment: afterwards
no file under either node's temp dir or the run directory holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pyarrow.dataset as pads
import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MARKER = "sk-marker-" + secrets.token_hex(12)
BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_AUTH_MODE": "disabled",
        "OPENAI_API_KEY": MARKER,
    }


def agent_ports() -> list[str]:
    """Free ports for a node's agents. Ray's defaults (the dashboard agent's 52365, say) are taken
    by any other Ray on the machine, such as the test session's own, and a head whose job agent
    cannot bind answers every submission "No available agent"."""
    flags = (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
        "runtime-env-agent-port", "node-manager-port", "object-manager-port",
    )  # fmt: skip
    return [f"--{flag}={free_port()}" for flag in flags]


CLUSTER_TAG = "SPECSTRESS_TEST_CLUSTER"
"""Set in the nodes' environment, which every process they start inherits."""


def stop_nodes(tag: str) -> None:
    """End every process of these nodes (their environment holds `tag`); other Ray instances on
    this machine, such as the test session's, are left alone."""

    def mine(p: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return p.environ().get(CLUSTER_TAG) == tag
        return False

    def with_descendants(procs: list[psutil.Process]) -> set[psutil.Process]:
        # Ray's agents rename themselves over their environment, so they are found as children.
        out = set(procs)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                out.update(p.children(recursive=True))
        return out

    for _ in range(20):
        procs = with_descendants([p for p in psutil.process_iter() if mine(p)])
        if not procs:
            return
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        time.sleep(0.5)


@pytest.fixture
def cluster() -> Iterator[tuple[str, list[str]]]:
    """(dashboard address, the two nodes' temp dirs) of a head and one more node on loopback."""
    temps = [tempfile.mkdtemp(prefix="rayj"), tempfile.mkdtemp(prefix="rayj")]
    tag = secrets.token_hex(8)
    gcs, dashboard = free_port(), free_port()
    head = [
        "ray", "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
        "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--temp-dir={temps[0]}",
        "--num-cpus=2", "--node-ip-address=127.0.0.1", f"--ray-client-server-port={free_port()}",
        "--min-worker-port=22000", "--max-worker-port=22999", "--disable-usage-stats", *agent_ports(),
    ]  # fmt: skip
    node = [
        "ray", "start", f"--address=127.0.0.1:{gcs}", f"--temp-dir={temps[1]}", "--num-cpus=2",
        "--node-ip-address=127.0.0.1", "--min-worker-port=23000", "--max-worker-port=23999",
        "--disable-usage-stats", *agent_ports(),
    ]  # fmt: skip
    try:
        # As cluster.yaml does: `ray job stop` gives the driver time to drain before SIGKILL.
        nodes_env = {**env(), CLUSTER_TAG: tag}
        head_env = {**nodes_env, "RAY_JOB_STOP_WAIT_TIME_S": "60"}
        subprocess.run(head, env=head_env, check=True, capture_output=True, timeout=120)
        subprocess.run(node, env=nodes_env, check=True, capture_output=True, timeout=120)
        yield f"http://127.0.0.1:{dashboard}", temps
    finally:
        stop_nodes(tag)


def launch(address: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["scripts/launch", *args],
        cwd=ROOT,
        env={**env(), "RAY_ADDRESS": address, **extra},
        capture_output=True,
        text=True,
        timeout=600,
    )


def wait_for(what: str, check: object, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def stored(run_dir: Path) -> int:
    calls = run_dir / "cache" / "calls"
    return pads.dataset(calls, format="parquet").count_rows() if calls.exists() else 0


def marker_hits(roots: list[Path]) -> list[str]:
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    if MARKER.encode() in path.read_bytes():
                        hits.append(str(path))
                except OSError:
                    continue
    return hits


def test_demo_through_ray_jobs_stops_resumes_and_leaves_no_key_on_disk(
    cluster: tuple[str, list[str]], tmp_path: Path
) -> None:
    address, temps = cluster
    run_dir = tmp_path / "run"
    args = [
        "submit", "conf/demo.yaml", f"run_dir={run_dir}", f"emulator.port={free_port()}",
        "stages.pairs.n_pairs=16", "pipeline=[pairs,scenarios,responses]",
        "stages.responses.scope=all",  # answers every scenario: no diversity stage in this short pipeline
        "vars.openai_key_env=OPENAI_API_KEY", "emulator.latency_fixed_s=0.3",
    ]  # fmt: skip
    first = launch(address, *args, SPECSTRESS_DETACH="1", SPECSTRESS_JOB_ID="demo-1")
    for _ in range(60):  # the head's job agent comes up a few seconds after `ray start` returns
        if "No available agent" not in first.stderr:
            break
        time.sleep(1)
        first = launch(address, *args, SPECSTRESS_DETACH="1", SPECSTRESS_JOB_ID="demo-1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "OPENAI_API_KEY set here: not sent with the job" in first.stderr
    jobs = JobSubmissionClient(address)
    manifest = run_dir / "manifest.json"

    def responses_running() -> bool:
        if jobs.get_job_status("demo-1") in {JobStatus.FAILED, JobStatus.SUCCEEDED}:
            raise AssertionError(jobs.get_job_logs("demo-1")[-3000:])
        if not manifest.exists():
            return False
        state = json.loads(manifest.read_text())["stages"].get("responses", {}).get("state")
        return state == "running" and stored(run_dir) > 0

    wait_for("the responses stage to be under way", responses_running)
    assert launch(address, "stop", "demo-1").returncode == 0
    wait_for("the job to stop", lambda: jobs.get_job_status("demo-1").is_terminal(), 120)
    stopped = json.loads(manifest.read_text())
    assert stopped["state"] == "interrupted" and stopped["resumable"], jobs.get_job_logs("demo-1")[-3000:]
    assert stopped["stages"]["responses"]["state"] == "interrupted"
    at_stop = stored(run_dir)

    second = launch(address, *args, SPECSTRESS_JOB_ID="demo-2")  # follows the logs to the end
    assert jobs.get_job_status("demo-2") == JobStatus.SUCCEEDED, second.stdout[-3000:]
    done = json.loads(manifest.read_text())
    assert done["state"] == "done"
    responses = done["calls"]["responses"]
    assert responses["failed"] == 0 and responses["failures"] == {}  # no auth failure on the cluster
    # The resumed session made exactly the calls the store lacked.
    assert responses["made"] == responses["requests"] - (
        at_stop - sum(t["requests"] for name, t in done["calls"].items() if name != "responses")
    ), responses
    assert stored(run_dir) == sum(t["requests"] for t in done["calls"].values())
    assert marker_hits([Path(t) for t in temps] + [run_dir]) == []
