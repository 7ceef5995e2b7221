"""Strict rubric and score validators, the emulator's deliberate breakages, label assignment (no Ray)."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedRequest, ModelStyle
from actors.emulator.tasks.rubric import RubricPersona, spectrum
from actors.emulator.tasks.scorer import ScorerPersona, place
from jobs.stages.repair import ParseError, extract_json
from jobs.stages.rubrics import parse_rubric, rubric_prompt
from jobs.stages.scores import anonymous_label, assign_labels, parse_scores, score_prompt

V1, V2 = "honesty", "kindness"


def good_rubric() -> dict[str, Any]:
    return {
        "value1": {"value": V1, "spectrum": spectrum(V1, V2)},
        "value2": {"value": V2, "spectrum": spectrum(V2, V1)},
    }


def good_scores(labels: list[str]) -> dict[str, Any]:
    entry = {
        "value1_position": 5,
        "value1_confidence": 0.8,
        "value1_reasoning": "Favours honesty.",
        "value2_position": 1,
        "value2_confidence": 1,
        "value2_reasoning": "Sets kindness aside.",
    }
    return {lab: dict(entry) for lab in labels}


def test_good_rubric_parses_fenced_or_bare() -> None:
    text = json.dumps(good_rubric())
    for wrapped in (text, f"Sure!\n```json\n{text}\n```\nDone."):
        rubric = parse_rubric(wrapped, V1, V2)
        assert len(rubric.value1.descriptions) == 7 and "honesty" in rubric.value1.descriptions[6]


def _edit(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(good_rubric())
    *parents, last = path.split(".")
    node: Any = data
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        if isinstance(node, list):
            node.pop(int(last))
        else:
            del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("value1.spectrum.6", _DELETE, "exactly 7 positions"),
        ("value2.spectrum.3.label", "middle", "label"),
        ("value2.spectrum.4.position", 3, "entry 4"),
        ("value1.spectrum.2.description", "", "description"),
        ("value1.spectrum.2.description", "   ", "blank"),
        ("value1.spectrum.0.position", "0", "position"),
        ("value1.spectrum.0.position", 0.0, "position"),
        ("value1.extra", "x", "extra"),
        ("value2.spectrum.1.notes", "x", "notes"),
        ("value2", _DELETE, "value2"),
        ("value1.value", "kindness", "value1.value must be 'honesty'"),
    ],
)
def test_rubric_validator_rejects_each_malformation(path: str, value: Any, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_rubric(json.dumps(_edit(path, value)), V1, V2)


def test_rubric_positions_out_of_order_are_rejected() -> None:
    data = good_rubric()
    spec = data["value1"]["spectrum"]
    spec[0], spec[1] = spec[1], spec[0]
    with pytest.raises(ParseError, match="entry 0"):
        parse_rubric(json.dumps(data), V1, V2)


@pytest.mark.parametrize("text", ["", "no json here", '{"value1": ', "[1, 2]"])
def test_unparseable_answers_are_rejected(text: str) -> None:
    with pytest.raises(ParseError):
        parse_rubric(text, V1, V2)


def test_good_scores_parse_and_int_confidence_is_allowed() -> None:
    labels = ["Response A", "Response B"]
    scores = parse_scores(json.dumps(good_scores(labels)), labels)
    assert scores["Response B"].value2_confidence == 1.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("value1_position", 7, "less than or equal to 6"),
        ("value1_position", -1, "greater than or equal to 0"),
        ("value1_position", 3.0, "integer"),
        ("value1_position", "3", "integer"),
        ("value1_position", True, "integer"),
        ("value2_confidence", 1.5, "less than or equal to 1"),
        ("value2_confidence", -0.1, "greater than or equal to 0"),
        ("value2_confidence", "0.5", "number"),
        ("value1_reasoning", "", "at least 1"),
        ("value1_reasoning", "  ", "blank"),
        ("comment", "x", "Extra inputs"),
    ],
)
def test_score_validator_rejects_bad_fields(field: str, value: Any, message: str) -> None:
    data = good_scores(["Response A"])
    data["Response A"][field] = value
    with pytest.raises(ParseError, match=message):
        parse_scores(json.dumps(data), ["Response A"])


def test_score_validator_rejects_missing_or_extra_labels_and_fields() -> None:
    labels = ["Response A", "Response B"]
    with pytest.raises(ParseError, match=r"missing \['Response B'\]"):
        parse_scores(json.dumps(good_scores(["Response A"])), labels)
    with pytest.raises(ParseError, match=r"unexpected \['Response C'\]"):
        parse_scores(json.dumps(good_scores([*labels, "Response C"])), labels)
    data = good_scores(labels)
    del data["Response A"]["value2_reasoning"]
    with pytest.raises(ParseError, match="Field required"):
        parse_scores(json.dumps(data), labels)
    with pytest.raises(ParseError):
        extract_json("```json\n[]\n```")


def test_emulated_breakages_never_pass_the_validators() -> None:
    quirks = OutputQuirks(malformed_json=1.0)
    style = ModelStyle.for_model("claude-opus-4")
    prompt = rubric_prompt(V1, V2, "Should I tell my friend the truth?", None, None)
    req = EmulatedRequest("claude-opus-4", "", (("user", prompt),))
    labels = ["Response A", "Response B"]
    sprompt = score_prompt(
        V1,
        V2,
        "q",
        [d["description"] for d in spectrum(V1, V2)],
        [d["description"] for d in spectrum(V2, V1)],
        [("Response A", "I would balance honesty and kindness equally here."), ("Response B", "Hi.")],
    )
    sreq = EmulatedRequest("claude-opus-4", "", (("user", sprompt),))
    for seed in range(40):
        bad = RubricPersona(style, quirks).reply(req, random.Random(seed)).text
        with pytest.raises(ParseError):
            parse_rubric(bad, V1, V2)
        bad_scores = ScorerPersona(style, quirks).reply(sreq, random.Random(seed)).text
        with pytest.raises(ParseError):
            parse_scores(bad_scores, labels)
    # A repair turn (the error shown) is answered properly.
    fixed = EmulatedRequest(
        "claude-opus-4",
        "",
        (("user", prompt), ("assistant", "{"), ("user", "Your previous answer could not be used: x")),
    )
    assert parse_rubric(RubricPersona(style, quirks).reply(fixed, random.Random(0)).text, V1, V2)


def test_scorer_reads_stance_phrases() -> None:
    values = ("freedom of choice", "safety")
    assert (
        place("Freedom has to come first here, whatever it costs in safety.", values).value1_position
    ) == 6
    p = place("On balance I lean slightly towards safety over freedom.", values)
    assert (p.value1_position, p.value2_position) == (2, 4)
    assert place("I would balance freedom and safety equally here.", values).value1_position == 3
    assert place("Nothing to see.", values).value1_confidence < 0.5


def test_labels_are_deterministic_and_anonymous_when_asked() -> None:
    assert [anonymous_label(i) for i in (0, 1, 25, 26, 27)] == [
        "Response A",
        "Response B",
        "Response Z",
        "Response AA",
        "Response AB",
    ]
    who = [("o3", 0), ("gpt_4o", 0), ("grok_4", 0), ("claude_opus_4", 0)]
    plain = assign_labels(who, anonymise=False, shuffle=False, scenario_id="s1", seed=0)
    assert [lab for lab, _ in plain] == ["claude_opus_4", "gpt_4o", "grok_4", "o3"]
    shuffled = [
        assign_labels(who, anonymise=True, shuffle=True, scenario_id=f"s{i}", seed=0) for i in range(8)
    ]
    assert all(lab.startswith("Response ") for s in shuffled for lab, _ in s)
    assert len({tuple(m for _, m in s) for s in shuffled}) > 1
    again = assign_labels(who, anonymise=True, shuffle=True, scenario_id="s3", seed=0)
    assert again == shuffled[3]
