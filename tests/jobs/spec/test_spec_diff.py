"""Section diffs: every status on hand-made versions, the two OpenAI Model Specs, the two demo specs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import polars as pl
import pytest

from jobs.spec.diff import DIFF_SCHEMA, STATUSES, diff_sections
from jobs.spec.sections import Spec, parse_spec, read_spec
from tests.shared_data import shared_file

DATA = Path(__file__).resolve().parents[3] / "jobs" / "data"

OLD = """
    # Rules
    Follow them.

    ## Kept
    This section stays exactly
    as it is, only reflowed.

    ## Edited
    one two three four

    ## Lonely
    A paragraph that is moved to another part without a single change of wording.

    ## Old name
    Words that stay the same while the heading above them changes its name completely.

    ## Dropped
    Gone in the next version.

    # Appendix
    Notes.
"""

NEW = """
    # Rules
    Follow them.

    ## Kept
    This section stays exactly as it is, only reflowed.

    ## Edited
    one two three five

    ## New name
    Words that stay the same while the heading above them changes its name completely.

    ## Fresh
    Added in this version.

    # Appendix
    Notes.

    ## Lonely
    A paragraph that is moved to another part without a single change of wording.
"""


def md(text: str, name: str) -> Spec:
    return parse_spec(textwrap.dedent(text).lstrip("\n"), name=name)


def rows(diff: pl.DataFrame) -> list[tuple[str, str | None, str | None]]:
    return [(r["status"], r["heading_a"], r["heading_b"]) for r in diff.iter_rows(named=True)]


def assert_covers(diff: pl.DataFrame, a: Spec, b: Spec) -> None:
    """Each section of each version is in exactly one row."""
    assert sorted(diff["id_a"].drop_nulls()) == sorted(a.ids)
    assert sorted(diff["id_b"].drop_nulls()) == sorted(b.ids)
    assert set(diff["status"]) <= set(STATUSES)


def test_every_status_on_two_hand_made_versions() -> None:
    a, b = md(OLD, "old.md"), md(NEW, "new.md")
    diff = diff_sections(a, b)
    assert diff.schema == pl.Schema(DIFF_SCHEMA)
    assert_covers(diff, a, b)
    # B's sections in B's order, then what was removed, in A's order.
    assert rows(diff) == [
        ("unchanged", "Rules", "Rules"),
        ("unchanged", "Kept", "Kept"),  # reflowed lines are not a change
        ("rewritten", "Edited", "Edited"),
        ("renamed", "Old name", "New name"),
        ("added", None, "Fresh"),
        ("unchanged", "Appendix", "Appendix"),
        ("moved", "Lonely", "Lonely"),  # from under Rules to under Appendix
        ("removed", "Dropped", None),
    ]
    sim = dict(zip(diff["heading_b"], diff["similarity"], strict=True))
    # Words "Edited one two three four" vs "Edited one two three five": 4 in common of 10, 2*4/10.
    assert sim["Edited"] == pytest.approx(0.8)
    assert sim["Lonely"] == 1.0 and sim["Rules"] == 1.0 and sim["Fresh"] is None
    # "Old name" + 14 words vs "New name" + the same 14: "name" and the 14 match, 2*15/32.
    assert sim["New name"] == pytest.approx(30 / 32)
    moved = diff.row(6, named=True)
    assert moved["id_a"].startswith("rules/lonely@") and moved["id_b"].startswith("appendix/lonely@")


def test_the_threshold_decides_between_renamed_and_added_with_removed() -> None:
    a = md("# Old\nalpha beta gamma delta\n", "a.md")
    b = md("# New\nalpha beta gamma omega\n", "b.md")
    # 3 words of 5 in common on each side: 2*3/10 = 0.6.
    assert rows(diff_sections(a, b, match_threshold=0.6)) == [("renamed", "Old", "New")]
    assert rows(diff_sections(a, b, match_threshold=0.61)) == [
        ("added", None, "New"),
        ("removed", "Old", None),
    ]
    with pytest.raises(ValueError, match="match_threshold"):
        diff_sections(a, b, match_threshold=0.0)


def test_the_most_similar_pair_is_matched_first() -> None:
    a = md("# A1\nw1 w2 w3 w4 w5 w6 w7 w8\n# A2\nw1 w2 w3 w4 w5 w6 x7 x8\n", "a.md")
    b = md("# B\nw1 w2 w3 w4 w5 w6 w7 w8\n", "b.md")
    # B is 8/9 like A1 (2*8/18) and 6/9 like A2 (2*6/18); A1 takes it, A2 is removed.
    assert rows(diff_sections(a, b)) == [("renamed", "A1", "B"), ("removed", "A2", None)]


def test_two_identical_versions_are_all_unchanged() -> None:
    a = md(OLD, "a.md")
    diff = diff_sections(a, a)
    assert diff["status"].to_list() == ["unchanged"] * len(a.sections)
    assert diff["id_a"].to_list() == diff["id_b"].to_list() == list(a.ids)


def test_the_openai_model_spec_diff_finds_the_changelogs_changes() -> None:
    old = read_spec(shared_file("data", "openai-model-spec", "model_spec_2025-04-11.md"))
    new = read_spec(shared_file("data", "openai-model-spec", "model_spec_2025-12-18.md"))
    diff = diff_sections(old, new)
    assert_covers(diff, old, new)
    by_status = {
        s: set(g["heading_b"].drop_nulls()) | set(g["heading_a"].drop_nulls())
        for (s,), g in diff.group_by("status")
    }
    # CHANGELOG.md: 2025-09-12 adds red-line principles, "No other objectives" and two chain-of-command
    # sections on autonomy and side effects; 2025-10-27 adds "Respect real-world ties"; 2025-12-18 adds
    # the under-18 principles.
    assert {
        "Red-line principles",
        "No other objectives",
        "Act within an agreed-upon scope of autonomy",
        "Control and communicate side effects",
        "Respect real-world ties",
        "Under-18 Principles",
    } <= by_status["added"]
    # 2025-09-12 merges the stub "Be approachable" into "Use appropriate style": the stub is removed
    # and the personality sections that sat under it now sit under the style section.
    assert "Be approachable" in by_status["removed"]
    assert "Be rationally optimistic" in by_status["moved"]
    # The platform level was renamed root throughout the text; the honesty rules were tightened.
    assert {"Follow all applicable instructions", "Do not lie"} <= by_status["rewritten"]
    assert len(by_status["unchanged"]) >= 10
    rewritten = diff.filter(pl.col("status") == "rewritten")["similarity"]
    assert rewritten.min() > 0.0 and rewritten.max() < 1.0


def test_the_two_demo_specs_differ_by_exactly_the_revision() -> None:
    old, new = read_spec(DATA / "demo_spec.md"), read_spec(DATA / "demo_spec_revised.md")
    diff = diff_sections(old, new)
    assert_covers(diff, old, new)
    changed = sorted((s, a, b) for s, a, b in rows(diff) if s != "unchanged")
    assert changed == [
        ("added", None, "6. Privacy and personal information"),
        ("removed", "6. Sensitive and political topics", None),
        ("rewritten", "2. Helpfulness", "2. Helpfulness"),
        ("rewritten", "3. Honesty and calibration", "3. Honesty and calibration"),
        ("rewritten", "5. Harm avoidance", "5. Harm avoidance"),
    ]
    assert diff.height == len(old.sections) + 1
