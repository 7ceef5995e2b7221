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
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from actors.store import contains
from actors.types import Endpoint, call_key, spec_from_json
from jobs.config import endpoint
from jobs.estimate import Line, visible_output

if TYPE_CHECKING:
    from jobs.config import RunConf
    from jobs.rundir import RunDir

CHARS_PER_TOKEN = 4

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
"""Requests read at a time from a stored table (a compliance row carries tens of KB)."""


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


def system_chars(specs: pl.DataFrame) -> pl.Series:
    """Characters of the system messages of each spec (column `spec`).

    Stages put one system message first: its text is read by a JSON path. Specs with other
    layouts (several system messages, or one later on) have their messages decoded whole.
    """
    spec = pl.col("spec")
    first = spec.str.contains(FIRST_SYSTEM, literal=True)
    quick = specs.select(
        chars=pl.when(first).then(spec.str.json_path_match("$.messages[0][1]").str.len_chars()).otherwise(0),
        other=spec.str.count_matches(SYSTEM_OPEN, literal=True) > first.cast(pl.UInt32),
    )
    chars = quick["chars"].cast(pl.Int64)
    if quick["other"].any():
        message = pl.element()
        decoded = (
            specs.filter(quick["other"])
            .select(
                spec.str.json_path_match("$.messages")
                .str.json_decode(pl.List(pl.List(pl.String)))
                .list.eval(
                    pl.when(message.list.get(0) == "system")
                    .then(message.list.get(1).str.len_chars())
                    .otherwise(0)
                )
                .list.sum()
            )
            .to_series()
        )
        chars = chars.scatter(quick["other"].arg_true(), decoded.cast(pl.Int64))
    return chars


def token_rows(batch: pl.DataFrame, visible: int, answered: np.ndarray) -> pl.DataFrame:
    """Per request (columns key, model, spec): answered or not, and its input, output and
    cacheable-prefix tokens (a prefix counts only on calls still to make)."""
    spec = pl.col("spec")
    rows = batch.select(
        "key",
        "model",
        answered=pl.Series(contains(answered, batch["key"].to_numpy().astype("S32"))),
        input_tokens=spec.str.len_chars() / CHARS_PER_TOKEN,
        params=spec.str.extract(PARAMS_JSON, 1).str.json_decode(pl.Struct(PARAMS)),
    ).unnest("params")
    rows = rows.with_columns(output_tokens=output_tokens(visible))
    cached = rows["cache_prefix"].fill_null(False) & ~rows["answered"]
    prefix = pl.zeros(rows.height, pl.Float64, eager=True)
    if cached.any():
        chars = system_chars(batch.filter(cached))
        prefix = prefix.scatter(cached.arg_true(), pl.select(prefix_tokens(pl.lit(chars))).to_series())
    return rows.select("key", "model", "answered", "input_tokens", "output_tokens", prefix_tokens=prefix)


def lines_of(conf: RunConf, stage: str, parts: Iterable[pl.DataFrame]) -> list[Line]:
    """One line per model from `token_rows` parts, counting each key once (its first row).

    Per model, the first call to make with a cacheable prefix writes the provider's cache
    (billed apart on Anthropic) and every later one reads it.
    """
    frames = [p for p in parts if p.height]
    if not frames:
        return []
    rows = pl.concat(frames).unique("key", keep="first", maintain_order=True)
    make, prefix = ~pl.col("answered"), pl.col("prefix_tokens")
    per_model = rows.group_by("model", maintain_order=True).agg(
        calls=pl.len(),
        cached=pl.col("answered").sum(),
        input_tokens=pl.col("input_tokens").filter(make).sum(),
        output_tokens=pl.col("output_tokens").filter(make).sum(),
        stored_input_tokens=pl.col("input_tokens").filter(~make).sum(),
        stored_output_tokens=pl.col("output_tokens").filter(~make).sum(),
        prefix_total=prefix.filter(make).sum(),
        first_prefix=prefix.filter(make & (prefix > 0)).first().fill_null(0.0),
    )
    lines = []
    for r in per_model.iter_rows(named=True):
        write = r["first_prefix"]
        lines.append(
            Line(
                stage,
                r["model"],
                int(r["calls"]),
                cached=int(r["cached"]),
                input_tokens=float(r["input_tokens"]),
                output_tokens=float(r["output_tokens"]),
                exact=True,
                cached_input_tokens=float(r["prefix_total"] - write),
                cache_write_tokens=float(
                    write if endpoint(conf, r["model"]).provider == "anthropic" else 0.0
                ),
                stored_input_tokens=float(r["stored_input_tokens"]),
                stored_output_tokens=float(r["stored_output_tokens"]),
            )
        )
    return lines


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
    visible = visible_output(conf, stage)
    return lines_of(
        conf,
        stage,
        (token_rows(c.with_columns(keys_of(eps, c)), visible, answered) for c in chunks if c.height),
    )


FIRST_ROUND_SUFFIX = r"(_neutral|_biased)?(_c\d+)?(_r0)?"
"""What follows a stage's name in its first-round requests tables (`scenarios_neutral`,
`scores_c3_r0`); repairs (`_r1`...) and other stages' tables (`values_embeddings`) do not match."""


def from_earlier_requests(conf: RunConf, run: RunDir, stage: str, answered: np.ndarray) -> list[Line] | None:
    """Exact lines from the requests tables an earlier run of this stage wrote (first rounds, not repairs)."""
    own = re.compile(rf"{re.escape(stage)}{FIRST_ROUND_SUFFIX}\.parquet")
    files = [p for p in run.requests.list_files(".parquet") if own.fullmatch(p.rsplit("/", 1)[-1])]
    if not files:
        return None
    eps = {m: endpoint(conf, m) for m in conf.models}
    visible = visible_output(conf, stage)
    parts = (
        token_rows(batch, visible, answered) for path in files for batch in stored_requests(run, path, eps)
    )
    return lines_of(conf, stage, parts)


def stored_requests(run: RunDir, path: str, endpoints: dict[str, Endpoint]) -> Iterator[pl.DataFrame]:
    """A requests table's rows (key, model, spec) in batches, each key's first row only.

    The stored keys hold where the endpoints are as the table was written, which is checked
    on each model's first row; a model whose endpoint changed since gets its rows' keys
    hashed again. Rows of models no longer configured are left out: this config cannot call them.
    """
    valid: dict[str, bool] = {}
    with run.root.fs.open_input_file(path) as source:
        table = pq.ParquetFile(source)
        for batch in table.iter_batches(batch_size=BATCH_ROWS, columns=["key", "model", "spec", "dispatch"]):
            rows = pl.from_arrow(batch)
            assert isinstance(rows, pl.DataFrame)
            rows = rows.filter(pl.col("model").is_in(list(endpoints)))
            new = rows.filter(~pl.col("model").is_in(list(valid))).unique(
                "model", keep="first", maintain_order=True
            )
            for model, key, spec in new.select("model", "key", "spec").iter_rows():
                valid[model] = call_key(endpoints[model], spec_from_json(spec)) == key
            stale = [m for m, ok in valid.items() if not ok]
            if stale:
                # Rows that share a stored key may not share a new one: every row stays in.
                moved = rows["model"].is_in(stale)
                rekeyed = keys_of(endpoints, rows.filter(moved))
                rows = rows.with_columns(rows["key"].scatter(moved.arg_true(), rekeyed))
            else:
                rows = rows.filter(pl.col("dispatch"))
            yield rows.select("key", "model", "spec")
