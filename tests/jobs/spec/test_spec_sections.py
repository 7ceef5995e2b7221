"""Spec sections: ids, spans and hierarchy on real specs and on hostile markdown; bad files."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from actors.errors import ConfigError, SpecError
from jobs.spec.sections import PREAMBLE, Section, Spec, outline, parse_spec, read_spec, unknown_ids
from tests.shared_data import shared_file

OPENAI_OLD = ("data", "openai-model-spec", "model_spec_2025-04-11.md")
OPENAI_NEW = ("data", "openai-model-spec", "model_spec_2025-12-18.md")
CONSTITUTION = ("data", "anthropic-constitution", "claude-constitution_2026-01.md")


def md(text: str) -> Spec:
    return parse_spec(textwrap.dedent(text).lstrip("\n"), name="test.md")


def digest(heading: str) -> str:
    """The id's hash, computed here independently of the module."""
    return hashlib.blake2b(heading.encode(), digest_size=3).hexdigest()


def by_heading(spec: Spec) -> dict[str, Section]:
    return {s.heading: s for s in spec.sections}


def assert_well_formed(spec: Spec) -> None:
    """Unique ids; spans that slice back to each text and tile the file; parents above and shallower."""
    assert len(set(spec.ids)) == len(spec.sections)
    ids = set(spec.ids)
    for s in spec.sections:
        assert spec.text[s.body_start : s.end] == s.text
        assert s.start <= s.body_start <= s.end
        if s.parent_id is not None:
            parent = spec.section(s.parent_id)
            assert parent.level < s.level and parent.start < s.start
            assert s.path[:-1] == parent.path
        assert s.parent_id is None or s.parent_id in ids
    starts = [s.start for s in spec.sections]
    assert starts == sorted(starts)
    assert [s.end for s in spec.sections[:-1]] == starts[1:]
    assert spec.sections[-1].end == len(spec.text)
    if spec.sections[0].id != PREAMBLE:
        assert not spec.text[: spec.sections[0].start].strip()


# --- real specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "at_least"), [(OPENAI_OLD, 60), (OPENAI_NEW, 70), (CONSTITUTION, 35)], ids=lambda p: str(p)
)
def test_real_specs_parse_into_many_well_formed_sections(parts: tuple[str, ...], at_least: int) -> None:
    spec = read_spec(shared_file(*parts))
    assert len(spec.sections) >= at_least
    assert_well_formed(spec)
    assert all(spec.text[s.start] == "#" for s in spec.sections)  # ATX headings throughout
    assert not any("{#" in s.heading for s in spec.sections)  # attribute blocks are not heading text


def test_hash_lines_in_the_openai_specs_code_blocks_are_not_headings() -> None:
    # model_spec_2025-04-11.md has "# functions" and "# [...] imports" inside fenced examples.
    spec = read_spec(shared_file(*OPENAI_OLD))
    assert "\n# functions\n" in spec.text
    assert not {"functions", "[...] imports"} & {s.heading for s in spec.sections}
    assert any("\n# functions\n" in s.text for s in spec.sections)


def test_a_heading_kept_in_place_has_the_same_id_in_both_openai_versions() -> None:
    old, new = read_spec(shared_file(*OPENAI_OLD)), read_spec(shared_file(*OPENAI_NEW))
    old_by_path = {s.path: s.id for s in old.sections}
    kept = [s for s in new.sections if s.path in old_by_path]
    assert len(kept) >= 50
    assert all(old_by_path[s.path] == s.id for s in kept)
    # The heading kept its wording but its attribute block changed ({... authority=platform}
    # to {... authority=root}); the id is that of the heading, so it holds.
    follow = "the-chain-of-command/follow-all-applicable-instructions"
    (old_id,) = [i for i in old.ids if i.startswith(follow + "@")]
    assert "authority=platform}" in old.text and old_id in new.ids
    # Sections added in 2025-12 (CHANGELOG: Under-18 principles, red-line principles) are new ids.
    assert {"Under-18 Principles", "Red-line principles"} <= {
        new.section(i).heading for i in set(new.ids) - set(old.ids)
    }


def test_the_constitution_nests_four_levels() -> None:
    spec = read_spec(shared_file(*CONSTITUTION))
    top = spec.sections[0]
    assert (top.level, top.heading, top.id) == (
        1,
        "Claude's Constitution",
        f"claudes-constitution@{digest(top.heading)}",
    )
    assert max(s.level for s in spec.sections) == 4
    assert all(s.parent_id == top.id for s in spec.sections if s.level == 2)


# --- ids on hostile markdown --------------------------------------------------------------------


def test_ids_are_the_slug_path_and_a_hash_of_the_heading() -> None:
    spec = md("""
        # Overview {#overview}
        Intro.
        ## Defaults
        Be *nice*.
    """)
    overview, defaults = spec.sections
    assert overview.id == f"overview@{digest('Overview')}"
    assert defaults.id == f"overview/defaults@{digest('Defaults')}"
    assert (defaults.level, defaults.path, defaults.parent_id) == (2, ("Overview", "Defaults"), overview.id)
    assert (overview.text, defaults.text) == ("Intro.\n", "Be *nice*.\n")
    assert spec.text[overview.start : overview.body_start] == "# Overview {#overview}\n"


def test_six_levels_of_nesting_and_skipped_levels() -> None:
    spec = md(
        "".join(f"{'#' * n} Level {n}\n\nText {n}.\n\n" for n in range(1, 7)) + "# Next\n\n### Skipped\n"
    )
    assert_well_formed(spec)
    deepest = by_heading(spec)["Level 6"]
    assert deepest.level == 6 and len(deepest.path) == 6
    assert deepest.id.split("@")[0] == "/".join(f"level-{n}" for n in range(1, 7))
    assert by_heading(spec)["Skipped"].parent_id == by_heading(spec)["Next"].id  # h3 under h1
    assert by_heading(spec)["Skipped"].id.startswith("next/skipped@")


def test_duplicate_headings_get_ordinals_that_reach_their_subsections() -> None:
    spec = md("""
        # Rules
        ## Examples
        ### Good
        ## Examples
        ### Good
        ## Examples
        # Other
        ## Examples
    """)
    assert_well_formed(spec)
    h = digest("Examples")
    assert [s.id.split("@")[0] for s in spec.sections] == [
        "rules",
        "rules/examples",
        "rules/examples/good",
        "rules/examples~2",
        "rules/examples~2/good",
        "rules/examples~3",
        "other",
        "other/examples",  # under another parent: no ordinal
    ]
    assert spec.sections[3].id == f"rules/examples~2@{h}"


def test_headings_with_one_slug_but_different_words_are_told_apart() -> None:
    spec = md("""
        # C
        # C++
        # Don't lie
        # Don’t lie
    """)
    straight, curly = "Don't lie", "Don’t lie"
    assert [s.id for s in spec.sections] == [
        f"c@{digest('C')}",
        f"c~2@{digest('C++')}",
        f"dont-lie@{digest(straight)}",
        f"dont-lie~2@{digest(curly)}",
    ]


def test_an_id_does_not_depend_on_position() -> None:
    a = md("""
        # First
        one
        ## Child
        # Second
        two
    """)
    b = md("""
        # New
        # Second
        two, edited
        # First
        one
        ## Child
    """)
    assert set(a.ids) < set(b.ids)
    assert a.section(a.ids[1]).heading == b.section(a.ids[1]).heading == "Child"


def test_hash_lines_in_code_are_not_headings() -> None:
    spec = md("""
        # Real
        ```python
        # a comment, not a heading
        ## neither
        ```
        ~~~
        # tilde fence
        ~~~

            # indented code

        > # quoted heading: an example, not structure
        - # heading in a list item
        <div>
        # inside an HTML block
        </div>
    """)
    (real,) = spec.sections
    assert real.heading == "Real" and "# a comment, not a heading" in real.text
    assert "# inside an HTML block" in real.text


def test_a_spec_without_headings_is_one_preamble_section() -> None:
    spec = parse_spec("Just rules.\n\nBe kind.\n", name="flat.md")
    (only,) = spec.sections
    assert (only.id, only.level, only.heading, only.path, only.parent_id) == (PREAMBLE, 0, "", (), None)
    assert (only.start, only.end, only.text) == (0, len(spec.text), spec.text)


def test_text_before_the_first_heading_is_the_preamble() -> None:
    spec = md("""
        Some intro.

        # Body
        text
    """)
    preamble, body = spec.sections
    assert preamble.id == PREAMBLE and preamble.text == "Some intro.\n\n"
    assert body.parent_id is None  # the preamble is nobody's parent
    assert_well_formed(spec)
    # Blank lines before the first heading make no preamble.
    assert parse_spec("\n\n# Body\n").ids == (f"body@{digest('Body')}",)


def test_setext_headings() -> None:
    spec = md("""
        Title
        =====
        Intro.

        Part one
        --------
        Body.
    """)
    title, part = spec.sections
    assert (title.level, title.heading, part.level, part.heading) == (1, "Title", 2, "Part one")
    assert part.parent_id == title.id
    assert spec.text[part.start : part.body_start] == "Part one\n--------\n"
    assert part.text == "Body.\n"
    assert_well_formed(spec)


def test_inline_markup_in_headings_is_reduced_to_plain_text() -> None:
    spec = md("""
        # *Be* **kind** to [users](https://example.com) and `code`  ![logo](x.png) ##
        # Ünïcödé   Überschrift
        # 🙂
        #
    """)
    kind, unicode_, emoji, empty = spec.sections
    assert kind.heading == "Be kind to users and code logo"
    assert kind.id.startswith("be-kind-to-users-and-code-logo@")
    assert unicode_.heading == "Ünïcödé Überschrift" and unicode_.id.startswith("ünïcödé-überschrift@")
    assert emoji.id == f"section@{digest('🙂')}"
    assert empty.id == f"section~2@{digest('')}"


def test_windows_line_ends_keep_spans_exact() -> None:
    spec = parse_spec("# A\r\ntext a\r\n## B\r\ntext b\r\n\r\nB2\r\n---\r\n", name="crlf.md")
    assert [s.heading for s in spec.sections] == ["A", "B", "B2"]
    assert spec.sections[1].text == "text b\r\n\r\n"
    assert_well_formed(spec)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (b" \n\t\n  \n", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "holds a NUL at offset 8"),
        ("# Rules\n".encode("utf-16"), "holds a NUL"),
        ("# Règles\n".encode("latin-1"), "is not UTF-8 text (byte 0xe8 at offset 3)"),
    ],
    ids=["empty", "whitespace", "binary", "utf-16", "latin-1"],
)
def test_bad_files_raise_a_spec_error_naming_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "spec.md"
    path.write_bytes(content)
    with pytest.raises(SpecError) as err:
        read_spec(path)
    assert isinstance(err.value, ConfigError)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert err.value.file == str(path)


def test_missing_and_unreadable_paths_name_the_file(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.md", tmp_path):
        with pytest.raises(SpecError, match="cannot be read") as err:
            read_spec(path)
        assert str(path) in str(err.value)


def test_texts_in_memory_are_checked_too() -> None:
    with pytest.raises(SpecError, match=r"spec draft: is empty"):
        parse_spec("  \n", name="draft")
    with pytest.raises(SpecError, match=r"spec <text>: holds a NUL at offset 2"):
        parse_spec("# \0")


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes("# Título\nTexto.\n".encode("utf-8-sig"))
    spec = read_spec(path)
    assert spec.text.startswith("# Título") and spec.sections[0].heading == "Título"


# --- what judges see and cite -------------------------------------------------------------------


def test_outline_lists_ids_and_headings_indented_by_depth() -> None:
    spec = md("""
        Intro.
        # Top
        ### Deep
        ## Mid
    """)
    top, deep, mid = (f"top@{digest('Top')}", f"top/deep@{digest('Deep')}", f"top/mid@{digest('Mid')}")
    assert outline(spec.sections) == (
        f"preamble: (text before the first heading)\n{top}: Top\n  {deep}: Deep\n  {mid}: Mid"
    )
    assert outline(spec.sections[2:], indent="\t") == f"\t{deep}: Deep\n\t{mid}: Mid"


def test_unknown_ids_are_reported_once_in_citation_order() -> None:
    known = ["a@1", "b@2"]
    assert unknown_ids(["b@2", "z@9", "a@1", "y@8", "z@9"], known) == ["z@9", "y@8"]
    assert unknown_ids([], known) == []
    assert unknown_ids([" a@1"], known) == [" a@1"]  # exact: parsing the answer strips first


def test_spec_section_lookup_names_the_spec() -> None:
    spec = md("# A\n")
    assert spec.section(spec.ids[0]).heading == "A"
    with pytest.raises(KeyError, match=r"test.md has no section 'nope'"):
        spec.section("nope")
