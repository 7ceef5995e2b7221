"""The paper's published figures (`jobs.paper.figures`), set beside a run's own in the report.

This module builds the rows that show them. A run's figure stands beside the paper's only
where the run computes the same thing: each paper figure names its counterpart in
`match` (a judge, a judge pair, a family and sample, a bin of one subset's D, a subset),
and a run figure of the same metric counts only when it agrees on every key given. Where
none does, the row shows the paper's figure alone and says so: no run figure is made up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobs.outputs.report.blocks import Table
from jobs.paper.figures import PaperFigure, paper_figures

NOT_IN_RUN = "not in this run"


@dataclass(frozen=True)
class RunFigure:
    """A figure the run computed, with the coordinates a paper figure's `match` is checked against."""

    metric: str
    where: Mapping[str, str]
    value: float | None


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
