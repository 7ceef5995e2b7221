"""A small reader of the report page for tests: per section, its plots, tables and notes, the JSON block,
and the rows that set the paper's figures beside the run's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from jobs.paper.figures import paper_figures


@dataclass
class ParsedSection:
    images: int = 0
    captions: list[str] = field(default_factory=list)
    cells: list[list[str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nothing: list[str] = field(default_factory=list)
    """Plots with nothing to draw: their one line each."""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, ParsedSection] = {}
        self.current: ParsedSection | None = None
        self.capture: list[str] | None = None
        self.row: list[str] | None = None
        self.kind = ""
        self.script_id: str | None = None
        self.scripts: dict[str, str] = {}
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.current = self.sections.setdefault(a.get("id") or "", ParsedSection())
        elif self.current is None:
            pass
        elif tag == "img":
            self.current.images += 1
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th", "caption") or (
            tag == "p" and a.get("class") in ("missing", "note", "nothing")
        ):
            self.kind = a.get("class") or tag
            self.capture = []
        if tag == "script":
            self.script_id = a.get("id") or ""
            self.scripts[self.script_id] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.current = None
        elif tag == "script":
            self.script_id = None
        elif self.current is not None and self.capture is not None and tag in ("td", "th", "caption", "p"):
            text = "".join(self.capture).strip()
            self.capture = None
            if self.kind in ("td", "th") and self.row is not None:
                self.row.append(text)
            elif self.kind == "caption":
                self.current.captions.append(text)
            elif self.kind == "missing":
                self.current.missing.append(text)
            elif self.kind == "note":
                self.current.notes.append(text)
            elif self.kind == "nothing":
                self.current.nothing.append(text)
        elif tag == "tr" and self.current is not None and self.row is not None:
            self.current.cells.append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.script_id is not None:
            self.scripts[self.script_id] += data
        elif self.capture is not None:
            self.capture.append(data)


@dataclass
class ParsedPage:
    sections: dict[str, ParsedSection]
    data: dict[str, Any]
    tags: list[str]


def parse_page(html: str) -> ParsedPage:
    r = _Reader()
    r.feed(html)
    return ParsedPage(r.sections, json.loads(r.scripts["explorer-data"]), r.tags)


def beside_paper(page: ParsedPage, section: str) -> dict[str, list[str]]:
    """A section's 'this run beside the paper' rows: the paper figure's label -> [this run, the paper]."""
    labels = {f.label for f in paper_figures().figures}
    rows = {r[0]: r[1:] for r in page.sections[section].cells if len(r) == 3 and r[0] in labels}
    assert any(c.startswith("This run beside the paper (") for c in page.sections[section].captions)
    return rows
