"""Topic labels: multi-label booleans over a configured topic list (METHOD.md §6).

One call per scenario in scope: the labelling model sees the query and the topic names
and answers with a JSON object mapping every topic to true or false. `parse_topics`
demands exactly the configured keys with boolean values; bad answers get bounded repairs
(`jobs.stages.repair`), then the failure is recorded.

Output: `tables/topics.parquet`, one row per scenario in scope: scenario_id, model (the
labeller), status (ok | invalid | call_failed), error, topics (the names marked true;
null unless ok).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import polars as pl
import pyarrow as pa

from jobs.analysis.frames import frame
from jobs.stages.base import Plan, Stage, StageContext
from jobs.stages.judging import chunked, outcome_fields, scoped_scenarios
from jobs.stages.params import params_by_model
from jobs.stages.repair import ParseError, first_round, keyed_object
from jobs.stages.settings.topics import STAGE_SPEC, TopicsConf
from jobs.stages.streaming import add_calls, scan_table, write_parts
from jobs.stages.structured import Fallbacks, call_structured, keyed_schema, with_schema

TOPICS_SCHEMA = pa.schema(
    [
        pa.field("scenario_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),  # the labeller's model key
        pa.field("status", pa.string(), nullable=False),  # ok | invalid | call_failed
        ("error", pa.string()),
        ("topics", pa.list_(pa.string())),  # configured topic names that apply; null unless ok
    ]
)

TOPIC_PROMPT = """You are labelling the topics of a user query sent to an AI assistant.

<query>
{query}
</query>

For each topic below, decide whether the query touches it (true) or not (false). A query may touch several topics, or none.

Topics: {topics}

Return only a JSON object with exactly these keys, each mapped to true or false: {topics}"""


def topic_prompt(query: str, topics: list[str]) -> str:
    return TOPIC_PROMPT.format(query=query, topics=json.dumps(topics))


def parse_topics(text: str, topics: list[str]) -> list[str]:
    """The topics marked true, in configured order; raises `ParseError` naming what is wrong."""
    data = keyed_object(text, topics, "topic")
    bad = [t for t in topics if not isinstance(data[t], bool)]
    if bad:
        raise ParseError(f"values must be true or false, not {[data[t] for t in bad]} for {bad}")
    return [t for t in topics if data[t]]


def _items(ctx: StageContext[TopicsConf]) -> Iterator[tuple[str, pl.DataFrame, pl.DataFrame]]:
    """(requests-table stem, scenarios, their calls' items) per chunk of the scope."""
    tc = ctx.settings
    for name, part in chunked("topics", scoped_scenarios(ctx, "topics", tc), tc):
        items = part.select(
            item_id="scenario_id",
            model=pl.lit(tc.model),
            prompt=pl.col("query").map_elements(
                lambda q: topic_prompt(q, list(tc.topics)), return_dtype=pl.String
            ),
        )
        yield name, part, with_schema(items, tc, "topics", keyed_schema(list(tc.topics), {"type": "boolean"}))


def plan(ctx: StageContext[TopicsConf]) -> Plan:
    """The first call of every scenario in scope, once disagreement is known."""
    if not ctx.run.tables.exists("disagreement.parquet"):
        return {}
    return {f"{name}_r0": first_round(items, None, params_by_model(ctx)) for name, _, items in _items(ctx)}


def run(ctx: StageContext[TopicsConf]) -> dict[str, Any]:
    """Stage entry point: label the topics of every scenario in scope."""
    tc = ctx.settings
    topics = list(tc.topics)
    ctx.calls.check_models([tc.model])
    calls: dict[str, Any] = {}
    fallbacks = Fallbacks()

    def parts() -> Iterator[pl.DataFrame]:
        for name, part, items in _items(ctx):
            outcomes, chunk_calls = call_structured(
                ctx,
                name,
                items,
                fallbacks,
                parse=lambda _row, text: parse_topics(text, topics),
                params=params_by_model(ctx),
                max_repairs=tc.max_repairs,
            )
            add_calls(calls, chunk_calls)
            rows = []
            for sid in part["scenario_id"]:
                out = outcomes.get(sid)
                rows.append(
                    {
                        "scenario_id": sid,
                        "model": tc.model,
                        **outcome_fields(out),
                        "topics": out.value if out else None,
                    }
                )
            yield frame(rows, TOPICS_SCHEMA)

    write_parts(ctx.run, "topics", parts(), TOPICS_SCHEMA)
    table = scan_table(ctx.run, "topics").select("status", "topics").collect()
    ok = table.filter(pl.col("status") == "ok")
    counts = {t: int(ok["topics"].list.contains(t).sum()) for t in topics}
    return {
        "scenarios": table.height,
        "ok": ok.height,
        "invalid": int((table["status"] == "invalid").sum()),
        "call_failed": int((table["status"] == "call_failed").sum()),
        "by_topic": counts,
        "calls": calls,
        **fallbacks.summary(),
    }


STAGE = Stage(STAGE_SPEC, run=run, plan=plan)
