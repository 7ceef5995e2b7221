"""The paper's published figures (`jobs/data/paper_figures.json`), set beside a run's own in the report.

The figures are data, kept with their source in one file; this module validates that
file and builds the rows that show them. A run's figure stands beside the paper's only
where the run computes the same thing: each paper figure names its counterpart in
`match` (a judge, a judge pair, a family and sample, a bin of one subset's D, a subset),
and a run figure of the same metric counts only when it agrees on every key given. Where
none does, the row shows the paper's figure alone and says so: no run figure is made up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from actors.errors import SpecstressError
from jobs.outputs.report.blocks import Table, num

FIGURES_FILE = "paper_figures.json"
"""The data file, in the `jobs.data` package."""
NOT_IN_RUN = "not in this run"


class Source(BaseModel):
    """Where figures come from: the full citation and a short one for captions."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    cite: str
    short: str


class PaperFigure(BaseModel):
    """One published figure: the number as printed, what it measures, its run counterpart, its source."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    metric: str
    label: str
    value: float
    unit: Literal["%", "count", ""]
    qualifier: Literal["", "over", "about"] = ""
    match: dict[str, str]
    source: str
    note: str = ""

    def text(self) -> str:
        """The figure as the paper states it: '48.1%', '0.42', 'over 300,000'."""
        shown = f"{int(self.value):,}" if self.unit == "count" else f"{self.value:g}{self.unit}"
        return f"{self.qualifier} {shown}".strip()

    def run_text(self, value: float) -> str:
        """A run's figure in this figure's unit, at least as precise (a share shows as a percentage)."""
        if self.unit == "count":
            return num(int(value))
        if self.unit == "%":
            digits = max(1, len(f"{self.value:g}".partition(".")[2]))
            return f"{100 * value:.{digits}f}%"
        return f"{value:.3f}"


class PaperFigures(BaseModel):
    """The data file: its own description, the sources, and the figures in display order."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    about: str
    sources: dict[str, Source]
    figures: tuple[PaperFigure, ...]

    @model_validator(mode="after")
    def _every_figure_cited(self) -> PaperFigures:
        unknown = sorted({f.source for f in self.figures} - set(self.sources))
        if unknown:
            raise ValueError(f"figures cite sources not in 'sources': {unknown}")
        return self

    def of(self, *metrics: str) -> list[PaperFigure]:
        """The figures of these metrics, in the file's order."""
        return [f for f in self.figures if f.metric in metrics]

    def caption(self, figures: Sequence[PaperFigure]) -> str:
        """A comparison table's caption, citing each source of its figures once."""
        cited = dict.fromkeys(self.sources[f.source].short for f in figures)
        return f"This run beside the paper ({'; '.join(cited)})"


@dataclass(frozen=True)
class RunFigure:
    """A figure the run computed, with the coordinates a paper figure's `match` is checked against."""

    metric: str
    where: Mapping[str, str]
    value: float | None


def parse_figures(text: str, name: str) -> PaperFigures:
    """Validate the data file's text; an error names the file, the place and the problem."""
    try:
        return PaperFigures.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise SpecstressError(f"{name}: {where}: {err['msg']}") from None


@cache
def paper_figures() -> PaperFigures:
    """The shipped figures, read once per process."""
    text = resources.files("jobs.data").joinpath(FIGURES_FILE).read_text(encoding="utf-8")
    return parse_figures(text, f"jobs/data/{FIGURES_FILE}")


def run_value(figure: PaperFigure, run: Sequence[RunFigure]) -> float | None:
    """The run's counterpart of `figure`: same metric, agreeing on every key of its `match`."""
    for r in run:
        if r.metric == figure.metric and all(r.where.get(k) == v for k, v in figure.match.items()):
            return r.value
    return None


def inline(figure: PaperFigure, run: Sequence[RunFigure]) -> str:
    """'0.365 (this run) · 0.42 (the paper)', or the paper's alone when the run has no counterpart."""
    value = run_value(figure, run)
    ours = NOT_IN_RUN if value is None else f"{figure.run_text(value)} (this run)"
    return f"{ours} · {figure.text()} (the paper)"


def beside(figures: Sequence[PaperFigure], run: Sequence[RunFigure]) -> Table:
    """A table of the paper's figures, each with the run's counterpart where the run has one."""
    rows = []
    for f in figures:
        value = run_value(f, run)
        paper = f"{f.text()} ({f.note})" if f.note else f.text()
        rows.append([f.label, NOT_IN_RUN if value is None else f.run_text(value), paper])
    return Table(paper_figures().caption(figures), ["figure", "this run", "the paper"], rows)
