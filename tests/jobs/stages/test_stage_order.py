"""The pipeline's order is checked at load against the tables each stage reads under its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from jobs.config import load_config
from jobs.context import stage_context
from jobs.engine.rundir import RunDir
from jobs.stages.answer_scope import scope_filter
from jobs.stages.registry import STAGES
from tests.jobs.stages.test_model_sweep import write_scenarios

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
OLD_ORDER = "pipeline=[pairs,scenarios,responses,rubrics,scores,embeddings,diversity,disagreement]"
"""The order before selection came first: responses before the diversity table exists."""


def test_answering_the_diverse_scenarios_before_diversity_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(DEMO, [OLD_ORDER])
    assert str(refused.value) == (
        "config key 'pipeline': stage 'responses' reads table 'diversity' (stages.responses.scope makes it "
        "read it), which stage 'diversity' writes after it: list 'diversity' before 'responses', or change "
        "stages.responses.scope"
    )


def test_with_scope_all_the_old_order_still_works() -> None:
    conf = load_config(DEMO, [OLD_ORDER, "stages.responses.scope=all"])
    assert (conf.stages.rubrics.scope, conf.stages.scores.scope) == ("all", "all")  # they follow responses


@pytest.mark.parametrize(
    ("overrides", "reader", "table", "why"),
    [
        (["pipeline=[pairs,scenarios,scores,responses]"], "scores", "responses", ""),
        (["pipeline=[embeddings,disagreement,diversity]", "stages.disagreement.diverse_only=true"],
         "disagreement", "diversity", "stages.disagreement.diverse_only"),
        (["pipeline=[rubrics,diversity]", "stages.responses.scope=all", "stages.rubrics.scope=diverse"],
         "rubrics", "diversity", "stages.rubrics.scope"),
    ],
)  # fmt: skip
def test_a_table_written_later_in_the_pipeline_is_refused(
    overrides: list[str], reader: str, table: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=rf"stage '{reader}' reads table '{table}'") as refused:
        load_config(DEMO, overrides)
    assert why in str(refused.value)


def test_a_table_of_an_earlier_session_is_left_to_the_stage(tmp_path: Path) -> None:
    """A pipeline without the writer may run on tables an earlier session wrote; absent, the stage
    says which setting needs which table."""
    run_dir = tmp_path / "run"
    write_scenarios(run_dir)
    conf = load_config(DEMO, [f"run_dir={run_dir}", "pipeline=[responses]"])
    ctx = stage_context(conf, "responses", RunDir.open(str(run_dir)))
    assert STAGES["responses"].plan(ctx) == {}  # nothing to plan until the diversity table exists
    with pytest.raises(
        ConfigError, match=r"'stages\.responses\.scope': 'diverse' .* run embeddings and diversity"
    ):
        scope_filter(ctx.run, "responses", "diverse")
    assert scope_filter(ctx.run, "responses", "all") is None
