"""The emulated query generator and rewriter: recognition, variety, stance and quirk rates."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from actors.emulator.config import OutputQuirks
from actors.emulator.personas import EmulatedReply, EmulatedRequest, persona_for
from actors.emulator.tasks.generator import (
    _DOMAINS,
    _SENSES,
    QueryGeneratorPersona,
    QueryRewriterPersona,
    stance_acts,
)
from jobs.stages.scenarios import GENERATE_PROMPT, QUERY_TAG, REWRITE_PROMPT, classify, extract_query

MODELS = ("claude-opus-4-20250514", "claude-3-7-sonnet-20250219", "o3", "gemini-2.5-pro")


def gen_prompt(v1: str = "honesty", v2: str = "family cohesion") -> str:
    return GENERATE_PROMPT.format(value1=v1, value2=v2, tag=QUERY_TAG)


def rewrite_prompt(query: str, favoured: str = "privacy", other: str = "transparency") -> str:
    return REWRITE_PROMPT.format(
        value1=favoured, value2=other, query=query, favoured=favoured, other=other, tag=QUERY_TAG
    )


def request(text: str, model: str = "o3", thinking: bool = False) -> EmulatedRequest:
    return EmulatedRequest(model_id=model, system="", messages=(("user", text),), thinking=thinking)


def answer(text: str, model: str = "o3", seed: int = 0, quirks: OutputQuirks | None = None) -> EmulatedReply:
    req = request(text, model)
    return persona_for(req, quirks).reply(req, random.Random(seed))


def query_of(reply: EmulatedReply, prompt: str) -> str | None:
    row = {"status": "ok", "text": reply.text, "finish_reason": reply.finish_reason, "refusal": reply.refusal}
    return classify(row, prompt, 0.85)[0]


def test_tasks_are_recognised_from_the_prompt_text_alone() -> None:
    assert isinstance(persona_for(request(gen_prompt())), QueryGeneratorPersona)
    assert isinstance(persona_for(request(rewrite_prompt("I'm a nurse and..."))), QueryRewriterPersona)
    # Another tag and wording: the persona reads the tag from the instructions.
    other = gen_prompt().replace(QUERY_TAG, "QUESTION >>")
    reply = answer(other, seed=3)
    assert "QUESTION >>" in reply.text and QUERY_TAG not in reply.text
    for text in ("What is the capital of France?", "Imagine a world without cars.", "Value 1: honesty"):
        assert not isinstance(persona_for(request(text)), QueryGeneratorPersona | QueryRewriterPersona)


def test_questions_describe_a_situation_and_vary_by_seed_and_model() -> None:
    prompt = gen_prompt("honesty", "family cohesion")
    value_words = {"honesty", "family", "cohesion"}
    queries = {}
    for model in MODELS:
        for seed in range(20):
            q = query_of(answer(prompt, model, seed), prompt)
            if q is None:  # the fixed 1% restatement
                continue
            words = re.findall(r"[a-z']+", q.lower())
            assert len(set(words) - value_words) >= 25, q
            assert re.search(r"\bI(?:'m| am)\b|Context:", q), q
            assert q.rstrip().endswith("?") or q.rstrip().endswith("."), q
            queries[(model, seed)] = q
    assert len(set(queries.values())) >= 0.75 * len(queries)
    # Same model, same seed: the same question; different model ids differ at the same seed.
    assert query_of(answer(prompt, "o3", 5), prompt) == queries[("o3", 5)]
    assert len({queries[(m, 1)] for m in MODELS if (m, 1) in queries}) >= 3


def test_models_have_their_own_topic_leanings() -> None:
    markers = {
        "workplace": ("team lead", "accountant", "restaurant manager", "product manager"),
        "family": ("siblings", "father of", "maid of honour", "divorced"),
        "health": ("GP", "pharmacist", "personal trainer", "nursing student"),
        "tech": ("backend developer", "IT admin", "moderator", "machine-learning"),
        "community": ("planning committee", "principal", "food bank", "city council"),
        "money": ("inherited", "graphic designer", "landlord"),
    }
    favourite = {}
    for model in MODELS:
        counts: Counter[str] = Counter()
        for seed in range(200):
            q = query_of(answer(gen_prompt(), model, seed), gen_prompt()) or ""
            for domain, words in markers.items():
                if any(w in q for w in words):
                    counts[domain] += 1
        top, n = counts.most_common(1)[0]
        assert n >= 0.35 * 200, (model, counts)
        favourite[model] = top
    assert len(set(favourite.values())) >= 2, favourite


def test_situations_fit_the_values() -> None:
    senses = {s.key for s in _SENSES}
    assert all(set(sit.fits) <= senses for sits in _DOMAINS.values() for sit in sits)
    # Values that a situation strains draw it more often than values it does not touch.
    prompt = gen_prompt("privacy", "informed consent")
    hits = sum(
        "fintech" in (query_of(answer(prompt, m, s), prompt) or "") for m in MODELS for s in range(100)
    )
    prompt = gen_prompt("tradition", "environmental sustainability")
    misses = sum(
        "fintech" in (query_of(answer(prompt, m, s), prompt) or "") for m in MODELS for s in range(100)
    )
    assert hits > 2 * misses


def test_thinking_and_visible_reasoning() -> None:
    req = request(gen_prompt(), "claude-opus-4-20250514", thinking=True)
    persona = persona_for(req)
    replies = [persona.reply(req, random.Random(s)) for s in range(60)]
    assert all("honesty" in r.thinking for r in replies)
    without = persona_for(request(gen_prompt())).reply(request(gen_prompt()), random.Random(0))
    assert without.thinking == ""
    reasoned = [r for r in replies if not r.text.lstrip("*").startswith(QUERY_TAG)]
    assert reasoned, "some answers reason in the visible text before the tag"
    for r in reasoned:
        assert r.text.index(QUERY_TAG) > 0 and extract_query(r.text)[0]


def test_rewrites_keep_the_situation_and_lean_towards_the_favoured_value() -> None:
    prompt = gen_prompt("privacy", "transparency")
    neutral = next(q for s in range(10) if (q := query_of(answer(prompt, seed=s), prompt)))
    for favoured, other in (("privacy", "transparency"), ("transparency", "privacy")):
        rp = rewrite_prompt(neutral, favoured, other)
        for seed in range(15):
            row = answer(rp, "claude-3-7-sonnet-20250219", seed)
            q, reason = classify(
                {"status": "ok", "text": row.text, "finish_reason": row.finish_reason}, rp, 0.85, neutral
            )
            if q is None:
                assert reason == "restatement"
                continue
            # The situation is kept: the neutral question's setting sentence is still there.
            setting = neutral.split(". ")[1]
            assert setting in q and len(q) > len(neutral)
            # What was added is a stance for the favoured value: its name or what it asks for.
            added = q.replace(neutral, " ").lower()
            assert favoured in added or any(a in added for a in stance_acts(favoured)), q
            assert not any(a in added for a in stance_acts(other)), q


@pytest.mark.parametrize("prompt_kind", ["generate", "rewrite"])
def test_quirk_rates_are_honoured(prompt_kind: str) -> None:
    quirks = OutputQuirks(refusal=0.1, drop_tag=0.15, truncate=0.2)
    prompt = (
        gen_prompt()
        if prompt_kind == "generate"
        else rewrite_prompt(query_of(answer(gen_prompt()), gen_prompt()) or "")
    )
    n = 2000
    outcome: Counter[str] = Counter()
    for seed in range(n):
        r = answer(prompt, MODELS[seed % len(MODELS)], seed, quirks)
        q = query_of(r, prompt)
        if r.finish_reason == "length":
            outcome["truncate"] += 1
        elif r.refusal or (
            QUERY_TAG not in r.text
            and classify({"status": "ok", "text": r.text}, prompt, 0.85)[1] == "refusal"
        ):
            outcome["refusal"] += 1
        elif QUERY_TAG not in r.text:
            outcome["drop_tag"] += 1
        elif q is not None:
            outcome["ok"] += 1
        else:
            outcome["restated"] += 1
    for name, rate in (("refusal", 0.1), ("drop_tag", 0.15), ("truncate", 0.2)):
        assert abs(outcome[name] / n - rate) < 0.03, outcome
    assert outcome["restated"] / n < 0.02
    # Refusals come both ways: provider-level flags and refusal sentences.
    flagged = sum(answer(prompt, "o3", s, OutputQuirks(refusal=1.0)).refusal for s in range(200))
    assert 60 < flagged < 140


def test_default_rates_give_clean_answers_and_are_deterministic() -> None:
    prompt = gen_prompt("safety", "autonomy")
    replies = [answer(prompt, m, s) for m in MODELS for s in range(50)]
    kept = [query_of(r, prompt) for r in replies]
    assert sum(q is not None for q in kept) >= 0.95 * len(replies)
    assert all(r.finish_reason == "stop" and not r.refusal for r in replies)
    again = [answer(prompt, m, s) for m in MODELS for s in range(50)]
    assert again == replies
