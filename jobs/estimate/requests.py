"""Exact estimate lines from a stage's requests, computed column by column.

Every `specstress run` with a budget estimates what it still has to pay before it starts
(`jobs/driver.py` `refuse_over_budget`). At the paper's scale a stage's requests tables
hold millions of rows, and each compliance row carries the whole model spec, so nothing
here parses or hashes a row in Python: the tables' stored `key` column is trusted (checked
once per model and table against the current endpoints), token counts are polars
expressions over the spec JSON, and store membership is one vectorised `contains`.
The token rules (`output_tokens`, `prefix_tokens`) are defined here once, as expressions;
the config-counted lines use them through `expected_output_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from actors.store import contains
from actors.tokens import CHARS_PER_TOKEN
from actors.types import Endpoint, call_key, spec_from_json
from jobs.conf.loader import endpoint
from jobs.conf.schema import RunConf
from jobs.engine.rundir import RunDir
from jobs.estimate.lines import Line, visible_output

REASONING_TOKENS = {"low": 500, "medium": 1500, "high": 4000}
"""Hidden reasoning tokens (billed as output) assumed per OpenAI reasoning effort."""

MIN_CACHED_TOKENS = 1024
"""Providers cache a prompt prefix only from about this many tokens on."""

PARAMS = {
    "max_tokens": pl.Float64,
    "thinking_budget": pl.Float64,
    "reasoning_effort": pl.String,
    "cache_prefix": pl.Boolean,
}
"""The generation parameters the token rules read, with the types they are read as."""

PARAMS_JSON = r',"params":(\{[^{}]*\})'
"""A spec's params object (flat: `NEUTRAL_PARAMS` are scalars). In canonical JSON every quote
inside a string is escaped, so `,"` and `["` can only be structure, never message text;
that also holds for `SYSTEM_OPEN` and `FIRST_SYSTEM`."""
SYSTEM_OPEN = '["system","'
FIRST_SYSTEM = '"messages":[' + SYSTEM_OPEN

BATCH_ROWS = 2048
"""Requests read at a time where they are read in batches: from an object store, or to hash them
again for a model whose endpoint changed (a compliance row carries tens of KB)."""


def output_tokens(visible: int) -> pl.Expr:
    """Visible answer plus assumed thinking (half the budget) or reasoning, capped at max_tokens
    (absent or 0: no cap); over columns named as in `PARAMS`."""
    effort = pl.col("reasoning_effort").replace_strict(REASONING_TOKENS, default=0, return_dtype=pl.Float64)
    uncapped = pl.col("thinking_budget").fill_null(0) / 2 + effort.fill_null(0) + visible
    cap = pl.col("max_tokens")
    return pl.when(cap.is_null() | (cap == 0)).then(uncapped).otherwise(pl.min_horizontal(cap, uncapped))


def expected_output_tokens(params: dict[str, Any], visible: int) -> float:
    """`output_tokens` of one call's params (the config-counted lines)."""
    row = pl.DataFrame([{name: params.get(name) for name in PARAMS}], schema=PARAMS)
    return float(row.select(output_tokens(visible)).item())


def prefix_tokens(system_chars: pl.Expr) -> pl.Expr:
    """Tokens of a system prompt marked for caching, or 0 when it is too short to be cached."""
    tokens = system_chars / CHARS_PER_TOKEN
    return pl.when(tokens >= MIN_CACHED_TOKENS).then(tokens).otherwise(0.0)


ITEM_TAG = r"\|([^|]*)$"
"""The last `|`-separated part of a request's item id: a compliance item's spec version label
when several versions are judged (`jobs.stages.compliance`)."""


def request_tokens(requests: pl.LazyFrame, visible: int) -> pl.DataFrame:
    """Per request (key, model, spec): its input and expected output tokens, whether it asks
    for its prefix to be cached, how many characters its system messages hold, and the last
    part of its item id (`tag`; null where the requests carry no item ids).

    Stages put one system message first: its text is read by a JSON path. Specs with other
    layouts (several system messages, or one later on) have their messages decoded whole;
    every other spec hands that decoder an empty list, so the slow path costs it nothing.
    The specs are read in one streaming select that keeps only small columns.
    """
    spec, message = pl.col("spec"), pl.element()
    first = spec.str.contains(FIRST_SYSTEM, literal=True)
    other = spec.str.count_matches(SYSTEM_OPEN, literal=True) > first.cast(pl.UInt32)
    decoded = (
        pl.when(other)
        .then(spec)
        .otherwise(pl.lit('{"messages":[]}'))
        .str.json_path_match("$.messages")
        .str.json_decode(pl.List(pl.List(pl.String)))
        .list.eval(
            pl.when(message.list.get(0) == "system").then(message.list.get(1).str.len_chars()).otherwise(0)
        )
        .list.sum()
    )
    leading = spec.str.json_path_match("$.messages[0][1]").str.len_chars()
    has_items = "item_id" in requests.collect_schema().names()
    small = requests.select(
        "key",
        "model",
        tag=pl.col("item_id").str.extract(ITEM_TAG, 1) if has_items else pl.lit(None, dtype=pl.String),
        input_tokens=spec.str.len_chars() / CHARS_PER_TOKEN,
        params=spec.str.extract(PARAMS_JSON, 1),
        system_chars=pl.when(other).then(decoded).when(first).then(leading).otherwise(0).cast(pl.Int64),
    )
    # Common-subexpression elimination would add a step that carries the specs along: several GB at scale.
    rows = small.collect(engine="streaming", optimizations=pl.QueryOptFlags(comm_subexpr_elim=False))
    return (
        rows.with_columns(pl.col("params").str.json_decode(pl.Struct(PARAMS)))
        .unnest("params")
        .select(
            "key",
            "model",
            "input_tokens",
            "system_chars",
            "tag",
            output_tokens=output_tokens(visible),
            cache_prefix=pl.col("cache_prefix").fill_null(False),
        )
    )


def spec_labels(conf: RunConf, stage: str) -> list[str] | None:
    """The spec versions a stage's lines are broken down by: the labels of `stages.compliance.specs`
    when several versions are judged, else None."""
    specs = conf.stages.compliance.specs if stage == "compliance" else None
    return list(specs) if specs is not None and len(specs) > 1 else None


def lines_of(conf: RunConf, stage: str, parts: Iterable[pl.DataFrame], answered: np.ndarray) -> list[Line]:
    """One line per model from `request_tokens` parts, counting each key once (its first row).

    Each cacheable prefix (per model, spec version and system prompt) is written to the
    provider's cache by its first call to make (billed apart on Anthropic) and read by every
    later one; calls already answered cost nothing. With several spec versions (`spec_labels`),
    each line holds its per-version parts (`Line.versions`).
    """
    frames = [p for p in parts if p.height]
    if not frames:
        return []
    labels = spec_labels(conf, stage)
    rows = pl.concat(frames).unique("key", keep="first", maintain_order=True)
    rows = rows.with_columns(
        answered=pl.Series(contains(answered, rows["key"].to_numpy().astype("S32"))),
        version=pl.when(pl.col("tag").is_in(labels or [])).then(pl.col("tag")),
    ).with_row_index("row")
    make = ~pl.col("answered")
    prefix = pl.when(pl.col("cache_prefix") & make).then(prefix_tokens(pl.col("system_chars"))).otherwise(0.0)
    cacheable = pl.col("prefix") > 0
    first = pl.col("row") == pl.col("row").min().over("model", "version", "system_chars", cacheable)
    per_version = (
        rows.with_columns(prefix=prefix)
        .with_columns(write=pl.when(cacheable & first).then(pl.col("prefix")).otherwise(0.0))
        .group_by("model", "version", maintain_order=True)
        .agg(
            calls=pl.len(),
            cached=pl.col("answered").sum(),
            input_tokens=pl.col("input_tokens").filter(make).sum(),
            output_tokens=pl.col("output_tokens").filter(make).sum(),
            stored_input_tokens=pl.col("input_tokens").filter(~make).sum(),
            stored_output_tokens=pl.col("output_tokens").filter(~make).sum(),
            prefix_total=pl.col("prefix").sum(),
            write=pl.col("write").sum(),
        )
    )
    lines: dict[str, Line] = {}
    for r in per_version.iter_rows(named=True):
        anthropic = endpoint(conf, r["model"]).provider == "anthropic"
        part = Line(
            stage,
            r["model"],
            int(r["calls"]),
            cached=int(r["cached"]),
            input_tokens=float(r["input_tokens"]),
            output_tokens=float(r["output_tokens"]),
            exact=True,
            cached_input_tokens=float(r["prefix_total"] - r["write"]),
            cache_write_tokens=float(r["write"] if anthropic else 0.0),
            stored_input_tokens=float(r["stored_input_tokens"]),
            stored_output_tokens=float(r["stored_output_tokens"]),
        )
        line = lines.setdefault(r["model"], Line(stage, r["model"], 0, exact=True))
        line.add(part)
        if labels is not None and r["version"] is not None:
            line.versions[r["version"]] = part
    return list(lines.values())


def keys_of(endpoints: dict[str, Endpoint], chunk: pl.DataFrame) -> pl.Series:
    """Each request's call key, hashed from its spec (for requests no table has keyed yet)."""
    keys = [
        call_key(endpoints[m], spec_from_json(js))
        for m, js in zip(chunk["model"], chunk["spec"], strict=True)
    ]
    return pl.Series("key", keys, dtype=pl.String)


def exact_lines(
    conf: RunConf, stage: str, chunks: Iterable[pl.DataFrame], answered: np.ndarray
) -> list[Line]:
    """Lines from requests built in memory (columns model, spec), e.g. from the config: keys hashed here."""
    eps = {m: endpoint(conf, m) for m in conf.models}
    return lines_of(conf, stage, built_tokens(eps, visible_output(conf, stage), chunks), answered)


def built_tokens(
    endpoints: dict[str, Endpoint], visible: int, chunks: Iterable[pl.DataFrame]
) -> Iterator[pl.DataFrame]:
    """`request_tokens` of requests built in memory, their keys hashed here."""
    for c in chunks:
        if c.height:
            yield request_tokens(c.with_columns(keys_of(endpoints, c)).lazy(), visible)


FIRST_ROUND_SUFFIX = r"(_neutral|_biased)?(_c\d+)?(_r0)?"
"""What follows a stage's name in its first-round requests tables (`scenarios_neutral`,
`scores_c3_r0`); repairs (`_r1`...) and other stages' tables (`values_embeddings`) do not match."""


def first_round_tables(run: RunDir, stage: str) -> list[str]:
    """Paths of the first-round requests tables an earlier run of `stage` wrote (not its repairs)."""
    own = re.compile(rf"{re.escape(stage)}{FIRST_ROUND_SUFFIX}\.parquet")
    return [p for p in run.requests.list_files(".parquet") if own.fullmatch(p.rsplit("/", 1)[-1])]


def stored_first_round(run: RunDir, stage: str, answered: np.ndarray) -> int:
    """How many of the first-round calls an earlier run of `stage` wrote have a stored answer."""
    files = first_round_tables(run, stage)
    if not files:
        return 0
    keys = pl.concat([run.root.scan_parquet(p).select("key") for p in files]).unique().collect()
    return int(contains(answered, keys["key"].to_numpy().astype("S32")).sum())


def from_earlier_requests(conf: RunConf, run: RunDir, stage: str, answered: np.ndarray) -> list[Line] | None:
    """Exact lines from the requests tables an earlier run of this stage wrote (first rounds, not repairs)."""
    files = first_round_tables(run, stage)
    if not files:
        return None
    eps = {m: endpoint(conf, m) for m in conf.models}
    visible = visible_output(conf, stage)
    return lines_of(conf, stage, (stored_tokens(run, path, eps, visible) for path in files), answered)


def table_lines(
    conf: RunConf,
    run: RunDir,
    line: str,
    tables: Mapping[str, Iterator[pl.DataFrame]],
    answered: np.ndarray,
    *,
    reuse: bool,
) -> list[Line]:
    """Lines of a stage's planned requests tables. With `reuse` (the stage's settings are those it
    ran with), a table an earlier run wrote is read as stored: it is what the plan builds, and its
    keys are hashed already. Every other table is built from the plan and hashed here."""
    written = {p.rsplit("/", 1)[-1]: p for p in run.requests.list_files(".parquet")} if reuse else {}
    eps = {m: endpoint(conf, m) for m in conf.models}
    visible = visible_output(conf, line)

    def parts() -> Iterator[pl.DataFrame]:
        for table, chunks in tables.items():
            path = written.get(f"{table}.parquet")
            if path is not None:
                yield stored_tokens(run, path, eps, visible)
            else:
                yield from built_tokens(eps, visible, chunks)

    return lines_of(conf, line, parts(), answered)


def stored_tokens(run: RunDir, path: str, endpoints: dict[str, Endpoint], visible: int) -> pl.DataFrame:
    """`request_tokens` of a requests table, each key's first row.

    The stored keys hold where the endpoints are as the table was written, which is checked
    on each model's first row. A model whose endpoint changed since gets its rows' keys
    hashed again (row by row: the one slow path). Rows of models no longer configured are
    left out: this config cannot call them.
    """
    configured = pl.col("model").is_in(list(endpoints))
    firsts = (
        run.requests.scan_parquet(path)
        .select("model")
        .with_row_index("row")
        .filter(configured)
        .unique("model", keep="first", maintain_order=True)
    )
    with run.root.fs.open_input_file(path) as f:
        table = pq.ParquetFile(f)
        stale = [
            r["model"]
            for r in _rows(table, firsts.collect()["row"].to_list())
            if call_key(endpoints[r["model"]], spec_from_json(r["spec"])) != r["key"]
        ]
        if not stale:
            return _tokens(run, table, path, configured & pl.col("dispatch"), visible)
        # Rows that shared a stored key may not share a new one: every row stays in.
        tokens = _tokens(run, table, path, configured, visible)
        batches = (
            pl.DataFrame(pl.from_arrow(b)) for b in table.iter_batches(BATCH_ROWS, columns=["model", "spec"])
        )
        rekeyed = pl.concat([keys_of(endpoints, b.filter(pl.col("model").is_in(stale))) for b in batches])
    moved = tokens["model"].is_in(stale).arg_true()
    return tokens.with_columns(tokens["key"].scatter(moved, rekeyed))


def _tokens(run: RunDir, table: pq.ParquetFile, path: str, keep: pl.Expr, visible: int) -> pl.DataFrame:
    """`request_tokens` of the rows `keep` selects: one streaming pass of polars' reader on a local
    disk; on an object store, which polars would read whole through pyarrow, batch by batch."""
    if run.root.is_local:
        return request_tokens(pl.scan_parquet(path).filter(keep), visible)
    columns = [c for c in ("key", "model", "spec", "dispatch", "item_id") if c in table.schema_arrow.names]
    parts = [
        request_tokens(pl.DataFrame(pl.from_arrow(b)).lazy().filter(keep), visible)
        for b in table.iter_batches(BATCH_ROWS, columns=columns)
    ]
    return pl.concat(parts) if parts else pl.DataFrame()  # an empty table has no batches


def _rows(table: pq.ParquetFile, rows: list[int]) -> list[dict[str, Any]]:
    """Rows of a requests table by index, reading only the row groups that hold them."""
    out, start = [], 0
    for group in range(table.metadata.num_row_groups):
        n = table.metadata.row_group(group).num_rows
        wanted = [r - start for r in rows if start <= r < start + n]
        if wanted:
            part = table.read_row_group(group, columns=["model", "key", "spec"])
            out += part.take(wanted).to_pylist()
        start += n
    return out
