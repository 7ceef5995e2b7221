"""The shape of a stage at load time: its `StageSpec`, and the `ModelView` its checks see.

A stage declares its name, its settings record (config section `stages.<name>`), the tables it
reads and writes, and the functions loading a config calls: the model keys its settings name,
its checks, the settings it takes from other stages. Its entry points (`jobs.stages.base.Stage`)
hold this spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors.types import Prices

S = TypeVar("S")


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


def no_models(settings: Any) -> dict[str, list[str]]:
    """The model keys of a stage that names none."""
    return {}


def no_check(settings: Any, models: Mapping[str, ModelView]) -> None:
    """A stage whose settings its record's types check fully."""


def no_inherit(settings: Any, stages: Any) -> None:
    """A stage whose defaults are its own."""


def no_consults(settings: Any) -> tuple[str, ...]:
    """A stage that needs no other stage's settings to run."""
    return ()


def no_reads(settings: Any) -> dict[str, str]:
    """A stage whose settings add no table to those it always reads."""
    return {}


@dataclass(frozen=True)
class StageSpec(Generic[S]):
    """One pipeline stage as loading a config sees it: its name, settings, tables and load-time checks."""

    name: str
    settings: type[S]
    """Its settings record, the config section `stages.<name>`."""
    reads: tuple[str, ...]
    """The tables it reads whatever its settings."""
    writes: tuple[str, ...]
    models: Callable[[S], dict[str, list[str]]] = no_models
    """Config key (under `stages.<name>.`) -> the model keys it names; checked against `models` at load."""
    check: Callable[[S, Mapping[str, ModelView]], None] = no_check
    """Semantic checks of the settings at load, raising `ConfigError` naming the key."""
    inherit: Callable[[S, Any], None] = no_inherit
    """Fills, in place and at load, the settings left None whose default is another stage's
    (the judged models default to the sweep); gets every stage's settings."""
    reads_when: Callable[[S], dict[str, str]] = no_reads
    """The tables its settings make it read too: table -> the setting (under `stages.<name>.`)
    that does (responses read `diversity` with `scope: diverse`)."""
    consults: Callable[[S], tuple[str, ...]] = no_consults
    """The other stages whose settings its settings make it use (committee mode scores the committee
    as the scores stage does); only those reach its context."""

    def tables_read(self, settings: S) -> dict[str, str | None]:
        """Every table the stage reads under `settings` -> the setting that makes it read it, if any."""
        return {**dict.fromkeys(self.reads), **self.reads_when(settings)}
