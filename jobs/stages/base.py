"""The shape every stage has: a `Stage` record, the narrow context it runs in, and its plan.

A stage declares its name, its settings record (config section `stages.<name>`), the tables
it reads and writes, and two functions: `plan(ctx)` builds the requests it would send first,
from the input tables present, without sending anything; `run(ctx)` does the work. The run
sends exactly what `plan` builds and `specstress estimate` prices exactly that, so the two
cannot drift apart.

A stage sees only its own settings, a read-only view of the models of the registry, the
run directory and the engine it hands its requests to: never the whole run config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import polars as pl

from actors.errors import ConfigError
from actors.store import CallStore
from actors.types import Prices
from jobs.engine.engine import StageCalls
from jobs.engine.rundir import RunDir
from jobs.stages.tables import read_table

S = TypeVar("S")

Plan = dict[str, Iterator[pl.DataFrame]]
"""Requests-table name -> the chunks of requests (model, spec and the stage's id columns) the
stage would write there. A table whose inputs do not exist yet is absent."""


@dataclass(frozen=True)
class ModelView:
    """What a stage may know of a model key: which model it is, its defaults and prices (never its API key)."""

    key: str
    provider: str
    model_id: str
    base_url: str
    params: Mapping[str, Any]
    """The registry's default generation parameters (read-only)."""
    prices: Prices
    emulated: bool = False
    """Whether its base URL points at the run's provider emulator (a stand-in, not a real model)."""


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

    def table(self, name: str) -> pl.DataFrame:
        """A whole input table: written by an earlier stage, or previewed for an estimate."""
        if name in self.previews:
            return self.previews[name]
        return read_table(self.run, name)


def no_plan(ctx: StageContext[Any]) -> Plan:
    """The plan of a stage that makes no calls."""
    return {}


def no_models(settings: Any) -> dict[str, list[str]]:
    """The model keys of a stage that names none."""
    return {}


def no_check(settings: Any, models: Mapping[str, ModelView]) -> None:
    """A stage whose settings its record's types check fully."""


def no_inherit(settings: Any, stages: Any) -> None:
    """A stage whose defaults are its own."""


def no_reads(settings: Any) -> dict[str, str]:
    """A stage whose settings add no table to those it always reads."""
    return {}


@dataclass(frozen=True)
class Stage(Generic[S]):
    """One pipeline stage: what it is called, what it reads, writes and sends, and its entry points."""

    name: str
    settings: type[S]
    """Its settings record, the config section `stages.<name>`."""
    reads: tuple[str, ...]
    """The tables it reads whatever its settings."""
    writes: tuple[str, ...]
    run: Callable[[StageContext[S]], dict[str, Any]]
    plan: Callable[[StageContext[S]], Plan] = no_plan
    models: Callable[[S], dict[str, list[str]]] = no_models
    """Config key (under `stages.<name>.`) -> the model keys it names; checked against `models` at load."""
    check: Callable[[S, Mapping[str, ModelView]], None] = no_check
    """Semantic checks of the settings at load, raising `ConfigError` naming the key."""
    inherit: Callable[[S, Any], None] = no_inherit
    """Fills, in place and at load, the settings left None whose default is another stage's
    (the judged models default to the sweep); gets every stage's settings."""
    preview: Callable[[StageContext[S]], dict[str, pl.DataFrame]] | None = None
    """For a stage without calls whose tables follow from config alone: those tables, in memory."""
    reads_when: Callable[[S], dict[str, str]] = no_reads
    """The tables its settings make it read too: table -> the setting (under `stages.<name>.`)
    that does (responses read `diversity` with `scope: diverse`)."""

    def tables_read(self, settings: S) -> dict[str, str | None]:
        """Every table the stage reads under `settings` -> the setting that makes it read it, if any."""
        return {**dict.fromkeys(self.reads), **self.reads_when(settings)}
