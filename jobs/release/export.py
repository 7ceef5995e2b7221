"""`specstress export RUN --format hf`: a run as a dataset in the release's shape (`layout.py`).

- `default`: one split per disagreement subset, its weighted k-center selections in rank
  order (`rank` = 0-based selection order), named as released (`SPLIT_OF_SUBSET`); a subset
  the release lacks keeps its own name, and the card says which release splits are absent.
- `complete`: every scenario, with its responses and positions (where scored) and both
  spectrums, so D, bins and outliers of the whole run can be recomputed from the export.
- `judge_evaluations`: the compliance judges' decisions, one row per judged response, one
  split per bin of the D of `bin_subset`.

Rows are widened `rows_per_file` scenarios at a time, each batch one shard, so exporting a
paper-scale run never holds every response in memory. A split without rows is left out
(and noted): the Hub's loader cannot read an empty shard. The folder is built beside
`out_dir` and moved into place whole, so a failed export leaves an earlier one intact.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import yaml

from actors.errors import SpecstressError
from actors.storage import Location
from jobs.analysis.disagreement import BIN_LABELS
from jobs.engine.rundir import Manifest, RunDir
from jobs.release import layout
from jobs.release.card import CardFacts, SplitInfo, dataset_card
from jobs.stages.compliance_scope import ALL_MODELS
from jobs.stages.disagreement import resolve_subsets
from jobs.stages.scenarios import NUDGES
from jobs.stages.settings.compliance import ComplianceConf
from jobs.stages.settings.disagreement import DisagreementConf
from jobs.stages.streaming import scan_table

SAMPLE = 0
"""The response sample exported: the release has one answer per scenario and model."""
CHUNK_SIZE = 25_000
"""Value pairs per chunk_index, unless the run was imported (then the dataset's own)."""


@dataclass
class ExportResult:
    """What an export wrote: shards and rows per (config, split), and what differs from the release."""

    out_dir: str
    files: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """config -> split -> its shards, relative to `out_dir`."""
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _setting(config: dict[str, Any], stage: str, key: str) -> Any:
    """A stage's setting in the run's resolved config (None where the run has none)."""
    return ((config.get("stages") or {}).get(stage) or {}).get(key)


def _schema(columns: list[str]) -> pa.Schema:
    """Types by column: integers for rank, indexes and positions, lists for spectrums, else strings."""
    ints = {"rank", "chunk_index", "chunk_idx", "entry_idx"}

    def typ(c: str) -> pa.DataType:
        if c in ints or c.endswith("_position"):
            return pa.int64()
        if c in layout.SPECTRUM_COLUMNS:
            return pa.list_(pa.string())
        if c == "max_pop_std_openai":
            return pa.float64()
        return pa.string()

    return pa.schema([pa.field(c, typ(c)) for c in columns])


@dataclass
class _Export:
    """One export in progress: the run's tables it reads and the folder it builds."""

    run: RunDir
    root: Path
    rows_per_file: int
    chunk_size: int
    models: list[str]
    scenarios: pl.DataFrame
    """scenario_id, pair_id, the scenario columns, chunk_index and entry_idx, in pair order."""
    config: dict[str, Any]
    result: ExportResult

    def rows_of(self, table: str, ids: pl.Series, columns: list[str], keep: pc.Expression) -> pl.DataFrame:
        """`columns` of a table's rows of the scenarios `ids` (sample 0) that pass `keep`. pyarrow
        filters batch by batch, so only the chunk's rows are ever held, however large the table."""
        ds = pads.dataset(self.run.table_path(table), format="parquet", filesystem=self.run.root.fs)
        wanted = pc.field("scenario_id").isin(ids.to_arrow()) & (pc.field("sample") == SAMPLE) & keep
        table = ds.to_table(columns=columns, filter=wanted, batch_readahead=1, fragment_readahead=1)
        return pl.from_arrow(table)  # type: ignore[return-value]

    def wide(self, part: pl.DataFrame) -> pl.DataFrame:
        """`part` (scenario rows) with a response and two position columns per model (null where absent)."""
        ids = part["scenario_id"]
        texts = self.rows_of(
            "responses", ids, ["scenario_id", "model", "text"], pc.field("status") == "ok"
        ).select("scenario_id", column=pl.lit("response_") + pl.col("model"), value="text")
        positions = self.rows_of(
            "scores",
            ids,
            ["scenario_id", "model", "value_slot", "position"],
            (pc.field("status") == "ok") & pc.field("position").is_valid(),
        ).select(
            "scenario_id",
            column=pl.concat_str(
                pl.col("model"), pl.lit("_value"), pl.col("value_slot"), pl.lit("_position")
            ),
            value=pl.col("position").cast(pl.Int64),
        )
        out = part
        for long in (texts, positions):
            if long.height:
                wide = long.pivot(on="column", index="scenario_id", values="value")
                out = out.join(wide, on="scenario_id", how="left")
        missing = [c for c in layout.model_columns(self.models) if c not in out.columns]
        return out.with_columns(pl.lit(None).alias(c) for c in missing)

    def split(
        self,
        config: str,
        split: str,
        columns: list[str],
        rows: pl.DataFrame,
        widen: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    ) -> int:
        """Write one split in shards of `rows_per_file` rows, each widened by `widen`; returns its rows."""
        if rows.is_empty():
            self.result.notes.append(f"{config} split {split}: no rows, left out")
            return 0
        schema = _schema(columns)
        folder = layout.CONFIG_DIRS[config]
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        n = math.ceil(rows.height / self.rows_per_file)
        files = []
        for i, part in enumerate(rows.iter_slices(self.rows_per_file)):
            table = (widen(part) if widen else part).select(columns).to_arrow().cast(schema)
            name = f"{folder}/{layout.shard_name(split, i, n)}"
            pq.write_table(table, self.root / name, compression="zstd")
            files.append(name)
        self.result.files.setdefault(config, {})[split] = files
        self.result.rows.setdefault(config, {})[split] = rows.height
        return rows.height


def _open(
    run_dir: str, root: Path, chunk_size: int | None, rows_per_file: int, result: ExportResult
) -> _Export:
    run = RunDir(Location(run_dir))
    if chunk_size is None:
        chunk_size = (Manifest(run.root).data.get("release") or {}).get("chunk_size") or CHUNK_SIZE
    for name, n in (("chunk_size", chunk_size), ("rows_per_file", rows_per_file)):
        if n < 1:
            raise SpecstressError(f"export option '{name}': must be >= 1, got {n}")
    models = scan_table(run, "responses").select("model").unique().collect()["model"].sort().to_list()
    scen = (
        scan_table(run, "scenarios")
        .select("scenario_id", "pair_id", "rank", *layout.SCENARIO_COLUMNS)
        .collect()
        .with_columns(
            chunk_index=pl.col("rank") // chunk_size,
            entry_idx=pl.col("rank") % chunk_size,
            _nudge=pl.col("nudge_direction").replace_strict(list(NUDGES), range(len(NUDGES)), default=None),
        )
        .sort("rank", "_nudge", "scenario_id")
        .drop("_nudge", "rank")
    )
    config = yaml.safe_load(run.root.read_text("config.yaml") or "{}") or {}
    return _Export(run, root, rows_per_file, chunk_size, models, scen, config, result)


def _default(ex: _Export) -> list[SplitInfo]:
    """The selections of every subset, one split each; notes what differs from the release's six."""
    run = ex.run
    if not (run.tables.exists("selections.parquet") and run.tables.exists("disagreement.parquet")):
        ex.result.notes.append("no selections (the disagreement stage has not run): no default config")
        return []
    subsets = (
        scan_table(run, "disagreement")
        .select("subset")
        .unique(maintain_order=True)
        .collect()["subset"]
        .to_list()
    )
    scored = set(scan_table(run, "scores").select("model").unique().collect()["model"].to_list())
    members = resolve_subsets(_setting(ex.config, "disagreement", "subsets"), scored)
    selections = scan_table(run, "selections").select("subset", "rank", "scenario_id").collect()
    infos = []
    for subset in subsets:
        split = layout.SPLIT_OF_SUBSET.get(subset, subset)
        if not layout.valid_split(split):
            raise SpecstressError(
                f"disagreement subset '{subset}': not a valid split name (letters, digits, _ and dots only)"
            )
        picks = (
            selections.filter(pl.col("subset") == subset)
            .sort("rank")
            .join(ex.scenarios, on="scenario_id", how="inner", maintain_order="left")
        )
        rows = ex.split("default", split, layout.default_columns(ex.models), picks, ex.wide)
        if rows:
            infos.append(SplitInfo(split, subset, members.get(subset, []), rows))
    absent = [s for sub, s in layout.SPLIT_OF_SUBSET.items() if sub not in subsets]
    extra = [layout.SPLIT_OF_SUBSET.get(s, s) for s in subsets if s not in layout.SPLIT_OF_SUBSET]
    if absent:
        ex.result.notes.append(f"release splits this run has no subset for: {', '.join(absent)}")
    if extra:
        ex.result.notes.append(f"splits the release lacks, named by this run's subsets: {', '.join(extra)}")
    return infos


def _complete(ex: _Export) -> None:
    """Every scenario with its responses, positions and both spectrums."""
    scen = ex.scenarios
    if ex.run.tables.exists("rubrics.parquet"):
        spectrums = (
            scan_table(ex.run, "rubrics")
            .filter(pl.col("status") == "ok")
            .select("pair_id", *layout.SPECTRUM_COLUMNS)
            .collect()
        )
        scen = scen.join(spectrums, on="pair_id", how="left", maintain_order="left")
    else:
        ex.result.notes.append("no rubrics table: the complete config's spectrum columns are empty")
        scen = scen.with_columns(pl.lit(None).alias(c) for c in layout.SPECTRUM_COLUMNS)
    ex.split("complete", layout.COMPLETE_SPLIT, layout.complete_columns(ex.models), scen, ex.wide)


def bin_subset_of(config: dict[str, Any], subsets: list[str]) -> str:
    """The subset whose D bins the judge data: the compliance stage's `bin_subset`, else the
    release's own (the OpenAI models', `max_pop_std_openai`) where the run has it, else all models'."""
    configured = _setting(config, "compliance", "bin_subset")
    if configured:
        return str(configured)
    return layout.BIN_SUBSET if layout.BIN_SUBSET in subsets else ALL_MODELS


def _first_version(ex: _Export, decisions: pl.DataFrame) -> pl.DataFrame:
    """The decisions under the first spec version judged (in the config's `specs` order): the
    release holds one decision per judge and response, so a run judging several versions exports
    the first, as its report's judging sections show it, and says so in the card's notes."""
    if "spec" not in decisions.columns or decisions["spec"].n_unique() < 2:
        return decisions
    judged = decisions["spec"].unique(maintain_order=True).to_list()
    configured = [v for v in _setting(ex.config, "compliance", "specs") or {} if v in judged]
    first = (configured or judged)[0]
    ex.result.notes.append(
        f"judge_evaluations holds the decisions under spec version '{first}', the first of the "
        f"{len(judged)} judged ({', '.join(configured or judged)}): the release format has one spec"
    )
    return decisions.filter(pl.col("spec") == first)


def _judges(ex: _Export) -> tuple[str, list[str]] | None:
    """One row per judged response with each judge's decision, one split per bin of D."""
    run = ex.run
    if not run.tables.exists("compliance.parquet"):
        ex.result.notes.append("no compliance table: no judge_evaluations config")
        return None
    if not run.tables.exists("disagreement.parquet"):
        ex.result.notes.append(
            "no disagreement table to bin the judged scenarios: no judge_evaluations config"
        )
        return None
    dis = scan_table(run, "disagreement").select("scenario_id", "subset", "d", "bin").collect()
    subset = bin_subset_of(ex.config, dis["subset"].unique().to_list())
    sample = _setting(ex.config, "compliance", "sample") or ComplianceConf().sample
    decisions = _first_version(ex, scan_table(run, "compliance").filter(pl.col("sample") == sample).collect())
    judges = decisions["judge"].unique().sort().to_list()
    wide = decisions.with_columns(
        column=pl.col("judge").replace_strict({j: layout.judge_column(j) for j in judges})
    ).pivot(on="column", index=["scenario_id", "model"], values="decision")
    rows = (
        wide.join(dis.filter(pl.col("subset") == subset), on="scenario_id", how="left")
        .join(ex.scenarios, on="scenario_id", how="inner")
        .with_columns(
            bin_name=pl.col("bin").replace_strict(layout.BIN_SPLITS, default=None),
            std_range=pl.col("bin"),
            max_pop_std_openai=pl.col("d"),
            chunk_idx=pl.col("chunk_index"),
            query_key=pl.concat_str("chunk_index", "entry_idx", "nudge_direction", separator="_"),
            prompt=pl.col("query"),
        )
        .sort("chunk_idx", "entry_idx", "nudge_direction", "model")
    )
    unbinned = rows.filter(pl.col("bin_name").is_null()).height
    if unbinned:
        ex.result.notes.append(f"{unbinned} judged responses have no D in subset '{subset}': left out")
    columns = [*layout.JUDGE_HEAD, *layout.judge_columns(judges)]
    for label in BIN_LABELS:
        ex.split("judge_evaluations", layout.BIN_SPLITS[label], columns, rows.filter(pl.col("bin") == label))
    return subset, judges


def _replace(built: Path, out: Path, scratch: Path) -> None:
    """Move the built folder to `out`; an earlier export there (never anything else) is moved into
    `scratch` first, so `out` is at every moment either the earlier export or the new one whole."""
    if out.exists():
        ours = {*layout.CONFIG_DIRS.values(), "README.md"}
        if not out.is_dir() or not {p.name for p in out.iterdir()} <= ours:
            raise SpecstressError(f"export: {out} exists and is not an earlier export; choose another --out")
        out.rename(scratch / "earlier")
    built.rename(out)


def export_release(
    run_dir: str, out_dir: str, *, chunk_size: int | None = None, rows_per_file: int = 10_000
) -> ExportResult:
    """Export `run_dir` into the local folder `out_dir`: `datasets.load_dataset(out_dir)` loads the
    default config (`name="complete"` or `"judge_evaluations"` the others), polars reads the shards.

    `chunk_size` (pairs per chunk_index) defaults to the dataset's own for an imported run, so
    its chunk_index and entry_idx come back as they were, and to `CHUNK_SIZE` otherwise."""
    out = Path(out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out_dir=str(out))
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        built = Path(tmp) / "export"
        built.mkdir()
        ex = _open(run_dir, built, chunk_size, rows_per_file, result)
        splits = _default(ex)
        _complete(ex)
        judged = _judges(ex)
        facts = CardFacts(
            splits={config: list(rows) for config, rows in result.rows.items()},
            default=splits,
            models=ex.models,
            chunk_size=ex.chunk_size,
            std=_setting(ex.config, "disagreement", "std") or DisagreementConf().std,
            judged=judged,
            notes=result.notes,
        )
        (built / "README.md").write_text(dataset_card(facts))
        _replace(built, out, Path(tmp))
    return result
