"""Settings of the `compliance` stage: the judges, the spec, the families and the samples judged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from actors.errors import ConfigError
from jobs.stages.settings.base import ModelView, StageSpec
from jobs.stages.settings.judging import (
    JudgeCallConf,
    JudgedResponsesConf,
    check_call,
    inherit_judged,
    judged_models,
)
from jobs.stages.settings.keyed import KeyedSetting

PAPER_SPEC = (
    "the OpenAI Model Spec of 2025-04-11 (model_spec.md at the 'Release 2025-04-11' commit of "
    "https://github.com/openai/model_spec, CC0)"
)
"""The spec the paper's judges graded against."""
SHIPPED_PREFIX = "shipped:"
SHIPPED_SPECS = ("demo_spec.md", "demo_spec_revised.md")
"""The demo specs shipped with specstress (in `jobs/data`), which a config names `shipped:FILE`
wherever specstress is installed: `shipped:demo_spec.md` (what `spec: null` grades against) and
`shipped:demo_spec_revised.md` (a revision of it, to compare two versions)."""


def shipped_name(path: str | None, key: str) -> str | None:
    """The shipped file a configured spec path names (null: the demo spec), or None for a path of
    the user's own; an unknown `shipped:` name is a `ConfigError` naming the key."""
    if path is not None and not path.startswith(SHIPPED_PREFIX):
        return None
    name = SHIPPED_SPECS[0] if path is None else path.removeprefix(SHIPPED_PREFIX)
    if name not in SHIPPED_SPECS:
        raise ConfigError(
            f"config key 'stages.compliance.{key}': no spec '{name}' is shipped with specstress "
            f"(shipped: {', '.join(SHIPPED_PREFIX + n for n in SHIPPED_SPECS)}); a path of your own "
            "file is written without the 'shipped:' prefix"
        )
    return name


ACROSS_VERSIONS = ("spec_version_flips", "spec_section_shift")
"""The tables comparing spec versions; every other table of the stage has rows per version."""
SCOPES = ("samples", "all")
SAMPLE_NAMES = ("random", "high_all", "high_family")


@dataclass
class SamplesConf:
    """Sizes of the compliance samples; None takes every candidate."""

    random: int | None = 100
    """Scenarios drawn from every scored scenario."""
    high_all: int | None = 100
    """Scenarios drawn from the high-disagreement ones of every model (subset `all`)."""
    high_family: int | None = 100
    """Scenarios drawn, per family, from the high-disagreement ones of the family's subset."""


@dataclass
class ComplianceConf(JudgeCallConf, JudgedResponsesConf):
    """Settings of the `compliance` stage (config section `stages.compliance`)."""

    judges: list[str] = field(default_factory=lambda: ["claude_sonnet_4", "o3", "gemini_2_5_pro"])
    """Judge model keys (the paper: Claude 4 Sonnet, o3, Gemini 2.5 Pro)."""
    spec: str | None = None
    """Path of the spec (markdown); None uses the short demo spec shipped with specstress, for
    emulated judges only (real judges need a real spec: the paper's is `PAPER_SPEC`);
    `shipped:FILE` names a shipped demo spec (`SHIPPED_SPECS`)."""
    specs: dict[str, str] | None = None
    """Spec versions judged side by side, label -> path (as `spec`, `shipped:FILE` included): the
    same sample is judged against each, and the report compares them (rates per version, verdict
    flips, rewritten sections). Set this or `spec`, not both."""
    family_specs: dict[str, list[str]] | None = None
    """Family name -> labels of `specs` its models are judged against (e.g. each family against
    its provider's spec); a model in no family named here is judged against every version.
    None: every model against every version."""
    families: dict[str, list[str]] | None = None
    """Family name -> models sharing one spec; None: the OpenAI models judged (if two or more)."""
    scope: str = "samples"
    """samples: the per-bin draws and `samples`; all: every scored scenario."""
    per_bin: int | None = 1000
    """Scenarios drawn from each bin of D, judged for every model of each family (the paper:
    about 1,000 per bin); None takes every scenario of a bin, 0 draws no bins."""
    samples: SamplesConf = field(default_factory=SamplesConf)
    bin_subset: str | None = None
    """Disagreement subset whose D bins the scenarios; None: each family's own subset (the
    subset of the family's name, as the paper binned by the OpenAI models' D)."""
    cite_sections: bool | None = None
    """Whether judges cite the ids of the spec sections their decision rests on (the prompt lists
    them; unknown ids are repaired once, then the judgement is invalid). None: what this run
    directory's stage last ran with (false for a stage run before the setting existed), true
    for a stage that has not run. Changing it changes the call keys."""

    KEYED: ClassVar[tuple[KeyedSetting, ...]] = (
        *JudgeCallConf.KEYED,
        KeyedSetting("cite_sections", before=False, fresh=True),
    )
    REPLACED_BY_OVERRIDES: ClassVar[tuple[str, ...]] = ("specs", "families", "family_specs")
    """Mappings of the user's labels that a `key=value` override replaces whole (`specs={a: X}`
    judges a alone, not a beside the config's versions)."""


def check(cc: ComplianceConf, models: Mapping[str, ModelView]) -> None:
    """Checks of `stages.compliance` that need no tables, run before anything is spent."""
    check_call("compliance", cc)
    judged_models("compliance", cc.models)
    if cc.scope not in SCOPES:
        raise ConfigError(f"config key 'stages.compliance.scope': must be one of {SCOPES}, got '{cc.scope}'")
    if not cc.judges or len(set(cc.judges)) != len(cc.judges):
        raise ConfigError("config key 'stages.compliance.judges': needs one or more distinct model keys")
    _check_versions(cc)
    real = [j for j in cc.judges if not models[j].emulated]
    named = {"spec": cc.spec} if cc.specs is None else {f"specs.{k}": p for k, p in cc.specs.items()}
    demo = [k for k, p in named.items() if shipped_name(p, k)]
    if demo and real:
        # Real judges grading the demo spec would spend real money on a meaningless table.
        raise ConfigError(
            f"config key 'stages.compliance.{demo[0]}': {named[demo[0]] or 'null'} grades against a short "
            f"demo spec, which is for emulated judges only, and judges {real} are real models. The paper "
            f"graded against {PAPER_SPEC}: pass the path of that file, or of the spec you want to test, as "
            "stages.compliance.spec=PATH"
        )
    sizes = {f"samples.{name}": getattr(cc.samples, name) for name in SAMPLE_NAMES}
    for key, n in {**sizes, "per_bin": cc.per_bin}.items():
        if n is not None and n < 0:
            raise ConfigError(f"config key 'stages.compliance.{key}': must be >= 0 or null, got {n}")


def _check_versions(cc: ComplianceConf) -> None:
    """`specs` and `family_specs` name what exists: one spec form, known labels and families."""
    key = "config key 'stages.compliance"
    if cc.spec is not None and cc.specs is not None:
        raise ConfigError(
            "config keys 'stages.compliance.spec' and 'stages.compliance.specs' are both set: use `spec` "
            "for one spec, or `specs` (label -> path) for versions judged side by side (to judge one spec "
            "where the config sets `specs`, pass stages.compliance.specs=null with it)"
        )
    if cc.specs is not None and not cc.specs:
        raise ConfigError(f"{key}.specs': needs one or more label -> path entries, or null")
    if cc.family_specs is None:
        return
    labels = sorted(cc.specs or {})
    if not labels:
        raise ConfigError(
            f"{key}.family_specs': names labels of `specs`, which is not set (to judge one `spec` where "
            "the config sets `specs` and `family_specs`, pass stages.compliance.family_specs=null too)"
        )
    for family, named in cc.family_specs.items():
        unknown = sorted(set(named) - set(labels))
        if not named or unknown:
            raise ConfigError(
                f"{key}.family_specs.{family}': needs labels of `specs`; unknown: {unknown} (labels: {labels})"
            )
        if cc.families is not None and family not in cc.families:
            raise ConfigError(
                f"{key}.family_specs.{family}': no such family in `families` ({sorted(cc.families)})"
            )


def _models(cc: ComplianceConf) -> dict[str, list[str]]:
    return {
        "judges": list(cc.judges),
        "models": list(cc.models or []),
        "families": [m for ms in (cc.families or {}).values() for m in ms],
    }


STAGE_SPEC = StageSpec(
    name="compliance",
    settings=ComplianceConf,
    reads=("disagreement", "scenarios", "responses"),
    writes=(
        "compliance",
        "compliance_verdicts",
        "judge_stats",
        "compliance_summary",
        "compliance_citations",
        "spec_sections",
        "spec_section_stress",
        *ACROSS_VERSIONS,
    ),
    models=_models,
    check=check,
    inherit=inherit_judged,
)
