"""What the compliance judges see: the spec, and the seeded samples of scenarios.

Which scenarios are judged, as in the paper (its Table 2 and its per-bin figure): per family,
`per_bin` scenarios drawn from each bin of D of the family's bin subset (`bin_subset`, by
default the family's own subset: the OpenAI models' D for the OpenAI family), plus three
seeded samples (`samples`): `random` from every scored scenario, `high_all` from the
high-disagreement scenarios of all models (subset `all`), and `high_family` from the
high-disagreement scenarios of each family's own subset. `scope: all` judges every scored
scenario instead, and its bins hold every scenario.

Each group is summarised on its own draw only: a bin's rate is over the bin's draw, never over
the other samples' scenarios that happen to fall in it, which would tilt it (the `high_all`
scenarios of an OpenAI bin are not a random part of that bin).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from actors.errors import ConfigError
from jobs.analysis.agreement import GROUPS_SCHEMA
from jobs.engine.rundir import RunDir
from jobs.spec.sections import Spec, parse_spec, read_spec_text
from jobs.stages.judging import disagreement_of
from jobs.stages.settings.compliance import ComplianceConf, shipped_name
from jobs.stages.streaming import scan_table

SHIPPED = Path(__file__).resolve().parents[1] / "data"
"""Where specstress's own data files are installed (with the package)."""
DEMO_SPEC = SHIPPED / "demo_spec.md"
"""The short spec shipped for the demo (our own text, not any provider's)."""
OPENAI_FAMILY: tuple[str, ...] = ("gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini")
"""The default family: the OpenAI models, which share the OpenAI Model Spec."""
ALL_MODELS = "all"
"""The disagreement subset of every model, which `high_all` draws from."""


def spec_path(path: str | None, key: str = "spec") -> Path:
    """The file a configured spec path names: null is the demo spec, `shipped:FILE` one of
    `SHIPPED_SPECS`, anything else a path as written."""
    shipped = shipped_name(path, key)
    return SHIPPED / shipped if shipped else Path(str(path))


def load_spec(path: str | None, key: str = "spec") -> tuple[Spec, str]:
    """The spec as judges get it (its text stripped, its sections) and its path; a missing file is
    a `ConfigError` naming the key, an empty, binary or non-UTF-8 one a `SpecError` naming it."""
    p = spec_path(path, key)
    if not p.is_file():
        raise ConfigError(f"config key 'stages.compliance.{key}': file not found: {p}")
    return parse_spec(read_spec_text(p).strip(), name=str(p)), str(p)


def load_versions(cc: ComplianceConf) -> dict[str, tuple[Spec, str]]:
    """Label -> (spec, path) of each version judged, in the order configured; one `spec` is
    labelled by its file name without the suffix."""
    if cc.specs is None:
        spec, path = load_spec(cc.spec)
        return {Path(path).stem: (spec, path)}
    return {label: load_spec(path, f"specs.{label}") for label, path in cc.specs.items()}


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


def family_versions(
    cc: ComplianceConf, families: Mapping[str, list[str]], labels: list[str]
) -> dict[str, list[str]]:
    """Family -> the labels of the versions its models are judged against, in `labels`' order:
    its `family_specs`, or every version."""
    named = cc.family_specs or {}
    unknown = sorted(set(named) - set(families))
    if unknown:
        raise ConfigError(
            f"config key 'stages.compliance.family_specs': no such family {unknown} (families: {sorted(families)})"
        )
    return {f: [v for v in labels if f not in named or v in named[f]] for f in families}


def models_under(
    cc: ComplianceConf, families: Mapping[str, list[str]], models: list[str], label: str
) -> list[str]:
    """The models judged against version `label`: those of a family judged against it, and those
    in no family `family_specs` names."""
    named = cc.family_specs or {}
    chosen = {m for f, vs in named.items() for m in families[f] if label in vs}
    return [m for m in models if m in chosen or not any(m in families[f] for f in named)]


def bin_subsets(cc: ComplianceConf, families: Mapping[str, list[str]]) -> dict[str, str]:
    """Family -> the disagreement subset whose D bins its scenarios."""
    return {fam: cc.bin_subset or fam for fam in families}


def _draw(ids: list[str], n: int | None, seed: int, name: str) -> list[str]:
    ids = sorted(ids)
    if n is None or n >= len(ids):
        return ids
    return sorted(random.Random(f"{seed}|compliance|{name}").sample(ids, n))


def _scored(run: RunDir, subset: str, key: str) -> pl.DataFrame:
    """(scenario_id, d, high, bin) of a subset's scenarios with a D; `key` is the setting asking."""
    return disagreement_of(run, "compliance", subset, key).filter(pl.col("d").is_not_null())


def sample_groups(
    run: RunDir, seed: int, cc: ComplianceConf, families: dict[str, list[str]]
) -> tuple[list[str], pl.DataFrame]:
    """The scenarios to judge and the groups the summary reports (`GROUPS_SCHEMA`).

    Draws are seeded by the run's seed and what they draw from, never by the family, so two
    families binned by one subset share their bin draws. The estimate draws the same samples,
    so it counts the judged scenarios exactly once the disagreement table exists.
    """
    sz = cc.samples
    scored = (
        scan_table(run, "disagreement")
        .filter(pl.col("d").is_not_null())
        .select("scenario_id")
        .unique()
        .collect()["scenario_id"]
        .to_list()
    )
    read: dict[str, pl.DataFrame] = {}

    def subset_rows(name: str, key: str) -> pl.DataFrame:
        """A subset's scored rows, read once however many draws use them."""
        if name not in read:
            read[name] = _scored(run, name, key)
        return read[name]

    rows: list[tuple[str, str, str | None, str | None, list[str]]] = [
        (
            "sample",
            "random",
            None,
            None,
            _draw(scored, sz.random, seed, "random"),
        )
    ]
    if sz.high_all != 0:
        high = subset_rows(ALL_MODELS, "samples.high_all").filter(pl.col("high"))
        rows.append(
            (
                "sample",
                "high_all",
                None,
                ALL_MODELS,
                _draw(high["scenario_id"].to_list(), sz.high_all, seed, "high_all"),
            )
        )
    for fam in families:
        if sz.high_family != 0:
            high = subset_rows(fam, f"families.{fam}").filter(pl.col("high"))
            ids = _draw(high["scenario_id"].to_list(), sz.high_family, seed, f"high_family|{fam}")
            rows.append(("sample", "high_family", fam, fam, ids))
    per_bin = None if cc.scope == "all" else cc.per_bin
    for fam, subset in bin_subsets(cc, families).items():
        if per_bin == 0:
            continue
        key = "bin_subset" if cc.bin_subset else f"families.{fam}"
        binned = subset_rows(subset, key)
        for (label,), members in binned.group_by("bin", maintain_order=True):
            ids = _draw(members["scenario_id"].to_list(), per_bin, seed, f"bin|{subset}|{label}")
            rows.append(("bin", str(label), fam, subset, ids))
    judged = sorted(scored) if cc.scope == "all" else sorted({s for *_, ids in rows for s in ids})
    groups = pl.DataFrame(
        [
            {"group_kind": kind, "group": g, "family": fam, "subset": sub, "scenario_id": s}
            for kind, g, fam, sub, ids in rows
            for s in ids
        ],
        schema=GROUPS_SCHEMA,
    ).sort("group_kind", "group", "family", "scenario_id", nulls_last=True)
    return judged, groups
