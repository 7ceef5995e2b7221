"""What a report reads from a run directory: manifest, resolved config, stage tables, call store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import yaml

from actors.errors import SpecstressError
from actors.storage import Location
from actors.store import CallStore
from jobs.engine.rundir import MANIFEST, RunDir, default_cache
from jobs.stages.settings.compliance import ACROSS_VERSIONS, STAGE_SPEC
from jobs.stages.streaming import scan_table

VERSIONED = frozenset(STAGE_SPEC.writes) - set(ACROSS_VERSIONS)
"""Judging tables with a row set per spec version (`spec` column) when several were judged."""


@dataclass
class RunSources:
    """One run's inputs to the report; a table that is absent reads as None, never as an error."""

    run: RunDir
    manifest: dict[str, Any]
    config: dict[str, Any]
    _frames: dict[str, pl.DataFrame | None] = field(default_factory=dict)

    @classmethod
    def open(cls, run_uri: str) -> RunSources:
        text = Location(run_uri).read_text(MANIFEST)
        if text is None:
            raise SpecstressError(
                f"no {MANIFEST} in {run_uri}: not a run directory, or the run never started"
            )
        run = RunDir(Location(run_uri))
        conf_text = run.root.read_text("config.yaml") or "{}"
        return cls(run, json.loads(text), yaml.safe_load(conf_text) or {})

    def has(self, name: str) -> bool:
        return self.run.tables.exists(f"{name}.parquet")

    def scan(self, name: str, *, every_version: bool = False) -> pl.LazyFrame | None:
        """A table, lazily; local runs use polars' own reader, whose filters skip row groups and columns.

        Of a judging table of several spec versions only the first version's rows, the ones the
        report's judging sections show, unless `every_version`.
        """
        if not self.has(name):
            return None
        lf = (
            pl.scan_parquet(self.run.table_path(name))
            if self.run.root.is_local
            else scan_table(self.run, name)
        )
        first = self.first_version()
        if first is None or every_version or name not in VERSIONED:
            return lf
        return lf.filter(pl.col("spec") == first)

    def frame(self, name: str, *, every_version: bool = False) -> pl.DataFrame | None:
        """A small (aggregate-sized) table, read once; only for tables that do not grow with the run."""
        key = f"{name}|every" if every_version else name
        if key not in self._frames:
            lf = self.scan(name, every_version=every_version)
            self._frames[key] = None if lf is None else lf.collect()
        return self._frames[key]

    def first_version(self) -> str | None:
        """The label of the first spec version judged when the compliance stage judged several; else None."""
        summary = ((self.manifest.get("stages") or {}).get("compliance") or {}).get("summary") or {}
        return next(iter(summary.get("specs") or {}), None)

    def stage_setting(self, stage: str, key: str, default: Any) -> Any:
        value = (self.config.get("stages") or {}).get(stage, {}) or {}
        return value.get(key, default) if isinstance(value, dict) else default

    def missing(self, stage: str, table: str) -> str:
        """Why a section is empty: the stage's state from the manifest, in words."""
        entry = self.manifest.get("stages", {}).get(stage) or {}
        state = entry.get("state")
        path = f"tables/{table}.parquet"
        if state is None:
            return f"stage {stage} not run: {path} is absent"
        if state == "skipped":
            return f"stage {stage} was skipped, {path} not written: {entry.get('skipped')}"
        if state == "done":
            return f"stage {stage} is done but {path} is absent"
        return f"stage {stage} is {state}: {path} is not written yet"

    def store(self) -> CallStore:
        return CallStore(self.config.get("cache_dir") or default_cache(self.run.root.path))
