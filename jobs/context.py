"""What a stage sees of a run (`stage_context`), and the `structured` modes its run directory keeps.

Apart from `jobs/config.py`, which loads a config without the stages' tables and run
directories; the driver and the estimate build each stage's context here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import polars as pl

from jobs.conf.schema import RunConf
from jobs.config import model_views
from jobs.engine.rundir import Manifest, RunDir, default_cache
from jobs.stages.base import Engine, StageContext
from jobs.stages.settings.pipeline import STAGE_SPECS
from jobs.stages.settings.structured import StructuredConf


def stage_context(
    conf: RunConf,
    name: str,
    run: RunDir,
    engine: Engine | None = None,
    previews: Mapping[str, pl.DataFrame] | None = None,
) -> StageContext[Any]:
    """What stage `name` sees of the run: its settings, the models, the run directory and the engine
    (none while planning, with the `previews` of tables not yet written)."""
    return StageContext(
        settings=getattr(conf.stages, name),
        models=model_views(conf),
        run=run,
        engine=engine,
        seed=conf.seed,
        cluster=conf.ray.address is not None,
        cache_root=conf.cache_dir or default_cache(conf.run_dir),
        previews=MappingProxyType(dict(previews or {})),
    )


def resolve_structured(conf: RunConf, manifest: Manifest) -> dict[str, str]:
    """Fill in, in place, each stage's `structured` left unset: the mode the stage last ran with in
    this run directory (`off` for a stage run by a release without the setting), `auto` for a
    stage that never ran. The schema is part of every call key, so this is what keeps a resume
    from asking again what the store holds.

    Returns:
        stage -> the mode it last ran with, for the stages set explicitly to another one: their
        calls in the store are not reused (`stored_first_round` counts them).
    """
    changed: dict[str, str] = {}
    for st in STAGE_SPECS:
        settings = getattr(conf.stages, st.name)
        if not isinstance(settings, StructuredConf):
            continue
        entry = manifest.data["stages"].get(st.name, {})
        recorded = entry.get("structured", "off") if entry.get("started_at") else None
        if settings.structured is None:
            settings.structured = recorded or "auto"
        elif recorded is not None and settings.structured != recorded:
            changed[st.name] = recorded
    return changed


def structured_record(conf: RunConf, name: str) -> dict[str, str]:
    """What the manifest records of a stage's `structured` mode when it starts (nothing for a
    stage without the setting)."""
    settings = getattr(conf.stages, name)
    if isinstance(settings, StructuredConf) and settings.structured is not None:
        return {"structured": settings.structured}
    return {}
