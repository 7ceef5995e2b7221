"""The shape every stage has: a `Stage` record, the narrow context it runs in, and its plan.

A stage's `StageSpec` (`jobs/stages/settings/`) declares its name, settings record (config
section `stages.<name>`), tables and load-time checks; its `Stage` adds two functions:
`plan(ctx)` builds the requests it would send first, from the input tables present, without
sending anything; `run(ctx)` does the work. The run sends exactly what `plan` builds and
`specstress estimate` prices exactly that, so the two cannot drift apart.

A stage sees only its own settings (and those of the stages its spec says it consults), a
read-only view of the models of the registry, the run directory and the engine it hands its
requests to: never the whole run config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import polars as pl

from actors.errors import ConfigError
from actors.store import CallStore
from jobs.engine.engine import StageCalls
from jobs.engine.rundir import RunDir
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.tables import read_table

S = TypeVar("S")

Plan = dict[str, Iterator[pl.DataFrame]]
"""Requests-table name -> the chunks of requests (model, spec and the stage's id columns) the
stage would write there. A table whose inputs do not exist yet is absent."""


class Engine(Protocol):
    """The part of the fan-out engine a stage uses: hand over requests, get the answers back."""

    store: CallStore

    def check_models(self, models: Iterable[str]) -> None: ...

    def write_requests(self, stage: str, chunks: Iterable[pl.DataFrame]) -> str: ...

    def run(self, stage: str, requests_path: str) -> StageCalls: ...

    def results(self, requests_path: str, columns: list[str]) -> pl.LazyFrame: ...


@dataclass(frozen=True)
class StageContext(Generic[S]):
    """What a stage gets: its settings, the models, the run directory, the engine and the run's seed."""

    settings: S
    models: Mapping[str, ModelView]
    run: RunDir
    engine: Engine | None
    """None while planning: a plan never calls."""
    seed: int = 0
    cluster: bool = False
    """Whether the run joined a Ray cluster by address (a stage may wait for an autoscaled node)."""
    cache_root: str = ""
    """Root of the run's caches (the call store's parent): caches a stage keeps go under it."""
    previews: Mapping[str, pl.DataFrame] = field(default_factory=lambda: MappingProxyType({}))
    """Tables not yet written that stages without calls compute from config alone (estimates only)."""
    consulted: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """The settings of the other stages its spec's `consults` names, by stage name."""

    @property
    def calls(self) -> Engine:
        """The engine; planning contexts have none, and a plan that asks for it is a bug."""
        if self.engine is None:
            raise RuntimeError("this context only plans: it has no engine to call")
        return self.engine

    def model(self, key: str) -> ModelView:
        if key not in self.models:
            raise ConfigError(f"unknown model key '{key}' (known: {sorted(self.models)})")
        return self.models[key]

    def settings_of(self, stage: str) -> Any:
        """Another stage's settings, which this stage's spec says it consults."""
        if stage not in self.consulted:
            raise RuntimeError(f"this stage does not consult stage '{stage}' (its spec's `consults`)")
        return self.consulted[stage]

    def table(self, name: str) -> pl.DataFrame:
        """A whole input table: written by an earlier stage, or previewed for an estimate."""
        if name in self.previews:
            return self.previews[name]
        return read_table(self.run, name)


def no_plan(ctx: StageContext[Any]) -> Plan:
    """The plan of a stage that makes no calls."""
    return {}


@dataclass(frozen=True)
class Stage(Generic[S]):
    """One pipeline stage's entry points, beside the spec that loading a config reads."""

    spec: StageSpec[S]
    """Its name, settings record, tables and load-time checks (`jobs/stages/settings/`)."""
    run: Callable[[StageContext[S]], dict[str, Any]]
    plan: Callable[[StageContext[S]], Plan] = no_plan
    preview: Callable[[StageContext[S]], dict[str, pl.DataFrame]] | None = None
    """For a stage without calls whose tables follow from config alone: those tables, in memory."""
