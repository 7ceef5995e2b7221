"""The pieces a report page is made of: figures, tables and sections (plain data, rendered by `page`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Figure:
    """One plot, as a PNG data URI, with a text alternative; or, where there is nothing to draw,
    one line saying why (`empty`) instead of empty axes."""

    title: str
    alt: str
    png: str
    empty: str = ""


@dataclass(frozen=True)
class Link:
    """A table cell that links within the page (`#...`), such as a scenario in the explorer."""

    text: str
    href: str


@dataclass
class Table:
    """A small table of already formatted cells (aggregates only: its size never follows the run's rows)."""

    caption: str
    columns: list[str]
    rows: list[list[str | Link]]


@dataclass
class Section:
    """A titled part of the page; `missing` says, in words, which stage has not produced its input."""

    id: str
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    collapsed: bool = False
    """Shown folded, to open on demand (the run's facts, at the end)."""


def clip(text: str, chars: int) -> str:
    """`text` cut at `chars` characters, with an ellipsis where it was cut."""
    return text if len(text) <= chars else text[:chars] + "…"


def pct(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | int | None, digits: int = 2) -> str:
    if x is None:
        return ""
    return f"{x:,}" if isinstance(x, int) else f"{x:,.{digits}f}"
