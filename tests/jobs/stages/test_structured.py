"""Structured outputs in the stages: the schemas sent, the fallback to plain prompting (no Ray).

`call_structured` runs here against a stand-in engine that answers each request from its spec:
a model that refuses schemas fails any request carrying one with a client error, as a
provider without structured outputs does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import polars as pl
import pytest

from actors.errors import CallsFailed
from actors.types import spec_from_json
from jobs.engine.rundir import RunDir
from jobs.stages.base import StageContext
from jobs.stages.compliance import JUDGEMENT_JSON
from jobs.stages.refusals import CATEGORIES, REFUSAL_JSON
from jobs.stages.repair import SCHEMA_COLUMN, keyed_object
from jobs.stages.scores import SCORE_JSON
from jobs.stages.settings.structured import StructuredConf
from jobs.stages.structured import (
    Fallbacks,
    call_structured,
    keyed_schema,
    labelled_schema,
    with_schema,
)

GOOD = json.dumps({"a": True})
REFUSAL = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."


@dataclass
class Engine:
    """Answers every request at once: `refusing` models fail those with a schema (client error);
    models in `refusing_items` only for those item ids."""

    refusing: set[str] = field(default_factory=set)
    refusing_items: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    """Models whose every call fails for another cause (a wrong key)."""
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    sent: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(table, model, item, with schema) per request run."""

    def write_requests(self, stage: str, chunks: Iterable[pl.DataFrame]) -> str:
        table = pl.concat(list(chunks))
        self.tables[stage] = table.with_columns(key=pl.col("spec").hash().cast(pl.String))
        return stage

    def run(self, stage: str, path: str) -> Any:
        table = self.tables[path]
        for model, item, spec in table.select("model", "item_id", "spec").iter_rows():
            self.sent.append((stage, model, item, spec_from_json(spec).response_schema is not None))
        if (self.results(path, ["status"]).collect()["status"] != "ok").all():
            raise CallsFailed(f"stage '{stage}': all {table.height} calls failed")  # as the engine does
        return SimpleNamespace(as_dict=lambda: {"requests": table.height})

    def results(self, path: str, columns: list[str]) -> pl.LazyFrame:
        rows = []
        for r in self.tables[path].iter_rows(named=True):
            schema = spec_from_json(r["spec"]).response_schema is not None
            refused = schema and (r["model"] in self.refusing or r["item_id"] in self.refusing_items)
            answer = {"status": "failed", "error_kind": "client", "error": REFUSAL, "text": None}
            if r["model"] in self.broken:
                answer = {
                    "status": "failed",
                    "error_kind": "auth",
                    "error": "invalid x-api-key",
                    "text": None,
                }
            elif not refused:
                answer = {"status": "ok", "error_kind": None, "error": None, "text": GOOD}
            rows.append({**r, **answer, "finish_reason": "stop", "cost_usd": 0.0})
        return pl.DataFrame(rows).select("item_id", "model", "key", *columns).lazy()


def context(engine: Engine, tmp_path: Path) -> StageContext[Any]:
    return StageContext(
        settings=StructuredConf("auto"),
        models=MappingProxyType({}),
        run=RunDir.open(str(tmp_path)),
        engine=engine,
    )


def items(models: dict[str, int], start: int = 0) -> pl.DataFrame:
    rows = [
        {"item_id": f"{m}-{i}", "model": m, "prompt": f"question {i}"}
        for m, n in models.items()
        for i in range(start, start + n)
    ]
    return with_schema(
        pl.DataFrame(rows), StructuredConf("auto"), "topics", keyed_schema(["a"], {"type": "boolean"})
    )


def parse(_row: dict[str, Any], text: str) -> dict[str, Any]:
    return keyed_object(text, ["a"], "topic")


def ask(ctx: StageContext[Any], stem: str, frame: pl.DataFrame, fallbacks: Fallbacks) -> dict[str, Any]:
    outcomes, _ = call_structured(
        ctx, stem, frame, fallbacks, parse=parse, params=lambda m: {}, max_repairs=1
    )
    return outcomes


def test_a_model_that_refuses_the_schema_costs_one_probe_then_goes_plain(tmp_path: Path) -> None:
    engine = Engine(refusing={"old"})
    ctx, fallbacks = context(engine, tmp_path), Fallbacks()
    outcomes = ask(ctx, "topics_c0", items({"old": 5, "new": 5}), fallbacks)
    outcomes |= ask(ctx, "topics_c1", items({"old": 3, "new": 3}, start=5), fallbacks)  # a second chunk
    assert {o.status for o in outcomes.values()} == {"ok"} and len(outcomes) == 16
    assert list(fallbacks.summary()["structured_fallback"]) == ["old"]
    with_schema_sent = [(table, m) for table, m, _, schema in engine.sent if schema]
    assert [m for _, m in with_schema_sent if m == "old"] == ["old"]  # only its probe
    assert ("topics_c1_probe", "old") not in with_schema_sent  # probed once per stage
    assert all(schema for _, m, _, schema in engine.sent if m == "new")


def test_a_lone_model_whose_probe_is_refused_goes_plain_rather_than_failing_the_stage(tmp_path: Path) -> None:
    """Every call of the probe failed, which stops a stage elsewhere; here it is the answer sought."""
    engine = Engine(refusing={"local"})
    ctx, fallbacks = context(engine, tmp_path), Fallbacks()
    outcomes = ask(ctx, "rubrics_c0", items({"local": 3}), fallbacks)
    assert {o.status for o in outcomes.values()} == {"ok"} and list(fallbacks.reasons) == ["local"]


def test_a_probe_that_fails_for_another_cause_still_stops_the_stage(tmp_path: Path) -> None:
    ctx, fallbacks = context(Engine(broken={"nokey"}), tmp_path), Fallbacks()
    with pytest.raises(CallsFailed, match="all 1 calls failed"):
        ask(ctx, "rubrics_c0", items({"nokey": 3}), fallbacks)
    assert fallbacks.reasons == {}


def test_the_probe_is_the_first_calls_own_request(tmp_path: Path) -> None:
    engine = Engine()
    ask(context(engine, tmp_path), "rubrics_c0", items({"new": 4}), Fallbacks())
    probe, first = engine.tables["rubrics_c0_probe"], engine.tables["rubrics_c0_r0"]
    assert probe.height == 1 and probe["key"][0] in first["key"].to_list()  # stored once, reused by the round


def test_an_item_refused_mid_round_is_asked_once_more_without_the_schema(tmp_path: Path) -> None:
    engine = Engine(refusing_items={"new-2"})
    fallbacks = Fallbacks()
    outcomes = ask(context(engine, tmp_path), "topics_c0", items({"new": 4}), fallbacks)
    assert outcomes["new-2"].status == "ok"
    assert [(t, schema) for t, _, item, schema in engine.sent if item == "new-2"] == [
        ("topics_c0_r0", True),
        ("topics_c0_plain_r0", False),
    ]
    assert "new" in fallbacks.reasons


def test_off_sends_no_schema() -> None:
    frame = pl.DataFrame({"item_id": ["x"], "model": ["m"], "prompt": ["p"]})
    assert (
        SCHEMA_COLUMN not in with_schema(frame, StructuredConf("off"), "topics", {"type": "object"}).columns
    )


def test_per_item_schemas_key_each_call_by_its_own_labels() -> None:
    frame = pl.DataFrame({"labels": [json.dumps(["A", "B"]), json.dumps(["A", "B", "C"])]})
    cells = frame.select(labelled_schema("scores", SCORE_JSON))["labels"].to_list()
    shapes = [json.loads(c)["schema"] for c in cells]
    assert [s["required"] for s in shapes] == [["A", "B"], ["A", "B", "C"]]
    assert shapes[0]["properties"]["A"]["properties"]["value1_position"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 6,
    }


@pytest.mark.parametrize(
    ("schema", "field", "values"),
    [
        (REFUSAL_JSON, "category", list(CATEGORIES)),
        (JUDGEMENT_JSON, "decision", ["compliant", "non-compliant", "ambiguous"]),
    ],
)
def test_judges_schemas_enumerate_their_answers(
    schema: dict[str, Any], field: str, values: list[str]
) -> None:
    assert schema["properties"][field] == {"type": "string", "enum": values}
    assert list(schema["properties"]) == ["reasoning", field]  # reasons before the verdict
