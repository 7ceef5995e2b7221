"""The driver: open the run directory, start Ray (and the emulator if configured), run the stages.

Every stage reads tables and writes one; calling stages go through the `Engine`. Running
the same config again resumes: finished calls come from the store and cost nothing.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import subprocess
import sys
from typing import Any

from actors.errors import BudgetExceeded, CallsFailed, ConfigError, Interrupted
from actors.store import CallStore
from jobs.conf.loader import missing_keys, resolved_yaml
from jobs.conf.schema import RunConf
from jobs.config import model_views
from jobs.context import keyed_record, resolve_keyed, stage_context
from jobs.engine.budget import Budget
from jobs.engine.drain import on_signals, raise_interrupted
from jobs.engine.emulation import emulator_for
from jobs.engine.engine import Engine
from jobs.engine.rundir import Manifest, RunDir, default_cache, now_iso
from jobs.estimate.estimate import estimate
from jobs.estimate.requests import stored_first_round
from jobs.stages.registry import STAGES
from jobs.stages.settings.pipeline import BY_NAME, check_stages
from jobs.stages.unusable import NothingValid

log = logging.getLogger("specstress")


@functools.cache
def start_reaper() -> subprocess.Popen[bytes]:
    """Start `jobs/reaper.py` on this process, once: it ends the local Ray's processes after we die.

    In a session of its own, so that a kill of our process group does not take it too.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "jobs.reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_ray(conf: RunConf) -> None:
    import ray

    if ray.is_initialized():
        return
    if conf.ray.address is None:
        start_reaper()
        # A local Ray on loopback, without the token auth a cluster should keep (DESIGN.md).
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(
            address="local",  # always a fresh local instance, never a stray one found on this machine
            num_cpus=conf.ray.num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    else:
        ray.init(address=conf.ray.address, logging_level=logging.WARNING)


RESUMABLE = ("interrupted", "stopped")
"""Run states after a clean stop: everything paid is stored and the same command resumes."""


def stop_state(exc: BaseException) -> str:
    """The manifest state a run ends in when a stage raises `exc`."""
    if isinstance(exc, Interrupted | KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, BudgetExceeded):
        return "stopped"
    return "failed"


def resumable(exc: BaseException) -> bool:
    """Whether the same command resumes a run a stage ended with `exc`: after a clean stop, or
    after calls that failed for a cause fixed outside the run (a key, a model id)."""
    return stop_state(exc) in RESUMABLE or isinstance(exc, CallsFailed)


def refuse_over_budget(conf: RunConf, store: CallStore, run_id: str) -> None:
    """Refuse to start when this run's spend plus the estimate of the calls still to make passes
    `budget_usd`. The estimate errs high on generations (every one is assumed kept) but, until the
    diversity stage has run, expects the paper's kept share to be answered; the engine's check
    before each stage and its running spend remain the exact guards."""
    if conf.budget_usd is None:
        return
    Budget(conf.budget_usd).refuse_over(
        spent_usd=store.spent_usd(run_id), to_make_usd=sum(estimate(conf).cost.values())
    )


def refuse_imported(manifest: Manifest, names: list[str]) -> None:
    """Refuse to run a stage whose tables came from `specstress import`: its calls are in no store
    of ours, so running it would pay for all of them (every response of the dataset) again."""
    imported = [n for n in names if manifest.data["stages"].get(n, {}).get("imported_from")]
    if imported:
        source = manifest.data["stages"][imported[0]]["imported_from"]
        raise ConfigError(
            f"config key 'pipeline': stage(s) {imported} were imported from {source}; leave them out "
            "(running them would pay for their calls again) and run the stages after them"
        )


def warn_keyed_changes(
    conf: RunConf, run: RunDir, store: CallStore, changed: dict[tuple[str, str], Any]
) -> None:
    """Say, for each keyed setting (`structured`, `cite_sections`) set to other than what its stage's
    calls in this run were made with, how many stored answers the change leaves unused: its calls
    are asked again."""
    if not changed:
        return
    answered = store.answered_keys()
    for (name, key), recorded in changed.items():
        log.warning(
            "stages.%s.%s=%s: this run's %s calls were made with %s=%s; the change alters their keys, "
            "so %d stored first-round answers are not reused and are paid again "
            "(`specstress estimate` prices it; set stages.%s.%s=%s to keep them)",
            name,
            key,
            getattr(getattr(conf.stages, name), key),
            name,
            key,
            recorded,
            stored_first_round(run, name, answered),
            name,
            key,
            recorded,
        )


def models_named(conf: RunConf, names: list[str]) -> list[str]:
    """The model keys the settings of stages `names` name (the registry may hold many more)."""
    named = {m for n in names for keys in BY_NAME[n].models(getattr(conf.stages, n)).values() for m in keys}
    return sorted(named)


def blocked_by(conf: RunConf, name: str, skipped: dict[str, str]) -> tuple[str, str] | None:
    """(why, the stage at the root of it) when stage `name` cannot run this session: a table it
    reads was not written because a stage found nothing valid upstream (an older copy from an
    earlier session would be stale); None if it can run. `skipped`: table -> that root stage."""
    reads = BY_NAME[name].tables_read(getattr(conf.stages, name))
    by_root: dict[str, list[str]] = {}
    for t in reads:
        if t in skipped:
            by_root.setdefault(skipped[t], []).append(f"'{t}'")
    if not by_root:
        return None
    why = "; ".join(
        f"it reads {', '.join(tables)}, not written this session: stage '{root}' found nothing valid upstream"
        for root, tables in by_root.items()
    )
    return why, next(iter(by_root))


def skipped_stages(run_dir: str) -> dict[str, str]:
    """Stage -> why it was skipped, for the stages of the run's last session that were."""
    manifest = Manifest(RunDir.open(run_dir).root)
    last = (manifest.data.get("sessions") or [{}])[-1].get("stages") or []
    stages = manifest.data.get("stages", {})
    return {n: stages[n]["skipped"] for n in last if stages.get(n, {}).get("state") == "skipped"}


def run_pipeline(conf: RunConf, *, stages: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run `stages` (default: `conf.pipeline`) and return the summary of each stage that ran.

    A stage that finds nothing valid upstream (`NothingValid`) is recorded as skipped with its
    reason, and so is every stage that reads a table it did not write; the other stages run,
    and the run ends `partial` (`skipped_stages` says which and why)."""
    names = stages if stages is not None else list(conf.pipeline)
    if stages is not None:
        check_stages(conf.stages, names, model_views(conf))
    run = RunDir.open(conf.run_dir)
    manifest = Manifest(run.root)
    refuse_imported(manifest, names)
    store = CallStore(conf.cache_dir or default_cache(conf.run_dir))
    warn_keyed_changes(conf, run, store, resolve_keyed(conf, manifest))
    run.root.write_text("config.yaml", resolved_yaml(conf))
    refuse_over_budget(conf, store, manifest.run_id)
    # pid and host let `specstress status` tell a live run from a killed one.
    session = {"started_at": now_iso(), "stages": names, "pid": os.getpid(), "host": socket.gethostname()}
    manifest.data["sessions"].append(session)
    manifest.data.update(state="running", resumable=False)
    manifest.save()
    summaries: dict[str, dict[str, Any]] = {}
    with emulator_for(conf):
        absent = missing_keys(conf, models_named(conf, names))
        if absent:
            log.warning("API-key variables not set: %s; calls to those models will fail", ", ".join(absent))
        start_ray(conf)
        engine = Engine(conf, run, manifest, store)
        skipped: dict[str, str] = {}  # table not written this session -> the stage that found nothing valid
        try:
            with on_signals(raise_interrupted):
                for name in names:
                    manifest.set_stage(
                        name,
                        state="running",
                        started_at=now_iso(),
                        skipped=None,
                        **keyed_record(conf, name),
                    )
                    blocked = blocked_by(conf, name, skipped)
                    root = blocked[1] if blocked else name
                    try:
                        if blocked:
                            raise NothingValid(blocked[0])
                        summary = STAGES[name].run(stage_context(conf, name, run, engine))
                    except NothingValid as exc:
                        log.warning("stage %s skipped: %s", name, exc)
                        manifest.set_stage(
                            name, state="skipped", finished_at=now_iso(), skipped=str(exc), error=None
                        )
                        skipped.update(dict.fromkeys(BY_NAME[name].writes, root))
                        continue
                    except BaseException as exc:
                        state = stop_state(exc)
                        manifest.data.update(state=state, resumable=resumable(exc))
                        manifest.set_stage(name, state=state, error=f"{type(exc).__name__}: {exc}")
                        raise
                    manifest.set_stage(name, state="done", finished_at=now_iso(), summary=summary, error=None)
                    summaries[name] = summary
            manifest.data.update(state="partial" if skipped else "done", resumable=False)
        finally:
            engine.close()
            session["ended_at"] = now_iso()
            manifest.save()
    return summaries
