"""How long a whole run takes at the accounts' limits: stages one after another, stages overlapped,
and the bound no schedule beats.

Each stage's calls on an account carry a demand per call: one request, its input tokens, its
output tokens. An account admits work while every one of its per-minute limits (rpm,
input_tpm, output_tpm) has room, as its limiter does. A stage spread over several accounts
runs on each at once and ends when its slowest part ends.

- **One after another** (how the engine runs a pipeline today): each stage alone, its time
  on each account what the binding limit allows (`limit_seconds`), summed over stages.
- **Overlapped**: a stage starts once every stage that writes a table it reads has ended
  (`tables_read`, `WRITER`), and the stages running at once share each account through one
  work-conserving limiter, at max-min fair rates (`fair_rates`): a stage bound by output
  tokens and one bound by requests progress together, and two stages bound by one limit
  split it.
- **Lower bound**: the larger of the busiest account's whole work (all stages' calls and
  tokens together at its limits) and the longest chain of stages that must follow each other.

Lines routed to a provider's batch API do not use the account's online limits: providers
meter their batch queues apart, so they are a resource of their own, timed at the account's
online limits for want of a published batch throughput (an assumption, not a figure: a
batch may take up to 24 hours).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from actors.settings import limit_seconds
from jobs.conf.schema import LimitsConf
from jobs.estimate.lines import Line
from jobs.stages.settings.pipeline import BY_NAME, WRITER

PARTS = {"scenarios": ("scenarios_neutral", "scenarios_biased"), "values": ("values", "values_embeddings")}
"""Pipeline stages whose estimate lines are parts that follow one another (the biased rewrites
need the neutral queries; the phrases are embedded once the values labeller has named them)."""
BATCH_QUEUE = " batch queue"
"""Suffix of the resource an account's batch-routed lines use."""
Demand = tuple[float, float, float]
"""Calls, input tokens, output tokens."""


@dataclass(frozen=True)
class Schedule:
    """Seconds end to end at the limits, three ways."""

    sequential_s: float
    overlapped_s: float
    lower_bound_s: float
    bound_by: str
    """What sets the lower bound: an account (or its batch queue), or the chain of stages."""

    @property
    def overlap_saving(self) -> float:
        """The share of the sequential time overlapping saves."""
        return 1 - self.overlapped_s / self.sequential_s if self.sequential_s else 0.0


def stage_inputs(stages: object, pipeline: Sequence[str]) -> dict[str, set[str]]:
    """Each part of a pipeline stage (`PARTS`, else the stage) -> the parts it waits for: the last
    part of each stage that writes a table it reads, or the part before it."""
    inside = set(pipeline)
    out: dict[str, set[str]] = {}
    for name in pipeline:
        writers = {
            WRITER[t]
            for t in BY_NAME[name].tables_read(getattr(stages, name))
            if WRITER.get(t) in inside and WRITER[t] != name
        }
        parts = PARTS.get(name, (name,))
        out[parts[0]] = {PARTS.get(w, (w,))[-1] for w in writers}
        for before, part in pairwise(parts):
            out[part] = {before}
    return out


def demands(
    lines: Sequence[Line], account_of: Mapping[str, str], batched: set[tuple[str, str]]
) -> dict[str, dict[str, Demand]]:
    """Line stage -> resource (an account, or its batch queue) -> the demand still to make."""
    out: dict[str, dict[str, Demand]] = {}
    for ln in lines:
        resource = account_of[ln.model] + (BATCH_QUEUE if (ln.stage, ln.model) in batched else "")
        share = ln.to_make / ln.calls if ln.calls else 0.0
        calls, tin, tout = out.setdefault(ln.stage, {}).get(resource, (0.0, 0.0, 0.0))
        out[ln.stage][resource] = (
            calls + ln.to_make,
            tin + ln.input_tokens * share,
            tout + ln.output_tokens * share,
        )
    return out


def _per_second(lim: LimitsConf) -> Demand:
    """An account's limits per second (inf where unlimited)."""
    return tuple(v / 60 if v else math.inf for v in (lim.rpm, lim.input_tpm, lim.output_tpm))  # type: ignore[return-value]


def fair_rates(capacity: Demand, per_call: Mapping[str, Demand]) -> dict[str, float]:
    """Calls per second of each stage sharing an account through one work-conserving limiter: the
    max-min fair rates (progressive filling). All rates rise together until a limit is full; the
    stages that use that limit stop there, the others keep rising, until every stage is held by
    some full limit. A stage bound by output tokens thus leaves the requests it cannot use to a
    stage bound by requests."""
    rates = dict.fromkeys(per_call, 0.0)
    rising = {s for s, d in per_call.items() if any(d)}
    while rising:
        room = [capacity[i] - sum(rates[s] * per_call[s][i] for s in per_call) for i in range(3)]
        demand = [sum(per_call[s][i] for s in rising) for i in range(3)]
        steps = [(room[i] / demand[i], i) for i in range(3) if demand[i] > 0 and math.isfinite(capacity[i])]
        if not steps:
            return {s: math.inf if s in rising else r for s, r in rates.items()}
        step, full = min(steps)
        for s in rising:
            rates[s] += step
        rising = {s for s in rising if per_call[s][full] == 0}
    return rates


def overlapped(
    demand: Mapping[str, Mapping[str, Demand]],
    capacity: Mapping[str, Demand],
    inputs: Mapping[str, set[str]],
) -> float:
    """Makespan when each stage starts once the stages it waits for (`inputs`) have ended and the
    stages running at once share each resource at a common request rate."""
    left = {s: {r: d for r, d in demand.get(s, {}).items() if d[0] > 0} for s in inputs}
    per_call = {s: {r: (1.0, d[1] / d[0], d[2] / d[0]) for r, d in left[s].items()} for s in inputs}
    calls = {s: {r: d[0] for r, d in left[s].items()} for s in inputs}
    done: set[str] = set()
    now = 0.0
    while len(done) < len(inputs):
        ready = [s for s in inputs if s not in done and inputs[s] <= done]
        finished = [s for s in ready if not calls[s]]
        if finished:
            done.update(finished)
            continue
        if not ready:
            raise ValueError(f"stages wait on each other: {sorted(set(inputs) - done)}")
        sharing: dict[str, list[str]] = {}
        for s in ready:
            for r in calls[s]:
                sharing.setdefault(r, []).append(s)
        rate = {r: fair_rates(capacity[r], {s: per_call[s][r] for s in ss}) for r, ss in sharing.items()}
        unlimited = [(s, r) for s in ready for r in calls[s] if math.isinf(rate[r][s])]
        for s, r in unlimited:  # a resource without limits takes no time at all
            del calls[s][r]
        if unlimited:
            continue
        step = min(n / rate[r][s] for s in ready for r, n in calls[s].items())
        now += step
        for s in ready:
            for r in list(calls[s]):
                calls[s][r] -= step * rate[r][s]
                if calls[s][r] <= 1e-6 * max(1.0, rate[r][s]):
                    del calls[s][r]
    return now


def _chain(alone: Mapping[str, float], inputs: Mapping[str, set[str]]) -> float:
    """The longest chain of stages that must follow each other, each at its own time alone."""
    end: dict[str, float] = {}

    def finish(s: str) -> float:
        if s not in end:
            end[s] = max((finish(i) for i in inputs[s]), default=0.0) + alone.get(s, 0.0)
        return end[s]

    return max((finish(s) for s in inputs), default=0.0)


def schedule(
    lines: Sequence[Line],
    account_of: Mapping[str, str],
    limits: Mapping[str, LimitsConf],
    batched: set[tuple[str, str]],
    inputs: Mapping[str, set[str]],
) -> Schedule:
    """The run's time at the limits: sequential, overlapped, and the lower bound."""
    demand = demands(lines, account_of, batched)
    lim = {r: limits[r.removesuffix(BATCH_QUEUE)] for per in demand.values() for r in per}
    alone = {
        stage: max((limit_seconds(lim[r], *d)[0] for r, d in per.items()), default=0.0)
        for stage, per in demand.items()
    }
    totals: dict[str, Demand] = {}
    for per in demand.values():
        for r, d in per.items():
            t = totals.get(r, (0.0, 0.0, 0.0))
            totals[r] = (t[0] + d[0], t[1] + d[1], t[2] + d[2])
    busiest, busiest_s = max(
        ((r, limit_seconds(lim[r], *d)[0]) for r, d in totals.items()),
        key=lambda x: x[1],
        default=("none", 0.0),
    )
    chain_s = _chain(alone, inputs)
    bound, by = (
        (busiest_s, f"account {busiest}") if busiest_s >= chain_s else (chain_s, "the chain of stages")
    )
    capacity = {r: _per_second(v) for r, v in lim.items()}
    return Schedule(sum(alone.values()), overlapped(demand, capacity, inputs), bound, by)
