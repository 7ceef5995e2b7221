"""Select before spending: Gemini embeddings -> diversity -> responses, rubrics and scores of the diverse
scenarios; then `scope: all` on the same store pays for the removed scenarios' calls and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from actors.emulator.server import EmulatorServer
from jobs.driver import run_pipeline
from jobs.engine.rundir import RunDir
from jobs.estimate.estimate import estimate
from jobs.stages.answer_scope import summary_lines
from jobs.stages.tables import read_table
from tests.conftest import emulator_config
from tests.jobs.stages.test_model_sweep import PAIRS, make_conf, write_scenarios

pytestmark = pytest.mark.usefixtures("ray_local")

MODELS = ["claude_sonnet_4", "gpt_4_1", "gemini_2_5_pro"]
SETTINGS = (
    "pipeline=[embeddings,diversity,responses,rubrics,scores]",
    f"stages.responses.models=[{','.join(MODELS)}]",
    "stages.embeddings.backend=api",
    "stages.embeddings.model=gemini_embedding_001",
    # The emulator's word-sum vectors put the framings of one pair about 1.0-1.3 apart: a δ this
    # large removes most scenarios, and every framing of at least one pair.
    "stages.diversity.delta=1.3",
)
TABLES = ("diversity", "responses", "rubrics", "scores")


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The stages with scope diverse, the estimate of switching to all, then all on the same store."""
    run_dir = tmp_path_factory.mktemp("scope") / "run"
    n = write_scenarios(run_dir)
    run = RunDir.open(str(run_dir))
    with EmulatorServer(emulator_config()) as emu:

        def conf(scope: str) -> Any:
            return make_conf(emu.url, run_dir, *SETTINGS, f"stages.responses.scope={scope}")

        diverse = run_pipeline(conf("diverse"))
        before = {name: read_table(run, name) for name in TABLES}
        to_all = estimate(conf("all")).as_dict()
        everything = run_pipeline(conf("all"))
        after = {name: read_table(run, name) for name in TABLES}
        stats = emu.stats()
    kept = set(before["diversity"].filter(pl.col("diverse"))["scenario_id"])
    yield {
        "n": n,
        "kept": kept,
        "diverse": diverse,
        "before": before,
        "to_all": to_all,
        "all": everything,
        "after": after,
        "stats": stats,
    }


def test_the_paper_embedding_has_3072_dimensions(scoped: dict[str, Any]) -> None:
    s = scoped["diverse"]["embeddings"]
    assert (s["model_key"], s["model"], s["dim"]) == ("gemini_embedding_001", "gemini-embedding-001", 3072)


def test_diverse_scope_answers_and_scores_only_the_diverse_scenarios(scoped: dict[str, Any]) -> None:
    t, kept, n = scoped["before"], scoped["kept"], scoped["n"]
    removed = n - len(kept)
    assert 0 < len(kept) < n
    assert set(t["responses"]["scenario_id"]) == set(t["scores"]["scenario_id"]) == kept
    assert t["responses"].height == len(kept) * len(MODELS)
    kept_pairs = {sid.split("-")[0] for sid in kept}
    assert set(t["rubrics"]["pair_id"]) == kept_pairs and len(kept_pairs) < len(PAIRS)
    # The summaries say what selection spared, and `specstress run` prints it.
    responses, scores = (scoped["diverse"][s]["selection"] for s in ("responses", "scores"))
    assert responses["removed"] == scores["removed"] == removed
    assert (responses["calls_not_made"], scores["calls_not_made"]) == (removed * len(MODELS), removed)
    assert responses["saved_usd"] > 0 and scores["saved_usd"] > 0
    [line] = summary_lines(scoped["diverse"])
    assert f"{removed} of {n} scenarios removed" in line
    assert f"{removed * len(MODELS)} responses and {removed} scoring calls not made" in line


def test_switching_to_all_pays_only_for_the_removed_scenarios(scoped: dict[str, Any]) -> None:
    n, kept = scoped["n"], scoped["kept"]
    removed = n - len(kept)
    lost_pairs = len(PAIRS) - scoped["before"]["rubrics"].height
    made = {name: s["calls"].get("made", 0) for name, s in scoped["all"].items() if "calls" in s}
    assert made == {
        "embeddings": 0,
        "responses": removed * len(MODELS),
        "rubrics": lost_pairs,
        "scores": removed,
    }
    # No request was answered twice over both runs: the kept scenarios' calls came from the store.
    assert set(scoped["stats"]["ok_by_hash"].values()) == {1}
    after = scoped["after"]
    assert after["responses"].height == n * len(MODELS) and after["scores"]["scenario_id"].n_unique() == n
    assert after["rubrics"].height == len(PAIRS)
    # The estimate made before the switch counted the responses it then made.
    to_all = scoped["to_all"]
    assert sum(ln["to_make"] for ln in to_all["lines"] if ln["stage"] == "responses") == removed * len(MODELS)
    assert to_all["selection"]["scope"] == "all" and summary_lines(scoped["all"]) == []
