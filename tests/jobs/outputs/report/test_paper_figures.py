"""The paper's figures: the data file loads, every figure is cited and names a real counterpart, and a
run's figure is set beside one only where it measures the same thing."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from actors.errors import SpecstressError
from jobs.analysis.disagreement import BIN_LABELS, DEFAULT_SUBSETS
from jobs.outputs.report.paper import NOT_IN_RUN, RunFigure, beside, inline, run_value
from jobs.paper.figures import FIGURES_FILE, PaperFigure, paper_figures, parse_figures
from jobs.paper.models import PAPER_MODELS
from jobs.release.layout import SPLIT_OF_SUBSET
from jobs.stages.settings.compliance import SAMPLE_NAMES

PUBLISHED = {
    "fleiss_kappa": ["0.42"],
    "problematic_rate": ["48.1%", "35.5%", "36.5%"],
    "pairwise_agreement": ["67.52%", "72.39%", "76.84%"],
    "all_fail": ["1.1%", "3.6%", "5.1%"],
    "frequent_noncompliance_majority": ["0.7%", "1.2%", "1.4%", "4.9%", "9.7%"],
    "frequent_noncompliance_any_judge": ["4.9%", "5.3%", "12.3%", "28%", "49.4%"],
    "scenarios_generated": ["over 410,000"],
    "scenarios_diverse": ["over 300,000"],
    "scenarios_some_pair": ["over 220,000"],
    "scenarios_some_pair_share": ["about 73%"],
    "scenarios_high": ["over 70,000"],
    "scenarios_high_share": ["about 23%"],
    "split_size": ["43,960", "20,790", "26,295", "10,160", "21,953", "9,245"],
}
"""METHOD.md §9, as the paper prints each figure, in the data file's order."""


def shipped_text() -> str:
    return resources.files("jobs.data").joinpath(FIGURES_FILE).read_text(encoding="utf-8")


def test_the_data_file_loads_and_every_figure_is_cited() -> None:
    figs = paper_figures()
    assert {m: [f.text() for f in figs.of(m)] for m in PUBLISHED} == PUBLISHED
    assert len(figs.figures) == sum(len(v) for v in PUBLISHED.values())  # nothing else in the file
    for f in figs.figures:
        assert "arXiv 2510.07686" in figs.sources[f.source].cite, f.label
        assert f.label and f.label not in [g.label for g in figs.figures if g is not f], f.label


def test_every_figure_names_a_counterpart_the_code_knows() -> None:
    known = {
        "judge": set(PAPER_MODELS),
        "judge_a": set(PAPER_MODELS),
        "judge_b": set(PAPER_MODELS),
        "family": {"openai"},
        "group": set(SAMPLE_NAMES),
        "bin": set(BIN_LABELS),
        "bin_subset": set(DEFAULT_SUBSETS),
        "subset": set(DEFAULT_SUBSETS),
    }
    for f in paper_figures().figures:
        for key, value in f.match.items():
            assert value in known[key], (f.label, key, value)
    for f in paper_figures().of("split_size"):
        assert f.label.endswith(f"split {SPLIT_OF_SUBSET[f.match['subset']]}")


def test_a_figure_with_an_unknown_source_or_unit_is_refused() -> None:
    data = json.loads(shipped_text())
    data["figures"][3]["source"] = "a blog"
    with pytest.raises(SpecstressError, match=r"paper_figures.json: .*not in 'sources': \['a blog'\]"):
        parse_figures(json.dumps(data), "paper_figures.json")
    data = json.loads(shipped_text())
    data["figures"][1]["unit"] = "percent"
    with pytest.raises(SpecstressError, match=r"figures\.1\.unit"):
        parse_figures(json.dumps(data), "paper_figures.json")


def figure(value: float, unit: str, **kw: object) -> PaperFigure:
    return PaperFigure.model_validate(
        {"metric": "m", "label": "l", "value": value, "unit": unit, "match": {}, "source": "paper", **kw}
    )


def test_a_runs_figure_is_shown_in_the_papers_unit_and_at_least_its_precision() -> None:
    assert figure(67.52, "%").run_text(0.70123) == "70.12%"
    assert figure(28, "%").run_text(0.3) == "30.0%"
    assert figure(28, "%").text() == "28%"
    assert figure(300000, "count", qualifier="over").text() == "over 300,000"
    assert figure(43960, "count").run_text(1234) == "1,234"
    assert figure(0.42, "").run_text(0.36512) == "0.365"


def test_a_runs_figure_counts_only_where_it_measures_the_same_thing() -> None:
    paper = figure(
        9.7, "%", metric="bin_rate", match={"family": "openai", "bin_subset": "openai", "bin": "[2.5,3]"}
    )
    where = {"family": "openai", "bin": "[2.5,3]"}
    other_subset = RunFigure("bin_rate", {**where, "bin_subset": "all"}, 0.5)
    other_metric = RunFigure("any_rate", {**where, "bin_subset": "openai"}, 0.4)
    same = RunFigure("bin_rate", {**where, "bin_subset": "openai", "extra": "x"}, 0.12)
    assert run_value(paper, [other_subset, other_metric]) is None
    assert run_value(paper, [other_subset, other_metric, same]) == 0.12
    assert inline(paper, [same]) == "12.0% (this run) · 9.7% (the paper)"
    assert inline(paper, [other_subset]) == f"{NOT_IN_RUN} · 9.7% (the paper)"
    table = beside([paper, figure(48.1, "%", note="of 5,000 responses")], [same])
    assert table.columns == ["figure", "this run", "the paper"]
    assert "arXiv 2510.07686" in table.caption
    assert table.rows == [["l", "12.0%", "9.7%"], ["l", NOT_IN_RUN, "48.1% (of 5,000 responses)"]]
