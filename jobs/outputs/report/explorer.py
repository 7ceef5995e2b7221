"""The explorer's data: the top selected scenarios with every model's response, positions, rubric and verdicts.

Only scenarios picked by the weighted k-center selection are included, at most
`max_scenarios`, highest disagreement first, and each response is cut at `max_chars`, so
the page's weight is bounded by those two settings and the number of models, never by
the run's rows. Every string here is model output or derived from it: the page renders it
with `textContent` only.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import polars as pl
import polars.selectors as cs

from jobs.outputs.report.sections_judges import scenario_topics
from jobs.outputs.report.sources import RunSources


def _cut(text: str | None, max_chars: int) -> tuple[str | None, int | None]:
    if text is None or len(text) <= max_chars:
        return text, None
    return text[:max_chars], len(text)


def _rows(
    src: RunSources, table: str, ids: list[str], columns: list[str], sample: int | None = None
) -> list[dict[str, Any]]:
    lf = src.scan(table)
    if lf is None:
        return []
    lf = lf.filter(pl.col("scenario_id").is_in(ids))
    if sample is not None:
        lf = lf.filter(pl.col("sample") == sample)
    # NaN is not JSON: the page gets null instead.
    return lf.select(columns).with_columns(cs.float().fill_nan(None)).collect().to_dicts()


def top_selected(src: RunSources, max_scenarios: int) -> pl.DataFrame:
    """Selected scenarios with their picks per subset, highest D first, at most `max_scenarios`."""
    lf = src.scan("selections")
    if lf is None:
        return pl.DataFrame(
            schema={
                "scenario_id": pl.String,
                "d_max": pl.Float64,
                "picks": pl.List(pl.Struct({"subset": pl.String, "rank": pl.Int64, "d": pl.Float64})),
            }
        )
    return (
        lf.group_by("scenario_id")
        .agg(pl.col("d").fill_nan(None).max().alias("d_max"), pl.struct("subset", "rank", "d").alias("picks"))
        .sort(["d_max", "scenario_id"], descending=[True, False])
        .head(max_scenarios)
        .collect()
    )


def _rubrics(src: RunSources, pair_ids: list[str]) -> dict[str, dict[str, Any]]:
    lf = src.scan("rubrics")
    if lf is None:
        return {}
    rows = (
        lf.filter(pl.col("pair_id").is_in(pair_ids) & (pl.col("status") == "ok"))
        .select("pair_id", "value1_spectrum", "value2_spectrum")
        .collect()
    )
    return {r["pair_id"]: r for r in rows.to_dicts()}


def _per_response(
    src: RunSources, ids: list[str], sample: int, max_chars: int
) -> dict[tuple[str, str], dict[str, Any]]:
    """(scenario, model) -> the response (cut), its positions, outlier flag and every judge's verdict."""
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"refusals": [], "compliance": [], "values": []}
    )
    for r in _rows(
        src, "responses", ids, ["scenario_id", "model", "text", "status", "error", "finish_reason"], sample
    ):
        text, full = _cut(r["text"], max_chars)
        per[(r["scenario_id"], r["model"])].update(
            text=text,
            full_length=full,
            status=r["status"],
            error=r["error"],
            finish_reason=r["finish_reason"],
        )
    for r in _rows(src, "scores", ids, ["scenario_id", "model", "value_slot", "position", "status"], sample):
        per[(r["scenario_id"], r["model"])][f"position{r['value_slot']}"] = r["position"]
    for r in _rows(src, "outliers", ids, ["scenario_id", "model"]):
        per[(r["scenario_id"], r["model"])]["outlier"] = True
    for r in _rows(src, "refusals", ids, ["scenario_id", "model", "judge", "category", "status"], sample):
        per[(r["scenario_id"], r["model"])]["refusals"].append(
            {"judge": r["judge"], "category": r["category"], "status": r["status"]}
        )
    for r in _rows(
        src, "compliance", ids, ["scenario_id", "model", "judge", "decision", "reasoning", "status"], sample
    ):
        reasoning, _ = _cut(r["reasoning"], max_chars // 4)
        per[(r["scenario_id"], r["model"])]["compliance"].append(
            {"judge": r["judge"], "decision": r["decision"], "reasoning": reasoning, "status": r["status"]}
        )
    for r in _rows(src, "compliance_verdicts", ids, ["scenario_id", "model", "majority"], sample):
        per[(r["scenario_id"], r["model"])]["majority"] = r["majority"]
    for r in _rows(src, "value_expressions", ids, ["scenario_id", "model", "phrase", "category"]):
        per[(r["scenario_id"], r["model"])]["values"].append(
            {"phrase": r["phrase"], "category": r["category"]}
        )
    return per


def explorer_data(src: RunSources, *, max_scenarios: int, max_chars: int) -> dict[str, Any]:
    """The explorer's JSON payload, plus which of its inputs are absent (in words)."""
    missing = {
        name: src.missing(stage, name)
        for stage, name in (
            ("disagreement", "selections"),
            ("scenarios", "scenarios"),
            ("responses", "responses"),
            ("scores", "scores"),
            ("rubrics", "rubrics"),
            ("topics", "topics"),
            ("refusals", "refusals"),
            ("compliance", "compliance"),
            ("values", "value_expressions"),
        )
        if not src.has(name)
    }
    top = top_selected(src, max_scenarios)
    ids = top["scenario_id"].to_list()
    sample = int(src.stage_setting("disagreement", "sample", 0))
    scen = {
        r["scenario_id"]: r
        for r in _rows(
            src,
            "scenarios",
            ids,
            [
                "scenario_id",
                "pair_id",
                "value1",
                "value2",
                "value1_l2",
                "value2_l2",
                "nudge_direction",
                "query_generator",
                "query",
            ],
        )
    }
    rubrics = _rubrics(src, sorted({r["pair_id"] for r in scen.values()}))
    per_response = _per_response(src, ids, sample, max_chars)
    topics: dict[str, list[str]] = defaultdict(list)
    tf = scenario_topics(src)
    if tf is not None:
        for sid, topic in tf.filter(pl.col("scenario_id").is_in(ids)).sort("topic").iter_rows():
            topics[sid].append(topic)
    disagreement: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(src, "disagreement", ids, ["scenario_id", "subset", "d", "bin"]):
        disagreement[r["scenario_id"]].append({"subset": r["subset"], "d": r["d"], "bin": r["bin"]})

    models = sorted({m for _, m in per_response})
    scenarios = []
    for row in top.iter_rows(named=True):
        sid = row["scenario_id"]
        s = scen.get(sid, {})
        rubric = rubrics.get(s.get("pair_id"), {})
        responses = [{"model": m, **per_response[(sid, m)]} for m in models if (sid, m) in per_response]
        categories = sorted(
            {c for c in (s.get("value1_l2"), s.get("value2_l2")) if c}
            | {v["category"] for r in responses for v in r["values"] if v["category"]}
        )
        scenarios.append(
            {
                "id": sid,
                "query": s.get("query"),
                "value1": s.get("value1"),
                "value2": s.get("value2"),
                "nudge": s.get("nudge_direction"),
                "generator": s.get("query_generator"),
                "d_max": row["d_max"],
                "picks": sorted(row["picks"], key=lambda p: p["subset"]),
                "disagreement": sorted(disagreement[sid], key=lambda d: d["subset"]),
                "topics": topics[sid],
                "categories": categories,
                "rubric": {"value1": rubric.get("value1_spectrum"), "value2": rubric.get("value2_spectrum")},
                "responses": responses,
            }
        )
    return {
        "models": models,
        "subsets": sorted({p["subset"] for s in scenarios for p in s["picks"]}),
        "topics": sorted({t for s in scenarios for t in s["topics"]}),
        "categories": sorted({c for s in scenarios for c in s["categories"]}),
        "scenarios": scenarios,
        "max_scenarios": max_scenarios,
        "max_chars": max_chars,
        "missing": missing,
    }
