"""Two versions of a spec compared section by section.

Sections are first paired by id: the same id in both versions is the same heading at the
same place, `unchanged` when its words are the same (reflowed lines and changed spacing do
not count) and `rewritten` otherwise. Of the rest, a section of A and one of B whose words
are alike (similarity at least `match_threshold`) are the same section under a new id:
`moved` when its heading is the same (its parent changed) and `renamed` when the heading
changed. Pairs are taken greedily, most similar first (ties in document order), so each
section is in at most one. What is left is `removed` (only in A) or `added` (only in B).

Similarity is difflib's ratio over the whitespace-split words of the heading and the
section's own text: twice the words the two have in common, in order, over the words in
both. Words rather than characters, because difflib treats frequent characters of a long
text as junk, and prose changes a word at a time.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Literal

import polars as pl

from jobs.spec.sections import Section, Spec

Status = Literal["unchanged", "rewritten", "moved", "renamed", "added", "removed"]
STATUSES: tuple[Status, ...] = ("unchanged", "rewritten", "moved", "renamed", "added", "removed")

MATCH_THRESHOLD = 0.6
"""Least similarity for a section under a new id to count as moved or renamed."""

DIFF_SCHEMA: dict[str, pl.DataType] = {
    "status": pl.String(),  # one of STATUSES
    "id_a": pl.String(),  # null: added
    "id_b": pl.String(),  # null: removed
    "heading_a": pl.String(),  # null: added
    "heading_b": pl.String(),  # null: removed
    "similarity": pl.Float64(),  # 0..1, 1.0 when unchanged; null: added or removed
}
"""`diff_sections`: one row per section of either version. B's sections come first, in B's
order (each with the section of A it matches, if any), then the removed ones in A's order."""


def diff_sections(a: Spec, b: Spec, *, match_threshold: float = MATCH_THRESHOLD) -> pl.DataFrame:
    """What became of each section of `a` in `b`, as a frame of `DIFF_SCHEMA`."""
    if not 0.0 < match_threshold <= 1.0:
        raise ValueError(f"match_threshold: must be in (0, 1], got {match_threshold}")
    a_by_id = {s.id: s for s in a.sections}
    b_ids = set(b.ids)
    matched = _match(
        [s for s in a.sections if s.id not in b_ids],
        [s for s in b.sections if s.id not in a_by_id],
        match_threshold,
    )
    rows: list[tuple[Status, str | None, str | None, str | None, str | None, float | None]] = []
    for s in b.sections:
        old = a_by_id.get(s.id)
        if old is not None:
            sim = _similarity(_words(old), _words(s))
            status: Status = "unchanged" if sim == 1.0 else "rewritten"
        elif s.id in matched:
            old, sim = matched[s.id]
            status = "moved" if old.heading == s.heading else "renamed"
        else:
            rows.append(("added", None, s.id, None, s.heading, None))
            continue
        rows.append((status, old.id, s.id, old.heading, s.heading, sim))
    taken = {old.id for old, _ in matched.values()}
    rows += [("removed", s.id, None, s.heading, None, None) for s in a.sections if s.id not in b_ids | taken]
    return pl.DataFrame(rows, schema=DIFF_SCHEMA, orient="row")


def _similarity(a: list[str], b: list[str]) -> float:
    """difflib's ratio of two word lists: 1.0 exactly when they are equal."""
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _words(s: Section) -> list[str]:
    return [*s.heading.split(), *s.text.split()]


def _match(olds: list[Section], news: list[Section], threshold: float) -> dict[str, tuple[Section, float]]:
    """New id -> (old section, similarity) for the pairs taken, most similar first."""
    candidates: list[tuple[float, int, int]] = []
    for i, old in enumerate(olds):
        matcher = SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(_words(old))  # difflib caches what it learns about seq2
        for j, new in enumerate(news):
            matcher.set_seq1(_words(new))
            # The cheap upper bounds first: most pairs are far apart.
            if (
                matcher.real_quick_ratio() >= threshold
                and matcher.quick_ratio() >= threshold
                and (sim := matcher.ratio()) >= threshold
            ):
                candidates.append((sim, i, j))
    matched: dict[str, tuple[Section, float]] = {}
    used_old: set[int] = set()
    for sim, i, j in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if i not in used_old and news[j].id not in matched:
            used_old.add(i)
            matched[news[j].id] = (olds[i], sim)
    return matched
