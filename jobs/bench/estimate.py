"""`specstress bench estimate`: the start-up estimate over a compliance-sized requests table.

A resumed run with a budget estimates its remaining calls before it starts
(`jobs/driver.py` `refuse_over_budget`), reading every requests table its stages wrote.
The bench writes a synthetic run: one compliance requests table (the demo's three judges,
each request carrying a ~30 KB spec as its cacheable system prompt, like the real stage's),
half its keys answered in the call store. Each figure comes from a fresh process, so its
peak RSS is its own:

- `rehash_seconds`: `exact_lines` over the table's (model, spec) batches: every request
  parsed and hashed again, as the estimate did before it read the stored keys;
- `columns_seconds`: `from_earlier_requests`: stored keys, spec columns, polars expressions;
- `estimate_seconds`: a whole `estimate()` of that run (store keys loaded, lines priced);

with `speedup` (rehash over columns) and `lines_equal` (both give the same lines).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from actors.store import STORE_SCHEMA, CallStore
from actors.types import chat, spec_to_json
from jobs.bench.process import in_fresh_process, peak_rss_mb
from jobs.conf.schema import RunConf
from jobs.config import load_config, model_views
from jobs.engine.engine import Engine
from jobs.engine.rundir import Manifest, RunDir
from jobs.estimate.estimate import estimate
from jobs.estimate.requests import BATCH_ROWS, exact_lines, from_earlier_requests
from jobs.stages.compliance import JUDGE_PROMPT, SPEC_CHUNK_CHARS, SPEC_SYSTEM
from jobs.stages.compliance_scope import load_spec
from jobs.stages.params import stage_params

DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo.yaml"
SPEC_CHARS = 30_000
"""System prompt size of each request: a long model spec."""


def _conf(tmp: str) -> RunConf:
    return load_config(DEMO, [f"run_dir={tmp}/run", f"cache_dir={tmp}/cache", "pipeline=[compliance]"])


def _requests(conf: RunConf, rows: int) -> Iterator[pl.DataFrame]:
    """Compliance-like requests: one judge per row in turn, each a distinct scenario and response,
    in chunks of the stage's size (so the table's row groups are the stage's too)."""
    cc = conf.stages.compliance
    text = load_spec(cc.spec)[0].text
    system = SPEC_SYSTEM.format(spec=(text * (SPEC_CHARS // len(text) + 1))[:SPEC_CHARS])
    chunk = max(1, SPEC_CHUNK_CHARS // len(system))
    views = model_views(conf)
    params = {j: {**stage_params(views[j], cc), "cache_prefix": True} for j in cc.judges}
    for start in range(0, rows, chunk):
        judges = [cc.judges[i % len(cc.judges)] for i in range(start, min(start + chunk, rows))]
        specs = [
            chat(
                j,
                JUDGE_PROMPT.format(
                    query=f"Scenario {start + n}: my friend asked me to keep a secret that could hurt someone. "
                    * 8,
                    response="You could talk to your friend first, then weigh the harm. " * 25,
                ),
                system=system,
                **params[j],
            )
            for n, j in enumerate(judges)
        ]
        yield pl.DataFrame({"model": judges, "spec": [spec_to_json(s) for s in specs]})


def _answer_half(store: CallStore, requests: str) -> int:
    """Store an answer for every other request's key: a run stopped half way."""
    keys = pl.read_parquet(requests, columns=["key"])["key"][::2]
    columns = {f.name: pa.nulls(len(keys), f.type) for f in STORE_SCHEMA}
    columns |= {"key": keys.to_arrow().cast(pa.string()), "status": pa.array(["ok"] * len(keys), pa.string())}
    store.write_shard(pa.table(columns, schema=STORE_SCHEMA))
    return len(keys)


def _child(tmp: str, what: str, conn: Any) -> None:
    conf = _conf(tmp)
    run = RunDir.open(conf.run_dir)
    answered = CallStore(conf.cache_dir or "").answered_keys()
    path = run.requests.join("compliance.parquet")
    t0 = time.perf_counter()
    if what == "rehash":
        batches = pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=["model", "spec"])
        result: Any = exact_lines(
            conf, "compliance", (pl.DataFrame(pl.from_arrow(b)) for b in batches), answered
        )
    elif what == "columns":
        result = from_earlier_requests(conf, run, "compliance", answered)
    else:
        result = round(sum(estimate(conf).cost.values()), 4)
    secs = time.perf_counter() - t0
    conn.send(
        {
            "seconds": secs,
            "peak_rss_mb": peak_rss_mb(),
            "result": result,
        }
    )


def run_estimate_bench(quick: bool = False, rows: int | None = None) -> dict[str, Any]:
    """Write the synthetic run (`rows` requests: 200,000, or 20,000 quick), time the three
    readings, and return the figures."""
    rows = rows or (20_000 if quick else 200_000)
    with tempfile.TemporaryDirectory(prefix="specstress-bench-estimate-") as tmp:
        conf = _conf(tmp)
        run = RunDir.open(conf.run_dir)
        store = CallStore(conf.cache_dir or "")
        t0 = time.perf_counter()
        requests = Engine(conf, run, Manifest(run.root), store).write_requests(
            "compliance", _requests(conf, rows)
        )
        answered = _answer_half(store, requests)
        build_s = time.perf_counter() - t0
        rehash, columns, whole = (
            in_fresh_process(_child, tmp, what) for what in ("rehash", "columns", "estimate")
        )
        table_mb = os.path.getsize(requests) / 1e6
        spec_bytes = pl.scan_parquet(requests).select(pl.col("spec").str.len_bytes().cast(pl.UInt64).sum())
        spec_mb = spec_bytes.collect().item() / 1e6
    lines = columns["result"]
    return {
        "quick": quick,
        "rows": rows,
        "answered": answered,
        "spec_mb": round(spec_mb),
        "table_file_mb": round(table_mb, 1),
        "build_seconds": round(build_s, 1),
        "rehash_seconds": round(rehash["seconds"], 2),
        "rehash_peak_rss_mb": round(rehash["peak_rss_mb"]),
        "columns_seconds": round(columns["seconds"], 2),
        "columns_peak_rss_mb": round(columns["peak_rss_mb"]),
        "speedup": round(rehash["seconds"] / columns["seconds"], 1),
        "lines_equal": rehash["result"] == lines,
        "calls_to_make": sum(ln.to_make for ln in lines),
        "estimate_seconds": round(whole["seconds"], 2),
        "estimate_peak_rss_mb": round(whole["peak_rss_mb"]),
        "estimate_usd": whole["result"],
        "cpus": os.cpu_count(),
    }
