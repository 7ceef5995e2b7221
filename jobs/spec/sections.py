"""A markdown model spec split into sections whose ids survive edits elsewhere in the file.

Judges cite sections by id, and two versions of a spec are compared section by section, so
an id names the same section in every version where its place in the heading tree and its
heading are unchanged, whatever was added, removed or reordered around it. An id is the
heading path as slugs, then `@` and a short hash of the section's own heading:
`chain-of-command/assume-best-intentions@3f9a0c`.

- Heading text: the heading's plain text (emphasis and code marks dropped, link text
  kept, whitespace collapsed), without a trailing attribute block such as
  `{#overview authority=root}` (the OpenAI Model Spec carries one on every heading).
- Slug: the heading text lower-cased, with everything but letters, digits, `_`, `-` and
  spaces dropped and runs of spaces and `-` made one `-`; `section` when nothing is left.
- Siblings sharing a slug under one parent (duplicate headings, or "C" beside "C++"): the
  second in document order gets `~2`, the third `~3`, and so on. The suffix is part of the
  path segment, so the subsections of each duplicate get distinct ids too.
- Hash: the first 6 hex digits of BLAKE2b of the heading text. The slugs keep an id
  readable; the hash pins the exact wording, so a reworded heading ("Don't" to "Do not")
  gets a new id and a cited id never silently names a differently worded section.
- Text before the first heading (all of it, in a spec without headings) is the section
  `preamble`, at level 0. Heading ids always hold `@`, so none can collide with it.

Headings are found by a CommonMark parser (markdown-it-py): `#` lines inside code blocks
and HTML blocks are not headings, setext headings (underlined with `===` or `---`) are,
and headings inside block quotes and lists (examples, not structure) are not sections.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from actors.errors import SpecError

PREAMBLE = "preamble"
"""The id of the text before the first heading."""

HASH_HEX = 6
"""Hex digits of the heading hash in an id: it only tells wordings apart, as the slug paths of
siblings are made unique, so 24 bits are plenty."""

_MARKDOWN = MarkdownIt("commonmark")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what markdown-it counts as a line end
_ATTRIBUTES = re.compile(r"\s*\{[#.][^{}]*\}$")  # pandoc-style {#id .class key=value}
_NOT_SLUG = re.compile(r"[^\w\s-]")
_SLUG_GAPS = re.compile(r"[\s-]+")


@dataclass(frozen=True)
class Section:
    """One heading and the text under it, up to the next heading of any level.

    Offsets index `Spec.text`: `text == spec.text[body_start:end]`, and `start:end` is the
    whole section, heading included. A section's subsections are not part of its text.
    """

    id: str
    level: int  # 1..6 for `#`..`######`; 0 for the preamble
    heading: str  # plain text; "" for the preamble
    path: tuple[str, ...]  # the headings from the top down, this one last; () for the preamble
    parent_id: str | None  # the nearest heading above with a lower level; None at the top
    start: int
    body_start: int
    end: int
    text: str


@dataclass(frozen=True)
class Spec:
    """A spec's text and its sections in document order."""

    name: str  # the file, or the label given to `parse_spec`; error messages name it
    text: str
    sections: tuple[Section, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.sections)

    def section(self, section_id: str) -> Section:
        for s in self.sections:
            if s.id == section_id:
                return s
        raise KeyError(f"spec {self.name} has no section {section_id!r}")


def read_spec(path: str | Path) -> Spec:
    """The spec in a UTF-8 markdown file (a byte-order mark is dropped).

    Raises:
        SpecError: naming the file, when it is missing or unreadable, binary (holds a NUL
            byte; UTF-16 text does too), not UTF-8, or empty apart from whitespace.
    """
    return parse_spec(read_spec_text(path), name=str(path))


def read_spec_text(path: str | Path) -> str:
    """The text of a UTF-8 markdown file, unparsed (a byte-order mark is dropped); raises
    `SpecError` as `read_spec` does for a file it cannot read as text."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SpecError(name, f"cannot be read ({e.strerror or e})") from None
    if (nul := data.find(b"\0")) >= 0:
        raise SpecError(name, _nul_problem(nul))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError(name, f"is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return text


def parse_spec(text: str, *, name: str = "<text>") -> Spec:
    """The sections of markdown `text`; `name` labels it in errors.

    Raises:
        SpecError: when the text holds a NUL character or nothing but whitespace.
    """
    if (nul := text.find("\0")) >= 0:
        raise SpecError(name, _nul_problem(nul))
    if not text.strip():
        raise SpecError(name, "is empty (nothing but whitespace)")
    heads = _headings(text)
    sections: list[Section] = []
    first = heads[0][2] if heads else len(text)
    if text[:first].strip():
        sections.append(Section(PREAMBLE, 0, "", (), None, 0, 0, first, text[:first]))
    ancestors: list[Section] = []  # of the next heading, top down
    slugs_under: dict[str | None, Counter[str]] = {}
    for i, (level, heading, start, body_start) in enumerate(heads):
        end = heads[i + 1][2] if i + 1 < len(heads) else len(text)
        while ancestors and ancestors[-1].level >= level:
            ancestors.pop()
        parent = ancestors[-1] if ancestors else None
        parent_id = parent.id if parent else None
        slug = _slug(heading)
        seen = slugs_under.setdefault(parent_id, Counter())
        seen[slug] += 1
        segment = slug if seen[slug] == 1 else f"{slug}~{seen[slug]}"
        if parent:
            slugs, path = f"{parent.id.rpartition('@')[0]}/{segment}", (*parent.path, heading)
        else:
            slugs, path = segment, (heading,)
        section = Section(
            f"{slugs}@{_digest(heading)}",
            level,
            heading,
            path,
            parent_id,
            start,
            body_start,
            end,
            text[body_start:end],
        )
        sections.append(section)
        ancestors.append(section)
    return Spec(name, text, tuple(sections))


def outline(sections: Iterable[Section], *, indent: str = "  ") -> str:
    """One line per section, `id: heading`, indented by depth: the list a judge cites ids from."""
    return "\n".join(
        f"{indent * max(len(s.path) - 1, 0)}{s.id}: {s.heading or '(text before the first heading)'}"
        for s in sections
    )


def unknown_ids(cited: Iterable[str], known: Iterable[str]) -> list[str]:
    """The cited ids that name no known section, each once, in the order first cited.

    Ids are compared exactly: a judge's answer is parsed (quotes, brackets) before this.
    """
    known_ids = set(known)
    return list(dict.fromkeys(c for c in cited if c not in known_ids))


def _headings(text: str) -> list[tuple[int, str, int, int]]:
    """(level, heading text, start, body_start) of each top-level heading, in document order."""
    line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    def offset(line: int) -> int:
        return line_starts[line] if line < len(line_starts) else len(text)

    tokens = _MARKDOWN.parse(text)
    return [  # a heading_open is followed by its inline content
        (int(tok.tag[1]), _heading_text(tokens[i + 1]), offset(tok.map[0]), offset(tok.map[1]))
        for i, tok in enumerate(tokens)
        if tok.type == "heading_open" and tok.level == 0 and tok.map is not None
    ]


def _heading_text(inline: Token) -> str:
    """Plain text of a heading's inline token, attribute block removed."""
    parts = [
        " " if t.type in ("softbreak", "hardbreak") else t.content
        for t in inline.children or []
        if t.type in ("text", "text_special", "code_inline", "image", "softbreak", "hardbreak")
    ]
    return _ATTRIBUTES.sub("", " ".join("".join(parts).split()))


def _slug(heading: str) -> str:
    return _SLUG_GAPS.sub("-", _NOT_SLUG.sub("", heading.lower())).strip("-") or "section"


def _digest(heading: str) -> str:
    return hashlib.blake2b(heading.encode(), digest_size=HASH_HEX // 2).hexdigest()


def _nul_problem(offset: int) -> str:
    return f"holds a NUL at offset {offset}: binary data, or text in an encoding other than UTF-8 (UTF-16?)"
