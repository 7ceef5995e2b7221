"""`specstress bench rehearsal`: every stage of the demo pipeline at a fraction of the paper's scale.

The emulator runs in a process of its own with no latency and limits far above the work, so
each stage goes as fast as this machine lets specstress go: the rehearsal looks for a slow
parser, a whole-table read or a step that grows faster than its rows, which would otherwise
show only at paper scale, after days and dollars. The stages run one at a time, each measured
on its own: wall time, calls (rows the call store gained: a count outside the engine's own
figures), rows written, this process's peak memory (the driver: the emulator is elsewhere)
and the largest Ray worker's, and, for comparison, the stage's time at the demo accounts'
limits from `specstress estimate`.

Run at two sizes, it reports per stage how time and memory grew against the rows: a ratio
near 1 is linear; well above 1 is the kind of step this bench is here to find.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from jobs.bench.common import free_port, wait_for_port
from jobs.bench.process import in_fresh_process
from jobs.conf.loader import resolved_yaml
from jobs.conf.schema import RunConf
from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.engine.emulation import fill_throwaway_keys
from jobs.engine.rundir import default_cache
from jobs.estimate.estimate import estimate
from jobs.estimate.schedule import PARTS
from jobs.stages.settings.pipeline import BY_NAME

DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo.yaml"
PAPER_PAIRS = 150_000
SIZES = (1_500, 15_000)
"""Pairs: a hundredth and a tenth of the paper's 150,000."""
QUICK_SIZES = (20, 40)
UNLIMITED = {"rpm": 1e9, "input_tpm": 1e12, "output_tpm": 1e12}
SAMPLE_S = 0.2


def overrides(run_dir: str, port: int, pairs: int, taxonomy: tuple[str, str] | None) -> list[str]:
    """The demo config at `pairs` pairs, judged in the paper's scopes, on an emulator elsewhere
    with no latency and limits far above the work."""
    judges = max(10, pairs // 15)  # compliance draws in proportion: the paper's 1,000 at 15,000 pairs
    out = [
        f"run_dir={run_dir}",
        "budget_usd=null",  # emulated calls: the demo's cap guards a real spend
        f"emulator.port={port}",
        "emulator.enabled=false",
        f"stages.pairs.n_pairs={pairs}",
        "engine.num_clients=2",
        "stages.topics.scope=selected",
        "stages.topics.max_scenarios=null",
        "stages.refusals.scope=selected",
        "stages.refusals.max_scenarios=null",
        "stages.values.scope=selected",
        "stages.values.max_scenarios=null",
        f"stages.compliance.per_bin={judges}",
        f"stages.compliance.samples={{random: {judges}, high_all: {judges}, high_family: {judges}}}",
        "stages.compliance.models=[gpt_4_1,gpt_4_1_mini,gpt_4o,o3,o4_mini]",
        # The paper's scope: one spec, the OpenAI family (the demo judges two versions and two families).
        "stages.compliance.specs=null",
        "stages.compliance.families={openai: [gpt_4_1, gpt_4_1_mini, gpt_4o, o3, o4_mini]}",
        "stages.compliance.family_specs=null",
    ]
    if taxonomy is not None:
        out += [
            f"stages.pairs.taxonomy.tree={taxonomy[0]}",
            f"stages.pairs.taxonomy.frequencies={taxonomy[1]}",
        ]
    return out


def unlimited(conf: RunConf) -> list[str]:
    """Overrides that lift every account's limits (the client's and the emulator's) far above the
    work, and take the emulator's latency away."""
    out = ["emulator.latency_fixed_s=0", "emulator.latency_per_output_token_s=0"]
    for name in conf.accounts:
        out += [f"accounts.{name}.limits.{k}={v:g}" for k, v in UNLIMITED.items()]
        out.append(f"accounts.{name}.limits.max_in_flight=256")
    for env in conf.emulator.limits:
        out += [f"emulator.limits.{env}.{k}={v:g}" for k, v in UNLIMITED.items()]
    return out


@contextlib.contextmanager
def emulator_elsewhere(conf: RunConf) -> Iterator[None]:
    """The run's emulator (`specstress emulate`) in a process of its own, so the driver's memory is
    the driver's; the throwaway keys are set here first, and the child inherits them."""
    fill_throwaway_keys(conf)
    path = Path(conf.run_dir).with_suffix(".emulator.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(resolved_yaml(conf))
    port = str(conf.emulator.port)
    cmd = [sys.executable, "-m", "jobs.cli", "emulate", "--port", port, "--config", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(conf.emulator.port, timeout_s=120)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


class PeakSampler:
    """Peak RSS of this process and of its largest Ray worker, sampled every `SAMPLE_S` seconds."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.driver_mb = self.worker_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.driver_mb = max(self.driver_mb, self.me.memory_info().rss / 2**20)
        for p in self.me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if p.name().startswith("ray::"):
                    self.worker_mb = max(self.worker_mb, p.memory_info().rss / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self._sample()

    def __enter__(self) -> PeakSampler:
        self._sample()  # a stage shorter than one period is measured too
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@dataclass
class StageFigures:
    stage: str
    wall_s: float
    calls: int
    rows: int
    driver_peak_mb: float
    worker_peak_mb: float
    at_limits_s: float
    """The stage's time at the demo accounts' limits (`specstress estimate`)."""


def _stored(conf: RunConf) -> int:
    calls = Path(conf.cache_dir or default_cache(conf.run_dir)) / "calls"
    return pads.dataset(calls, format="parquet").count_rows() if calls.exists() else 0


def _rows(conf: RunConf, stage: str) -> int:
    tables = Path(conf.run_dir) / "tables"
    return sum(
        pq.read_metadata(tables / f"{t}.parquet").num_rows
        for t in BY_NAME[stage].writes
        if (tables / f"{t}.parquet").exists()
    )


def _at_limits(conf: RunConf) -> dict[str, float]:
    """Seconds per pipeline stage at the configured limits (its parts summed)."""
    wall = estimate(conf).wall_s
    return {s: sum(wall.get(p, 0.0) for p in PARTS.get(s, (s,))) for s in conf.pipeline}


def rehearse(pairs: int, taxonomy: tuple[str, str] | None, workdir: str) -> dict[str, Any]:
    """Every stage of the demo pipeline at `pairs` pairs, one stage at a time; figures per stage."""
    given = overrides(f"{workdir}/run-{pairs}", free_port(), pairs, taxonomy)
    limited = load_config(DEMO, given)
    at_limits = _at_limits(limited)
    conf = load_config(DEMO, [*given, *unlimited(limited)])
    figures = []
    with emulator_elsewhere(conf):
        for stage in conf.pipeline:
            before = _stored(conf)
            t0 = time.monotonic()
            with PeakSampler() as peak:
                run_pipeline(conf, stages=[stage])
            figures.append(
                StageFigures(
                    stage,
                    round(time.monotonic() - t0, 2),
                    _stored(conf) - before,
                    _rows(conf, stage),
                    round(peak.driver_mb),
                    round(peak.worker_mb),
                    round(at_limits.get(stage, 0.0), 1),
                )
            )
    return {"pairs": pairs, "stages": [asdict(f) for f in figures]}


def _rehearse_in_child(pairs: int, taxonomy: tuple[str, str] | None, workdir: str, conn: Connection) -> None:
    conn.send(rehearse(pairs, taxonomy, workdir))
    conn.close()


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per stage, how time and the driver's memory grew against its rows, from the small run to the
    large: (time ratio) / (rows ratio); near 1 is linear."""
    out: dict[str, dict[str, float | None]] = {}
    for a, b in zip(small["stages"], large["stages"], strict=True):
        rows = b["rows"] / a["rows"] if a["rows"] else None
        out[a["stage"]] = {
            "rows_ratio": round(rows, 2) if rows else None,
            "time_per_row_ratio": round(b["wall_s"] / a["wall_s"] / rows, 2)
            if rows and a["wall_s"]
            else None,
            "driver_mb_ratio": round(b["driver_peak_mb"] / a["driver_peak_mb"], 2)
            if a["driver_peak_mb"]
            else None,
        }
    return out


def run_rehearsal(
    *, quick: bool = False, sizes: Sequence[int] | None = None, taxonomy: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The rehearsal at each size (default a hundredth and a tenth of the paper), and the growth."""
    chosen = list(sizes or (QUICK_SIZES if quick else SIZES))
    with tempfile.TemporaryDirectory(prefix="specstress-rehearsal-") as tmp:
        # Each size in a fresh process (and its own local Ray), so its peaks are its own.
        runs = [in_fresh_process(_rehearse_in_child, n, taxonomy, tmp) for n in chosen]
    out: dict[str, Any] = {
        "taxonomy": "given" if taxonomy else "demo",
        "cpus": psutil.cpu_count(),
        "runs": runs,
    }
    if len(runs) >= 2:
        out["growth"] = growth(runs[0], runs[-1])
    return out


def format_rehearsal(result: dict[str, Any]) -> str:
    """The figures as a table per size, then the growth from the first size to the last."""
    out = []
    for run in result["runs"]:
        out.append(f"{run['pairs']:,} pairs ({result['taxonomy']} taxonomy, {result['cpus']} CPUs)")
        out.append(
            f"  {'stage':<13}{'wall s':>9}{'calls':>10}{'rows':>10}{'driver MB':>11}{'worker MB':>11}"
            f"{'at limits, min':>16}"
        )
        for f in run["stages"]:
            out.append(
                f"  {f['stage']:<13}{f['wall_s']:>9.1f}{f['calls']:>10,}{f['rows']:>10,}"
                f"{f['driver_peak_mb']:>11,.0f}{f['worker_peak_mb']:>11,.0f}{f['at_limits_s'] / 60:>16,.1f}"
            )
    if "growth" in result:
        out.append("growth, first size to last (time per row ratio: 1 is linear)")
        for stage, g in result["growth"].items():
            out.append(
                f"  {stage:<13} rows x{g['rows_ratio']}  time/row x{g['time_per_row_ratio']}  "
                f"driver MB x{g['driver_mb_ratio']}"
            )
    return "\n".join(out)
