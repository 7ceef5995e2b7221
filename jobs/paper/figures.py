"""The figures the paper publishes (`jobs/data/paper_figures.json`).

The figures are data, kept with their source in one file; this module validates it. The
report sets them beside a run's own (`jobs/outputs/report/paper.py`), and the estimate takes
the paper's kept share of scenarios from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from actors.errors import SpecstressError

FIGURES_FILE = "paper_figures.json"
"""The data file, in the `jobs.data` package."""


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
            return f"{int(value):,}"
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

    def one(self, metric: str) -> PaperFigure:
        """The single figure of a metric the paper states once."""
        (figure,) = self.of(metric)
        return figure


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


PAPER_SCENARIOS = int(paper_figures().one("scenarios_generated").value)
"""Scenarios the paper had after filtering ("more than 410,000", §2 of METHOD.md)."""
PAPER_DIVERSE = int(paper_figures().one("scenarios_diverse").value)
"""Scenarios its δ-diverse selection kept (δ = 0.4 on Gemini embeddings: "over 300,000")."""
DIVERSE_SHARE = PAPER_DIVERSE / PAPER_SCENARIOS
"""The share of scenarios selection keeps (~0.73): what the estimate expects before a run's own
diversity stage has counted it."""
