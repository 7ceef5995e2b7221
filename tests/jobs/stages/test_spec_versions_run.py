"""Two versions of the demo spec judged side by side, each family against its own versions, on the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from actors.emulator.server import EmulatorServer
from jobs.driver import run_pipeline
from jobs.outputs.report.build import build_report
from tests.conftest import emulator_config
from tests.jobs.outputs.report.page_parse import parse_page
from tests.jobs.stages.test_judge_stages import PIPELINE
from tests.jobs.stages.test_model_sweep import make_conf

pytestmark = pytest.mark.usefixtures("ray_local")

DATA = Path(__file__).resolve().parents[3] / "jobs" / "data"
VERSIONED = ["compliance", "compliance_verdicts", "judge_stats", "compliance_summary"]


@pytest.fixture(scope="module")
def versions_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("versions") / "run"
    with EmulatorServer(emulator_config()) as emu:
        conf = make_conf(
            emu.url,
            run_dir,
            "seed=5",
            "stages.pairs.n_pairs=4",
            "stages.scenarios.generators={claude_opus_4: 1.0}",
            "stages.responses.models=[claude_opus_4,claude_sonnet_4,gpt_4_1,o3]",
            "stages.embeddings.backend=hashing",
            "stages.disagreement.use_ray=false",
            "stages.compliance.judges=[claude_sonnet_4,o3,gemini_2_5_pro]",
            f"stages.compliance.specs={{v1: {DATA / 'demo_spec.md'}, v2: {DATA / 'demo_spec_revised.md'}}}",
            "stages.compliance.families={openai: [gpt_4_1, o3], anthropic: [claude_opus_4, claude_sonnet_4]}",
            "stages.compliance.family_specs={openai: [v1, v2], anthropic: [v2]}",
            "stages.compliance.bin_subset=all",
            "stages.compliance.samples={random: 4, high_all: 2, high_family: 0}",
            "stages.compliance.per_bin=1",
        )
        summaries = run_pipeline(conf, stages=[*PIPELINE, "compliance"])
    yield {"dir": run_dir, "summary": summaries["compliance"]}


def read(run: dict[str, Any], name: str) -> pl.DataFrame:
    return pl.read_parquet(run["dir"] / "tables" / f"{name}.parquet")


def test_each_family_is_judged_against_its_own_versions(versions_run: dict[str, Any]) -> None:
    judged = read(versions_run, "compliance")
    by_version = judged.group_by("spec").agg(pl.col("model").unique().sort()).sort("spec")
    assert by_version.rows() == [
        ("v1", ["gpt_4_1", "o3"]),
        ("v2", ["claude_opus_4", "claude_sonnet_4", "gpt_4_1", "o3"]),
    ]
    for name in VERSIONED:
        assert set(read(versions_run, name)["spec"]) == {"v1", "v2"}, name
    summary = read(versions_run, "compliance_summary")
    assert set(summary.select("spec", "family").unique().rows()) == {
        ("v1", "openai"),
        ("v2", "openai"),
        ("v2", "anthropic"),
    }
    assert set(versions_run["summary"]["versions"]) == {"v1", "v2"}
    per_version = versions_run["summary"]["prompt_cache_per_version"]
    assert sum(c["calls"] for c in per_version.values()) == versions_run["summary"]["prompt_cache"]["calls"]


def test_the_same_responses_are_judged_under_both_versions(versions_run: dict[str, Any]) -> None:
    verdicts = read(versions_run, "compliance_verdicts").filter(pl.col("model").is_in(["gpt_4_1", "o3"]))
    keys = ["scenario_id", "model", "sample"]
    v1, v2 = (verdicts.filter(pl.col("spec") == v).select(keys).sort(keys) for v in ("v1", "v2"))
    assert v1.height > 0 and v1.equals(v2)
    flips = read(versions_run, "spec_version_flips")
    assert flips.select("spec_a", "spec_b", "family").rows() == [("v1", "v2", None), ("v1", "v2", "openai")]
    decided = verdicts.filter(pl.col("majority").is_in(["problematic", "ok"]))
    paired = decided.group_by(keys).len().filter(pl.col("len") == 2).height
    assert flips["n"].to_list() == [paired, paired]


def test_rewritten_sections_get_a_shift_row(versions_run: dict[str, Any]) -> None:
    shift = read(versions_run, "spec_section_shift")
    assert shift.height > 0 and set(shift["status"]) == {"rewritten"}
    assert (shift["spec_a"] == "v1").all() and (shift["spec_b"] == "v2").all()


def test_the_report_compares_the_versions_and_shows_the_first_elsewhere(versions_run: dict[str, Any]) -> None:
    page = parse_page(Path(build_report(str(versions_run["dir"]))).read_text())
    sec = page.sections["spec-versions"]
    assert sec.missing == [] and sec.notes == []
    assert sec.captions[:3] == [
        "Problematic responses per version (majority verdict)",
        "Frequent non-compliance per version and family (every model of the family problematic)",
        "Verdicts that flipped between versions, on the same responses (McNemar's test)",
    ]
    flips = read(versions_run, "spec_version_flips").row(0, named=True)
    assert ["v1 → v2", "all", str(flips["n"])] in [r[:3] for r in sec.cells]
    judged = [r for r in page.sections["judges"].cells if r and r[0] == "problematic_rate"]
    assert judged and len(judged) == 3  # one row per judge: the first version's
