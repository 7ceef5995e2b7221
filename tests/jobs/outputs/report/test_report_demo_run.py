"""The report of a demo run (the release fixture resumed under the current code, `tests/release_run.py`):
the paper's figures beside the run's own, as the stages' summaries give them, and the per-pair co-occurrence."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.outputs.report.build import build_report
from jobs.outputs.report.paper import NOT_IN_RUN
from tests.jobs.outputs.report.page_parse import beside_paper, parse_page
from tests.release_run import ResumedRun

pytestmark = pytest.mark.usefixtures("ray_local")

JUDGE_LABELS = {
    "claude_sonnet_4": ("Claude 4 Sonnet", "48.1%"),
    "o3": ("o3", "35.5%"),
    "gemini_2_5_pro": ("Gemini 2.5 Pro", "36.5%"),
}


def test_a_demo_report_sets_the_papers_figures_beside_the_runs(release_run: ResumedRun) -> None:
    page = parse_page(Path(build_report(str(release_run.run_dir))).read_text())
    summaries = release_run.summaries
    compliance = summaries["compliance"]
    kappa = compliance["fleiss_kappa"]
    ours = "not in this run" if kappa is None else f"{kappa:.3f} (this run)"
    assert f"Fleiss' kappa over all judges: {ours} · 0.42 (the paper)" in page.sections["judges"].notes
    judges = beside_paper(page, "judges")
    assert set(compliance["problematic_rate"]) == set(JUDGE_LABELS)  # the demo's judges are the paper's
    for judge, rate in compliance["problematic_rate"].items():
        name, paper = JUDGE_LABELS[judge]
        assert judges[f"problematic rate, {name} as judge"] == [
            f"{100 * rate:.1f}%",
            f"{paper} (of 5,000 responses)",
        ]
    random = compliance["frequent_noncompliance"]["openai|sample|random"]
    rows = beside_paper(page, "compliance")
    assert rows["all five OpenAI models problematic, random sample"] == [
        NOT_IN_RUN if random is None else f"{100 * random:.1f}%",
        "1.1%",
    ]
    disagreement = beside_paper(page, "disagreement")
    assert disagreement["scenarios after the δ-diverse selection"] == [
        f"{summaries['diversity']['diverse']:,}",
        "over 300,000",
    ]
    subsets = summaries["disagreement"]["subsets"]
    assert disagreement["selected (weighted k-center), split all_models"] == [
        f"{subsets['all']['selected']:,}",
        "43,960",
    ]
    assert disagreement["high-disagreement scenarios (all models, D ≥ 1.5)"] == [
        f"{subsets['all']['high']:,}",
        "over 70,000",
    ]
    values = page.sections["values"]
    assert values.images == 3 and values.missing == []
    assert any(n.startswith("Per model pair, a block per (model A, model B)") for n in values.notes)
