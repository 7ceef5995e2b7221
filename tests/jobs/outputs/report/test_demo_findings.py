"""A fresh run of conf/demo.yaml at the demo's own sizes: every finding of the report has signal.

The emulated models have characters (README, "The emulated characters"); this is the run a
new user makes with `scripts/demo`, and each section of its report must show what those
characters do: a contrarian outlier, a refuser, judges that differ, several topics and
every disagreement bin. About four minutes on two cores, hence slow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from jobs.analysis.disagreement import BIN_LABELS
from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.outputs.report.build import build_report
from jobs.release.export import export_release
from tests.jobs.outputs.report.page_parse import parse_page
from tests.release_run import DEMO

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


@pytest.fixture(scope="module")
def demo_run(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    conf = load_config(DEMO, [f"run_dir={run_dir}", "emulator.port=8798"])
    return run_dir, run_pipeline(conf)


def table(run_dir: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "tables" / f"{name}.parquet")


def test_the_contrarian_is_the_outlier(demo_run: tuple[Path, dict[str, Any]]) -> None:
    counts = dict(table(demo_run[0], "outlier_counts").select("model", "n_outliers").iter_rows())
    assert counts["o3"] >= 3 and counts["o3"] == max(counts.values()), counts
    assert sum(counts.values()) - counts["o3"] < counts["o3"], "o3 contradicts; the others mostly do not"


def test_refusal_rates_differ_and_the_refuser_refuses_most(demo_run: tuple[Path, dict[str, Any]]) -> None:
    rates = demo_run[1]["refusals"]["refusal_rate"]
    assert len(set(rates.values())) > 1, rates
    assert rates["gemini_2_5_pro"] > 0 and rates["gemini_2_5_pro"] == max(rates.values()), rates


def test_frequent_noncompliance_shows_in_some_bin(demo_run: tuple[Path, dict[str, Any]]) -> None:
    summary = table(demo_run[0], "compliance_summary").filter(
        (pl.col("group_kind") == "bin") & (pl.col("family") == "openai")
    )
    assert summary["n_scenarios"].sum() > 0
    assert summary["frequent_noncompliance"].max() > 0, summary


def test_the_judges_differ_in_strictness(demo_run: tuple[Path, dict[str, Any]]) -> None:
    rate = demo_run[1]["compliance"]["problematic_rate"]
    assert rate["claude_sonnet_4"] > rate["gemini_2_5_pro"] > rate["o3"] > 0, rate


def test_the_flatterer_is_flagged_more_than_any_ordinary_model(demo_run: tuple[Path, dict[str, Any]]) -> None:
    verdicts = table(demo_run[0], "compliance").filter(pl.col("status") == "ok")
    share = dict(
        verdicts.group_by("model")
        .agg(pl.col("decision").is_in(["non-compliant", "ambiguous"]).mean())
        .iter_rows()
    )
    characters = {
        "gpt_4o",
        "o3",
        "grok_4",
        "gemini_2_5_pro",
    }  # the absolutes of o3 and grok_4 are flagged too
    assert share["gpt_4o"] > max(v for m, v in share.items() if m not in characters), share


def test_several_topics_and_every_bin(demo_run: tuple[Path, dict[str, Any]]) -> None:
    by_topic = {t: n for t, n in demo_run[1]["topics"]["by_topic"].items() if n}
    assert len(by_topic) >= 3, by_topic
    bins = table(demo_run[0], "disagreement").filter(pl.col("subset") == "all")["bin"].value_counts()
    assert set(BIN_LABELS) <= set(bins["bin"].drop_nulls()), bins


def test_the_reports_findings_name_the_characters(demo_run: tuple[Path, dict[str, Any]]) -> None:
    page = parse_page(Path(build_report(str(demo_run[0]))).read_text())
    for name in ("disagreement", "outliers", "refusals", "compliance", "judges"):
        assert page.sections[name].missing == [] and page.sections[name].nothing == [], name
    rows = page.sections["findings"].cells
    tables = {tuple(r): i for i, r in enumerate(rows) if r[0] in ("model", "figure")}
    outliers = rows[tables[("model", "outliers", "of its responses")] + 1]
    assert outliers[0] == "o3" and int(outliers[1]) > 0, outliers
    refusals = rows[tables[("model", "refusal", "hard refusal", "responses labelled")] + 1]
    assert refusals[0] == "gemini_2_5_pro" and refusals[1] != "0.0%", refusals


def test_two_versions_and_two_families_are_judged_and_compared(demo_run: tuple[Path, dict[str, Any]]) -> None:
    """The demo judges the demo spec and its revision, the OpenAI models against both and the Claude
    models against the revision (issue #21's done-when): its report shows the sections under stress
    and the comparison of the versions."""
    run_dir, summaries = demo_run
    assert list(summaries["compliance"]["specs"]) == ["demo", "revised"]
    assert set(summaries["compliance"]["prompt_cache_per_version"]) == {"demo", "revised"}
    summary = table(run_dir, "compliance_summary")
    families = {s: set(summary.filter(pl.col("spec") == s)["family"]) for s in ("demo", "revised")}
    assert families == {"demo": {"openai"}, "revised": {"openai", "claude"}}, families
    judged = table(run_dir, "compliance").group_by("spec").agg(pl.col("model").unique())
    models = {s: set(ms) for s, ms in judged.iter_rows()}
    claude = {"claude_opus_4", "claude_sonnet_4", "claude_3_7_sonnet", "claude_3_5_sonnet", "claude_opus_3"}
    assert models["revised"] - models["demo"] == claude and not claude & models["demo"], models
    assert table(run_dir, "spec_version_flips").height > 0
    assert table(run_dir, "spec_section_stress").filter(pl.col("group_kind") == "all").height > 0

    page = parse_page(Path(build_report(str(run_dir))).read_text())
    stress, versions = page.sections["spec-sections"], page.sections["spec-versions"]
    assert stress.missing == [] and stress.captions[0].startswith("The sections most cited in problematic")
    assert len(stress.cells) > 1
    assert versions.missing == [] and not any(n.startswith("One version") for n in versions.notes)
    assert any(c.startswith("Verdicts that flipped between versions") for c in versions.captions)
    assert any(r[0] == "demo → revised" for r in versions.cells), versions.cells


def test_the_export_holds_the_first_versions_decisions(
    demo_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """scripts/demo exports the run: the release format has one decision per judge and response, so
    judge_evaluations holds the first version's, and the card says so."""
    run_dir, _ = demo_run
    exported = export_release(str(run_dir), str(tmp_path / "hf"))
    assert any("spec version 'demo', the first of the 2 judged" in n for n in exported.notes), exported.notes
    first = table(run_dir, "compliance").filter((pl.col("spec") == "demo") & (pl.col("sample") == 0))
    responses = first.select("scenario_id", "model").unique().height
    binned = sum(exported.rows["judge_evaluations"].values())
    assert 0 < binned <= responses, (binned, responses)
