"""The column-wise estimate over requests tables gives the lines a row-by-row reading gives."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from actors.store import CallStore, contains
from actors.types import CallSpec, Message, call_key, chat, spec_from_json, spec_to_json
from jobs.conf.loader import endpoint
from jobs.conf.schema import RunConf
from jobs.config import load_config
from jobs.engine.engine import Engine
from jobs.engine.rundir import Manifest, RunDir
from jobs.estimate.lines import Line, visible_output
from jobs.estimate.requests import (
    CHARS_PER_TOKEN,
    FIRST_ROUND_SUFFIX,
    MIN_CACHED_TOKENS,
    REASONING_TOKENS,
    exact_lines,
    expected_output_tokens,
    from_earlier_requests,
)
from jobs.stages.compliance_scope import DEMO_SPEC
from tests.s3server import s3_bucket

DEMO = Path(__file__).resolve().parents[3] / "conf" / "demo.yaml"


def rowwise_lines(
    conf: RunConf, stage: str, chunks: Iterable[pl.DataFrame], answered: np.ndarray
) -> list[Line]:
    """The estimate's rules applied one request at a time, as the estimate did before it went
    column-wise: the reference the vectorised code must match."""
    eps = {m: endpoint(conf, m) for m in conf.models}
    visible = visible_output(conf, stage)
    seen: set[str] = set()
    written: set[tuple[str, tuple[str, ...]]] = set()
    lines: dict[str, Line] = {}
    for chunk in chunks:
        for model, spec_json in zip(chunk["model"], chunk["spec"], strict=True):
            spec = spec_from_json(spec_json)
            key = call_key(eps[model], spec)
            if key in seen:
                continue
            seen.add(key)
            line = lines.setdefault(model, Line(stage, model, 0, exact=True))
            line.calls += 1
            params = spec.param_dict
            thinking = (params.get("thinking_budget") or 0) / 2 + REASONING_TOKENS.get(
                params.get("reasoning_effort") or "", 0
            )
            tokens_in = len(spec_json) / CHARS_PER_TOKEN
            tokens_out = float(min(params.get("max_tokens") or visible + thinking, visible + thinking))
            if contains(answered, np.array([key], dtype="S32"))[0]:
                line.cached += 1
                line.stored_input_tokens += tokens_in
                line.stored_output_tokens += tokens_out
                continue
            line.input_tokens += tokens_in
            line.output_tokens += tokens_out
            systems = tuple(m.content for m in spec.messages if m.role == "system")
            system = sum(len(text) for text in systems) / CHARS_PER_TOKEN
            prefix = system if params.get("cache_prefix") and system >= MIN_CACHED_TOKENS else 0.0
            # Each model caches each system prompt apart (each spec version's, in compliance).
            if prefix and (model, systems) in written:
                line.cached_input_tokens += prefix
            elif prefix:
                written.add((model, systems))
                if eps[model].provider == "anthropic":
                    line.cache_write_tokens += prefix
    return list(lines.values())


def table_chunks(run: RunDir, stage: str) -> list[pl.DataFrame]:
    """A stage's first-round requests tables as (model, spec) frames, for the row-by-row readings."""
    own = re.compile(rf"{stage}{FIRST_ROUND_SUFFIX}\.parquet")
    return [
        run.requests.scan_parquet(p).select("model", "spec").collect()
        for p in run.requests.list_files(".parquet")
        if own.fullmatch(Path(p).name)
    ]


def assert_same_lines(conf: RunConf, run: RunDir, stage: str, answered: np.ndarray) -> list[Line]:
    """Stored keys, column-wise == keys hashed again, column-wise == the row-by-row reference."""
    columns = from_earlier_requests(conf, run, stage, answered)
    assert columns, stage
    assert columns == exact_lines(conf, stage, table_chunks(run, stage), answered), stage
    assert columns == rowwise_lines(conf, stage, table_chunks(run, stage), answered), stage
    return columns


def some_answered(keys: Iterable[str]) -> np.ndarray:
    """Every other key as answered: a run stopped half way."""
    return np.unique(np.array(sorted(keys)[::2], dtype="S32"))


SPEC_TEXT = 'Be honest. "Quoted", back\\slash, tab\there, ünïcödé ✓, 🙂, control \x01\x1f.\n' * 80
"""A system prompt of about 1,500 tokens with every kind of character JSON escapes or encodes."""


def odd_specs(model: str) -> list[CallSpec]:
    """Requests in every layout the token rules look at."""
    user = Message("user", "Scenario: a friend asks for a loan.")
    return [
        CallSpec(model, messages=(Message("system", SPEC_TEXT), user), params=(("cache_prefix", True),)),
        CallSpec(
            model,
            messages=(Message("system", SPEC_TEXT[:900]), user, Message("system", SPEC_TEXT)),
            params=(("cache_prefix", True), ("max_tokens", 0)),
        ),
        CallSpec(model, messages=(user, Message("system", SPEC_TEXT)), params=(("cache_prefix", True),)),
        CallSpec(model, messages=(Message("system", "short"), user), params=(("cache_prefix", True),)),
        CallSpec(model, messages=(user,), params=(("reasoning_effort", "high"), ("max_tokens", 3000))),
        CallSpec(model, messages=(user,), params=(("thinking_budget", 1025), ("max_tokens", 100))),
        CallSpec(model, messages=(Message("system", SPEC_TEXT), user), params=(("temperature", 0.5),)),
    ]


def compliance_chunks(models: list[str], n: int) -> list[pl.DataFrame]:
    """Compliance-like requests: the whole spec as a cached prefix, one scenario each, some repeated."""
    scenarios = [i % (n - 3) for i in range(n)]
    specs = [
        chat(models[j % len(models)], f"scenario {j}", system=SPEC_TEXT, cache_prefix=True, max_tokens=400)
        for j in scenarios
    ]
    specs += [s for m in models for s in odd_specs(m)]
    return [
        pl.DataFrame({"model": [s.model for s in part], "spec": [spec_to_json(s) for s in part]})
        for part in (specs[: n // 2], specs[n // 2 :])
    ]


def stage_keys(run: RunDir) -> pl.Series:
    """Every key in the run's requests tables."""
    tables = [
        run.requests.scan_parquet(p).select("key").collect() for p in run.requests.list_files(".parquet")
    ]
    return pl.concat(tables)["key"]


@pytest.fixture
def written(tmp_path: Path) -> tuple[RunConf, RunDir, Engine]:
    conf = load_config(DEMO, [f"run_dir={tmp_path / 'run'}"])
    run = RunDir.open(conf.run_dir)
    return conf, run, Engine(conf, run, Manifest(run.root), CallStore(str(tmp_path / "cache")))


def test_compliance_tables_with_some_keys_answered(written: tuple[RunConf, RunDir, Engine]) -> None:
    conf, run, engine = written
    judges = ["claude_sonnet_4", "o3", "gemini_2_5_pro"]
    first, second = compliance_chunks(judges, 40)
    engine.write_requests("compliance_c0", [first])
    # The second table repeats some of the first table's keys: counted once, for the first table.
    engine.write_requests("compliance_c1", [second, first.head(5)])
    engine.write_requests(
        "compliance_r1", [pl.DataFrame({"model": ["o3"], "spec": [spec_to_json(chat("o3", "x"))]})]
    )
    engine.write_requests("compliance_c2", [])  # a table with no rows
    keys = stage_keys(run)
    for answered in (np.empty(0, dtype="S32"), some_answered(keys), np.unique(keys.to_numpy().astype("S32"))):
        lines = assert_same_lines(conf, run, "compliance", answered)
        assert [ln.model for ln in lines] == judges
    lines = {ln.model: ln for ln in assert_same_lines(conf, run, "compliance", some_answered(keys))}
    # The repair table is not counted; each judge writes each system prompt to the cache once and
    # reads it after: the spec's, and the odd request's spec excerpt followed by the spec.
    assert sum(ln.calls for ln in lines.values()) == 37 + 3 * len(odd_specs("o3"))
    assert all(0 < ln.cached < ln.calls for ln in lines.values())
    assert lines["claude_sonnet_4"].cache_write_tokens == (len(SPEC_TEXT) + (900 + len(SPEC_TEXT))) / 4
    assert len(SPEC_TEXT) / 4 > MIN_CACHED_TOKENS
    assert lines["o3"].cache_write_tokens == 0 < lines["o3"].cached_input_tokens


def test_each_spec_version_is_its_own_cached_prefix_with_its_own_part_of_the_line(tmp_path: Path) -> None:
    """Two versions of the spec judged: each judge writes each version's prompt to the cache once,
    and each line holds its part per version, told by the label ending each item id."""
    data = DEMO.parents[1] / "jobs" / "data"
    versions = f"stages.compliance.specs={{v1: {data / 'demo_spec.md'}, v2: {data / 'demo_spec_revised.md'}}}"
    conf = load_config(DEMO, [f"run_dir={tmp_path / 'run'}", versions, "stages.compliance.family_specs=null"])
    run = RunDir.open(conf.run_dir)
    engine = Engine(conf, run, Manifest(run.root), CallStore(str(tmp_path / "cache")))
    judges, texts = ["claude_sonnet_4", "o3"], {"v1": SPEC_TEXT, "v2": SPEC_TEXT + "Be kind.\n" * 40}
    rows = [
        (f"s{i}|m|0|{judge}|{label}", judge, chat(judge, f"scenario {i}", system=text, cache_prefix=True))
        for label, text in texts.items()
        for judge in judges
        for i in range(6)
    ]
    items, models, specs = zip(*rows, strict=True)
    frame = pl.DataFrame({"item_id": items, "model": models, "spec": [spec_to_json(s) for s in specs]})
    engine.write_requests("compliance_r0", [frame])
    lines = assert_same_lines(conf, run, "compliance", some_answered(stage_keys(run)))
    for line in lines:
        assert list(line.versions) == ["v1", "v2"]
        total = Line("compliance", line.model, 0, exact=True)
        for part in line.versions.values():
            total.add(part)
            assert part.calls == 6 and 0 < part.cached < 6
            prefix = len(texts["v1" if part is line.versions["v1"] else "v2"]) / CHARS_PER_TOKEN
            written = prefix if line.model == "claude_sonnet_4" else 0.0
            assert part.cache_write_tokens == written
            assert part.cached_input_tokens == (part.to_make - 1) * prefix
        assert total == line
    # Without item ids (requests built from config), the versions' prompts still differ: same lines.
    assert lines == exact_lines(conf, "compliance", [frame.drop("item_id")], some_answered(stage_keys(run)))


def test_tables_on_an_object_store(tmp_path: Path) -> None:
    """On S3 the tables are read in batches through pyarrow: the same lines."""
    with s3_bucket() as bucket:
        conf = load_config(DEMO, [f"run_dir={bucket}/run"])
        run = RunDir.open(conf.run_dir)
        engine = Engine(conf, run, Manifest(run.root), CallStore(str(tmp_path / "cache")))
        first, second = compliance_chunks(["claude_sonnet_4", "o3"], 30)
        engine.write_requests("compliance_c0", [first])
        engine.write_requests("compliance_c1", [second, first.head(4)])
        engine.write_requests("compliance_c2", [])
        lines = assert_same_lines(conf, run, "compliance", some_answered(stage_keys(run)))
    assert [ln.model for ln in lines] == ["claude_sonnet_4", "o3"]
    assert all(0 < ln.cached < ln.calls for ln in lines)


def test_a_model_whose_endpoint_changed_has_its_keys_hashed_again(
    written: tuple[RunConf, RunDir, Engine], tmp_path: Path
) -> None:
    _, run, engine = written
    engine.write_requests("compliance", compliance_chunks(["claude_sonnet_4", "o3"], 20))
    answered = np.unique(stage_keys(run).to_numpy().astype("S32"))
    # Off the emulator o3 is a real judge, which needs a spec named: the demo spec's own file.
    spec = f"stages.compliance.spec={DEMO_SPEC}"
    one = ["stages.compliance.specs=null", "stages.compliance.family_specs=null"]
    moved = load_config(
        DEMO, [f"run_dir={tmp_path / 'run'}", "vars.openai_base_url=http://elsewhere/v1", spec, *one]
    )
    lines = {ln.model: ln for ln in assert_same_lines(moved, run, "compliance", answered)}
    # Calls to the moved endpoint are new calls; the other judge's are still in the store.
    assert lines["o3"].cached == 0 < lines["o3"].calls
    assert lines["claude_sonnet_4"].cached == lines["claude_sonnet_4"].calls


@pytest.mark.parametrize(
    ("params", "visible", "expected"),
    [
        ({}, 400, 400.0),
        ({"max_tokens": 0, "thinking_budget": 1001}, 400, 900.5),
        ({"max_tokens": 300, "reasoning_effort": "medium"}, 400, 300.0),
        ({"reasoning_effort": "low", "temperature": 0.2}, 100, 600.0),
        ({"reasoning_effort": "none", "max_tokens": 2000}, 100, 100.0),
    ],
)
def test_expected_output_tokens_of_config_params(params: dict, visible: int, expected: float) -> None:
    assert expected_output_tokens(params, visible) == expected
