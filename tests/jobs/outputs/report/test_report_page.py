"""The report page from constructed tables: every section, the missing-stage notes, escaping, bounded weight."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from actors.errors import ConfigError
from actors.storage import Location
from jobs.cli import main
from jobs.engine.batching.records import BatchLedger, BatchRecord
from jobs.outputs.report import sections_judges
from jobs.outputs.report.build import ReportOptions, build_report
from jobs.outputs.report.facts import stage_of
from jobs.outputs.report.page import script_json
from jobs.outputs.report.paper import NOT_IN_RUN
from jobs.outputs.report.sections_versions import ONE_VERSION
from jobs.paper.figures import paper_figures
from tests.jobs.outputs.report.page_parse import ParsedPage, beside_paper, parse_page
from tests.jobs.outputs.report.synthetic_run import (
    COMPLIANCE_SAMPLES,
    HOSTILE,
    MODELS,
    VALUE_CATEGORIES,
    analysis_run,
    inject_response,
    judge_tables,
)

JUDGE_SECTIONS = ("refusals", "compliance", "judges", "values")


def build(root: Path, **opts: int) -> tuple[ParsedPage, str]:
    html = Path(build_report(str(root), ReportOptions(**opts))).read_text()
    return parse_page(html), html


@pytest.fixture
def full_run(tmp_path: Path) -> Path:
    ids = analysis_run(tmp_path / "run", 60)
    judge_tables(tmp_path / "run", ids, MODELS)
    return tmp_path / "run"


def test_the_findings_come_first_and_point_into_the_sections_and_the_explorer(full_run: Path) -> None:
    page, html = build(full_run)
    order = list(page.sections)
    assert order[0] == "findings" and order[-2:] == ["facts", "explorer"]
    assert '<details class="collapsed"><summary><h2>Run facts' in html  # how the run went: folded, last
    cells = page.sections["findings"].cells
    tables = pl.read_parquet(full_run / "tables" / "disagreement.parquet")
    picks = pl.read_parquet(full_run / "tables" / "selections.parquet")
    for subset in tables["subset"].unique().to_list():
        mine = tables.filter(pl.col("subset") == subset)
        scored, high = int(mine["d"].is_not_null().sum()), int(mine["high"].fill_null(False).sum())
        row = next(r for r in cells if r[0] == subset)
        assert row[1:] == [
            f"{scored:,}",
            f"{high:,} ({100 * high / scored:.1f}%)",
            f"{picks.filter(pl.col('subset') == subset).height:,}",
        ]
    top = page.data["scenarios"][:10]
    start = html.index('id="findings"')
    findings = html[start : html.index("</section>", start)]
    assert [findings.count(f'href="#scenario-{s["id"]}"') for s in top] == [1] * len(top)
    outliers = pl.read_parquet(full_run / "tables" / "outlier_counts.parquet").sort(
        "n_outliers", "model", descending=[True, False]
    )
    most = outliers.row(0, named=True)
    assert [most["model"], f"{most['n_outliers']:,}"] == next(r for r in cells if r[0] == most["model"])[:2]
    rates = pl.read_parquet(full_run / "tables" / "refusal_rates.parquet").filter(pl.col("topic") == "all")
    ranked = [r[0] for r in cells if len(r) == 4 and r[0] in set(rates["model"]) and r[1].endswith("%")]
    assert ranked == rates.sort("refusal_rate", "model", descending=[True, False])["model"].to_list()
    assert ["Fleiss' kappa, all judges", "0.432"] in cells


def test_the_spec_sections_under_stress_name_each_section_with_its_excerpt_and_a_scenario(
    full_run: Path,
) -> None:
    page, _ = build(full_run)
    sec = page.sections["spec-sections"]
    assert sec.missing == [] and sec.captions[0].startswith(
        "The sections most cited in problematic judgements"
    )
    rows = {r[0]: r for r in sec.cells[1:]}
    assert set(rows) == {"Honesty", "Tone", "Balance"}
    assert rows["Tone"][1] == "Do not open with praise."
    stress = pl.read_parquet(full_run / "tables" / "spec_section_stress.parquet")
    for r in stress.filter(pl.col("group_kind") == "all").iter_rows(named=True):
        assert rows[r["heading"]][2] == f"{100 * r['share']:.1f}% ({r['cited']}/{r['n_problematic']})"
    shown = {s["id"] for s in page.data["scenarios"]}
    assert all(r[-1] in shown for r in rows.values())  # each links into the explorer


def test_a_plot_with_nothing_to_draw_says_so_in_one_line(full_run: Path) -> None:
    counts = full_run / "tables" / "outlier_counts.parquet"
    none = pl.read_parquet(counts).with_columns(n_outliers=pl.lit(0, pl.Int64), outlier_rate=pl.lit(0.0))
    pq.write_table(none.to_arrow().cast(pq.read_schema(counts)), counts)
    page, _ = build(full_run)
    assert page.sections["outliers"].images == 0
    assert (
        len(page.sections["outliers"].nothing) == 1
        and "nothing to show, every value is 0" in (page.sections["outliers"].nothing[0])
    )
    assert any("none, no response stood apart" in c for c in page.sections["findings"].captions)


def test_every_section_has_its_plots_and_tables(full_run: Path) -> None:
    page, _ = build(full_run)
    expected_images = {
        "disagreement": 1,
        "positions": 1,
        "outliers": 1,
        "refusals": 2,
        "compliance": 2,
        "judges": 2,
        "values": 3,
    }
    for sid, n in expected_images.items():
        sec = page.sections[sid]
        assert sec.images == n, (sid, sec.images)
        assert sec.missing == [], (sid, sec.missing)
    assert (
        "Fleiss' kappa over all judges: 0.432 (this run) · 0.42 (the paper)" in page.sections["judges"].notes
    )
    assert len(page.data["scenarios"]) > 0
    assert all(len(s["responses"]) == len(MODELS) for s in page.data["scenarios"])
    assert page.data["missing"] == {}


def test_compliance_table_is_laid_out_like_the_papers(tmp_path: Path) -> None:
    ids = analysis_run(tmp_path, 30)
    judge_tables(tmp_path, ids, MODELS)
    page, _ = build(tmp_path)
    sec = page.sections["compliance"]
    header = sec.cells[0]
    assert header == [
        "family",
        "sample",
        "drawn from",
        "scenarios",
        "all pass",
        "at least one fails",
        "all fail",
        "all fail, any judge",
    ]
    rows = {(r[0], r[1]): r[2:] for r in sec.cells[1:] if len(r) == 8}
    n, ok, fail, all_fail = COMPLIANCE_SAMPLES["high_all"]
    assert rows[("openai", "high_all")] == [
        "all",
        str(n),
        f"{100 * ok / n:.1f}% ({ok})",
        f"{100 * fail / n:.1f}% ({fail})",
        f"{100 * all_fail / n:.1f}% ({all_fail})",
        f"{200 * all_fail / n:.1f}% ({2 * all_fail})",
    ]
    bins = [r for r in sec.cells if len(r) == 7 and r[0] == "[2.5,3]"]
    assert ["[2.5,3]", "claude", "claude", "10", "25.0% ± 2.0%", "20", "50.0% ± 3.0%"] in bins


def test_a_summary_written_by_release_0_1_0_still_renders(tmp_path: Path) -> None:
    """Release 0.1.0 wrote neither the subset nor the any-judge columns: those cells stay empty."""
    ids = analysis_run(tmp_path, 30)
    judge_tables(tmp_path, ids, MODELS)
    summary = tmp_path / "tables" / "compliance_summary.parquet"
    old = pl.read_parquet(summary).drop(
        "subset", "n_any_judge", "all_fail_any_judge", "frequent_noncompliance_any_judge", "se_any_judge"
    )
    old.write_parquet(summary)
    page, _ = build(tmp_path)
    bins = [r for r in page.sections["compliance"].cells if len(r) == 7 and r[0] == "[2.5,3]"]
    assert ["[2.5,3]", "claude", "", "10", "25.0% ± 2.0%", "", ""] in bins
    compliance = beside_paper(page, "compliance")
    assert compliance["frequent non-compliance by majority, OpenAI D in [2.5,3]"] == [NOT_IN_RUN, "9.7%"]


def test_absent_judge_tables_are_named_with_their_stage(tmp_path: Path) -> None:
    analysis_run(tmp_path, 20)
    page, _ = build(tmp_path)
    assert page.sections["refusals"].missing == [
        "stage refusals not run: tables/refusals.parquet is absent",
        "stage refusals not run: tables/refusal_rates.parquet is absent",
    ]
    assert page.sections["judges"].missing == [
        "stage compliance not run: tables/judge_stats.parquet is absent"
    ]
    assert "stage values not run: tables/value_counts.parquet is absent" in page.sections["values"].missing
    for sid in JUDGE_SECTIONS:
        assert page.sections[sid].images == 0
    assert page.sections["disagreement"].images == 1 and page.sections["disagreement"].missing == []
    assert page.data["missing"]["topics"] == "stage topics not run: tables/topics.parquet is absent"


def test_a_running_stage_is_reported_as_running(tmp_path: Path) -> None:
    analysis_run(tmp_path, 20)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["stages"]["refusals"] = {"state": "running"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    page, _ = build(tmp_path)
    assert (
        page.sections["refusals"].missing[0]
        == "stage refusals is running: tables/refusals.parquet is not written yet"
    )


def test_only_the_analysis_tables_missing_says_so(tmp_path: Path) -> None:
    analysis_run(tmp_path, 10)
    for name in ("disagreement", "selections", "outlier_counts"):
        (tmp_path / "tables" / f"{name}.parquet").unlink()
    page, _ = build(tmp_path)
    assert page.sections["disagreement"].missing == [
        "stage disagreement is done but tables/disagreement.parquet is absent"
    ]
    assert page.data["scenarios"] == []


def test_hostile_output_stays_text_everywhere(full_run: Path) -> None:
    page, _ = build(full_run)
    top = page.data["scenarios"][0]
    inject_response(full_run, top["id"], MODELS[1], HOSTILE)
    page, html = build(full_run)
    assert "<script>window" not in html and "<img src=x" not in html and 'onerror="window' not in html
    assert html.count("</script>") == 2  # the JSON block's and the page script's own
    assert page.tags.count("img") == sum(s.images for s in page.sections.values())
    shown = next(r for r in page.data["scenarios"][0]["responses"] if r["model"] == MODELS[1])
    assert shown["text"] == HOSTILE  # the data round-trips exactly; the page sets it as text


def test_script_json_escapes_markup_characters() -> None:
    text = script_json({"a": "</script><!-- & -->", "b": "\u2028"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": "</script><!-- & -->", "b": "\u2028"}


def test_page_weight_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    """Ten times the scenarios, same explorer cap: the page stays within a few percent."""
    sizes = {}
    for n in (300, 3000):
        ids = analysis_run(tmp_path / str(n), n)
        judge_tables(tmp_path / str(n), ids, MODELS)
        page, html = build(tmp_path / str(n), max_scenarios=40, max_chars=300)
        assert len(page.data["scenarios"]) == 40
        assert all(len(r["text"]) <= 300 for s in page.data["scenarios"] for r in s["responses"])
        sizes[n] = len(html.encode())
    assert sizes[3000] < 1.25 * sizes[300], sizes


def test_explorer_keeps_the_highest_disagreement_first(full_run: Path) -> None:
    page, _ = build(full_run, max_scenarios=5)
    d = [s["d_max"] for s in page.data["scenarios"]]
    assert len(d) == 5 and d == sorted(d, reverse=True)
    first = page.data["scenarios"][0]
    assert first["rubric"]["value1"][0].startswith("v1 position 0")
    assert first["topics"] and first["categories"]
    r = first["responses"][0]
    assert {"position1", "position2", "refusals", "compliance", "majority", "values"} <= set(r)
    assert len(r["refusals"]) == 3 and len(r["compliance"]) == 3


def test_requests_tables_map_to_their_stage() -> None:
    stages = ["scenarios", "responses", "rubrics", "scores", "embeddings"]
    assert stage_of("scenarios_biased", stages) == "scenarios"
    assert stage_of("scores_c0_r1", stages) == "scores"
    assert stage_of("rubrics_c12_r0", stages) == "rubrics"
    assert stage_of("responses", stages) == "responses"


def test_cli_writes_the_report_and_rejects_bad_options(
    full_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(full_run), "--max-scenarios", "3"]) == 0
    assert (full_run / "report" / "index.html").exists()
    assert "index.html" in capsys.readouterr().out
    assert main(["report", str(full_run), "--max-chars", "0"]) == 1
    assert "max_chars" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        ReportOptions(max_scenarios=0)
    assert main(["report", str(full_run / "nope")]) == 1
    assert "no manifest.json" in capsys.readouterr().err
    assert not (full_run / "nope").exists()


def test_run_facts_list_the_batches_in_flight(tmp_path: Path) -> None:
    analysis_run(tmp_path, 10)
    ledger = BatchLedger(Location(str(tmp_path)).child("batches"))
    live = BatchRecord.new("responses", "o3", "openai", 0, 12)
    live.created_at -= 120
    ledger.begin(live, [f"k{i}" for i in range(12)])
    live.state, live.remote_id, live.counts = "submitted", "batch_live", {"completed": 5, "total": 12}
    ledger.save(live)
    done = BatchRecord.new("responses", "o3", "openai", 0, 8)
    ledger.begin(done, [f"d{i}" for i in range(8)])
    done.state, done.remote_id = "collected", "batch_done"
    ledger.save(done)
    page, _ = build(tmp_path)
    rows = page.sections["facts"].cells
    [live_row] = [r for r in rows if r and r[0] == "batch_live"]
    assert live_row[1:5] == ["responses", "o3", "submitted", "12"] and float(live_row[5]) >= 2.0
    assert "completed 5" in live_row[6]
    assert not [r for r in rows if r and r[0] == "batch_done"]
    assert ["all batches", "", "", "2 batches", "20", "", ""] in rows


def test_the_papers_figures_stand_beside_the_runs(full_run: Path) -> None:
    page, _ = build(full_run)
    judges = beside_paper(page, "judges")
    # judge_tables: problematic rates 0.2, 0.3, 0.4 and agreement 0.6 + 0.1 (a + b), in JUDGES order.
    assert judges["problematic rate, Claude 4 Sonnet as judge"] == ["20.0%", "48.1% (of 5,000 responses)"]
    assert judges["problematic rate, Gemini 2.5 Pro as judge"] == ["40.0%", "36.5% (of 5,000 responses)"]
    assert judges["agreement, o3 and Gemini 2.5 Pro"] == ["90.00%", "76.84%"]
    compliance = beside_paper(page, "compliance")
    n, _, _, all_fail = COMPLIANCE_SAMPLES["random"]
    assert compliance["all five OpenAI models problematic, random sample"] == [
        f"{100 * all_fail / n:.1f}%",
        "1.1%",
    ]
    assert compliance["all five OpenAI models problematic, OpenAI high-disagreement sample"] == [
        NOT_IN_RUN,
        "5.1%",
    ]
    n, _, _, all_fail = COMPLIANCE_SAMPLES["high_all"]
    assert compliance["all five OpenAI models problematic, high-disagreement sample"] == [
        f"{100 * all_fail / n:.1f}%",
        "3.6%",
    ]
    # judge_tables: each family binned by its own D; openai's bin k has frequent non-compliance
    # 0.05 (k + 1) by majority and 0.1 (k + 1) by any judge: beside the paper's, per bin.
    assert compliance["frequent non-compliance by majority, OpenAI D in [0,1)"] == ["5.0%", "0.7%"]
    assert compliance["frequent non-compliance by majority, OpenAI D in [2.5,3]"] == ["25.0%", "9.7%"]
    assert compliance["frequent non-compliance by any judge, OpenAI D in [1,1.5)"] == ["20.0%", "5.3%"]
    assert compliance["frequent non-compliance by any judge, OpenAI D in [2.5,3]"] == ["50.0%", "49.4%"]
    assert not page.sections["compliance"].notes
    row = ["[2.5,3]", "openai", "openai", "10", "25.0% ± 2.0%", "20", "50.0% ± 3.0%"]
    assert row in page.sections["compliance"].cells
    dis = pl.read_parquet(full_run / "tables" / "disagreement.parquet").filter(pl.col("subset") == "all")
    picks = pl.read_parquet(full_run / "tables" / "selections.parquet").filter(pl.col("subset") == "all")
    disagreement = beside_paper(page, "disagreement")
    high = int(dis["high"].sum())
    assert disagreement["high-disagreement scenarios (all models, D ≥ 1.5)"] == [f"{high:,}", "over 70,000"]
    assert disagreement["share with high disagreement (all models)"] == [
        f"{100 * high / dis.height:.1f}%",
        "about 23%",
    ]
    assert disagreement["selected (weighted k-center), split all_models"] == [f"{picks.height:,}", "43,960"]
    assert disagreement["selected (weighted k-center), split claude_models"] == [NOT_IN_RUN, "20,790"]
    assert disagreement["scenarios after the δ-diverse selection"] == [NOT_IN_RUN, "over 300,000"]
    scenarios = pl.read_parquet(full_run / "tables" / "scenarios.parquet").height
    assert disagreement["scenarios generated, after filtering"] == [f"{scenarios:,}", "over 410,000"]
    shown = {label for s in ("judges", "compliance", "disagreement") for label in beside_paper(page, s)}
    assert shown | {"Fleiss' kappa of the three judges"} == {f.label for f in paper_figures().figures}


def test_a_run_binned_by_another_subset_shows_the_papers_bins_alone_and_pairs_in_either_order(
    full_run: Path,
) -> None:
    summary = full_run / "tables" / "compliance_summary.parquet"
    table = pl.read_parquet(summary)
    binned_by_all = table.with_columns(
        subset=pl.when(pl.col("group_kind") == "bin").then(pl.lit("all")).otherwise("subset")
    )
    pq.write_table(binned_by_all.to_arrow().cast(pq.read_schema(summary)), summary)
    stats = full_run / "tables" / "judge_stats.parquet"
    pair = pl.col("judge_b").is_not_null()
    swapped = pl.read_parquet(stats).with_columns(
        judge_a=pl.when(pair).then("judge_b").otherwise("judge_a"), judge_b=pl.when(pair).then("judge_a")
    )
    pq.write_table(swapped.to_arrow().cast(pq.read_schema(stats)), stats)
    page, _ = build(full_run)
    compliance = beside_paper(page, "compliance")
    assert compliance["frequent non-compliance by majority, OpenAI D in [0,1)"] == [NOT_IN_RUN, "0.7%"]
    assert compliance["frequent non-compliance by any judge, OpenAI D in [2.5,3]"] == [NOT_IN_RUN, "49.4%"]
    assert compliance["all five OpenAI models problematic, high-disagreement sample"][1] == "3.6%"
    assert any(
        "D of subset 'all'" in n and "binned by subset openai" in n for n in page.sections["compliance"].notes
    )
    judges = beside_paper(page, "judges")
    assert judges["agreement, Claude 4 Sonnet and o3"] == ["70.00%", "67.52%"]
    assert judges["problematic rate, o3 as judge"] == ["30.0%", "35.5% (of 5,000 responses)"]


def test_pair_cooccurrence_is_drawn_for_the_top_categories_and_models(
    full_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page, _ = build(full_run)
    [note] = [n for n in page.sections["values"].notes if n.startswith("Per model pair")]
    assert f"the 4 most frequent of {len(VALUE_CATEGORIES)} categories" in note and "models that" not in note
    monkeypatch.setattr(sections_judges, "MAX_PAIR_MODELS", 3)
    monkeypatch.setattr(sections_judges, "MAX_PAIR_CATEGORIES", 2)
    page, _ = build(full_run)
    [note] = [n for n in page.sections["values"].notes if n.startswith("Per model pair")]
    assert "the 2 most frequent of 4 categories: 1 " in note
    assert f"the 3 of {len(MODELS)} models that show the most values" in note
    assert page.sections["values"].images == 3


def test_one_spec_version_has_nothing_to_compare_in_one_line(full_run: Path) -> None:
    page, _ = build(full_run)
    sec = page.sections["spec-versions"]
    assert sec.notes == [ONE_VERSION] and sec.cells == [] and sec.missing == []
