"""`specstress status`: the manifest's figures, readable while a run goes on and after it stops.

Beside the manifest (stage states and the engine's figures, rewritten at every store
flush) it reports what the call store holds for this run, which is the paid truth after a
kill, each stage table's row count, whether the run's process is still alive, and an ETA
for the requests tables still in progress (calls left at the rate made so far).
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq
import yaml

from actors.errors import SpecstressError
from actors.storage import Location
from actors.store import CallStore
from jobs.engine.batching.records import batch_status
from jobs.engine.recovery import on_the_wire, paid_twice
from jobs.engine.rundir import MANIFEST, RunDir, default_cache
from jobs.stages.settings.pipeline import STAGE_SPECS
from jobs.stages.unusable import Unusable, unusable_rows


def run_status(run_uri: str) -> dict[str, Any]:
    """Stage states and call figures of a run, with totals over stages, the store's counts and an ETA."""
    root = Location(run_uri)
    text = root.read_text(MANIFEST)
    if text is None:
        raise SpecstressError(f"no {MANIFEST} in {run_uri}: not a run directory, or the run never started")
    data = json.loads(text)
    totals: dict[str, float] = {}
    for figures in data.get("calls", {}).values():
        for k, v in figures.items():
            if isinstance(v, int | float) and k != "elapsed_s":
                totals[k] = totals.get(k, 0) + v
    data["totals"] = totals
    data["run_state"] = run_state(data)
    data["eta"] = eta(data) if data["run_state"] == "running" else {}
    data["tables"] = table_rows(root)
    data["unusable"] = {
        name: [asdict(u) for u in found] for name, found in unusable_by_stage(RunDir(root)).items()
    }
    data["store"] = store_counts(root, data["run_id"])
    data["batches"] = batch_status(Location(run_uri))
    data["paid_twice"] = paid_twice(data).to_dicts()
    data["on_the_wire"] = on_the_wire(RunDir(root).wal).to_dicts()
    return data


def unusable_by_stage(run: RunDir) -> dict[str, list[Unusable]]:
    """Per stage, in pipeline order, the rows of its tables that later stages cannot use, and why."""
    out: dict[str, list[Unusable]] = {}
    for s in STAGE_SPECS:
        found = [u for t in s.writes if (u := unusable_rows(run, t)) is not None]
        if found:
            out[s.name] = found
    return out


def run_state(manifest: dict[str, Any]) -> str:
    """running | finished | partial (finished, but stages found nothing valid upstream and were
    skipped) | stopped (at the budget) | interrupted (a signal) | failed (an error) | killed (the
    driver died without a word) | unknown (a driver on another host)."""
    sessions = manifest.get("sessions") or []
    if not sessions:
        return "unknown"
    last = sessions[-1]
    if last.get("ended_at"):
        state = manifest.get("state", "done")
        return "finished" if state == "done" else str(state)
    pid, host = last.get("pid"), last.get("host")
    if pid is None or host != socket.gethostname():
        return "unknown"
    return "running" if psutil.pid_exists(pid) else "killed"


def eta(manifest: dict[str, Any]) -> dict[str, Any]:
    """Seconds left per requests table still in progress: calls left / (calls made / seconds elapsed)."""
    out: dict[str, Any] = {}
    for name, c in manifest.get("calls", {}).items():
        left = c.get("requests", 0) - c.get("cached", 0) - c.get("made", 0)
        made, elapsed = c.get("made", 0), c.get("elapsed_s", 0.0)
        if left > 0:
            out[name] = {
                "calls_left": left,
                "rate_per_s": made / elapsed if made and elapsed else None,
                "eta_s": left * elapsed / made if made and elapsed else None,
            }
    return out


def table_rows(root: Location) -> dict[str, int]:
    """Row count of every stage table, from the Parquet footers (nothing is read)."""
    tables = root.child("tables")
    counts = {}
    for path in tables.list_files(".parquet"):
        with root.fs.open_input_file(path) as f:
            counts[path.rsplit("/", 1)[-1].removesuffix(".parquet")] = pq.ParquetFile(f).metadata.num_rows
    return counts


def store_counts(root: Location, run_id: str) -> dict[str, Any]:
    """What the call store holds from this run: calls, ok, failed by kind, tokens, dollars."""
    conf = yaml.safe_load(root.read_text("config.yaml") or "{}") or {}
    store = CallStore(conf.get("cache_dir") or default_cache(root.path))
    lf = store.scan(["run_id", "status", "error_kind", "cost_usd", "input_tokens", "output_tokens"]).filter(
        pl.col("run_id") == run_id
    )
    sums = lf.select(
        pl.len().alias("calls"),
        (pl.col("status") == "ok").sum().alias("ok"),
        (pl.col("status") != "ok").sum().alias("failed"),
        pl.col("cost_usd").sum(),
        pl.col("input_tokens").sum(),
        pl.col("output_tokens").sum(),
    ).collect()
    kinds = lf.filter(pl.col("status") != "ok").group_by("error_kind").len().collect()
    row = {k: (v or 0) for k, v in sums.row(0, named=True).items()}
    row["failures"] = {str(k): n for k, n in kinds.iter_rows()}
    return row


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']} (created {status['created_at']}): {status['run_state']}"]
    if status.get("resumable"):
        lines.append("  resumable: run the same command again to continue from the store")
    sessions = status.get("sessions") or [{}]
    order = {name: i for i, name in enumerate(sessions[-1].get("stages") or [])}
    for name, st in sorted(
        status.get("stages", {}).items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])
    ):
        lines.append(f"  stage {name:<14} {st.get('state', '?')}")
        if st.get("error"):
            lines.append(f"    error: {st['error']}")
        if st.get("state") == "skipped" and st.get("skipped"):
            lines.append(f"    skipped: {st['skipped']}")
    for name, c in status.get("calls", {}).items():
        failures = ", ".join(f"{k} {v}" for k, v in sorted((c.get("failures") or {}).items())) or "none"
        lines.append(
            f"  calls {name:<22} requests={c['requests']} made={c['made']} cached={c['cached']} "
            f"retries={c['retries']} 429s={c['rate_limited']} failed={c['failed']} ({failures}) ${c['cost_usd']:.4f}"
        )
        b = c.get("batch") or {}
        if b.get("submitted_items") or b.get("resumed_batches"):
            lines.append(
                f"    via batch APIs: {b['answered']} answered, {b['failed']} failed, "
                f"{b['resubmitted']} re-submitted, {b['to_online']} moved online, ${b['cost_usd']:.4f}"
            )
    for name, e in status.get("eta", {}).items():
        lines.append(f"  in progress {name}: {e['calls_left']} calls left, ETA {_duration(e['eta_s'])}")
    t = status["totals"]
    lines.append(f"  total: made={int(t.get('made', 0))} cost=${t.get('cost_usd', 0.0):.4f}")
    s = status["store"]
    lines.append(
        f"  call store (this run): {s['calls']} calls, {s['ok']} ok, {s['failed']} failed, ${s['cost_usd']:.4f}"
    )
    if status.get("tables"):
        lines.append("  tables: " + ", ".join(f"{k} {v}" for k, v in sorted(status["tables"].items())))
    for found in status.get("unusable", {}).values():
        for u in found:
            if u["unusable"]:
                lines.append(f"  unusable rows, {Unusable(**u).describe()}")
    batches = status.get("batches") or {}
    for b in batches.get("in_flight", []):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(b["counts"].items())) or "no counts yet"
        lines.append(
            f"  batch {b['remote_id'] or '(being created)'} {b['stage']}/{b['model']} {b['state']}"
            f" {b['provider_status'] or ''}: {b['items']} items, {b['age_s'] / 60:.1f} min old ({counts})"
        )
    if batches.get("totals", {}).get("unconfirmed_items"):
        n = batches["totals"]["unconfirmed_items"]
        lines.append(
            f"  {n} batch items were being submitted at a kill and were sent again (maybe paid twice)"
        )
    for row in status.get("paid_twice", []):
        lines.append(
            f"  may have been paid twice: {row['calls']} calls of {row['stage']}/{row['model']} "
            "(on the wire when a session ended, no answer kept; sent again)"
        )
    for row in status.get("on_the_wire", []):
        lines.append(
            f"  on the wire per the clients' logs: {row['calls']} calls of {row['stage']}/{row['model']}"
            " (if the run was killed, these may have been paid twice; the resume counts them)"
        )
    return "\n".join(lines)
