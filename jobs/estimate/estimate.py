"""`specstress estimate`: calls, tokens, dollars and wall-clock time per stage and model, before any spend.

Where a stage's inputs already exist (the pairs come from config alone; responses need the
scenarios table of an earlier run), the estimate builds that stage's exact requests and
checks them against the call store, so it shows what is already paid and what a change,
such as a model added to a sweep, would cost. Other stages are counted from the config
(every generation assumed kept), with prompt and answer sizes from `TYPICAL`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from actors.store import CallStore
from jobs.conf.loader import LimitsConf, RunConf, account_limits, account_of, endpoint
from jobs.engine.batching.conf import batch_capable, routing_for
from jobs.engine.rundir import Manifest, RunDir, default_cache

TYPICAL: dict[str, tuple[int, int]] = {
    "scenarios_neutral": (250, 700),
    "scenarios_biased": (400, 350),
    "responses": (150, 600),
    "rubrics": (900, 1600),
    "scores_per_model": (700, 160),
    "embeddings": (40, 0),
    "topics": (250, 80),
    "refusals": (800, 80),
    "compliance": (800, 400),
    "values": (2500, 600),
    "values_embeddings": (8, 0),  # per phrase or category text
}
"""(input, output) tokens assumed per call: whole calls where exact requests cannot be built
yet, and the visible answer size where they can."""


@dataclass
class Line:
    """One stage x model row of the estimate."""

    stage: str
    model: str
    calls: int
    cached: int = 0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    exact: bool = False
    cached_input_tokens: float = 0.0
    """Prompt tokens expected to be read from the provider's prompt cache (part of input_tokens)."""
    cache_write_tokens: float = 0.0
    """Prompt tokens expected to be written to the cache (Anthropic bills these apart)."""
    stored_input_tokens: float = 0.0
    """Input tokens of the calls already in the call store: they cost nothing again."""
    stored_output_tokens: float = 0.0

    @property
    def to_make(self) -> int:
        return self.calls - self.cached


@dataclass
class Estimate:
    lines: list[Line] = field(default_factory=list)
    cost: dict[tuple[str, str], float] = field(default_factory=dict)
    """Dollars per (stage, model) on the route the stage will take."""
    saving: dict[tuple[str, str], float] = field(default_factory=dict)
    """Dollars prompt caching saves per line (cost without caching minus cost)."""
    stored: dict[tuple[str, str], float] = field(default_factory=dict)
    """Dollars the calls already in the store would cost, per line."""
    online_cost: dict[tuple[str, str], float] = field(default_factory=dict)
    """Dollars per (stage, model) if every call went online: the batch saving is the difference."""
    batched: set[tuple[str, str]] = field(default_factory=set)
    """(stage, model) lines that go through a batch API (`route: batch`, or `auto` with room)."""
    wall_s: dict[str, float] = field(default_factory=dict)
    binding: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {
                "stage": ln.stage,
                "model": ln.model,
                "calls": ln.calls,
                "cached": ln.cached,
                "to_make": ln.to_make,
                "input_tokens": round(ln.input_tokens),
                "output_tokens": round(ln.output_tokens),
                "cached_input_tokens": round(ln.cached_input_tokens),
                "stored_tokens": round(ln.stored_input_tokens + ln.stored_output_tokens),
                "cost_usd": round(self.cost[(ln.stage, ln.model)], 4),
                "cache_saving_usd": round(self.saving.get((ln.stage, ln.model), 0.0), 4),
                "stored_usd": round(self.stored[(ln.stage, ln.model)], 4),
                "route": "batch" if (ln.stage, ln.model) in self.batched else "online",
                "exact": ln.exact,
            }
            for ln in self.lines
        ]
        return {
            "lines": rows,
            "total_calls": sum(r["calls"] for r in rows),
            "total_to_make": sum(r["to_make"] for r in rows),
            "total_cost_usd": round(sum(self.cost.values()), 4),
            "total_cache_saving_usd": round(sum(self.saving.values()), 4),
            "total_stored_usd": round(sum(self.stored.values()), 4),
            "total_online_cost_usd": round(sum(self.online_cost.values()), 4),
            "batch_saving_usd": round(sum(self.online_cost.values()) - sum(self.cost.values()), 4),
            "wall_clock_s": {k: round(v, 1) for k, v in self.wall_s.items()},
            "total_wall_clock_s": round(sum(self.wall_s.values()), 1),
            "binding_limit": self.binding,
        }


def visible_output(conf: RunConf, stage: str) -> int:
    """Visible answer tokens assumed for one exact request of `stage` (a joint score covers every model)."""
    if stage == "scores":
        sc = conf.stages.scores
        per_model = TYPICAL["scores_per_model"][1]
        return per_model * len(sc.models or conf.stages.responses.models) if sc.mode == "joint" else per_model
    return TYPICAL[stage][1]


def _typical(stage: str, model: str, calls: int, kind: str, max_tokens: int | None) -> Line:
    tin, tout = TYPICAL[kind]
    return Line(
        stage, model, calls, input_tokens=calls * tin, output_tokens=calls * min(tout, max_tokens or tout)
    )


def stage_done(run: RunDir, stage: str) -> bool:
    """Whether the run's manifest records `stage` as finished."""
    return Manifest(run.root).data["stages"].get(stage, {}).get("state") == "done"


def with_unwritten(run: RunDir, stage: str, earlier: list[Line], whole: Line) -> list[Line]:
    """`earlier` (exact lines from the requests a stage wrote) plus, when the stage stopped part-way,
    the calls of the chunks it never wrote: `whole` (the stage counted from config) less those seen.

    Chunked stages (rubrics, scores, the labelling stages) write each chunk's requests just
    before sending them, so a stopped stage's tables cover its first chunks only. The rest
    joins the line of the same model, which is then no longer exact.
    """
    seen = sum(ln.calls for ln in earlier)
    if stage_done(run, stage) or whole.calls <= seen:
        return earlier
    rest, share = whole.calls - seen, (whole.calls - seen) / whole.calls
    same = next((ln for ln in earlier if ln.model == whole.model), None)
    line = same or Line(whole.stage, whole.model, 0)
    line.calls += rest
    line.input_tokens += whole.input_tokens * share
    line.output_tokens += whole.output_tokens * share
    line.exact = False
    return earlier if same else [*earlier, line]


def _split(n: int, weights: dict[str, float]) -> dict[str, int]:
    total = sum(weights.values()) or 1.0
    return {m: round(n * w / total) for m, w in weights.items()}


def _score_lines(
    conf: RunConf, run: RunDir, answered: np.ndarray, lines: list[Line], n_scen: int
) -> list[Line]:
    """Scoring follows the responses: a rerun repeats earlier requests; new responses need new scores."""
    from jobs.estimate.requests import from_earlier_requests

    sc, n_models = conf.stages.scores, len(conf.stages.scores.models or conf.stages.responses.models)
    responses = [ln for ln in lines if ln.stage == "responses"]
    new_responses = sum(ln.to_make for ln in responses)
    exact = bool(responses) and all(ln.exact for ln in responses)
    earlier = from_earlier_requests(conf, run, "scores", answered) if exact else None
    if exact:
        n_scen = max(ln.calls for ln in responses)
    if sc.mode == "joint":
        line = _typical("scores", sc.model, n_scen, "scores_per_model", None)
        line.input_tokens *= n_models
        line.output_tokens *= n_models
    else:
        line = _typical("scores", sc.model, n_scen * n_models, "scores_per_model", None)
    if earlier and new_responses == 0:
        return with_unwritten(run, "scores", earlier, line)
    if exact:
        # Joint scoring re-asks every scenario whose set of responses changed.
        line.cached = (0 if new_responses else n_scen) if sc.mode == "joint" else line.calls - new_responses
    return [line]


def plan(conf: RunConf) -> list[Line]:
    """Every calling stage of `conf.pipeline`, exact where its inputs exist, else from config."""
    from jobs.driver import StageContext
    from jobs.estimate.judges import judge_lines
    from jobs.estimate.requests import exact_lines, from_earlier_requests
    from jobs.stages import responses as responses_stage
    from jobs.stages.pairs import load_values, sample_pairs
    from jobs.stages.scenarios import neutral_requests

    run = RunDir.open(conf.run_dir)
    store = CallStore(conf.cache_dir or default_cache(conf.run_dir))
    answered = store.answered_keys()
    st = conf.stages
    n_pairs = st.pairs.n_pairs if "pairs" in conf.pipeline else 0
    n_scen = 3 * n_pairs if st.scenarios.biased else n_pairs
    lines: list[Line] = []
    if "scenarios" in conf.pipeline and st.scenarios.generators:
        pairs = sample_pairs(
            load_values(st.pairs.taxonomy),
            n_pairs,
            seed=conf.seed,
            weighting=st.pairs.weighting,  # type: ignore[arg-type]
            exclude_same=st.pairs.exclude_same,  # type: ignore[arg-type]
        )
        lines += exact_lines(conf, "scenarios_neutral", neutral_requests(conf, pairs), answered)
        earlier = from_earlier_requests(conf, run, "scenarios_biased", answered)
        if earlier is not None:
            lines += earlier
        elif st.scenarios.biased:
            rewriters = {st.scenarios.rewriter: 1.0} if st.scenarios.rewriter else st.scenarios.generators
            for m, n in _split(2 * n_pairs, rewriters).items():
                lines.append(_typical("scenarios_biased", m, n, "scenarios_biased", st.scenarios.max_tokens))
    if "responses" in conf.pipeline:
        rc = st.responses
        if run.tables.exists("scenarios.parquet"):
            ctx = StageContext(conf, run, None, None)  # type: ignore[arg-type]
            chunks = responses_stage._request_chunks(ctx, rc)
            lines += exact_lines(conf, "responses", chunks, answered)
        else:
            for m in rc.models:
                samples = responses_stage.plan_for(StageContext(conf, run, None, None), m, rc).samples  # type: ignore[arg-type]
                lines.append(_typical("responses", m, n_scen * samples, "responses", None))
    if "rubrics" in conf.pipeline:
        earlier = from_earlier_requests(conf, run, "rubrics", answered)
        whole = _typical("rubrics", st.rubrics.model, n_pairs, "rubrics", st.rubrics.max_tokens)
        lines += with_unwritten(run, "rubrics", earlier, whole) if earlier else [whole]
    if "scores" in conf.pipeline:
        lines += _score_lines(conf, run, answered, lines, n_scen)
    if "embeddings" in conf.pipeline and st.embeddings.backend == "api" and st.embeddings.model:
        earlier = from_earlier_requests(conf, run, "embeddings", answered)
        if run.tables.exists("scenarios.parquet"):
            n_scen = pq.read_metadata(run.tables.join("scenarios.parquet"), filesystem=run.root.fs).num_rows
        texts_in = n_scen * TYPICAL["embeddings"][0]
        calls = math.ceil(n_scen / st.embeddings.batch_size)
        lines += earlier or [Line("embeddings", st.embeddings.model, calls, input_tokens=texts_in)]
    lines += judge_lines(conf, run, n_scen, answered)
    return lines


def estimate(conf: RunConf) -> Estimate:
    """Dollars per line at registry prices; wall-clock per stage at the configured limits."""
    est = Estimate(lines=plan(conf))
    limits = account_limits(conf)
    for ln in est.lines:
        if not ln.exact and ln.cached:
            # Counted from config: the line's tokens cover every call; the cached share costs nothing.
            share = ln.to_make / ln.calls
            ln.stored_input_tokens = ln.input_tokens * (1 - share)
            ln.stored_output_tokens = ln.output_tokens * (1 - share)
            ln.input_tokens *= share
            ln.output_tokens *= share
            ln.cached_input_tokens *= share
            ln.cache_write_tokens *= share
        prices = endpoint(conf, ln.model).prices
        tin, tout = int(ln.input_tokens), int(ln.output_tokens)
        cost = prices.cost_usd(tin, tout, int(ln.cached_input_tokens), int(ln.cache_write_tokens))
        est.cost[(ln.stage, ln.model)] = cost
        if ln.cached_input_tokens or ln.cache_write_tokens:
            est.saving[(ln.stage, ln.model)] = prices.cost_usd(tin, tout) - cost
        est.stored[(ln.stage, ln.model)] = prices.cost_usd(
            int(ln.stored_input_tokens), int(ln.stored_output_tokens)
        )
    by_stage: dict[str, dict[str, list[float]]] = {}
    for ln in est.lines:
        acc = by_stage.setdefault(ln.stage, {}).setdefault(account_of(conf, ln.model), [0.0, 0.0, 0.0])
        acc[0] += ln.to_make
        acc[1] += ln.input_tokens
        acc[2] += ln.output_tokens
    for stage, accounts in by_stage.items():
        worst, why = 0.0, "none"
        for account, (calls, tin, tout) in accounts.items():
            secs, name = limit_seconds(limits[account], calls, tin, tout)
            if secs > worst:
                worst, why = secs, f"{account}.{name}"
        est.wall_s[stage] = worst
        est.binding[stage] = why
    _price_routes(conf, est)
    return est


def _price_routes(conf: RunConf, est: Estimate) -> None:
    """Price each line on its stage's route: batch lines at the model's batch discount.

    `auto` counts as batch when the stage's deadline exceeds its online wall-clock time (at
    the limits) times `batch.online_safety`, the test the run itself applies.
    """
    for ln in est.lines:
        routing = routing_for(conf.stages, ln.stage)
        room = routing.batch_deadline_s > est.wall_s.get(ln.stage, 0.0) * conf.batch.online_safety
        batch = (routing.route == "batch" or (routing.route == "auto" and room)) and batch_capable(
            conf, ln.model
        )
        prices = endpoint(conf, ln.model).prices
        line_key = (ln.stage, ln.model)
        est.online_cost[line_key] = est.cost[line_key]
        if batch:
            est.batched.add(line_key)
            est.cost[line_key] = prices.cost_usd(
                int(ln.input_tokens),
                int(ln.output_tokens),
                int(ln.cached_input_tokens),
                int(ln.cache_write_tokens),
                batch=True,
            )


def limit_seconds(
    lim: LimitsConf, calls: float, input_tokens: float, output_tokens: float
) -> tuple[float, str]:
    """Seconds an account's per-minute limits need for this much work, and the limit that binds."""
    worst, why = 0.0, "none"
    for name, used, per_min in (
        ("rpm", calls, lim.rpm),
        ("input_tpm", input_tokens, lim.input_tpm),
        ("output_tpm", output_tokens, lim.output_tpm),
    ):
        if per_min and used and used / per_min * 60 > worst:
            worst, why = used / per_min * 60, name
    return worst, why


def format_estimate(est: Estimate) -> str:
    d = est.as_dict()
    out = [
        f"{'stage':<18} {'model':<22} {'calls':>9} {'cached':>8} {'to make':>9} {'in tok':>11} {'out tok':>11} "
        f"{'stored tok':>11} {'USD':>10}"
    ]
    for r in d["lines"]:
        out.append(
            f"{r['stage']:<18} {r['model']:<22} {r['calls']:>9} {r['cached']:>8} {r['to_make']:>9} "
            f"{r['input_tokens']:>11} {r['output_tokens']:>11} {r['stored_tokens']:>11} {r['cost_usd']:>10.2f}"
            + ("  b" if r["route"] == "batch" else "")
            + ("" if r["exact"] else "  ~")
        )
    out.append(
        f"total: {d['total_calls']} calls, {d['total_to_make']} to make, ${d['total_cost_usd']:.2f} "
        f"(calls already in the store: {d['total_calls'] - d['total_to_make']}, "
        f"worth about ${d['total_stored_usd']:.2f}, cost nothing)"
    )
    for r in d["lines"]:
        if r["cached_input_tokens"]:
            out.append(
                f"  prompt cache, {r['stage']} {r['model']}: {r['cached_input_tokens']} of {r['input_tokens']} "
                f"input tokens cached, saves ${r['cache_saving_usd']:.2f}"
            )
    if est.batched:
        out.append(
            f"  batch saving: ${d['batch_saving_usd']:.2f} (all online: ${d['total_online_cost_usd']:.2f}); "
            "b = through the providers' batch APIs at their discount"
        )
    batch_stages = {stage for stage, _ in est.batched}
    for stage, secs in d["wall_clock_s"].items():
        out.append(
            f"  {stage}: about {math.ceil(secs / 60)} min at the limits (binding: {d['binding_limit'][stage]})"
            + (
                "; its batch lines take what the batch APIs take (up to 24 h)"
                if stage in batch_stages
                else ""
            )
        )
    out.append(
        "~ = counted from config (every generation assumed kept); other lines are the stage's exact requests."
    )
    return "\n".join(out)
