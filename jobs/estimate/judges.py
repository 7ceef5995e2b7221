"""Estimate lines of the labelling stages (topics, refusals, compliance, values), with prompt caching.

How many scenarios a stage judges is read from `tables/disagreement.parquet` when an
earlier run wrote it, else bounded by the scenarios the config makes. Compliance calls
carry the whole spec as a stable prefix: per judge and spec version the first call pays it
in full (Anthropic: as a cache write), every later one reads it from the cache, provided it is
at least `MIN_CACHED_TOKENS` long (the shortest prefix the three providers cache).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from actors.errors import SpecstressError
from actors.tokens import CHARS_PER_TOKEN
from jobs.analysis.disagreement import BIN_LABELS
from jobs.conf.schema import RunConf
from jobs.config import model_views
from jobs.engine.rundir import RunDir
from jobs.estimate.lines import TYPICAL, Line, with_unwritten
from jobs.estimate.requests import (
    MIN_CACHED_TOKENS,
    expected_output_tokens,
    from_earlier_requests,
)
from jobs.stages.compliance import system_prompt
from jobs.stages.compliance_scope import bin_subsets, families_of, load_versions, models_under, sample_groups
from jobs.stages.params import stage_params
from jobs.stages.streaming import scan_table
from jobs.stages.values import value_categories


def _in_scope(run: RunDir, subset: str, scope: str, n_scen: int, cap: int | None) -> int:
    """Scenarios a labelling stage would judge: read from an earlier run's table, else (before the
    disagreement stage has run) every scenario, an upper bound."""
    try:
        table = scan_table(run, "selections" if scope == "selected" else "disagreement")
        rows = table.filter(pl.col("subset") == subset)
        if scope == "high":
            rows = rows.filter(pl.col("high"))
        n = rows.select(pl.len()).collect().item()
    except SpecstressError:
        n = n_scen
    return min(n, cap) if cap is not None else n


def _compliance_scenarios(conf: RunConf, run: RunDir, n_scen: int) -> int:
    """Scenarios the compliance judges would see: the stage's own seeded draws once the
    disagreement table exists, else the draws' sizes summed, at most every scenario (an upper
    bound: draws may overlap, and a bin may hold fewer than `per_bin`)."""
    cc = conf.stages.compliance
    families = families_of(cc, list(cc.models or []))
    if run.tables.exists("disagreement.parquet"):
        return len(sample_groups(run, conf.seed, cc, families)[0])
    sz = cc.samples
    n_bins = len(BIN_LABELS) * len(set(bin_subsets(cc, families).values()))
    draws = [sz.random, sz.high_all, *[sz.high_family] * len(families), *[cc.per_bin] * n_bins]
    if cc.scope == "all" or None in draws:
        return n_scen
    return min(n_scen, sum(d or 0 for d in draws))


def _phrase_embedding_lines(conf: RunConf, n_responses: int) -> list[Line]:
    """API embedding calls of the value phrases and categories: an upper bound, since every
    response is assumed to list `max_values` phrases and none is in the embedding cache yet."""
    vc = conf.stages.values
    ec = vc.embedding or conf.stages.embeddings  # filled in at load; a hand-built config may lack it
    if ec.backend != "api" or not ec.model:
        return []
    n_texts = n_responses * vc.max_values + len(value_categories(vc))
    calls = math.ceil(n_texts / ec.batch_size)
    return [
        Line("values_embeddings", ec.model, calls, input_tokens=n_texts * TYPICAL["values_embeddings"][0])
    ]


def _line(conf: RunConf, stage: str, model: str, calls: int, settings: object) -> Line:
    tin, tout = TYPICAL[stage]
    out = expected_output_tokens(stage_params(model_views(conf)[model], settings), tout)
    return Line(stage, model, calls, input_tokens=calls * tin, output_tokens=calls * out)


def judge_lines(
    conf: RunConf, run: RunDir, n_scen: int, answered: np.ndarray, planned: dict[str, list[Line]]
) -> list[Line]:
    """One line per labelling stage in the pipeline (per judge for compliance): `planned` where the
    stage could plan, else exact from the requests an earlier run wrote, else counted from config."""
    st = conf.stages
    lines: list[Line] = []
    n_resp = len(st.responses.models)
    for name in ("topics", "refusals", "values"):
        if name not in conf.pipeline:
            continue
        sc = getattr(st, name)
        if name in planned:
            lines += planned[name]
            if name == "values":
                scenarios = sum(ln.calls for ln in planned[name])
                phrases = from_earlier_requests(conf, run, "values_embeddings", answered)
                lines += phrases or _phrase_embedding_lines(conf, scenarios * n_resp)
            continue
        n = _in_scope(run, sc.subset, sc.scope, n_scen, sc.max_scenarios)
        per_scenario = n_resp if name == "refusals" else 1
        whole = _line(conf, name, sc.model, n * per_scenario, sc)
        earlier = from_earlier_requests(conf, run, name, answered)
        lines += with_unwritten(run, name, earlier, whole) if earlier else [whole]
        if name == "values":
            phrases = from_earlier_requests(conf, run, "values_embeddings", answered)
            lines += phrases or ([] if earlier else _phrase_embedding_lines(conf, n * n_resp))
    if "compliance" in conf.pipeline:
        lines += (
            planned.get("compliance")
            or from_earlier_requests(conf, run, "compliance", answered)
            or _compliance_lines(conf, run, n_scen)
        )
    return lines


def _compliance_lines(conf: RunConf, run: RunDir, n_scen: int) -> list[Line]:
    """Compliance counted from config: one line per judge, summed over the spec versions (with
    several, each line holds its part per version); each version's system prompt is the cached
    prefix of its own calls: written by a judge's first call under it, read by the later ones."""
    cc = conf.stages.compliance
    n = _compliance_scenarios(conf, run, n_scen)
    models = list(cc.models or conf.stages.responses.models)
    families = families_of(cc, models)
    versions = {
        label: (
            n * len(models_under(cc, families, models, label)),
            len(system_prompt(spec, bool(cc.cite_sections))) / CHARS_PER_TOKEN,
        )
        for label, (spec, _) in load_versions(cc).items()
    }
    lines = []
    for judge in cc.judges:
        line = Line("compliance", judge, 0)
        for label, (calls, spec_tokens) in versions.items():
            part = _line(conf, "compliance", judge, calls, cc)
            part.input_tokens += calls * spec_tokens
            if calls and spec_tokens >= MIN_CACHED_TOKENS:
                part.cached_input_tokens += (calls - 1) * spec_tokens
                if conf.models[judge].provider == "anthropic":
                    part.cache_write_tokens += spec_tokens
            line.add(part)
            if len(versions) > 1:
                line.versions[label] = part
        lines.append(line)
    return lines
