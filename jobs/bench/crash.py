"""`specstress bench crash`: kill a run mid-stage, resume it, and count what was paid twice (issue #16).

The witness is `counter.py`, an OpenAI-compatible server in its own process that counts every
answered request body, so the figures do not come from the engine's own bookkeeping.

- Whole run killed: a driver process (`python -m jobs.bench.crash _drive`, its own process
  group, local Ray included) runs two stages through the engine: `queries`, small, then
  `responses`. Two accounts with `max_in_flight` 64 each put at most 128 calls on the wire.
  The bench SIGKILLs the whole run K times (the group and every descendant recorded just
  before: Ray's workers move to process groups of their own, so the group alone misses
  them), each at a seeded point of the `responses` stage's progress at the server, and
  resumes it each time; a last session finishes it. It then checks the call store (one ok
  row per request), the server (calls answered more than once, which a kill may cause only
  for calls on the wire: at most 128 a kill) and the manifest (`interrupted`: how many calls
  the run says may have been paid twice, and under which stage; every kill lands in
  `responses`, while `queries` runs first in each session).
- Driver only killed: a fresh run; the bench SIGKILLs the driver process alone, mid-stage,
  then counts requests that reach the server more than 1 s later and the driver's recorded
  descendants (Ray's processes, the client actors) still alive 10 s later; then it kills
  whatever is left.

The engine's settings are the defaults but for the batch size: answers are buffered up to
`engine.flush_s` (10 s) before a shard is written, as in the user's run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from actors.store import CallStore
from jobs.bench.common import get_json, openai_model, request_chunks
from jobs.bench.counter import counter_process

MODELS = {"crash_a": "gpt-4.1-mini", "crash_b": "gpt-4.1-nano"}
"""Two model keys, each on its own account (its own key variable)."""
MAX_IN_FLIGHT = 64
CAP = MAX_IN_FLIGHT * len(MODELS)
"""Most calls on the wire at once, over both accounts: the most one kill can leave paid and unstored."""
RUNNING_STAGE = "responses"
"""The stage every kill lands in; `queries` (a twentieth of its size) runs before it in every session."""
REPORTED = "may_be_paid_twice"
"""The figure each `manifest["interrupted"]` entry gives."""
CONFIG = "crash.json"
LATENCY_S = (0.6, 2.0)
OBSERVE_S = 10.0
"""Seconds the driver-only phase watches after the kill."""


def _key_env(model: str) -> str:
    return f"SPECSTRESS_CRASH_KEY_{model.upper()}"


def _stages(calls: int) -> dict[str, int]:
    return {"queries": max(calls // 20, 1), RUNNING_STAGE: calls}


def _config(url: str, workdir: Path, address: str | None) -> str:
    models = {
        m: openai_model(url, _key_env(m), mid, {"max_in_flight": MAX_IN_FLIGHT}) for m, mid in MODELS.items()
    }
    return json.dumps(
        {
            "run_dir": str(workdir / "run"),
            "cache_dir": str(workdir / "cache"),
            "engine": {"num_clients": 2, "batch_size": 16},
            "models": models,
            "ray": {"address": address},
        }
    )


def _drive(workdir: Path, calls: int) -> None:
    """One session: both stages through the engine on the same requests every time, so keys match."""
    from jobs.config import load_config
    from jobs.driver import start_ray
    from jobs.engine.engine import Engine
    from jobs.engine.rundir import Manifest, RunDir

    conf = load_config(workdir / CONFIG)
    start_ray(conf)
    run = RunDir.open(conf.run_dir)
    engine = Engine(conf, run, Manifest(run.root), CallStore(str(conf.cache_dir)))
    try:
        for stage, n in _stages(calls).items():
            engine.run(stage, engine.write_requests(stage, request_chunks(n, stage, list(MODELS))))
    finally:
        engine.close()


@dataclass
class Session:
    """One driver process, in a process group of its own: a kill of it never reaches the bench."""

    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    def failure(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace")[-3000:]
        return RuntimeError(
            f"crash bench: {what} (driver exit code {self.proc.poll()}); its log ends:\n{tail}"
        )

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []

    def outside_group(self, procs: list[psutil.Process]) -> int:
        """How many of `procs` left the driver's process group (Ray's workers take groups of their own)."""
        groups = []
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                groups.append(os.getpgid(p.pid))
        return sum(1 for g in groups if g != self.proc.pid)

    def kill_tree(self, procs: list[psutil.Process]) -> None:
        """SIGKILL the driver's process group and `procs` (its descendants, recorded before), then reap."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _kill_all(procs)
        self.proc.wait(30)


@contextlib.contextmanager
def _session(workdir: Path, calls: int, n: int) -> Iterator[Session]:
    """Start session `n` of the run in `workdir`; whatever happens, nothing of it outlives the block."""
    log = workdir / f"driver-{n}.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.bench.crash", "_drive", str(workdir), str(calls)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    session = Session(proc, log)
    try:
        yield session
    finally:
        session.kill_tree(session.descendants())


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes still running (zombies, dead but not yet reaped, do not count)."""
    out = []
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
    return out


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.NoSuchProcess:
        return "(gone)"


def _kill_all(procs: list[psutil.Process]) -> None:
    for p in _alive(procs):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(procs, timeout=10)


def _wait_until_answered(url: str, session: Session, stage_offset: int, target: int) -> dict[str, Any]:
    """Poll the server until `target` distinct bodies of the running stage were answered; its summary then."""
    deadline = time.monotonic() + 600
    while True:
        summary = get_json(f"{url}/_counts?summary=1")
        if summary["distinct"] - stage_offset >= target:
            return summary
        if session.proc.poll() is not None:
            raise session.failure(
                f"the driver ended before {target} calls of '{RUNNING_STAGE}' were answered"
            )
        if time.monotonic() > deadline:
            raise session.failure(f"no {target} calls of '{RUNNING_STAGE}' answered within 600 s")
        time.sleep(0.1)


def _settled_counts(url: str) -> dict[str, Any]:
    """The server's counts once it has finished (and billed) every call it was working on."""
    deadline = time.monotonic() + 60
    while (counts := get_json(f"{url}/_counts"))["in_progress"]:
        if time.monotonic() > deadline:
            raise RuntimeError("crash bench: the server is still answering 60 s after the run ended")
        time.sleep(0.1)
    return dict(counts)


def kill_targets(kills: int, calls: int, rng: random.Random) -> list[int]:
    """Progress points (answered calls of the running stage) for each kill: one in each of `kills`
    equal slots of 10%..90% of the stage, in the slot's middle half, so each session makes progress."""
    slot = 0.8 / kills
    return [int(calls * (0.1 + slot * (k + 0.25 + 0.5 * rng.random()))) for k in range(kills)]


def repeats_by_kill(snapshots: list[dict[str, int]]) -> tuple[list[int], int]:
    """Repeat answers per kill, and within sessions, from per-body counts taken after each session.

    A body answered again in a later session was lost by the kill that ended the last session
    that had answered it: that kill is charged. Answers beyond one within a session are not a
    kill's doing. The two add up to the server's duplicates.
    """
    per_kill = [0] * (len(snapshots) - 1)
    within = 0
    last: dict[str, int] = {}
    before: dict[str, int] = {}
    for n, snap in enumerate(snapshots):
        for body, count in snap.items():
            new = count - before.get(body, 0)
            if new <= 0:
                continue
            if body in last:
                per_kill[last[body]] += 1
            within += new - 1
            last[body] = n
        before = snap
    return per_kill, within


def _interrupted(workdir: Path) -> list[dict[str, Any]]:
    path = workdir / "run" / "manifest.json"
    return list(json.loads(path.read_text()).get("interrupted", [])) if path.exists() else []


def _new_entries(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries in `after` and not in `before` (compared as JSON, duplicates counted)."""
    old = Counter(json.dumps(e, sort_keys=True) for e in before)
    out = []
    for entry in after:
        text = json.dumps(entry, sort_keys=True)
        if old[text]:
            old[text] -= 1
        else:
            out.append(entry)
    return out


def _rows_per_key(workdir: Path) -> dict[str, Any]:
    """Whether every request has exactly one ok row in the call store."""
    requests = pl.concat(
        pl.read_parquet(p, columns=["key"]) for p in (workdir / "run" / "requests").glob("*.parquet")
    )
    ok = CallStore(str(workdir / "cache")).scan(["key", "status"]).filter(pl.col("status") == "ok").collect()
    per_key = requests.join(ok.group_by("key").len(), on="key", how="left").fill_null(0)
    missing = int((per_key["len"] == 0).sum())
    extra = int((per_key["len"] - 1).clip(lower_bound=0).sum())
    return {"rows_per_key_ok": missing == 0 and extra == 0, "keys_missing": missing, "rows_duplicated": extra}


@contextlib.contextmanager
def _workdir(url: str, address: str | None) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="specstress-crash-") as tmp:
        workdir = Path(tmp)
        (workdir / CONFIG).write_text(_config(url, workdir, address))
        yield workdir


def whole_run_killed(calls: int, kills: int, seed: int, address: str | None = None) -> dict[str, Any]:
    """SIGKILL the whole run `kills` times mid-stage, resume it to the end, and count."""
    rng = random.Random(seed)
    offset = _stages(calls)["queries"]
    per_kill: list[dict[str, Any]] = []
    snapshots: list[dict[str, int]] = []
    entries: list[list[dict[str, Any]]] = []
    t0 = time.monotonic()
    with counter_process(*LATENCY_S, seed=seed) as url, _workdir(url, address) as workdir:
        for n, target in enumerate(kill_targets(kills, calls, rng)):
            with _session(workdir, calls, n) as session:
                at = _wait_until_answered(url, session, offset, target)
                procs = session.descendants()
                outside = session.outside_group(procs)
                session.kill_tree(procs)
            per_kill.append(
                {
                    "after_s": round(time.monotonic() - session.started, 1),
                    "answered_before_kill": at["distinct"] - offset,
                    "on_wire_at_kill": at["in_progress"],
                    "processes_killed": len(procs) + 1,
                    "outside_driver_group": outside,
                }
            )
            snapshots.append(_settled_counts(url)["answered"])
            entries.append(_interrupted(workdir))
        with _session(workdir, calls, kills) as final:
            if final.proc.wait(900) != 0:
                raise final.failure("the last session did not finish")
        counts = _settled_counts(url)
        snapshots.append(counts["answered"])
        entries.append(_interrupted(workdir))
        rows = _rows_per_key(workdir)
    charged, within = repeats_by_kill(snapshots)
    # What session k + 1 added to the manifest reports kill k (whether it keeps older entries or not).
    new = [_new_entries(entries[k], entries[k + 1]) for k in range(kills)]
    for k, item in enumerate(per_kill):
        item["server_duplicates"] = charged[k]
        item["reported"] = sum(e.get(REPORTED, 0) for e in new[k])
    duplicates = sum(n - 1 for n in counts["answered"].values())
    reported = sum(item["reported"] for item in per_kill)
    return {
        "calls": sum(_stages(calls).values()),
        "stage_calls": _stages(calls),
        "kills": kills,
        **rows,
        "server_answered_distinct": counts["distinct"],
        "server_duplicates": duplicates,
        "server_duplicates_within_sessions": within,
        "reported": reported,
        "reported_stages": sorted({str(e.get("stage")) for part in new for e in part}),
        "running_stage": RUNNING_STAGE,
        "per_kill": per_kill,
        "max_on_wire": counts["max_in_progress"],
        "median_rps": statistics.median(Counter(int(t) for t in counts["arrivals"]).values()),
        "cap": CAP,
        "duplicates_per_kill_cap": duplicates / (kills * CAP),
        "reported_per_duplicate": reported / duplicates if duplicates else None,
        "seconds": round(time.monotonic() - t0, 1),
    }


def driver_only_killed(calls: int, seed: int, address: str | None = None) -> dict[str, Any]:
    """SIGKILL the driver alone mid-stage; what its clients send after, and what is left of its processes."""
    offset = _stages(calls)["queries"]
    with (
        counter_process(*LATENCY_S, seed=seed) as url,
        _workdir(url, address) as workdir,
        _session(workdir, calls, 0) as session,
    ):
        _wait_until_answered(url, session, offset, int(calls * random.Random(seed).uniform(0.3, 0.5)))
        procs = session.descendants()
        killed_at = time.time()
        session.proc.kill()  # the driver's pid only, not its group
        session.proc.wait(30)
        time.sleep(max(0.0, killed_at + OBSERVE_S - time.time()))
        alive = _alive(procs)
        names = sorted({_name(p) for p in alive})
        arrivals = get_json(f"{url}/_counts")["arrivals"]
        session.kill_tree(procs)
    after = [t - killed_at for t in arrivals if t > killed_at]
    return {
        "descendants": len(procs),
        "requests_after_kill": len(after),
        "requests_after_kill_1s": sum(1 for s in after if s > 1.0),
        "last_arrival_after_kill_s": round(max(after), 2) if after else None,
        "processes_alive_after_10s": len(alive),
        "alive_after_10s": names,
        "observed_s": OBSERVE_S,
    }


def run_crash_bench(*, quick: bool = False, seed: int = 0, address: str | None = None) -> dict[str, Any]:
    """Both phases; `quick` runs 1,500 calls and 2 kills instead of 8,000 and 5. With `address`
    the drivers join that Ray cluster (its nodes must see this machine's temporary directory,
    as the nodes of a one-machine test cluster do); otherwise each starts a local Ray."""
    calls, kills = (1_500, 2) if quick else (8_000, 5)
    for model in MODELS:
        os.environ.setdefault(_key_env(model), "crash-" + os.urandom(8).hex())
    t0 = time.monotonic()
    return {
        "whole_run_killed": whole_run_killed(calls, kills, seed, address),
        "driver_killed": driver_only_killed(calls, seed, address),
        "ray_address": address,
        "latency_s": list(LATENCY_S),
        "bench_seconds": round(time.monotonic() - t0, 1),
        "cpu_count": os.cpu_count(),
        "quick": quick,
    }


def format_crash(result: dict[str, Any]) -> str:
    """A short table of the figures that #16 bounds."""
    w, d = result["whole_run_killed"], result["driver_killed"]
    cap = w["kills"] * w["cap"]
    lines = [
        f"whole run killed {w['kills']} times, {w['calls']} calls ({w['seconds']} s)",
        f"  rows exactly once per request    {w['rows_per_key_ok']} (missing {w['keys_missing']}, duplicated {w['rows_duplicated']})",
        f"  paid twice, counted at server    {w['server_duplicates']} (bound: kills x cap = {cap})",
        f"  reported may be paid twice       {w['reported']} under {', '.join(w['reported_stages']) or '-'} (running: {w['running_stage']})",
        f"  most on the wire at once         {w['max_on_wire']} (cap {w['cap']}; median {w['median_rps']} requests/s)",
    ]
    for k, item in enumerate(w["per_kill"], 1):
        lines.append(
            f"  kill {k}: {item['after_s']} s in, {item['on_wire_at_kill']} on the wire, "
            f"{item['server_duplicates']} paid twice, {item['reported']} reported"
        )
    lines += [
        "driver alone killed",
        f"  requests > 1 s after the kill    {d['requests_after_kill_1s']} (last {d['last_arrival_after_kill_s']} s after)",
        f"  processes alive 10 s after       {d['processes_alive_after_10s']} of {d['descendants']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_drive":
        _drive(Path(sys.argv[2]), int(sys.argv[3]))
