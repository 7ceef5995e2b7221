"""Export a run in the shape of the paper's released dataset (`jifanz/stress_testing_model_spec`).

`export_hf` writes the `default` config's columns, one row per scored scenario:
rank, query_generator, value1, value2, nudge_direction, query, response_<model>...,
<model>_value1_position / <model>_value2_position..., chunk_index, entry_idx
(order as in the released files: responses and positions each sorted by column name).
Model keys map to the paper's column names where they are the same models (the demo
registry already uses the paper's keys); other keys keep their own names.

Our reconstruction of the index columns (the released card does not define them):
- rank: 0-based order by disagreement, highest first, where disagreement is the larger
  (population) standard deviation of the models' positions on either value (METHOD.md §5).
- chunk_index, entry_idx: the pair's draw rank split into chunks of `chunk_size`
  (rank // chunk_size, rank % chunk_size), so all three framings of a pair share them,
  as in the released ids "stresstest_{chunk_index}_{entry_idx}_{nudge_direction}".
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.engine.rundir import RunDir
from jobs.paper import PAPER_MODELS
from jobs.stages.tables import read_table

HEAD = ("rank", "query_generator", "value1", "value2", "nudge_direction", "query")
TAIL = ("chunk_index", "entry_idx")
PAPER_COLUMNS: dict[str, str] = {m: m for m in PAPER_MODELS}
"""Our model key -> the paper's column name, for keys naming the same model."""

_CARD = """---
license: apache-2.0
configs:
- config_name: default
  data_files:
  - split: {split}
    path: data/{split}-*.parquet
---
# specstress export

Responses and spectrum positions from a specstress run, in the column layout of the
`default` config of `jifanz/stress_testing_model_spec`. Models: {models}.
"""


def export_schema(names: list[str]) -> pa.Schema:
    """The export's schema for the given paper-style model names."""
    responses = sorted(f"response_{n}" for n in names)
    positions = sorted(f"{n}_value{s}_position" for n in names for s in (1, 2))
    fields = [
        pa.field("rank", pa.int64()),
        *[pa.field(c, pa.string()) for c in HEAD[1:]],
        *[pa.field(c, pa.string()) for c in responses],
        *[pa.field(c, pa.int64()) for c in positions],
        pa.field("chunk_index", pa.int64()),
        pa.field("entry_idx", pa.int64()),
    ]
    return pa.schema(fields)


def export_frame(
    run: RunDir, *, chunk_size: int = 25_000, columns: dict[str, str] | None = None
) -> pl.DataFrame:
    """The export as a frame (scenarios with at least one response), before writing."""
    names = {**PAPER_COLUMNS, **(columns or {})}
    scen = read_table(run, "scenarios")
    resp = read_table(run, "responses").filter(pl.col("sample") == 0)
    scores = read_table(run, "scores").filter((pl.col("sample") == 0) & (pl.col("status") == "ok"))
    models = sorted(resp["model"].unique().to_list())
    col = {m: names.get(m, m) for m in models}
    wide = scen.select("scenario_id", "rank", *HEAD[1:])
    texts = resp.with_columns(text=pl.when(pl.col("status") == "ok").then(pl.col("text"))).pivot(
        on="model", index="scenario_id", values="text"
    )
    texts = texts.rename({m: f"response_{col[m]}" for m in models if m in texts.columns})
    wide = wide.join(texts, on="scenario_id", how="inner")
    if scores.height:
        pos = scores.with_columns(
            name=pl.concat_str(
                pl.col("model").replace_strict(col, default=pl.col("model")),
                pl.lit("_value"),
                pl.col("value_slot").cast(pl.String),
                pl.lit("_position"),
            )
        ).pivot(on="name", index="scenario_id", values="position")
        wide = wide.join(pos, on="scenario_id", how="left")
    schema = export_schema(list(col.values()))
    for f in schema:
        if f.name not in wide.columns:
            wide = wide.with_columns(pl.lit(None).alias(f.name))
    pos_cols = [c for c in schema.names if c.endswith("_position")]
    dis = pl.max_horizontal(
        *[
            pl.concat_list([pl.col(c) for c in pos_cols if c.endswith(f"_value{s}_position")])
            .list.eval(pl.element().std(ddof=0))
            .list.first()
            for s in (1, 2)
        ]
    ).fill_null(0.0)
    out = (
        wide.with_columns(
            disagreement=dis,
            chunk_index=pl.col("rank") // chunk_size,
            entry_idx=pl.col("rank") % chunk_size,
        )
        .sort(["disagreement", "rank", "nudge_direction"], descending=[True, False, False])
        .with_columns(rank=pl.int_range(pl.len(), dtype=pl.Int64))
    )
    return out.select(schema.names)


def export_hf(
    run_dir: str,
    out_dir: str,
    *,
    split: str = "train",
    chunk_size: int = 25_000,
    columns: dict[str, str] | None = None,
) -> str:
    """Write `<out_dir>/data/<split>-00000-of-00001.parquet` and a dataset card; returns the file path.

    Loadable with polars / pyarrow (read the file) or `datasets.load_dataset(out_dir)`.
    """
    run = RunDir.open(run_dir)
    df = export_frame(run, chunk_size=chunk_size, columns=columns)
    schema = export_schema([c.removeprefix("response_") for c in df.columns if c.startswith("response_")])
    root = Path(out_dir)
    (root / "data").mkdir(parents=True, exist_ok=True)
    path = root / "data" / f"{split}-00000-of-00001.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(df.to_arrow().cast(schema), tmp, compression="zstd")
    tmp.replace(path)
    models = ", ".join(c.removeprefix("response_") for c in schema.names if c.startswith("response_"))
    (root / "README.md").write_text(_CARD.format(split=split, models=models))
    return str(path)
