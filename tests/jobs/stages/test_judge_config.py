"""The labelling stages' settings are validated up front, naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.errors import ConfigError
from jobs.config import load_config
from jobs.stages.compliance_scope import load_spec

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("stages.topics.topikz=[a]", "stages.topics.topikz"),
        ("stages.topics.model=nobody", "stages.topics.model"),
        ("stages.refusals.models=[gpt_4o,nobody]", "stages.refusals.models"),
        ("stages.refusals.scope=everything", "stages.refusals.scope"),
        ("stages.values.max_scenarios=0", "stages.values.max_scenarios"),
        ("stages.compliance.judges=[o3,nobody]", "stages.compliance.judges"),
        ("stages.compliance.families={openai: [o3, nobody]}", "stages.compliance.families"),
        ("stages.compliance.samples.randum=3", "stages.compliance.samples.randum"),
        ("stages.compliance.max_repairs=-1", "stages.compliance"),
        ("stages.compliance.scope=some", "stages.compliance.scope"),
        ("stages.compliance.samples.random=-2", "stages.compliance.samples.random"),
        ("stages.compliance.per_bin=-1", "stages.compliance.per_bin"),
        ("stages.compliance.judges=[o3,o3]", "stages.compliance.judges"),
        ("stages.values.embedding={backend: api, model: nobody}", "stages.values.embedding.model"),
    ],
)
def test_bad_judge_settings_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(DEMO, [override])


def test_the_spec_file_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stages\.compliance\.spec.*not found"):
        load_spec(str(tmp_path / "missing.md"))
    (tmp_path / "empty.md").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_spec(str(tmp_path / "empty.md"))
    (tmp_path / "binary.md").write_bytes(b"# Spec\x00\x01")
    with pytest.raises(ConfigError, match=r"binary\.md"):
        load_spec(str(tmp_path / "binary.md"))
    spec, path = load_spec(None)
    assert spec.text.startswith("# Demo Assistant Specification") and path.endswith("demo_spec.md")
    assert spec.text == spec.text.strip() and len(spec.sections) == 9  # the title and its 8 sections


def test_real_judges_need_a_real_spec(tmp_path: Path) -> None:
    """The demo spec is for emulated judges: real ones without `spec` refuse to start, saying what to pass."""
    paper = DEMO.with_name("default.yaml")
    with pytest.raises(ConfigError) as refused:
        load_config(paper)
    message = str(refused.value)
    assert message.startswith("config key 'stages.compliance.spec'")
    assert "OpenAI Model Spec of 2025-04-11" in message and "stages.compliance.spec=PATH" in message
    # One real judge among emulated ones is enough to refuse.
    with pytest.raises(ConfigError, match=r"judges \['o3'\] are real models"):
        load_config(DEMO, ["models.o3.base_url=https://api.openai.com/v1"])
    spec = tmp_path / "spec.md"
    spec.write_text("# My spec\n")
    assert load_config(paper, [f"stages.compliance.spec={spec}"]).stages.compliance.spec == str(spec)
    assert load_config(DEMO).stages.compliance.spec is None  # emulated judges keep the demo spec
