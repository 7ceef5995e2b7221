"""The report of a real emulated run, opened in headless Chromium: no errors, every plot and table, filters, hostile text.

The run goes through disagreement on the emulator; the judge tables (not built by this
branch's stages) are constructed in the judge-table contract for its scenarios, and one
response is replaced by hostile markup before the report is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.emulator.server import EmulatorServer
from jobs.driver import run_pipeline
from jobs.outputs.report.build import build_report
from tests.conftest import emulator_config
from tests.jobs.outputs.report.browser import browser_page
from tests.jobs.outputs.report.page_parse import parse_page
from tests.jobs.outputs.report.synthetic_run import HOSTILE, inject_response, judge_tables
from tests.jobs.stages.test_analysis_stages import MODELS, PIPELINE, conf

pytestmark = pytest.mark.usefixtures("ray_local")

PLOTS = {
    "disagreement": 1,
    "positions": 1,
    "outliers": 1,
    "refusals": 2,
    "compliance": 2,
    "judges": 2,
    "values": 3,
}
"""Plots each section must show once every stage's tables exist (a plot with nothing to draw says so
in one line instead)."""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("browser") / "run"
    with EmulatorServer(emulator_config()) as emu:
        run_pipeline(conf(emu.url, run_dir), stages=PIPELINE)
    import polars as pl

    ids = pl.read_parquet(run_dir / "tables" / "scenarios.parquet")["scenario_id"].to_list()
    models = tuple(MODELS.strip("[]").split(","))
    judge_tables(run_dir, ids, models)
    first = parse_page(Path(build_report(str(run_dir))).read_text()).data["scenarios"][0]
    victim = first["responses"][0]["model"]
    inject_response(run_dir, first["id"], victim, HOSTILE)
    path = Path(build_report(str(run_dir)))
    yield {"path": path, "data": parse_page(path.read_text()).data, "victim": (first["id"], victim)}


def test_report_renders_without_errors_with_every_plot_and_table(
    report: dict[str, Any], tmp_path: Path
) -> None:
    with browser_page() as (page, errors):
        page.goto(report["path"].as_uri())
        page.wait_for_selector("#scenario-list details")
        for section, n in PLOTS.items():
            imgs = page.locator(f"section#{section} figure.plot img")
            assert imgs.count() + page.locator(f"section#{section} p.nothing").count() == n, section
            for i in range(imgs.count()):
                assert imgs.nth(i).evaluate("img => img.complete && img.naturalWidth > 100"), (section, i)
            assert page.locator(f"section#{section} p.missing").count() == 0, section
        for section in ("facts", "disagreement", "positions", "outliers", "refusals", "compliance", "judges"):
            assert page.locator(f"section#{section} table.data tbody tr").count() > 0, section
        assert (
            page.locator("section#facts table.data caption", has_text="cost per stage and model").count() == 1
        )
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert errors == []


def test_the_first_screen_is_the_findings_and_a_finding_opens_its_scenario(
    report: dict[str, Any], tmp_path: Path
) -> None:
    with browser_page() as (page, errors):
        page.goto(report["path"].as_uri())
        page.wait_for_selector("#scenario-list details")
        shot = tmp_path / "first-screen.png"
        page.screenshot(path=str(shot))  # the viewport only: what a reader sees first
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        order = page.locator("main > section").evaluate_all("nodes => nodes.map(n => n.id)")
        assert order[0] == "findings" and order[-2:] == ["facts", "explorer"]
        height = page.evaluate("window.innerHeight")
        findings = page.locator("section#findings").bounding_box()
        assert findings is not None and findings["y"] < height / 4  # at the top of the first screen
        assert page.locator(
            "section#findings table.data caption", has_text="Where the models disagree"
        ).count()
        assert not page.locator("section#facts details.collapsed").evaluate("d => d.open")  # folded
        link = page.locator("section#findings table.data a").first
        sid = link.get_attribute("href").removeprefix("#scenario-")
        assert sid == report["data"]["scenarios"][0]["id"]  # the highest D first
        link.click()
        card = page.locator(f"#scenario-list details#scenario-{sid}")
        assert card.evaluate("d => d.open") and card.locator(".responses .response").count() > 0
    assert errors == []


def test_explorer_filters_narrow_the_list(report: dict[str, Any]) -> None:
    data = report["data"]
    total = len(data["scenarios"])
    with browser_page() as (page, errors):
        page.goto(report["path"].as_uri())
        visible = page.locator("#scenario-list details.scenario:visible")
        assert visible.count() == total and total > 1
        for select, key, values in (
            ("#filter-subset", "picks", data["subsets"]),
            ("#filter-topic", "topics", data["topics"]),
            ("#filter-category", "categories", data["categories"]),
        ):
            value = values[0]
            expected = {
                s["id"]
                for s in data["scenarios"]
                if value in ([p["subset"] for p in s["picks"]] if key == "picks" else s[key])
            }
            page.select_option(select, value=value)
            shown = {visible.nth(i).get_attribute("data-id") for i in range(visible.count())}
            assert shown == expected, select
            assert page.text_content("#scenario-count") == f"{len(expected)} of {total} scenarios"
            page.select_option(select, value="")
        target = data["scenarios"][-1]
        page.fill("#filter-search", target["query"][:60])
        assert target["id"] in {visible.nth(i).get_attribute("data-id") for i in range(visible.count())}
        assert visible.count() < total
        page.fill("#filter-search", "no scenario says this 1f2e3d")
        assert visible.count() == 0
    assert errors == []


def test_hostile_response_shows_as_text_and_never_runs(report: dict[str, Any]) -> None:
    sid, model = report["victim"]
    with browser_page() as (page, errors):
        page.goto(report["path"].as_uri())
        card = page.locator(f'#scenario-list details[data-id="{sid}"]')
        card.locator("summary").click()
        text = card.locator(f'.response[data-model="{model}"] .text')
        assert text.text_content() == HOSTILE
        assert page.locator("#scenario-list img, #scenario-list script").count() == 0
        for other in page.locator("#scenario-list details").all()[:10]:
            other.locator("summary").click()
        assert page.evaluate("window.__pwned") is None
    assert errors == []
