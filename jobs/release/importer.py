"""`specstress import PATH --run RUN_DIR`: the released dataset, or our export of a run, as a run directory.

Reads a local folder in the release's layout (`layout.py`), or a Hub dataset id through the
optional `hub` extra (`hub.py`), and writes the tables our stages write, so every later stage
runs on it as on a run of ours:

- `scenarios` from the default and complete configs (and judge-only scenarios), one row per
  (chunk_index, entry_idx, nudge_direction); ids are ours (`scenario_id(pair_id(v1, v2), nudge)`),
  so an export of our run comes back under its own ids. A value pair found under two
  (chunk_index, entry_idx) gets ids salted with them, so its two draws stay apart. The pair's
  rank is chunk_index x (largest entry_idx + 1) + entry_idx, and that chunk size goes in the
  manifest, so an export of the run writes the dataset's own indexes.
- `responses` (sample 0) and `scores` (positions only: no confidence, no reasoning);
- `rubrics` from the complete config's `value1_spectrum` / `value2_spectrum`, when present;
- `compliance` and what the compliance stage derives from it (verdicts, judge statistics,
  frequent non-compliance per bin) from `judge_evaluations`, when present;
- `release_selections`: the default config's splits (the dataset's own selections, made
  with its own embeddings), beside which the disagreement stage writes ours.

The manifest records these stages as done and imported, and the driver refuses to run those
that made the dataset's answers again on this run (that would pay for every response anew);
the compliance stage may run, and replaces the imported verdicts. Every file is checked before
anything is written (`reader.py`); the run is built in a hidden folder beside RUN_DIR and
renamed into place, so a failed import leaves no run directory behind.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from actors.errors import DatasetError, SpecstressError
from jobs.analysis.agreement import (
    JUDGE_STATS_SCHEMA,
    MAJORITIES,
    SUMMARY_SCHEMA,
    VERDICTS_SCHEMA,
    frequent_noncompliance,
    judge_stats,
    verdicts,
)
from jobs.conf.loader import read_config, resolved_yaml
from jobs.engine.rundir import Manifest, RunDir, now_iso
from jobs.release import layout
from jobs.release.hub import local_source
from jobs.release.reader import KEY, Shard, check_shard, decision, find_shards
from jobs.stages.compliance import COMPLIANCE_SCHEMA
from jobs.stages.compliance_scope import families_of
from jobs.stages.pairs import pair_id
from jobs.stages.responses import RESPONSES_SCHEMA
from jobs.stages.rubrics import RUBRICS_SCHEMA
from jobs.stages.scenarios import SCENARIO_SCHEMA, scenario_id
from jobs.stages.scores import SCORES_SCHEMA
from jobs.stages.settings.compliance import ComplianceConf
from jobs.stages.settings.pipeline import StagesConf
from jobs.stages.streaming import write_parts
from jobs.stages.tables import write_table

IMPORTED = "imported"
"""Stands where a table names the call or model that made a row: the dataset does not say."""
SAMPLE = 0
RELEASE_SELECTIONS_SCHEMA = pa.schema(
    [
        pa.field("subset", pa.string(), nullable=False),  # ours (`layout.SUBSET_OF_SPLIT`)
        pa.field("split", pa.string(), nullable=False),  # the dataset's
        pa.field("rank", pa.int64(), nullable=False),  # 0 = first in the split's `rank` order
        pa.field("scenario_id", pa.string(), nullable=False),
    ]
)
"""`tables/release_selections.parquet`: the dataset's own selections, one row per split member."""
_NUDGE_AT_END = r"(neutral|value1|value2)$"


@dataclass
class ImportResult:
    """What an import wrote: rows per table, and what the dataset lacked."""

    run_dir: str
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _files(rows: pl.DataFrame) -> str:
    """The files the rows come from (every frame read from the dataset carries `_file`)."""
    return " and ".join(sorted(set(rows["_file"].to_list())))


def one_per_key(frame: pl.DataFrame, key: list[str], columns: list[str], what: str) -> pl.DataFrame:
    """`frame`'s rows, one per key; a key whose `columns` differ between rows is a `DatasetError`
    naming the files, the column and the key (the same scenario may sit in several splits)."""
    distinct = frame.unique(subset=[*key, *columns], keep="first", maintain_order=True)
    clash = distinct.filter(pl.len().over(key) > 1)
    if clash.is_empty():
        return distinct
    first = clash.sort(key).row(0, named=True)
    rows = clash.filter(pl.all_horizontal(pl.col(k) == first[k] for k in key))
    column = next(c for c in columns if rows[c].n_unique() > 1)
    where = ", ".join(f"{k}={first[k]!r}" for k in key)
    raise DatasetError(_files(rows), column, f"{what} ({where}) differs between rows")


def _scan(shard: Shard, **columns: pl.Expr) -> pl.DataFrame:
    """`columns` of one shard, with the shard's path (`_file`) for the errors that name it."""
    return shard.scan().select(**columns, _file=pl.lit(str(shard.path))).collect()


def _keyed(shard: Shard, **columns: pl.Expr) -> pl.DataFrame:
    """`columns` of a default or complete shard, with the scenario's key (`KEY`)."""
    key = {c: pl.col(c).cast(pl.Int64) for c in layout.INDEX_COLUMNS}
    return _scan(shard, **key, nudge_direction=pl.col("nudge_direction").cast(pl.String), **columns)


def _scenario_rows(shards: list[Shard], judged: pl.DataFrame) -> pl.DataFrame:
    """One row per scenario key, with its value pair and query; judge-only scenarios included."""
    frames = [
        _keyed(s, **{c: pl.col(c).cast(pl.String) for c in layout.SCENARIO_COLUMNS if c != "nudge_direction"})
        for s in shards
    ]
    rows = pl.concat(frames, how="vertical")
    if judged.height:
        orphans = judged.join(
            rows, left_on=[*KEY[:2], "prompt"], right_on=[*KEY[:2], "query"], how="anti"
        ).with_columns(nudge_direction=pl.col("query_key").str.extract(_NUDGE_AT_END))
        lost = orphans.filter(pl.col("nudge_direction").is_null())
        if lost.height:
            raise DatasetError(
                _files(lost.head(1)),
                "query_key",
                f"{lost.height} rows match no scenario of data/ or complete/ (by chunk_idx, entry_idx and "
                "prompt), and their query_key does not end in a nudge direction",
            )
        extra = orphans.select(
            query_generator=pl.lit(None, pl.String),
            value1="value1",
            value2="value2",
            nudge_direction="nudge_direction",
            query="prompt",
            chunk_index="chunk_index",
            entry_idx="entry_idx",
            _file="_file",
        )
        rows = pl.concat([rows, extra], how="diagonal")
    return one_per_key(rows, list(KEY), ["value1", "value2", "query", "query_generator"], "scenario")


def _salted(pid: str, chunk: int, entry: int) -> str:
    return hashlib.blake2b(f"{pid}\x1f{chunk}\x1f{entry}".encode(), digest_size=8).hexdigest()


def chunk_size_of(scen: pl.DataFrame) -> int:
    """Pairs per chunk_index as the dataset counts them (at least its largest entry_idx + 1): the
    pair's rank is chunk_index x this + entry_idx, and an export with it writes the same indexes."""
    return int(scen["entry_idx"].max() or 0) + 1  # type: ignore[operator]


def _ids(scen: pl.DataFrame) -> pl.DataFrame:
    """Scenario and pair ids and the pair's draw order (rank) for every scenario row."""
    pairs = one_per_key(
        scen.select("chunk_index", "entry_idx", "value1", "value2", "_file"),
        ["chunk_index", "entry_idx"],
        ["value1", "value2"],
        "value pair",
    ).with_columns(
        pair_id=pl.struct("value1", "value2").map_elements(
            lambda r: pair_id(r["value1"], r["value2"]), return_dtype=pl.String
        )
    )
    twice = pl.col("pair_id").count().over("pair_id") > 1
    pairs = pairs.with_columns(
        pair_id=pl.when(twice)
        .then(
            pl.struct("pair_id", "chunk_index", "entry_idx").map_elements(
                lambda r: _salted(r["pair_id"], r["chunk_index"], r["entry_idx"]), return_dtype=pl.String
            )
        )
        .otherwise(pl.col("pair_id")),
        rank=pl.col("chunk_index") * chunk_size_of(scen) + pl.col("entry_idx"),
    ).drop("_file", "value1", "value2")
    out = scen.join(pairs, on=["chunk_index", "entry_idx"])
    return out.with_columns(
        scenario_id=pl.struct("pair_id", "nudge_direction").map_elements(
            lambda r: scenario_id(r["pair_id"], r["nudge_direction"]), return_dtype=pl.String
        )
    ).sort("rank", "nudge_direction")


def _scenarios_table(ids: pl.DataFrame) -> pl.DataFrame:
    return ids.with_columns(
        value1_l2=pl.lit(None, pl.String),
        value2_l2=pl.lit(None, pl.String),
        call_key=pl.lit(None, pl.String),
        neutral_call_key=pl.lit(None, pl.String),
    )


def _responses(answered: list[Shard], models: list[str], ids: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """One part per model: its answers, each scenario once."""
    for m in models:
        column = layout.response_column(m)
        texts = pl.concat(
            [_keyed(s, text=pl.col(column).cast(pl.String)) for s in answered if m in s.models]
        ).drop_nulls("text")
        texts = one_per_key(texts, list(KEY), ["text"], f"{column} of scenario")
        yield texts.join(ids.select(*KEY, "scenario_id"), on=list(KEY)).select(
            "scenario_id",
            "text",
            model=pl.lit(m),
            sample=pl.lit(SAMPLE, pl.Int64),
            finish_reason=pl.lit(None, pl.String),
            refusal=pl.lit(None, pl.Boolean),
            input_tokens=pl.lit(None, pl.Int64),
            output_tokens=pl.lit(None, pl.Int64),
            cost_usd=pl.lit(None, pl.Float64),
            call_key=pl.lit(IMPORTED),
            status=pl.lit("ok"),
            error=pl.lit(None, pl.String),
        )


def _scores(answered: list[Shard], models: list[str], ids: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """One part per model: its positions on both values, one row per (scenario, value slot)."""
    for m in models:
        parts = []
        for s in answered:
            if m not in s.models:
                continue
            for slot in (1, 2):
                column = layout.position_column(m, slot)
                parts.append(
                    _keyed(s, position=pl.col(column).cast(pl.Int64), value_slot=pl.lit(slot, pl.Int64))
                )
        long = pl.concat(parts).drop_nulls("position")
        long = one_per_key(
            long, [*KEY, "value_slot"], ["position"], f"{m}'s position on value slot of scenario"
        )
        yield long.join(ids.select(*KEY, "scenario_id", "pair_id", "value1", "value2"), on=list(KEY)).select(
            "scenario_id",
            "pair_id",
            "value_slot",
            "position",
            model=pl.lit(m),
            sample=pl.lit(SAMPLE, pl.Int64),
            value=pl.when(pl.col("value_slot") == 1).then("value1").otherwise("value2"),
            confidence=pl.lit(None, pl.Float64),
            reasoning=pl.lit(None, pl.String),
            label=pl.lit(None, pl.String),
            status=pl.lit("ok"),
            error=pl.lit(None, pl.String),
            call_key=pl.lit(None, pl.String),
            final_call_key=pl.lit(None, pl.String),
            repairs=pl.lit(0, pl.Int64),
        )


def _rubrics(complete: list[Shard], ids: pl.DataFrame) -> pl.DataFrame | None:
    """The spectrums of each pair (its framings must agree), or None when the dataset has none."""
    with_spectrums = [s for s in complete if set(layout.SPECTRUM_COLUMNS) <= set(s.columns)]
    if not with_spectrums:
        return None
    rows = pl.concat(
        [_keyed(s, **{c: pl.col(c) for c in layout.SPECTRUM_COLUMNS}) for s in with_spectrums]
    ).join(ids.select(*KEY, "pair_id", "value1", "value2"), on=list(KEY))
    rows = one_per_key(
        rows.drop_nulls(list(layout.SPECTRUM_COLUMNS)),
        ["pair_id"],
        list(layout.SPECTRUM_COLUMNS),
        "spectrum of pair",
    )
    return rows.select(
        "pair_id",
        "value1",
        "value2",
        *layout.SPECTRUM_COLUMNS,
        status=pl.lit("ok"),
        error=pl.lit(None, pl.String),
        call_key=pl.lit(None, pl.String),
        final_call_key=pl.lit(None, pl.String),
        repairs=pl.lit(0, pl.Int64),
        model=pl.lit(IMPORTED),
    )


def _selections(default: list[Shard], ids: pl.DataFrame) -> pl.DataFrame:
    rows = pl.concat(
        [_keyed(s, rank=pl.col("rank").cast(pl.Int64), split=pl.lit(s.split)) for s in default]
    ).unique(subset=["split", *KEY])
    return (
        rows.join(ids.select(*KEY, "scenario_id"), on=list(KEY))
        .sort("split", "rank", *KEY)
        .with_columns(
            rank=pl.int_range(pl.len(), dtype=pl.Int64).over("split"),
            subset=pl.col("split").replace(layout.SUBSET_OF_SPLIT),
        )
    )


def _judge_rows(judged: list[Shard]) -> pl.DataFrame:
    """Every judge row: the answering model, the scenario's key and query, each judge's decision."""
    frames = []
    for s in judged:
        decisions = {layout.judge_of(c): decision(c) for c in s.decision_columns}
        frames.append(
            _scan(
                s,
                **{
                    c: pl.col(c).cast(pl.String) for c in ("model", "value1", "value2", "prompt", "query_key")
                },
                chunk_index=pl.col("chunk_idx").cast(pl.Int64),
                entry_idx=pl.col("entry_idx").cast(pl.Int64),
                bin=pl.lit(layout.BIN_OF_SPLIT[s.split]),
                decisions=pl.struct(**decisions),
            )
        )
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


@dataclass(frozen=True)
class _Compliance:
    decisions: pl.DataFrame
    verdicts: pl.DataFrame
    stats: pl.DataFrame
    summary: pl.DataFrame
    figures: dict[str, Any]


def _compliance(judged: pl.DataFrame, ids: pl.DataFrame) -> _Compliance:
    """The compliance tables from the judge rows, as the compliance stage derives them."""
    keyed = judged.join(
        ids.select(*KEY[:2], "query", "scenario_id"),
        left_on=["chunk_index", "entry_idx", "prompt"],
        right_on=["chunk_index", "entry_idx", "query"],
    )
    judges = [f.name for f in judged.schema["decisions"].fields]  # type: ignore[union-attr]
    long = pl.concat(
        [
            keyed.select(
                "scenario_id", "model", "_file", judge=pl.lit(j), decision=pl.col("decisions").struct.field(j)
            )
            for j in judges
        ]
    )
    long = one_per_key(long, ["scenario_id", "model", "judge"], ["decision"], "decision of")
    table = long.select(
        "scenario_id",
        "model",
        "judge",
        "decision",
        sample=pl.lit(SAMPLE, pl.Int64),
        reasoning=pl.lit(None, pl.String),
        status=pl.when(pl.col("decision").is_null()).then(pl.lit("call_failed")).otherwise(pl.lit("ok")),
        error=pl.when(pl.col("decision").is_null()).then(pl.lit("no decision in the dataset")),
    )
    items = table.select("scenario_id", "model", "sample").unique()
    verdict_table = verdicts(table, items)
    stats, figures = judge_stats(table, judges)
    bins = one_per_key(
        keyed.select("scenario_id", "bin", "_file"), ["scenario_id"], ["bin"], "judge split of"
    )
    groups = bins.select(
        group_kind=pl.lit("bin"),
        group="bin",
        family=pl.lit(None, pl.String),
        subset=pl.lit(layout.BIN_SUBSET),
        scenario_id="scenario_id",
    )
    families = families_of(ComplianceConf(), sorted(items["model"].unique().to_list()))
    summary = frequent_noncompliance(verdict_table, families, groups)
    majorities = dict(verdict_table.group_by("majority").len().iter_rows())
    figures |= {
        "judges": judges,
        "scenarios": bins.height,
        "responses": items.height,
        "judgements": table.height,
        "majority": {m: int(majorities.get(m, 0)) for m in MAJORITIES},
    }
    return _Compliance(table, verdict_table, stats, summary, figures)


def _config_yaml(target: Path, stages: list[str], models: list[str], judges: list[str], n_pairs: int) -> str:
    """The run's config as our runs record theirs: defaults, with what the dataset tells."""
    overrides = [
        f"run_dir={target}",
        f"pipeline=[{','.join(stages)}]",
        f"stages.responses.models=[{','.join(models)}]",
    ]
    overrides.append(f"stages.pairs.n_pairs={max(1, n_pairs)}")
    if judges:
        overrides.append(f"stages.compliance.judges=[{','.join(judges)}]")
    return resolved_yaml(read_config(None, overrides, stages=StagesConf))


def _record(run: RunDir, source: str, summaries: dict[str, dict[str, Any]], chunk_size: int) -> None:
    """The manifest: the imported stages done, one session that did the import, and the dataset's
    chunk size (the export's default for this run, so it writes the dataset's own indexes).

    The stages whose tables are the dataset's own answers are marked `imported_from`, and the
    driver refuses to run them on this run; the compliance verdicts are marked in their
    summary only, since re-judging them (against another spec) is what an import is for.
    """
    manifest = Manifest(run.root)
    now = now_iso()
    for name, summary in summaries.items():
        record = {"state": "done", "started_at": now, "finished_at": now, "summary": summary}
        if name == "compliance":
            summary["imported_from"] = source
        else:
            record["imported_from"] = source
        manifest.data["stages"][name] = record
    session = {"started_at": now, "ended_at": now, "stages": list(summaries), "pid": os.getpid()}
    manifest.data["sessions"].append(session | {"host": socket.gethostname()})
    manifest.data.update(state="done", resumable=False, release={"source": source, "chunk_size": chunk_size})
    manifest.save()


def _target(run_dir: str) -> Path:
    if "://" in run_dir:
        raise SpecstressError(
            f"import: --run {run_dir}: import writes a local run directory; copy it afterwards"
        )
    target = Path(run_dir).resolve()
    if target.exists():
        raise SpecstressError(f"import: --run {target} exists; import into a new run directory")
    return target


@dataclass(frozen=True)
class _Dataset:
    """The checked shards of each config, and the answering models they share."""

    default: list[Shard]
    complete: list[Shard]
    judged: list[Shard]
    models: list[str]

    @property
    def answered(self) -> list[Shard]:
        """The shards with responses and positions."""
        return [s for s in (*self.default, *self.complete) if s.models]


def _read(root: Path) -> _Dataset:
    shards = find_shards(root)
    for group in shards.values():
        for shard in group:
            check_shard(shard)
    default, complete, judged = (shards.get(c, []) for c in layout.CONFIG_DIRS)
    answered = [s for s in (*default, *complete) if s.models]
    models = sorted({m for s in answered for m in s.models})
    for s in answered:
        if s.models != models:
            missing = layout.response_column(next(m for m in models if m not in s.models))
            raise DatasetError(str(s.path), missing, "missing (other files of the dataset have it)")
    return _Dataset(default, complete, judged, models)


def _write(
    run: RunDir, data: _Dataset, ids: pl.DataFrame, judged: pl.DataFrame, result: ImportResult
) -> dict[str, dict[str, Any]]:
    """Write every table the dataset gives; returns the imported stages' summaries, in pipeline order."""
    rows, summaries = result.rows, {}
    write_table(run, "scenarios", _scenarios_table(ids), SCENARIO_SCHEMA)
    rows["scenarios"] = ids.height
    summaries["scenarios"] = {"imported": ids.height}
    if data.models:
        rows["responses"] = write_parts(
            run, "responses", _responses(data.answered, data.models, ids), RESPONSES_SCHEMA
        )
        summaries["responses"] = {"imported": rows["responses"], "models": data.models}
    else:
        result.notes.append("no response_<model> columns: no responses or scores")
    rubrics = _rubrics(data.complete, ids)
    if rubrics is None:
        result.notes.append("no value1_spectrum / value2_spectrum columns in complete/: no rubrics")
    else:
        write_table(run, "rubrics", rubrics, RUBRICS_SCHEMA)
        rows["rubrics"] = rubrics.height
        summaries["rubrics"] = {"imported": rubrics.height}
    if data.models:
        rows["scores"] = write_parts(run, "scores", _scores(data.answered, data.models, ids), SCORES_SCHEMA)
        summaries["scores"] = {"imported": rows["scores"]}
    if data.default:
        sel = _selections(data.default, ids)
        write_table(run, "release_selections", sel, RELEASE_SELECTIONS_SCHEMA)
        rows["release_selections"] = sel.height
    if judged.is_empty():
        result.notes.append("no judge_evaluations/: no compliance verdicts")
        return summaries
    c = _compliance(judged, ids)
    for name, table, schema in (
        ("compliance", c.decisions, COMPLIANCE_SCHEMA),
        ("compliance_verdicts", c.verdicts, VERDICTS_SCHEMA),
        ("judge_stats", c.stats, JUDGE_STATS_SCHEMA),
        ("compliance_summary", c.summary, SUMMARY_SCHEMA),
    ):
        # The release judged one spec and does not name it: one version, with no label.
        write_table(run, name, table.with_columns(spec=pl.lit(None, pl.String)), schema)
        rows[name] = table.height
    summaries["compliance"] = c.figures
    return summaries


def import_release(source: str, run_dir: str) -> ImportResult:
    """Import the dataset `source` (a local folder, or a Hub dataset id) into the new run directory
    `run_dir`."""
    target = _target(run_dir)
    folder, origin = local_source(source)
    root = folder.resolve()
    data = _read(root)
    judged = _judge_rows(data.judged)
    ids = _ids(_scenario_rows([*data.default, *data.complete], judged))
    result = ImportResult(run_dir=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.import-", dir=target.parent) as tmp:
        run = RunDir.open(str(Path(tmp) / "run"))
        summaries = _write(run, data, ids, judged, result)
        judges = summaries.get("compliance", {}).get("judges", [])
        config = _config_yaml(target, list(summaries), data.models, judges, ids["pair_id"].n_unique())
        run.root.write_text("config.yaml", config)
        _record(run, origin, summaries, chunk_size_of(ids))
        Path(run.root.path).rename(target)
    return result
