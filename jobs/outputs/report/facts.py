"""Run facts for the report: config, stage timings, calls, tokens and cost per stage and model, errors.

Calls, tokens, cost and errors come from the call store (this run's rows, joined to the
requests each stage handed the engine), so they are exact after a kill or a resume; the
manifest gives stage states, timings and the engine's per-table figures.
"""

from __future__ import annotations

import re
from datetime import datetime

import polars as pl
import yaml

from jobs.engine.batching.records import batch_status
from jobs.engine.recovery import paid_twice
from jobs.outputs.report.blocks import Section, Table, num
from jobs.outputs.report.sources import RunSources
from jobs.outputs.status import unusable_by_stage

_ROUND = re.compile(r"(_c\d+)?(_r\d+)?$")


def stage_of(requests_name: str, stages: list[str]) -> str:
    """The stage a requests table belongs to (`scores_c0_r1` -> scores, `scenarios_biased` -> scenarios)."""
    base = _ROUND.sub("", requests_name)
    matches = [s for s in stages if base == s or base.startswith(f"{s}_")]
    return max(matches, key=len) if matches else base


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    return f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds():,.0f}"


def _order(src: RunSources, stage: str) -> tuple[int, str]:
    """Pipeline order (the manifest's keys are sorted by name)."""
    pipeline = list(src.config.get("pipeline") or [])
    return (pipeline.index(stage) if stage in pipeline else len(pipeline), stage)


def calls_by_stage_model(src: RunSources) -> pl.DataFrame:
    """This run's stored calls per (stage, model): calls, ok, failed, tokens, cost, latency."""
    stages = list(src.manifest.get("stages", {}))
    parts = []
    for path in src.run.requests.list_files(".parquet"):
        name = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        parts.append(pl.scan_parquet(path).select("key").with_columns(stage=pl.lit(stage_of(name, stages))))
    if not parts:
        return pl.DataFrame()
    keys = pl.concat(parts).unique(["stage", "key"])
    calls = (
        src.store()
        .scan(
            [
                "key",
                "run_id",
                "model",
                "status",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cost_usd",
                "latency_s",
            ]
        )
        .filter(pl.col("run_id") == src.manifest.get("run_id"))
    )
    return (
        calls.join(keys, on="key")
        .group_by("stage", "model")
        .agg(
            pl.len().alias("calls"),
            (pl.col("status") == "ok").sum().alias("ok"),
            (pl.col("status") != "ok").sum().alias("failed"),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("cached_input_tokens").sum(),
            pl.col("cost_usd").sum(),
            pl.col("latency_s").median().alias("latency_p50_s"),
            pl.col("latency_s").quantile(0.95).alias("latency_p95_s"),
        )
        .sort("stage", "model")
        .collect()
    )


def errors_by_kind(src: RunSources) -> pl.DataFrame:
    """This run's failed calls by model and error kind (a failure later retried still counts here)."""
    return (
        src.store()
        .scan(["run_id", "model", "status", "error_kind"])
        .filter((pl.col("run_id") == src.manifest.get("run_id")) & (pl.col("status") != "ok"))
        .group_by("model", "error_kind")
        .len("calls")
        .sort("calls", descending=True)
        .collect()
    )


def facts_section(src: RunSources) -> Section:
    m = src.manifest
    sec = Section("facts", "Run facts", f"Run {m.get('run_id')} created {m.get('created_at')}.")
    conf = src.config
    em = (conf.get("emulator") or {}).get("enabled")
    if em:
        sec.notes.append(
            "Every model in this run is the provider emulator: its answers are synthetic text, so the "
            "figures show the machinery working, not findings about real models."
        )
    responses = (conf.get("stages") or {}).get("responses") or {}
    sec.tables.append(
        Table(
            "Configuration",
            ["setting", "value"],
            [
                ["pipeline", ", ".join(conf.get("pipeline") or [])],
                ["models answering", ", ".join(responses.get("models") or [])],
                ["pairs", str(((conf.get("stages") or {}).get("pairs") or {}).get("n_pairs", ""))],
                ["seed", str(conf.get("seed", ""))],
                ["budget_usd", str(conf.get("budget_usd"))],
                ["emulated providers", "yes" if em else "no"],
            ],
        )
    )
    sec.tables.append(
        Table(
            "Stages",
            ["stage", "state", "started", "finished", "seconds", "error or why skipped"],
            [
                [
                    name,
                    st.get("state", ""),
                    st.get("started_at") or "",
                    st.get("finished_at") or "",
                    _seconds(st.get("started_at"), st.get("finished_at")),
                    st.get("error") or st.get("skipped") or "",
                ]
                for name, st in sorted(m.get("stages", {}).items(), key=lambda kv: _order(src, kv[0]))
            ],
        )
    )
    sec.tables.append(unusable_table(src))
    sec.tables.append(
        Table(
            "Engine figures per requests table (latest session)",
            ["requests table", "requests", "cached", "made", "failed", "429s", "retries", "USD", "seconds"],
            [
                [
                    name,
                    num(c.get("requests")),
                    num(c.get("cached")),
                    num(c.get("made")),
                    num(c.get("failed")),
                    num(c.get("rate_limited")),
                    num(c.get("retries")),
                    num(c.get("cost_usd"), 4),
                    num(c.get("elapsed_s"), 1),
                ]
                for name, c in m.get("calls", {}).items()
            ],
        )
    )
    per = calls_by_stage_model(src)
    if per.height:
        rows = [
            [
                r["stage"],
                r["model"],
                num(r["calls"]),
                num(r["ok"]),
                num(r["failed"]),
                num(r["input_tokens"]),
                num(r["output_tokens"]),
                num(r["cached_input_tokens"]),
                num(r["cost_usd"], 4),
                num(r["latency_p50_s"], 2),
                num(r["latency_p95_s"], 2),
            ]
            for r in per.iter_rows(named=True)
        ]
        t = per.select(pl.exclude("stage", "model", "latency_p50_s", "latency_p95_s").sum()).row(
            0, named=True
        )
        rows.append(
            [
                "total",
                "",
                *[
                    num(t[c])
                    for c in ("calls", "ok", "failed", "input_tokens", "output_tokens", "cached_input_tokens")
                ],
                num(t["cost_usd"], 4),
                "",
                "",
            ]
        )
        sec.tables.append(
            Table(
                "Calls, tokens and cost per stage and model (this run's calls in the store)",
                [
                    "stage",
                    "model",
                    "calls",
                    "ok",
                    "failed",
                    "input tok",
                    "output tok",
                    "cached in tok",
                    "USD",
                    "p50 s",
                    "p95 s",
                ],
                rows,
            )
        )
    errors = errors_by_kind(src)
    sec.tables.append(
        Table(
            "Failed calls by kind",
            ["model", "error kind", "calls"],
            [[r["model"], r["error_kind"] or "", num(r["calls"])] for r in errors.iter_rows(named=True)]
            or [["none", "", "0"]],
        )
    )
    sec.tables.append(batches_table(src))
    for row in paid_twice(m).iter_rows(named=True):
        sec.notes.append(
            f"May have been paid twice: {row['calls']} calls of {row['stage']}/{row['model']} were on the wire "
            "when a session ended (a kill, a drain that cut them off, a lost client) and were sent again."
        )
    return sec


def unusable_table(src: RunSources) -> Table:
    """Per stage, the rows it wrote that later stages cannot use: counts by status and first reasons."""
    rows = [
        [
            stage,
            u.table,
            num(u.rows),
            num(u.unusable),
            ", ".join(f"{k} {n}" for k, n in u.by_status.items()),
            "; ".join(f"{r} ({n})" for r, n in u.reasons),
        ]
        for stage, found in unusable_by_stage(src.run).items()
        for u in found
    ]
    return Table(
        "Rows each stage could not use (rejected, invalid, failed calls, no rubric...) and why",
        ["stage", "table", "rows", "unusable", "by status or reason", "most frequent reasons"],
        rows or [["none", "", "", "", "", ""]],
    )


def batches_table(src: RunSources) -> Table:
    """Provider batches still in flight (age, items, the provider's counts), then the run's totals."""
    b = batch_status(src.run.root)
    rows = [
        [
            f["remote_id"] or "(being created)",
            f["stage"],
            f["model"],
            f["state"] + (f" ({f['provider_status']})" if f["provider_status"] else ""),
            num(f["items"]),
            num(f["age_s"] / 60, 1),
            ", ".join(f"{k} {v}" for k, v in sorted(f["counts"].items())),
        ]
        for f in b["in_flight"]
    ]
    t = b["totals"]
    rows.append(["all batches", "", "", f"{num(t['batches'])} batches", num(t["items"]), "", ""])
    return Table(
        "Provider batches in flight",
        ["batch", "stage", "model", "state", "items", "age (min)", "counts"],
        rows,
    )


def config_text(src: RunSources) -> str:
    """The resolved config as YAML (it holds API-key variable names, never their values)."""
    return yaml.safe_dump(src.config, sort_keys=False)
