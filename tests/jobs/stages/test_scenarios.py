"""The scenarios stage on the emulator: generator mix, determinism, filters, rejects, resume."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from scipy.stats import chisquare

from actors.emulator.config import OutputQuirks
from actors.emulator.server import EmulatorServer
from actors.emulator.tasks.generator import QueryGeneratorPersona, QueryRewriterPersona, restated
from actors.errors import BudgetExceeded
from actors.store import CallStore
from jobs import driver
from jobs.conf.schema import RunConf
from jobs.config import load_config
from jobs.driver import run_pipeline
from jobs.engine.engine import Engine
from jobs.stages.scenarios import QUERY_TAG, assign_generators, extract_query, scenario_id
from tests.conftest import emulator_config, run_conf_yaml

pytestmark = pytest.mark.usefixtures("ray_local")

GENERATORS = "{m_openai: 2, m_anthropic: 1, m_gemini: 1}"
# The emulated generator's refusal sentences (actors/emulator/tasks/generator.py).
REFUSAL_STARTS = ("I'm sorry", "I can't", "I won't", "I'm not comfortable", "I must decline")


def make_conf(tmp_path: Path, url: str, n_pairs: int, *overrides: str, name: str = "run") -> RunConf:
    cfg = tmp_path / f"{name}.yaml"
    text = run_conf_yaml(url, tmp_path / name)
    text += (
        f"cache_dir: {tmp_path / (name + '-cache')}\n"
        "seed: 3\n"
        "pipeline: [pairs, scenarios]\n"
        f"stages: {{pairs: {{n_pairs: {n_pairs}, weighting: frequency}}, scenarios: {{generators: {GENERATORS}, "
        "thinking_budget: 500, reasoning_effort: low}}\n"
    )
    cfg.write_text(text)
    return load_config(cfg, list(overrides))


def tables(conf: RunConf) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    root = Path(conf.run_dir) / "tables"
    pairs, scen, rejects = (
        pl.read_parquet(root / f"{t}.parquet") for t in ("pairs", "scenarios", "scenario_rejects")
    )
    return pairs, scen, rejects


def raw_answers(conf: RunConf) -> pl.DataFrame:
    """Every request the stage made, joined to its stored answer."""
    assert conf.cache_dir is not None
    store = CallStore(conf.cache_dir)
    answers = store.latest(columns=["key", "status", "text", "finish_reason", "refusal"]).collect()
    reqs = pl.concat(
        [
            pl.read_parquet(Path(conf.run_dir) / "requests" / f"scenarios_{s}.parquet")
            for s in ("neutral", "biased")
        ],
        how="diagonal_relaxed",
    )
    return reqs.join(answers, on="key", how="left")


def expected_reason(row: dict[str, Any]) -> str:
    """The reason the stage should give, derived from the raw answer independently of its code."""
    text = row["text"] or ""
    if row["status"] != "ok":
        return "call_failed"
    if row["refusal"]:
        return "refusal"
    if row["finish_reason"] == "length":
        return "truncated"
    if text.startswith(REFUSAL_STARTS):
        return "refusal"
    if QUERY_TAG not in text:
        return "no_tag"
    query = extract_query(text)[0]
    neutral = row.get("neutral_query")
    if query == restated(row["prompt"], QUERY_TAG) or (neutral is not None and query == neutral):
        return "restatement"
    return ""


def test_generator_mix_matches_weights_and_is_stable() -> None:
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:16] for i in range(30_000)]
    weights = {"claude_opus_4": 0.5, "claude_3_7_sonnet": 0.3, "o3": 0.2}
    got = assign_generators(ids, weights, seed=7)
    counts = pl.Series(got).value_counts().sort("")
    observed = [counts.filter(pl.col("") == g)["count"].item() for g in sorted(weights)]
    expected = [weights[g] * len(ids) for g in sorted(weights)]
    assert chisquare(observed, expected).pvalue > 0.001
    assert all(abs(o / e - 1) < 0.05 for o, e in zip(observed, expected, strict=True))
    # Deterministic, stable as N grows, and the seed matters.
    assert assign_generators(ids[:1000], weights, seed=7) == got[:1000]
    assert assign_generators(ids, weights, seed=8) != got


def test_demo_like_run_keeps_most_scenarios_and_is_deterministic(tmp_path: Path, api_key: str) -> None:
    with EmulatorServer(emulator_config(seed=7)) as emu:
        first = make_conf(tmp_path, emu.url, 24, name="a")
        summary = run_pipeline(first)["scenarios"]
        second = make_conf(tmp_path, emu.url, 24, name="b")
        run_pipeline(second)
    pairs, scen, rejects = tables(first)
    _, scen_b, rejects_b = tables(second)
    lost_neutral = rejects.filter(pl.col("nudge_direction") == "neutral").height
    assert scen.height + rejects.height + 2 * lost_neutral == 3 * pairs.height
    assert scen.height >= 0.9 * 3 * pairs.height
    assert set(scen["nudge_direction"]) == {"neutral", "value1", "value2"}
    assert summary["scenarios"] == scen.height and summary["rejected"] == rejects.height
    assert sum(g["kept"] for g in summary["by_generator"].values()) == scen.height
    # Same config, same scenario ids, generators and queries.
    assert scen.equals(scen_b) and rejects.equals(rejects_b)
    ids = {scenario_id(p, n) for p in pairs["pair_id"] for n in ("neutral", "value1", "value2")}
    assert set(scen["scenario_id"]) <= ids
    weights = {"m_openai": 2.0, "m_anthropic": 1.0, "m_gemini": 1.0}
    assign = dict(
        zip(pairs["pair_id"], assign_generators(pairs["pair_id"].to_list(), weights, 3), strict=True)
    )
    assert all(assign[p] == g for p, g in scen.select("pair_id", "query_generator").iter_rows())
    # A query is a situation, not the two value names.
    for q, v1, v2 in scen.select("query", "value1", "value2").iter_rows():
        assert len(q.split()) > 30 and q != f"{v1} vs {v2}"


def test_every_quirk_ends_in_rejects_with_its_reason(
    tmp_path: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Restatements are rare by design (1%); raise the rate so this run surely has some.
    monkeypatch.setattr(QueryGeneratorPersona, "restate_rate", 0.08)
    monkeypatch.setattr(QueryRewriterPersona, "restate_rate", 0.08)
    quirks = OutputQuirks(refusal=0.2, drop_tag=0.2, truncate=0.2)
    with EmulatorServer(emulator_config(seed=11, quirks=quirks)) as emu:
        conf = make_conf(tmp_path, emu.url, 80)
        summary = run_pipeline(conf)["scenarios"]
    _, scen, rejects = tables(conf)
    raw = raw_answers(conf)
    kept_neutral = raw.filter(
        (pl.col("nudge_direction") == "neutral")
        & (pl.col("scenario_id").is_in(scen["scenario_id"].to_list()))
    )
    assert raw.height == 80 + 2 * kept_neutral.height
    expected = {r["scenario_id"]: expected_reason(r) for r in raw.iter_rows(named=True)}
    got = dict(rejects.select("scenario_id", "reason").iter_rows())
    assert got == {sid: reason for sid, reason in expected.items() if reason}
    assert set(scen["scenario_id"]) == {sid for sid, reason in expected.items() if not reason}
    # Each quirk showed up, at roughly its rate among all calls.
    by_reason = summary["rejected_by_reason"]
    assert by_reason["restatement"] > 0
    for reason in ("refusal", "no_tag", "truncated"):
        assert 0.1 * raw.height < by_reason[reason] < 0.3 * raw.height, by_reason
    # Every raw reply with a quirk's fingerprint is accounted for.
    truncated = raw.filter(pl.col("finish_reason") == "length")["scenario_id"].to_list()
    assert truncated and all(got[s] == "truncated" for s in truncated)
    flagged = raw.filter(pl.col("refusal"))["scenario_id"].to_list()
    assert flagged and all(got[s] == "refusal" for s in flagged)
    per_gen = summary["by_generator"]
    assert set(per_gen) == {"m_openai", "m_anthropic", "m_gemini"}
    assert sum(g["rejected"] for g in per_gen.values()) == rejects.height
    assert all(sum(g["rejected_by_reason"].values()) == g["rejected"] for g in per_gen.values())


def test_interrupted_stage_resumes_without_repeating_calls(
    tmp_path: Path, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Estimates can be low: both up-front checks pass, and the running spend is what stops the stage.
    monkeypatch.setattr(Engine, "estimate_usd", lambda self, pending: 0.0)
    monkeypatch.setattr(driver, "refuse_over_budget", lambda *args: None)
    pricey = ("models.m_openai.prices.output=2000", "engine.batch_size=4", "engine.window_per_model=4")
    with EmulatorServer(emulator_config(seed=5)) as emu:
        with pytest.raises(BudgetExceeded):
            run_pipeline(make_conf(tmp_path, emu.url, 40, "budget_usd=2", *pricey))
        answered = sum(emu.stats()["ok_by_hash"].values())
        conf = make_conf(tmp_path, emu.url, 40, "budget_usd=1000", *pricey)
        summary = run_pipeline(conf)["scenarios"]
        stats = emu.stats()
    assert conf.cache_dir is not None
    assert 0 < answered < 40, "the budget must stop the neutral calls midway"
    answers = stats["ok_by_hash"]
    assert all(n == 1 for n in answers.values()), "a finished call was made again"
    neutral = summary["calls"]["neutral"]
    assert neutral["cached"] == answered and neutral["made"] == 40 - answered
    _, scen, rejects = tables(conf)
    assert scen.height + rejects.height == len(answers)


def test_estimate_matches_the_calls_a_run_makes(tmp_path: Path, api_key: str) -> None:
    from jobs.estimate.estimate import estimate

    with EmulatorServer(emulator_config(seed=4)) as emu:
        conf = make_conf(tmp_path, emu.url, 30)
        before = estimate(conf).as_dict()
        summary = run_pipeline(conf)["scenarios"]
        after = estimate(conf).as_dict()
    made = summary["calls"]["neutral"]["made"] + summary["calls"]["biased"]["made"]
    predicted = sum(ln["to_make"] for ln in before["lines"])
    # Neutral calls are exact; rewrites assume every neutral query is kept (an upper bound).
    assert made <= predicted <= made * 1.05 + 1
    neutral = [ln for ln in before["lines"] if ln["stage"] == "scenarios_neutral"]
    assert sum(ln["to_make"] for ln in neutral) == summary["calls"]["neutral"]["made"]
    # Afterwards everything is in the store: a rerun would cost nothing.
    assert after["total_to_make"] == 0 and after["total_cost_usd"] == 0
