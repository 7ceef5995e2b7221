"""What a stage sees of a run (`stage_context`), and the keyed settings its run directory keeps.

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
from jobs.stages.settings.keyed import keyed_settings
from jobs.stages.settings.pipeline import BY_NAME, STAGE_SPECS


def stage_context(
    conf: RunConf,
    name: str,
    run: RunDir,
    engine: Engine | None = None,
    previews: Mapping[str, pl.DataFrame] | None = None,
) -> StageContext[Any]:
    """What stage `name` sees of the run: its settings, the models, the run directory and the engine
    (none while planning, with the `previews` of tables not yet written)."""
    settings = getattr(conf.stages, name)
    return StageContext(
        settings=settings,
        models=model_views(conf),
        run=run,
        engine=engine,
        seed=conf.seed,
        cluster=conf.ray.address is not None,
        cache_root=conf.cache_dir or default_cache(conf.run_dir),
        previews=MappingProxyType(dict(previews or {})),
        consulted=MappingProxyType({s: getattr(conf.stages, s) for s in BY_NAME[name].consults(settings)}),
    )


def resolve_keyed(conf: RunConf, manifest: Manifest) -> dict[tuple[str, str], Any]:
    """Fill in, in place, each stage's keyed settings left unset (`jobs/stages/settings/keyed.py`):
    the value the stage last ran with in this run directory, the setting's `before` for a stage
    run by a release without it, its `fresh` value for a stage that never ran. They are part of
    every call key, so this is what keeps a resume from asking again what the store holds.

    Returns:
        (stage, setting) -> the value the stage last ran with, for the settings set explicitly to
        another one: the stage's calls in the store are not reused (`stored_first_round` counts them).
    """
    changed: dict[tuple[str, str], Any] = {}
    for st in STAGE_SPECS:
        settings = getattr(conf.stages, st.name)
        entry = manifest.data["stages"].get(st.name, {})
        ran = bool(entry.get("started_at"))
        for ks in keyed_settings(settings):
            recorded = entry.get(ks.name, ks.before)
            value = getattr(settings, ks.name)
            if value is None:
                setattr(settings, ks.name, recorded if ran else ks.fresh)
            elif ran and value != recorded:
                changed[(st.name, ks.name)] = recorded
    return changed


def keyed_record(conf: RunConf, name: str) -> dict[str, Any]:
    """What the manifest records of a stage's keyed settings when it starts (nothing for a stage
    without any)."""
    settings = getattr(conf.stages, name)
    return {ks.name: getattr(settings, ks.name) for ks in keyed_settings(settings)}
