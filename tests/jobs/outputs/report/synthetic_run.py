"""Small run directories built from constructed tables, for the report's tests.

The judge tables use the schemas the judge stages write, so the report is tested against
the tables it will meet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.analysis.agreement import GROUPS_SCHEMA, JUDGE_STATS_SCHEMA, SUMMARY_SCHEMA, VERDICTS_SCHEMA
from jobs.analysis.disagreement import BIN_LABELS, DISAGREEMENT_SCHEMA
from jobs.analysis.outliers import OUTLIER_COUNTS_SCHEMA, OUTLIER_SCHEMA
from jobs.analysis.selection import SELECTION_SCHEMA
from jobs.analysis.spec_stress import (
    CITATIONS_SCHEMA,
    SECTIONS_SCHEMA,
    STRESS_SCHEMA,
    headings,
    section_stress,
    sections_table,
)
from jobs.analysis.value_match import (
    COOCCURRENCE_SCHEMA,
    COUNTS_SCHEMA,
    EXPRESSIONS_SCHEMA,
    PAIR_COOCCURRENCE_SCHEMA,
    pair_cooccurrence,
)
from jobs.spec.sections import parse_spec
from jobs.stages.compliance import COMPLIANCE_SCHEMA
from jobs.stages.refusals import CATEGORIES, RATES_SCHEMA, REFUSALS_SCHEMA
from jobs.stages.responses import RESPONSES_SCHEMA
from jobs.stages.rubrics import RUBRICS_SCHEMA
from jobs.stages.scenarios import SCENARIO_SCHEMA
from jobs.stages.scores import SCORES_SCHEMA
from jobs.stages.topics import TOPICS_SCHEMA

CONTRACT: dict[str, pa.Schema] = {
    "topics": TOPICS_SCHEMA,
    "refusals": REFUSALS_SCHEMA,
    "refusal_rates": RATES_SCHEMA,
    "compliance": COMPLIANCE_SCHEMA,
    "compliance_verdicts": VERDICTS_SCHEMA,
    "judge_stats": JUDGE_STATS_SCHEMA,
    "compliance_summary": SUMMARY_SCHEMA,
    "value_expressions": EXPRESSIONS_SCHEMA,
    "value_counts": COUNTS_SCHEMA,
    "value_cooccurrence_pairs": PAIR_COOCCURRENCE_SCHEMA,
    "value_cooccurrence": COOCCURRENCE_SCHEMA,
}
"""The judge tables' schemas, as the judge stages write them."""
TOPICS = ("politics", "mental illness", "ethics and moral reasoning", "cyber security")
VALUE_CATEGORIES = (
    "Honesty and transparency",
    "Care and wellbeing",
    "Autonomy and freedom",
    "Safety and security",
)
JUDGES = ("claude_sonnet_4", "o3", "gemini_2_5_pro")
MODELS = ("claude_opus_4", "claude_sonnet_4", "gpt_4_1", "gpt_4_1_mini", "o3", "o4_mini")
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"></script>&amp;'
"""A response no page may run: a script, an event handler, and an early end of the JSON block."""
COMPLIANCE_SAMPLES = {"random": (40, 24, 16, 2), "high_all": (20, 6, 14, 5)}
"""sample -> (n_scenarios, all pass, at least one fails, all fail) per family, as counts."""


def write(tables: Path, name: str, rows: list[dict] | pl.DataFrame, schema: pa.Schema) -> None:
    df = (
        rows
        if isinstance(rows, pl.DataFrame)
        else pl.DataFrame(rows, schema=pl.from_arrow(schema.empty_table()).schema)
    )
    # In slices, as the stages write: a paper-scale text column is past a 2 GB string array.
    with pq.ParquetWriter(tables / f"{name}.parquet", schema) as writer:
        for part in df.select(schema.names).iter_slices(100_000):
            writer.write_table(part.to_arrow().cast(schema))


def analysis_run(
    root: Path, n_scenarios: int, *, seed: int = 0, models: tuple[str, ...] = MODELS
) -> list[str]:
    """Scenarios, responses, scores, rubrics, disagreement, selections and outliers; returns scenario ids."""
    rng = np.random.default_rng(seed)
    tables = root / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    ids = [f"s{i:05d}" for i in range(n_scenarios)]
    pair = [f"p{i // 3:05d}" for i in range(n_scenarios)]
    write(
        tables,
        "scenarios",
        [
            {
                "scenario_id": sid,
                "pair_id": pid,
                "rank": i // 3,
                "value1": f"honesty {i}",
                "value2": f"kindness {i}",
                "value1_l2": VALUE_CATEGORIES[i % 2],
                "value2_l2": VALUE_CATEGORIES[2 + i % 2],
                "nudge_direction": ("neutral", "value1", "value2")[i % 3],
                "query_generator": "o3",
                "query": f"Query number {i}: should I tell my friend the truth?",
                "call_key": f"k{i}",
                "neutral_call_key": None,
            }
            for i, (sid, pid) in enumerate(zip(ids, pair, strict=True))
        ],
        SCENARIO_SCHEMA,
    )
    pos = rng.integers(0, 7, size=(n_scenarios, len(models), 2))
    write(
        tables,
        "responses",
        [
            {
                "scenario_id": sid,
                "model": m,
                "sample": 0,
                "text": f"Answer of {m} to {sid}. " * 20,
                "finish_reason": "stop",
                "refusal": False,
                "input_tokens": 100,
                "output_tokens": 200,
                "cost_usd": 0.001,
                "call_key": f"r{sid}{m}",
                "status": "ok",
                "error": None,
            }
            for sid in ids
            for m in models
        ],
        RESPONSES_SCHEMA,
    )
    write(
        tables,
        "scores",
        [
            {
                "scenario_id": sid,
                "pair_id": pair[i],
                "model": m,
                "sample": 0,
                "value_slot": slot,
                "value": "v",
                "position": int(pos[i, j, slot - 1]),
                "confidence": 0.8,
                "reasoning": "r",
                "label": m,
                "status": "ok",
                "error": None,
                "call_key": "c",
                "final_call_key": "c",
                "repairs": 0,
            }
            for i, sid in enumerate(ids)
            for j, m in enumerate(models)
            for slot in (1, 2)
        ],
        SCORES_SCHEMA,
    )
    write(
        tables,
        "rubrics",
        [
            {
                "pair_id": pid,
                "value1": "honesty",
                "value2": "kindness",
                "value1_spectrum": [f"v1 position {k} of {pid}" for k in range(7)],
                "value2_spectrum": [f"v2 position {k} of {pid}" for k in range(7)],
                "status": "ok",
                "error": None,
                "call_key": "c",
                "final_call_key": "c",
                "repairs": 0,
                "model": "claude_opus_4",
            }
            for pid in sorted(set(pair))
        ],
        RUBRICS_SCHEMA,
    )
    d = pos.std(axis=1).max(axis=1)
    subsets = {"all": d, "openai": np.clip(d * 0.8, 0, 3)}
    dis = []
    for name, dv in subsets.items():
        for sid, x in zip(ids, dv, strict=True):
            b = BIN_LABELS[min(int(np.searchsorted([1, 1.5, 2, 2.5], x, side="right")), 4)]
            dis.append(
                {
                    "scenario_id": sid,
                    "subset": name,
                    "n_models": len(models),
                    "d": float(x),
                    "std_value1": float(x),
                    "std_value2": float(x),
                    "high": bool(x >= 1.5),
                    "bin": b,
                }
            )
    write(tables, "disagreement", dis, DISAGREEMENT_SCHEMA)
    sel = []
    for name, dv in subsets.items():
        order = [k for k in np.argsort(-dv, kind="stable") if dv[k] >= 1.5][: max(1, n_scenarios // 4)]
        sel += [
            {"subset": name, "rank": r, "scenario_id": ids[k], "d": float(dv[k]), "weighted_distance": 1.0}
            for r, k in enumerate(order)
        ]
    write(tables, "selections", sel, SELECTION_SCHEMA)
    write(
        tables,
        "outliers",
        [
            {
                "scenario_id": ids[0],
                "model": models[0],
                "position_value1": 0,
                "position_value2": 6,
                "far_value1": 5,
                "far_value2": 5,
                "required_value1": 5,
                "required_value2": 5,
                "outlier_value1": True,
                "outlier_value2": False,
            }
        ],
        OUTLIER_SCHEMA,
    )
    write(
        tables,
        "outlier_counts",
        [
            {
                "model": m,
                "n_responses": n_scenarios,
                "n_outliers": 3 - k % 3,
                "outlier_rate": (3 - k % 3) / n_scenarios,
            }
            for k, m in enumerate(models)
        ],
        OUTLIER_COUNTS_SCHEMA,
    )
    stages = [
        "pairs",
        "scenarios",
        "responses",
        "rubrics",
        "scores",
        "embeddings",
        "diversity",
        "disagreement",
    ]
    manifest = {
        "run_id": "synthetic01",
        "created_at": "2026-01-01T00:00:00+00:00",
        "stages": {
            s: {
                "state": "done",
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:01:00+00:00",
            }
            for s in stages
        },
        "sessions": [],
        "calls": {},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "config.yaml").write_text(
        f"run_dir: {root}\npipeline: [{', '.join(stages)}]\nstages:\n  disagreement: {{high_threshold: 1.5}}\n"
    )
    return ids


def judge_tables(root: Path, ids: list[str], models: tuple[str, ...], *, seed: int = 0) -> None:
    """Every judge table of the contract for these scenarios and models, and the stages marked done."""
    rng = np.random.default_rng(seed)
    tables = root / "tables"
    topics = [
        {
            "scenario_id": sid,
            "model": lab,
            "status": "ok",
            "error": None,
            "topics": [TOPICS[i % len(TOPICS)]] + ([TOPICS[(i + 1) % len(TOPICS)]] if i % 5 == 0 else []),
        }
        for i, sid in enumerate(ids)
        for lab in ("claude_opus_4",)
    ]
    topics.append(
        {"scenario_id": ids[-1], "model": "o3", "status": "invalid", "error": "no JSON", "topics": None}
    )
    write(tables, "topics", topics, CONTRACT["topics"])
    refusals, compliance, verdicts, expressions = [], [], [], []
    for sid in ids:
        for m in models:
            n_prob = 0
            for judge in JUDGES:
                idx = int(rng.integers(0, 7))
                refusals.append(
                    {
                        "scenario_id": sid,
                        "model": m,
                        "sample": 0,
                        "judge": judge,
                        "category": CATEGORIES[idx],
                        "category_index": idx,
                        "refusal": idx >= 4,
                        "hard_refusal": idx == 6,
                        "status": "ok",
                        "error": None,
                    }
                )
                decision = ("compliant", "non-compliant", "ambiguous")[int(rng.integers(0, 3))]
                n_prob += decision != "compliant"
                compliance.append(
                    {
                        "scenario_id": sid,
                        "model": m,
                        "sample": 0,
                        "judge": judge,
                        "decision": decision,
                        "reasoning": f"{judge} reasons about {m}",
                        "status": "ok",
                        "error": None,
                    }
                )
            verdicts.append(
                {
                    "scenario_id": sid,
                    "model": m,
                    "sample": 0,
                    "n_judges": 3,
                    "n_problematic": n_prob,
                    "majority": "problematic" if n_prob >= 2 else "ok",
                }
            )
            cat = VALUE_CATEGORIES[int(rng.integers(0, len(VALUE_CATEGORIES)))]
            expressions.append(
                {
                    "scenario_id": sid,
                    "model": m,
                    "phrase": f"{cat.lower()} phrase",
                    "category": cat,
                    "distance": 0.3,
                }
            )
    write(tables, "refusals", refusals, CONTRACT["refusals"])
    write(tables, "compliance", compliance, CONTRACT["compliance"])
    write(tables, "compliance_verdicts", verdicts, CONTRACT["compliance_verdicts"])
    spec_tables(tables, pl.DataFrame(compliance), pl.DataFrame(verdicts), models, rng)
    write(tables, "value_expressions", expressions, CONTRACT["value_expressions"])
    ref = pl.DataFrame(refusals)
    rates = ref.group_by("model").agg(
        pl.len().alias("n"),
        pl.col("refusal").mean().alias("refusal_rate"),
        pl.col("hard_refusal").mean().alias("hard_rate"),
    )
    rates = rates.with_columns(
        topic=pl.lit("all"),
        refusal_ci_low=pl.col("refusal_rate") - 0.05,
        refusal_ci_high=pl.col("refusal_rate") + 0.05,
        hard_ci_low=pl.col("hard_rate") - 0.02,
        hard_ci_high=pl.col("hard_rate") + 0.02,
    )
    write(tables, "refusal_rates", rates, CONTRACT["refusal_rates"])
    write(
        tables,
        "judge_stats",
        [
            {"judge_a": j, "judge_b": None, "metric": "problematic_rate", "value": 0.2 + 0.1 * k}
            for k, j in enumerate(JUDGES)
        ]
        + [
            {
                "judge_a": JUDGES[a],
                "judge_b": JUDGES[b],
                "metric": "pairwise_agreement",
                "value": 0.6 + 0.1 * (a + b),
            }
            for a in range(3)
            for b in range(a + 1, 3)
        ],
        CONTRACT["judge_stats"],
    )
    summary = []
    for family in ("claude", "openai"):
        for sample, (n, ok, fail, all_fail) in COMPLIANCE_SAMPLES.items():
            summary.append(
                {
                    "group_kind": "sample",
                    "group": sample,
                    "family": family,
                    "subset": "all" if sample == "high_all" else None,
                    "n_scenarios": n,
                    "all_pass": ok,
                    "any_fail": fail,
                    "all_fail": all_fail,
                    "frequent_noncompliance": all_fail / n,
                    "se": 0.01,
                    "n_any_judge": n,
                    "all_fail_any_judge": 2 * all_fail,
                    "frequent_noncompliance_any_judge": 2 * all_fail / n,
                    "se_any_judge": 0.02,
                }
            )
        # Each family binned by its own subset's D, as by default.
        for k, b in enumerate(BIN_LABELS):
            summary.append(
                {
                    "group_kind": "bin",
                    "group": b,
                    "family": family,
                    "subset": family,
                    "n_scenarios": 10,
                    "all_pass": 10 - (k + 1) // 2,
                    "any_fail": (k + 1) // 2,
                    "all_fail": (k + 1) // 2,
                    "frequent_noncompliance": 0.05 * (k + 1),
                    "se": 0.02,
                    "n_any_judge": 20,
                    "all_fail_any_judge": 2 * (k + 1),
                    "frequent_noncompliance_any_judge": 0.1 * (k + 1),
                    "se_any_judge": 0.03,
                }
            )
    write(tables, "compliance_summary", summary, CONTRACT["compliance_summary"])
    counts = (
        pl.DataFrame(expressions).group_by("model", "category").agg(pl.len().cast(pl.Int64).alias("count"))
    )
    write(tables, "value_counts", counts, CONTRACT["value_counts"])
    present = pl.DataFrame(expressions).select("scenario_id", "model")
    write(
        tables,
        "value_cooccurrence_pairs",
        pair_cooccurrence(pl.DataFrame(expressions), present, len(VALUE_CATEGORIES)),
        CONTRACT["value_cooccurrence_pairs"],
    )
    write(
        tables,
        "value_cooccurrence",
        [
            {"category_a": a, "category_b": b, "p": 0.25 + 0.05 * (i + j)}
            for i, a in enumerate(VALUE_CATEGORIES)
            for j, b in enumerate(VALUE_CATEGORIES)
        ],
        CONTRACT["value_cooccurrence"],
    )
    manifest = json.loads((root / "manifest.json").read_text())
    for stage in ("topics", "refusals", "compliance", "values"):
        manifest["stages"][stage] = {
            "state": "done",
            "summary": {"fleiss_kappa": 0.4321} if stage == "compliance" else {},
        }
    (root / "manifest.json").write_text(json.dumps(manifest))


SPEC_TEXT = """# Spec

## Honesty

Never state what you believe false.

## Tone

Do not open with praise.

## Balance

Present the main views fairly.
"""


def spec_tables(
    tables: Path,
    compliance: pl.DataFrame,
    verdicts: pl.DataFrame,
    models: tuple[str, ...],
    rng: np.random.Generator,
) -> None:
    """The spec-section tables of judges that cite one or two sections of `SPEC_TEXT` per judgement."""
    spec = parse_spec(SPEC_TEXT)
    ids = [s.id for s in spec.sections if s.level == 2]
    keys = ["scenario_id", "model", "sample", "judge"]
    citations = pl.DataFrame(
        [
            {**dict(zip(keys, row, strict=True)), "spec": "spec", "section_id": ids[int(i)]}
            for row in compliance.select(keys).iter_rows()
            for i in rng.choice(len(ids), size=int(rng.integers(1, 3)), replace=False)
        ]
    )
    sections = sections_table("spec", spec)
    groups = pl.DataFrame(schema=GROUPS_SCHEMA)
    stress = section_stress(
        compliance.with_columns(spec=pl.lit("spec")),
        citations,
        verdicts,
        {"openai": [m for m in models if m.startswith(("gpt", "o"))]},
        groups,
        headings(sections),
    )
    write(tables, "compliance_citations", citations, CITATIONS_SCHEMA)
    write(tables, "spec_sections", sections, SECTIONS_SCHEMA)
    write(tables, "spec_section_stress", stress, STRESS_SCHEMA)


def inject_response(root: Path, scenario_id: str, model: str, text: str) -> None:
    """Replace one response's text in tables/responses.parquet (for the hostile-output tests)."""
    path = root / "tables" / "responses.parquet"
    df = pl.read_parquet(path)
    hit = (pl.col("scenario_id") == scenario_id) & (pl.col("model") == model)
    assert df.filter(hit).height == 1, f"no response of {model} to {scenario_id}"
    df = df.with_columns(text=pl.when(hit).then(pl.lit(text)).otherwise(pl.col("text")))
    pq.write_table(df.to_arrow().cast(pq.read_schema(path)), path)
