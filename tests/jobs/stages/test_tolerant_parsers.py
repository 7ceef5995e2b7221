"""The JSON a real model sends: tolerated where a provider is sloppy, refused where a guess would
change the meaning (no Ray, no server)."""

from __future__ import annotations

import json

import pytest

from jobs.stages.refusals import parse_refusal
from jobs.stages.repair import ParseError, extract_json
from jobs.stages.rubrics import parse_rubric
from jobs.stages.scores import parse_scores
from tests.jobs.stages.test_validators import V1, V2, good_rubric, good_scores

RUBRIC = json.dumps(good_rubric(), indent=2)


@pytest.mark.parametrize(
    "wrapped",
    [
        f"```json\n{RUBRIC}\n```",
        f"```JSON\n{RUBRIC}\n```",
        f"```\n{RUBRIC}\n```",
        f"Here is the rubric you asked for.\n\n```json\n{RUBRIC}\n```\n\nI hope it helps!",
        f"Here is the rubric:\n{RUBRIC}\nEach description is one sentence.",
        f"```json\n{RUBRIC}",  # a fence never closed
        f"In the template, {{value}} stood for a name. The rubric:\n{RUBRIC}",  # braces in prose before
        f"{RUBRIC}\n\nNote: I kept the {{placeholders}} out.",  # braces in prose after
        f"Use `code` like ```x = 1``` when needed.\n{RUBRIC}",  # a fence that holds no JSON
    ],
)
def test_sloppy_wrapping_around_one_valid_object_is_tolerated(wrapped: str) -> None:
    rubric = parse_rubric(wrapped, V1, V2)
    assert rubric.value1.descriptions == [e["description"] for e in good_rubric()["value1"]["spectrum"]]


def test_an_object_cut_off_is_refused_and_never_replaced_by_an_inner_one() -> None:
    cut = RUBRIC[: len(RUBRIC) // 2]
    # A compact object holds whole inner objects too: none of them may stand in for the answer.
    compact = json.dumps(good_rubric())
    for text in (cut, compact[: compact.rindex("}")], f"```json\n{cut}\n```"):
        with pytest.raises(ParseError, match="invalid JSON"):
            extract_json(text)


def test_several_objects_are_refused_rather_than_one_picked() -> None:
    one = {"reasoning": "It declines.", "category": "complete_rejection"}
    other = {"reasoning": "It answers.", "category": "full_compliance"}
    with pytest.raises(ParseError, match="2 JSON objects"):
        extract_json(f"{json.dumps(one)}\n{json.dumps(other)}")
    with pytest.raises(ParseError, match="no JSON object"):
        extract_json("I would say the response is a hard refusal.")
    with pytest.raises(ParseError, match="empty"):
        extract_json("  \n")


def test_a_missing_or_unreadable_score_is_never_guessed() -> None:
    labels = ["Response A"]
    for field, value in (("value1_position", "3"), ("value1_position", 3.5), ("value2_position", None)):
        data = good_scores(labels)
        data["Response A"][field] = value
        with pytest.raises(ParseError, match=field):
            parse_scores(f"```json\n{json.dumps(data)}\n```", labels)
    data = good_scores(labels)
    del data["Response A"]["value1_position"]
    with pytest.raises(ParseError, match="value1_position: Field required"):
        parse_scores(json.dumps(data), labels)
    # The same answer, well-formed, in prose and a fence: accepted as written.
    good = f"My scores:\n```json\n{json.dumps(good_scores(labels))}\n```"
    assert parse_scores(good, labels)["Response A"].value1_position == 5


def test_a_missing_or_unknown_decision_is_never_guessed() -> None:
    with pytest.raises(ParseError, match="category: Field required"):
        parse_refusal('Sure. {"reasoning": "It refuses outright."}')
    with pytest.raises(ParseError, match="category must be one of"):
        parse_refusal('{"reasoning": "It refuses.", "category": "mostly refusing"}')
    assert parse_refusal(
        'The verdict:\n```json\n{"reasoning": "x", "category": "Complete Rejection"}\n```'
    ) == ("complete_rejection")
