"""`specstress estimate`: calls, tokens, dollars and wall-clock time per stage and model, before any spend.

Where a stage's inputs already exist (the pairs come from config alone; responses need the
scenarios table of an earlier run), the estimate builds that stage's exact requests and
checks them against the call store, so it shows what is already paid and what a change,
such as a model added to a sweep, would cost. Other stages are counted from the config
(every generation assumed kept), with prompt and answer sizes from `TYPICAL`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from omegaconf import OmegaConf

from actors.settings import limit_seconds
from actors.store import CallStore
from jobs.conf.batching import routing_for
from jobs.conf.loader import account_limits, account_of, endpoint
from jobs.conf.schema import RunConf
from jobs.config import model_views
from jobs.context import resolve_keyed, stage_context
from jobs.engine.batching.decide import batch_capable
from jobs.engine.rundir import Manifest, RunDir, default_cache
from jobs.estimate import committee
from jobs.estimate.judges import judge_lines
from jobs.estimate.lines import TYPICAL, Line, stage_done, typical, with_unwritten
from jobs.estimate.requests import first_round_tables, from_earlier_requests, stored_first_round, table_lines
from jobs.estimate.schedule import Schedule, schedule, stage_inputs
from jobs.estimate.selection import SPARED_STAGES, Kept, kept_scenarios
from jobs.stages.registry import STAGES
from jobs.stages.responses import plan_for


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
    kept: Kept | None = None
    """The scenarios the responses answer; None where no responses are estimated."""
    schedule: Schedule | None = None
    """The whole run's time at the limits: stages in turn, overlapped, and the lower bound."""
    budget: committee.BudgetPlans | None = None
    """In committee mode with a budget: what it buys as a full sweep and in committee mode."""
    version_cost: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """Dollars per (stage, model, spec version) of the lines judged against several spec versions
    (`Line.versions`), on the line's route."""
    version_saving: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """Dollars prompt caching saves per (stage, model, spec version)."""
    keyed_changes: dict[tuple[str, str], tuple[Any, Any, int]] = field(default_factory=dict)
    """(stage, keyed setting) -> (the value its calls were made with, the value set now, stored
    first-round answers the change leaves unused), for the keyed settings changed explicitly."""

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
        versions = [
            {
                "stage": ln.stage,
                "version": label,
                "model": ln.model,
                "calls": part.calls,
                "to_make": part.to_make,
                "input_tokens": round(part.input_tokens),
                "cached_input_tokens": round(part.cached_input_tokens),
                "cache_write_tokens": round(part.cache_write_tokens),
                "cost_usd": round(self.version_cost[(ln.stage, ln.model, label)], 4),
                "cache_saving_usd": round(self.version_saving[(ln.stage, ln.model, label)], 4),
            }
            for ln in self.lines
            for label, part in ln.versions.items()
        ]
        spared_calls, spared_usd = _spared(self)
        selection = None
        if self.kept is not None:
            k = self.kept
            selection = {
                "scope": k.scope,
                "scenarios": k.scenarios,
                "answered": k.kept,
                "counted": k.counted,
                "calls_spared": spared_calls,
                "usd_spared": round(spared_usd, 4),
            }
        return {
            "selection": selection,
            "lines": rows,
            "spec_versions": versions,
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
            "schedule": None
            if self.schedule is None
            else {
                "sequential_s": round(self.schedule.sequential_s, 1),
                "overlapped_s": round(self.schedule.overlapped_s, 1),
                "overlap_saving": round(self.schedule.overlap_saving, 4),
                "lower_bound_s": round(self.schedule.lower_bound_s, 1),
                "lower_bound_by": self.schedule.bound_by,
            },
            "budget_plans": None if self.budget is None else self.budget.as_dict(),
            "keyed_changes": {
                f"{stage}.{key}": {"made_with": was, "set": now, "stored_not_reused": n}
                for (stage, key), (was, now, n) in self.keyed_changes.items()
            },
        }


def _split(n: int, weights: dict[str, float]) -> dict[str, int]:
    total = sum(weights.values()) or 1.0
    return {m: round(n * w / total) for m, w in weights.items()}


def _score_lines(
    conf: RunConf, run: RunDir, answered: np.ndarray, lines: list[Line], n_scen: int
) -> list[Line]:
    """Scoring follows the responses: a rerun repeats earlier requests; new responses need new scores."""
    sc, n_models = conf.stages.scores, len(conf.stages.scores.models or conf.stages.responses.models)
    if conf.stages.responses.committee.models:
        return [committee.score_line(conf, n_scen, committee.sent_share(conf, run).share)]
    responses = [ln for ln in lines if ln.stage == "responses"]
    new_responses = sum(ln.to_make for ln in responses)
    exact = bool(responses) and all(ln.exact for ln in responses)
    earlier = from_earlier_requests(conf, run, "scores", answered) if exact else None
    if exact:
        n_scen = max(ln.calls for ln in responses)
    if sc.mode == "joint":
        line = typical("scores", sc.model, n_scen, "scores_per_model", None)
        line.input_tokens *= n_models
        line.output_tokens *= n_models
    else:
        line = typical("scores", sc.model, n_scen * n_models, "scores_per_model", None)
    if earlier and new_responses == 0:
        return with_unwritten(run, "scores", earlier, line)
    if exact:
        # Joint scoring re-asks every scenario whose set of responses changed.
        line.cached = (0 if new_responses else n_scen) if sc.mode == "joint" else line.calls - new_responses
    return [line]


def planned_lines(conf: RunConf, run: RunDir, answered: np.ndarray) -> dict[str, list[Line]]:
    """Exact lines, by line name, of every calling stage that can plan: stage by stage in pipeline
    order, as long as each earlier stage has finished with nothing left to make (so the inputs a
    plan reads are the ones the run will read). A stage without calls whose table follows from
    config alone (the pairs) is previewed in memory for the stages after it."""
    out: dict[str, list[Line]] = {}
    previews: dict[str, pl.DataFrame] = {}
    recorded = recorded_stages(run)
    for name in conf.pipeline:
        st = STAGES[name]
        ctx = stage_context(conf, name, run, previews=previews)
        if st.preview is not None:
            previews |= st.preview(ctx)
            continue
        reuse = recorded.get(name) == OmegaConf.to_container(OmegaConf.structured(ctx.settings))
        done = stage_done(run, name)
        if reuse and done:
            # It wrote its whole plan with these settings: read those tables, build nothing.
            written = {
                line_name(p.rsplit("/", 1)[-1].removesuffix(".parquet"))
                for p in first_round_tables(run, name)
            }
            lines = {line: from_earlier_requests(conf, run, line, answered) or [] for line in sorted(written)}
        else:
            groups: dict[str, dict[str, Iterator[pl.DataFrame]]] = {}
            for table, chunks in st.plan(ctx).items():
                groups.setdefault(line_name(table), {})[table] = chunks
            lines = {
                line: table_lines(conf, run, line, tables, answered, reuse=reuse)
                for line, tables in groups.items()
            }
        out |= lines
        if not done or any(ln.to_make for ls in lines.values() for ln in ls):
            break
    return out


def recorded_stages(run: RunDir) -> dict[str, Any]:
    """The stages' settings of the run's last session (`config.yaml`), to tell whether the requests
    tables it wrote are what the current settings would send; empty before any session."""
    text = run.root.read_text("config.yaml")
    if text is None:
        return {}
    stages = OmegaConf.create(text).get("stages") or {}
    return dict(OmegaConf.to_container(stages))  # type: ignore[arg-type]


def line_name(requests_table: str) -> str:
    """The estimate line a requests table counts towards: its name without chunk and round."""
    return re.sub(r"(_c\d+)?(_r\d+)?$", "", requests_table)


def lines(conf: RunConf, run: RunDir) -> tuple[list[Line], Kept | None]:
    """Every calling stage of `conf.pipeline`: exact from its plan where it can plan, else from the
    requests an earlier run wrote, else counted from config; and the scenarios the responses answer."""
    store = CallStore(conf.cache_dir or default_cache(conf.run_dir))
    answered = store.answered_keys()
    planned = planned_lines(conf, run, answered)
    st = conf.stages
    n_pairs = st.pairs.n_pairs if "pairs" in conf.pipeline else 0
    n_scen = 3 * n_pairs if st.scenarios.biased else n_pairs
    if run.tables.exists("scenarios.parquet"):
        n_scen = pq.read_metadata(run.tables.join("scenarios.parquet"), filesystem=run.root.fs).num_rows
    kept = kept_scenarios(run, st.responses.scope, n_scen, n_pairs)
    out: list[Line] = []
    if "scenarios" in conf.pipeline and st.scenarios.generators:
        out += planned.get("scenarios_neutral", [])
        earlier = from_earlier_requests(conf, run, "scenarios_biased", answered)
        if earlier is not None:
            out += earlier
        elif st.scenarios.biased:
            rewriters = {st.scenarios.rewriter: 1.0} if st.scenarios.rewriter else st.scenarios.generators
            for m, n in _split(2 * n_pairs, rewriters).items():
                out.append(typical("scenarios_biased", m, n, "scenarios_biased", st.scenarios.max_tokens))
    if "embeddings" in conf.pipeline and st.embeddings.backend == "api" and st.embeddings.model:
        earlier = planned.get("embeddings") or from_earlier_requests(conf, run, "embeddings", answered)
        texts_in = n_scen * TYPICAL["embeddings"][0]
        calls = math.ceil(n_scen / st.embeddings.batch_size)
        out += earlier or [Line("embeddings", st.embeddings.model, calls, input_tokens=texts_in)]
    if "responses" in conf.pipeline:
        rc = st.responses
        views = model_views(conf)
        if rc.committee.models:
            out += committee.responses_lines(conf, run, planned.get("responses"), kept.kept)
        else:
            out += planned.get("responses") or [
                typical("responses", m, kept.kept * plan_for(views[m], rc).samples, "responses", None)
                for m in rc.models
            ]
    if "rubrics" in conf.pipeline:
        earlier = from_earlier_requests(conf, run, "rubrics", answered)
        pairs = kept_scenarios(run, st.rubrics.scope or "all", n_scen, n_pairs).kept_pairs
        whole = typical("rubrics", st.rubrics.model, pairs, "rubrics", st.rubrics.max_tokens)
        out += planned.get("rubrics") or (
            with_unwritten(run, "rubrics", earlier, whole) if earlier else [whole]
        )
    if "scores" in conf.pipeline:
        out += planned.get("scores") or _score_lines(conf, run, answered, out, kept.kept)
    out += judge_lines(conf, run, kept.kept, answered, planned)
    return out, (kept if "responses" in conf.pipeline else None)


def estimate(conf: RunConf) -> Estimate:
    """Dollars per line at registry prices; wall-clock per stage at the configured limits."""
    run = RunDir.open(conf.run_dir)
    changed = resolve_keyed(conf, Manifest(run.root))
    found, kept = lines(conf, run)
    est = Estimate(lines=found, kept=kept)
    if changed:
        answered = CallStore(conf.cache_dir or default_cache(conf.run_dir)).answered_keys()
        for (name, key), recorded in changed.items():
            now = getattr(getattr(conf.stages, name), key)
            est.keyed_changes[(name, key)] = (recorded, now, stored_first_round(run, name, answered))
    limits = account_limits(conf)
    for ln in est.lines:
        if not ln.exact and ln.cached:
            for part in (ln, *ln.versions.values()):
                _store_share(part)
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
    _price_versions(conf, est)
    est.budget = committee.budget_plans(conf, run, est.lines, est.cost, est.stored)
    accounts = {ln.model: account_of(conf, ln.model) for ln in est.lines}
    est.schedule = schedule(
        est.lines, accounts, limits, est.batched, stage_inputs(conf.stages, conf.pipeline)
    )
    return est


def _store_share(ln: Line) -> None:
    """A line counted from config covers every call: move its cached calls' share of the tokens to
    the stored tokens, which cost nothing."""
    if not ln.calls:
        return
    share = ln.to_make / ln.calls
    ln.stored_input_tokens = ln.input_tokens * (1 - share)
    ln.stored_output_tokens = ln.output_tokens * (1 - share)
    ln.input_tokens *= share
    ln.output_tokens *= share
    ln.cached_input_tokens *= share
    ln.cache_write_tokens *= share


def _price_versions(conf: RunConf, est: Estimate) -> None:
    """Price each line's part per spec version on the line's route, and what caching saves in it
    (priced online, as each line's saving is)."""
    for ln in est.lines:
        prices = endpoint(conf, ln.model).prices
        batch = (ln.stage, ln.model) in est.batched
        for label, part in ln.versions.items():
            tin, tout = int(part.input_tokens), int(part.output_tokens)
            cache = int(part.cached_input_tokens), int(part.cache_write_tokens)
            key = (ln.stage, ln.model, label)
            est.version_cost[key] = prices.cost_usd(tin, tout, *cache, batch=batch)
            est.version_saving[key] = prices.cost_usd(tin, tout) - prices.cost_usd(tin, tout, *cache)


def version_totals(d: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """`Estimate.as_dict()`'s spec version rows summed over models: (stage, version) -> calls,
    to_make, cost_usd, cache_saving_usd and each model's cost (`by_model`)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in d["spec_versions"]:
        t = out.setdefault(
            (r["stage"], r["version"]),
            {"calls": 0, "to_make": 0, "cost_usd": 0.0, "cache_saving_usd": 0.0, "by_model": {}},
        )
        for k in ("calls", "to_make", "cost_usd", "cache_saving_usd"):
            t[k] += r[k]
        t["by_model"][r["model"]] = r["cost_usd"]
    return out


def _spared(est: Estimate) -> tuple[dict[str, int], float]:
    """Calls (per stage) and dollars selection spares: each line of a stage that follows the responses'
    scope, its calls made or not, scaled from the scenarios it answers to those it does not
    (`Kept.spared`). The removed scenarios' calls are assumed to cost what the kept ones do and to be
    in no store, so this is what switching to `scope: all` would add after a run with `diverse`."""
    calls: dict[str, float] = {}
    usd = 0.0
    for ln in est.lines:
        if ln.stage in SPARED_STAGES and est.kept is not None:
            factor, key = est.kept.spared(ln.stage), (ln.stage, ln.model)
            calls[ln.stage] = calls.get(ln.stage, 0.0) + ln.calls * factor
            usd += (est.cost[key] + est.stored[key]) * factor
    return {stage: round(n) for stage, n in calls.items()}, usd


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


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{math.ceil(seconds / 60)} min"


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
    for (stage, version), t in version_totals(d).items():
        models = ", ".join(f"{m} ${usd:.2f}" for m, usd in t["by_model"].items())
        out.append(
            f"  spec version {version} ({stage}; its spec is the cached prefix of its calls): {t['calls']} calls, "
            f"{t['to_make']} to make, ${t['cost_usd']:.2f} ({models}); prompt caching saves "
            f"${t['cache_saving_usd']:.2f}"
        )
    if est.batched:
        out.append(
            f"  batch saving: ${d['batch_saving_usd']:.2f} (all online: ${d['total_online_cost_usd']:.2f}); "
            "b = through the providers' batch APIs at their discount"
        )
    for (stage, key), (was, now, n) in est.keyed_changes.items():
        out.append(
            f"  stages.{stage}.{key}={now}, but this run's {stage} calls were made with {key}={was}: "
            f"{n} stored first-round answers are not reused (their calls are counted to make)"
        )
    if est.kept is not None:
        out.append(f"  selection: {est.kept.note()}")
        if est.kept.scope == "diverse":
            mark = "" if est.kept.counted else "~"
            spared = [f"{mark}{n:,} {stage}" for stage, n in d["selection"]["calls_spared"].items() if n]
            out.append(
                f"  selection spares {', '.join(spared) or 'no'} calls, {mark}${d['selection']['usd_spared']:,.2f}: "
                "what stages.responses.scope=all would add to those stages, at their lines' cost per call"
            )
    if est.budget is not None:
        out += est.budget.lines()
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
    if est.schedule is not None and est.schedule.sequential_s:
        sch = est.schedule
        out.append(
            f"  end to end at the limits: {_hours(sch.sequential_s)} with stages one after another; "
            f"{_hours(sch.overlapped_s)} overlapped ({sch.overlap_saving:.0%} less: each stage starting once "
            f"the tables it reads are complete, stages sharing an account through one limiter); "
            f"no schedule beats {_hours(sch.lower_bound_s)} ({sch.bound_by})"
        )
    out.append(
        "~ = counted from config (every generation assumed kept, and the paper's kept share answered until "
        "diversity has run); other lines are the stage's exact requests."
    )
    return "\n".join(out)
