"""`stages.compliance.specs` and `family_specs` are checked before anything is spent."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from jobs.config import load_config
from jobs.stages.compliance_scope import load_spec, load_versions

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"
DATA = DEMO.parents[1] / "jobs" / "data"
SPECS = f"stages.compliance.specs={{v1: {DATA / 'demo_spec.md'}, v2: {DATA / 'demo_spec_revised.md'}}}"
FAMILIES = "stages.compliance.families={a: [gpt_4o, o3], b: [claude_sonnet_4, gemini_2_5_pro]}"
NO_FAMILY_SPECS = "stages.compliance.family_specs=null"
"""The demo's family_specs name its own versions' labels: a test naming other versions drops them."""


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
        (
            ["stages.compliance.specs=null", "stages.compliance.family_specs={a: [v1]}"],
            r"family_specs'.*`specs`, which is not set",
        ),
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


def test_shipped_specs_are_named_wherever_specstress_is_installed() -> None:
    """`shipped:FILE` names a demo spec shipped with specstress; a wrong name or a real judge is refused."""
    shipped = "stages.compliance.specs={v1: 'shipped:demo_spec.md', v2: 'shipped:demo_spec_revised.md'}"
    by_name = load_versions(load_config(DEMO, [shipped, NO_FAMILY_SPECS]).stages.compliance)
    by_path = load_versions(load_config(DEMO, [SPECS, NO_FAMILY_SPECS]).stages.compliance)
    assert {k: v[0].text for k, v in by_name.items()} == {k: v[0].text for k, v in by_path.items()}
    assert by_name["v2"][1] == str(DATA / "demo_spec_revised.md")
    assert load_spec("shipped:demo_spec.md")[0].text == load_spec(None)[0].text
    with pytest.raises(ConfigError, match=r"'stages\.compliance\.specs\.v2': no spec 'nope\.md' is shipped"):
        load_config(
            DEMO,
            ["stages.compliance.specs={v1: 'shipped:demo_spec.md', v2: 'shipped:nope.md'}", NO_FAMILY_SPECS],
        )
    with pytest.raises(
        ConfigError, match=r"'stages\.compliance\.spec': no spec 'x\.md'.*shipped:demo_spec\.md"
    ):
        load_config(
            DEMO, ["stages.compliance.specs=null", NO_FAMILY_SPECS, "stages.compliance.spec=shipped:x.md"]
        )
    with pytest.raises(
        ConfigError, match=r"'stages\.compliance\.specs\.v1'.*judges \['o3'\] are real models"
    ):
        load_config(DEMO, [shipped, NO_FAMILY_SPECS, "models.o3.base_url=https://api.openai.com/v1"])


def test_an_override_of_the_versions_or_families_replaces_the_configs() -> None:
    """The demo judges versions `demo` and `revised` and families `openai` and `claude`: an override
    names the versions and families judged, not more to add; a record's override still merges."""
    cc = load_config(
        DEMO,
        [
            SPECS,
            FAMILIES,
            "stages.compliance.family_specs={b: [v2]}",
            "stages.compliance.samples={random: 1}",
        ],
    ).stages.compliance
    assert list(cc.specs or {}) == ["v1", "v2"] and list(cc.families or {}) == ["a", "b"]
    assert cc.family_specs == {"b": ["v2"]}
    assert (cc.samples.random, cc.samples.high_all) == (1, 2)
    one = load_config(
        DEMO,
        [
            "stages.compliance.specs=null",
            "stages.compliance.family_specs=null",
            "stages.compliance.spec=x.md",
        ],
    ).stages.compliance
    assert (one.spec, one.specs, one.family_specs) == ("x.md", None, None)
    with pytest.raises(ConfigError, match=r"stages\.compliance\.specs"):
        load_config(DEMO, ["stages.compliance.specs=[1, 2]"])
