"""`stages.compliance.specs` and `family_specs` are checked before anything is spent."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from jobs.config import load_config

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
DATA = DEMO.parents[1] / "jobs" / "data"
SPECS = f"stages.compliance.specs={{v1: {DATA / 'demo_spec.md'}, v2: {DATA / 'demo_spec_revised.md'}}}"
FAMILIES = "stages.compliance.families={a: [gpt_4o, o3], b: [claude_sonnet_4, gemini_2_5_pro]}"


def test_two_versions_and_a_spec_per_family_load() -> None:
    cc = load_config(DEMO, [SPECS, FAMILIES, "stages.compliance.family_specs={a: [v1, v2], b: [v2]}"])
    assert list(cc.stages.compliance.specs or {}) == ["v1", "v2"]
    assert cc.stages.compliance.family_specs == {"a": ["v1", "v2"], "b": ["v2"]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [SPECS, "stages.compliance.spec=x.md"],
            r"'stages\.compliance\.spec' and 'stages\.compliance\.specs'",
        ),
        (["stages.compliance.specs={}"], r"stages\.compliance\.specs'"),
        (["stages.compliance.family_specs={a: [v1]}"], r"family_specs'.*`specs`, which is not set"),
        (
            [SPECS, FAMILIES, "stages.compliance.family_specs={a: [v3]}"],
            r"family_specs\.a'.*unknown: \['v3'\]",
        ),
        ([SPECS, FAMILIES, "stages.compliance.family_specs={c: [v1]}"], r"family_specs\.c'.*no such family"),
    ],
)
def test_bad_version_settings_name_their_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(DEMO, overrides)
