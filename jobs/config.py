"""`load_config`: a run's config, with the stages' sections typed, defaulted and checked by their specs.

The config layer (`jobs/conf/`) knows no stage, and no stage knows the run's config: this
module is where the two meet, so every error names its key before anything starts. It takes
the stages' specs (`jobs/stages/settings/`), not the stages, so loading imports no table,
numeric or HTTP library and a config error comes back at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from jobs.conf.loader import read_config
from jobs.conf.schema import RunConf
from jobs.stages.settings.base import ModelView
from jobs.stages.settings.pipeline import StagesConf, check_stages


def model_views(conf: RunConf) -> Mapping[str, ModelView]:
    """The registry's models as stages see them: read-only, without limits or API-key names."""
    return MappingProxyType(
        {
            key: ModelView(
                key=key,
                provider=m.provider,
                model_id=m.model_id,
                base_url=m.base_url,
                params=MappingProxyType(dict(m.params)),
                prices=m.prices,
                emulated=m.base_url.startswith(conf.emulator.url),
            )
            for key, m in conf.models.items()
        }
    )


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConf:
    """Load, merge overrides (`key=value`), validate. Raises `ConfigError` naming the bad key."""
    conf = read_config(path, overrides, stages=StagesConf)
    check_stages(conf.stages, list(conf.pipeline), model_views(conf))
    return conf
