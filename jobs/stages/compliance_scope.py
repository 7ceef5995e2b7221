"""What the compliance judges see: the stage's settings, the spec, and the seeded samples of scenarios.

Which scenarios are judged: the union of three seeded samples (`samples`): `random` from
every scored scenario, `high_all` from the high-disagreement scenarios of `bin_subset`,
and `high_family` from the high-disagreement scenarios of each family's own disagreement
subset (a subset of the same name); `scope: all` judges every scored scenario instead.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from actors.errors import ConfigError
from jobs.engine.rundir import RunDir
from jobs.stages.base import ModelView
from jobs.stages.judging import JudgeCallConf, JudgedResponsesConf, check_call, disagreement_of, judged_models

DEMO_SPEC = Path(__file__).resolve().parents[1] / "data" / "demo_spec.md"
"""The short spec shipped for the demo (our own text, not any provider's)."""
OPENAI_FAMILY: tuple[str, ...] = ("gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini")
"""The default family: the OpenAI models, which share the OpenAI Model Spec."""
PAPER_SPEC = (
    "the OpenAI Model Spec of 2025-04-11 (model_spec.md at the 'Release 2025-04-11' commit of "
    "https://github.com/openai/model_spec, CC0)"
)
"""The spec the paper's judges graded against."""
SCOPES = ("samples", "all")
SAMPLE_NAMES = ("random", "high_all", "high_family")


@dataclass
class SamplesConf:
    """Sizes of the compliance samples; None takes every candidate."""

    random: int | None = 100
    """Scenarios drawn from every scored scenario."""
    high_all: int | None = 100
    """Scenarios drawn from the high-disagreement ones of `bin_subset`."""
    high_family: int | None = 100
    """Scenarios drawn, per family, from the high-disagreement ones of the family's subset."""


@dataclass
class ComplianceConf(JudgeCallConf, JudgedResponsesConf):
    """Settings of the `compliance` stage (config section `stages.compliance`)."""

    judges: list[str] = field(default_factory=lambda: ["claude_sonnet_4", "o3", "gemini_2_5_pro"])
    """Judge model keys (the paper: Claude 4 Sonnet, o3, Gemini 2.5 Pro)."""
    spec: str | None = None
    """Path of the spec (markdown); None uses the short demo spec shipped with specstress, for
    emulated judges only (real judges need a real spec: the paper's is `PAPER_SPEC`)."""
    families: dict[str, list[str]] | None = None
    """Family name -> models sharing one spec; None: the OpenAI models judged (if two or more)."""
    scope: str = "samples"
    """samples: the union of `samples`; all: every scored scenario."""
    samples: SamplesConf = field(default_factory=SamplesConf)
    bin_subset: str = "all"
    """Disagreement subset whose bins and high flag the summary and `high_all` use."""


def check(cc: ComplianceConf, models: Mapping[str, ModelView]) -> None:
    """Checks of `stages.compliance` that need no tables, run before anything is spent."""
    check_call("compliance", cc)
    judged_models("compliance", cc.models)
    if cc.scope not in SCOPES:
        raise ConfigError(f"config key 'stages.compliance.scope': must be one of {SCOPES}, got '{cc.scope}'")
    if not cc.judges or len(set(cc.judges)) != len(cc.judges):
        raise ConfigError("config key 'stages.compliance.judges': needs one or more distinct model keys")
    real = [j for j in cc.judges if not models[j].emulated]
    if cc.spec is None and real:
        # Real judges grading the demo spec would spend real money on a meaningless table.
        raise ConfigError(
            "config key 'stages.compliance.spec': null grades against the short demo spec, which is for "
            f"emulated judges only, and judges {real} are real models. The paper graded against "
            f"{PAPER_SPEC}: pass the path of that file, or of the spec you want to test, as "
            "stages.compliance.spec=PATH"
        )
    for name in SAMPLE_NAMES:
        n = getattr(cc.samples, name)
        if n is not None and n < 0:
            raise ConfigError(f"config key 'stages.compliance.samples.{name}': must be >= 0 or null")


def load_spec(path: str | None) -> tuple[str, str]:
    """(spec text, its path); a missing or empty file is a `ConfigError` naming it."""
    p = Path(path) if path is not None else DEMO_SPEC
    if not p.is_file():
        raise ConfigError(f"config key 'stages.compliance.spec': file not found: {p}")
    text = p.read_text(encoding="utf-8").strip()
    if not text:
        raise ConfigError(f"config key 'stages.compliance.spec': {p} is empty")
    return text, str(p)


def families_of(cc: ComplianceConf, models: list[str]) -> dict[str, list[str]]:
    if cc.families is None:
        fam = [m for m in OPENAI_FAMILY if m in models]
        return {"openai": fam} if len(fam) >= 2 else {}
    for name, members in cc.families.items():
        unknown = sorted(set(members) - set(models))
        if not members or unknown:
            raise ConfigError(
                f"config key 'stages.compliance.families.{name}': needs judged models; not judged: {unknown} "
                f"(judged: {models})"
            )
    return {k: list(v) for k, v in cc.families.items()}


def _draw(ids: list[str], n: int | None, seed: int, name: str) -> list[str]:
    ids = sorted(ids)
    if n is None or n >= len(ids):
        return ids
    return sorted(random.Random(f"{seed}|compliance|{name}").sample(ids, n))


def sample_groups(
    run: RunDir, seed: int, cc: ComplianceConf, families: dict[str, list[str]]
) -> tuple[list[str], pl.DataFrame]:
    """The scenarios to judge and the groups the summary reports (group_kind, group, family, scenario_id).

    The estimate draws the same seeded samples, so it counts the judged scenarios exactly once
    the disagreement table exists.
    """
    base = disagreement_of(run, "compliance", cc.bin_subset).filter(pl.col("d").is_not_null())
    sz = cc.samples
    rows: list[tuple[str, str, str | None, list[str]]] = [
        ("sample", "random", None, _draw(base["scenario_id"].to_list(), sz.random, seed, "random")),
        (
            "sample",
            "high_all",
            None,
            _draw(base.filter(pl.col("high"))["scenario_id"].to_list(), sz.high_all, seed, "high_all"),
        ),
    ]
    for fam in families:
        try:
            mine = disagreement_of(run, "compliance", fam)
        except ConfigError:
            raise ConfigError(
                f"config key 'stages.compliance.families.{fam}': the high_family sample needs a disagreement "
                f"subset named '{fam}' (set stages.disagreement.subsets)"
            ) from None
        high = mine.filter(pl.col("high").fill_null(False))["scenario_id"].to_list()
        rows.append(("sample", "high_family", fam, _draw(high, sz.high_family, seed, f"high_family|{fam}")))
    if cc.scope == "all":
        judged = sorted(base["scenario_id"].to_list())
    else:
        judged = sorted({s for *_, ids in rows for s in ids})
    binned = base.filter(pl.col("scenario_id").is_in(judged)).sort("bin", "scenario_id")
    groups = pl.DataFrame(
        [
            {"group_kind": kind, "group": g, "family": fam, "scenario_id": s}
            for kind, g, fam, ids in rows
            for s in ids
        ]
        + [
            {"group_kind": "bin", "group": b, "family": None, "scenario_id": s}
            for s, b in binned.select("scenario_id", "bin").iter_rows()
        ],
        schema={"group_kind": pl.String, "group": pl.String, "family": pl.String, "scenario_id": pl.String},
    )
    return judged, groups
