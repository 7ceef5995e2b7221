"""Planning a committee offline: on a full sweep, what a committee would have found, for what cost.

A full sweep has every model's positions on every scenario, so for any committee it has both
the committee's D and the full D of each scenario: the whole run can play the calibration
sample. For a committee this module gives the curve of thresholds (the recall of high-D
scenarios, with its interval, against the share of scenarios sent on and the cost share) and,
for each target recall, the least-cost threshold `choose_threshold` picks.

Cost share = (the committee's response cost on every scenario + the other models' response
cost on the scenarios sent on) / (every model's response cost on every scenario). A model's
cost is its mean response cost per scenario, so a model's real price counts; scoring calls are
not in it. When the run records no response costs (an imported release has none), every model
counts the same and the share is one of responses.

The committee's D here comes from positions the scorer gave with every model's responses in
view; a real committee run scores the committee's responses alone, so these figures
approximate what a committee run would see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from actors.errors import SpecstressError
from jobs.analysis.committee import Threshold, choose_threshold, sending_d, threshold_at
from jobs.analysis.disagreement import DisagreementConfig, PositionMatrix, d_over, position_matrix

TARGETS: tuple[float, ...] = (0.8, 0.9, 0.95)
"""Target recalls the planner shows by default."""
GREEDY_TARGET = 0.9
"""The target recall at which the greedy search compares committees."""
CURVE_POINTS = 20
"""Most thresholds a curve shows; more distinct committee Ds are thinned evenly by rank."""


@dataclass(frozen=True)
class Sweep:
    """A full sweep's positions, the full D of each scenario and each model's response cost."""

    pm: PositionMatrix
    """Positions of every model (the model axis is the sweep's models)."""
    full_d: np.ndarray
    """D over every model of the sweep, per scenario of `pm` (NaN: too few positions)."""
    cost: dict[str, float]
    """Each model's mean response cost per scenario (1.0 each when `basis` is 'responses')."""
    basis: str = "usd"
    """usd: cost shares are of dollars; responses: of responses (the run recorded no costs)."""
    config: DisagreementConfig = field(default_factory=DisagreementConfig)
    """std kind, min_models and the high threshold used for every D here."""
    notes: tuple[str, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return self.pm.models


@dataclass(frozen=True)
class CurvePoint:
    """One threshold of a committee: its recall with interval, what it sends and the cost share."""

    threshold: Threshold
    cost_share: float
    target: float | None = None
    """The target recall this threshold was chosen for; None on the curve."""


@dataclass(frozen=True)
class CommitteePlan:
    """A committee's curve and the threshold each target recall needs."""

    committee: tuple[str, ...]
    floor: float
    """Cost share of the committee alone (nothing sent on)."""
    curve: tuple[CurvePoint, ...]
    targets: tuple[CurvePoint, ...]

    def at(self, target: float) -> CurvePoint:
        """The point chosen for `target` (it must be one of the plan's targets)."""
        for p in self.targets:
            if p.target == target:
                return p
        raise KeyError(f"target {target} is not among the plan's targets")


def model_costs(responses: pl.DataFrame) -> dict[str, float]:
    """Each model's mean response cost per scenario: cost_usd summed per scenario (over samples and
    failed attempts, which are paid too), averaged over the scenarios it has responses for.
    A model whose responses carry no cost gets NaN."""
    per = responses.group_by("model", "scenario_id").agg(
        pl.col("cost_usd").sum().alias("usd"), pl.col("cost_usd").is_not_null().any().alias("known")
    )
    out = per.group_by("model").agg(
        pl.col("usd").filter(pl.col("known")).mean().alias("usd"), pl.col("known").any().alias("known")
    )
    return {
        m: float(usd) if known and usd is not None else math.nan
        for m, usd, known in out.select("model", "usd", "known").iter_rows()
    }


def build_sweep(
    scores: pl.DataFrame,
    costs: Mapping[str, float],
    models: Sequence[str] | None = None,
    config: DisagreementConfig | None = None,
) -> Sweep:
    """The sweep of `models` (default: every model in `scores`) from valid long scores.

    Args:
        scores: scenario_id, model, value_slot, position of valid scores (one sample).
        costs: model -> mean response cost per scenario (`model_costs`); a model missing or NaN
            here, or every model at 0, turns the cost basis into responses.
        models: the models whose D is the full D.
        config: std kind, min_models and high threshold (its subsets are ignored).
    """
    cfg = config or DisagreementConfig()
    models = tuple(models) if models is not None else tuple(sorted(scores["model"].unique().to_list()))
    pm = position_matrix(scores, models)
    full = _d(pm, models, cfg)
    priced = {m: costs.get(m, math.nan) for m in models}
    unpriced = sorted(m for m, c in priced.items() if not c >= 0)
    notes: list[str] = []
    if unpriced or not sum(priced.values()) > 0:
        if unpriced and len(unpriced) < len(models):
            notes.append(f"no response cost recorded for {unpriced}: shares are of responses, not dollars")
        else:
            notes.append("the run records no response costs: shares are of responses, not dollars")
        return Sweep(pm, full, dict.fromkeys(models, 1.0), "responses", cfg, tuple(notes))
    return Sweep(pm, full, priced, "usd", cfg, tuple(notes))


def _d(pm: PositionMatrix, models: Sequence[str], cfg: DisagreementConfig) -> np.ndarray:
    """D over `models` per scenario of `pm` (NaN where too few of them have positions)."""
    return d_over(pm, models, cfg)["d"].fill_null(math.nan).to_numpy()


def committee_d(sweep: Sweep, committee: Sequence[str]) -> np.ndarray:
    """D over the committee per scenario (NaN where too few committee positions)."""
    return _d(sweep.pm, committee, sweep.config)


def cost_share(sweep: Sweep, committee: Sequence[str], share_sent: float) -> float:
    """(committee's cost on every scenario + the others' on the share sent on) / everyone's on every one."""
    total = sum(sweep.cost.values())
    own = sum(sweep.cost[m] for m in committee)
    return (own + (total - own) * share_sent) / total


def _curve_thresholds(d: np.ndarray, points: int) -> list[float]:
    """Distinct finite committee Ds, thinned evenly by rank to at most `points`, plus inf."""
    finite = np.unique(d[np.isfinite(d)])
    # One D reached through different positions can differ in the last bits: keep the least of
    # each such cluster, which sends all of it.
    finite = finite[np.concatenate([[True], np.diff(finite) > 1e-9])] if len(finite) else finite
    if len(finite) > points - 1:
        finite = finite[np.unique(np.linspace(0, len(finite) - 1, points - 1).round().astype(int))]
    return [*finite.tolist(), math.inf]


def plan_committee(
    sweep: Sweep, committee: Sequence[str], targets: Sequence[float] = TARGETS, points: int = CURVE_POINTS
) -> CommitteePlan:
    """The curve of `committee` on the sweep and the least-cost threshold for each target recall."""
    check_committee(sweep, committee)
    committee = tuple(committee)
    cd = committee_d(sweep, committee)
    high = sweep.config.high_threshold

    def point(t: Threshold, target: float | None = None) -> CurvePoint:
        return CurvePoint(t, cost_share(sweep, committee, t.share_sent), target)

    curve = tuple(
        point(threshold_at(cd, sweep.full_d, t, high))
        for t in _curve_thresholds(sending_d(cd)[~np.isnan(sweep.full_d)], points)
    )
    chosen = tuple(point(choose_threshold(cd, sweep.full_d, t, high), t) for t in targets)
    return CommitteePlan(committee, cost_share(sweep, committee, 0.0), curve, chosen)


def check_committee(sweep: Sweep, committee: Sequence[str]) -> None:
    """A committee must be two or more of the sweep's models, and not all of them."""
    unknown = sorted(set(committee) - set(sweep.models))
    if unknown:
        raise SpecstressError(f"models {unknown} are not among the run's scored models {list(sweep.models)}")
    if len(set(committee)) != len(committee):
        raise SpecstressError(f"committee {list(committee)} names a model twice")
    if len(committee) < 2:
        raise SpecstressError(f"a committee needs two or more models (one has no D), got {list(committee)}")
    if len(committee) >= len(sweep.models):
        raise SpecstressError(
            f"a committee of every model ({list(committee)}) leaves no one to send scenarios to"
        )


def rank(plan: CommitteePlan, target: float = GREEDY_TARGET) -> tuple[float, float]:
    """How committees compare: lower cost share at `target`, then higher recall there (smaller is better)."""
    p = plan.at(target)
    recall = p.threshold.recall
    return p.cost_share, -(recall if not math.isnan(recall) else 0.0)


def greedy_committees(
    sweep: Sweep, k: int, targets: Sequence[float] = TARGETS, target: float = GREEDY_TARGET
) -> list[CommitteePlan]:
    """The greedy path to a committee of `k`: from nobody, add at each step the model whose
    committee has the least cost share at `target` (ties: higher recall there, then the cheaper
    model, then the name). Returns the plan of each size 1..k.

    A committee of one has no D, so it sends every scenario on; the first step picks the cheapest
    model (its cost share is 1 like any other's), and the path shows what each later model buys.
    """
    if not 2 <= k < len(sweep.models):
        raise SpecstressError(
            f"k must be at least 2 and below the run's {len(sweep.models)} scored models, got {k}"
        )
    if target not in targets:
        targets = (*targets, target)
    path: list[CommitteePlan] = []
    chosen: tuple[str, ...] = ()
    for _size in range(1, k + 1):
        best: tuple[tuple[float, float, float, str], CommitteePlan] | None = None
        for m in sweep.models:
            if m in chosen:
                continue
            committee = (*chosen, m)
            p = (
                plan_committee(sweep, committee, targets)
                if len(committee) >= 2
                else _sole(sweep, committee, targets)
            )
            key = (*rank(p, target), sweep.cost[m], m)
            if best is None or key < best[0]:
                best = (key, p)
        assert best is not None
        chosen = best[1].committee
        path.append(best[1])
    return path


def _sole(sweep: Sweep, committee: tuple[str, ...], targets: Sequence[float]) -> CommitteePlan:
    """A one-model 'committee': no D, every scenario sent on, full recall at full cost."""
    cd = np.full(len(sweep.full_d), math.nan)
    t = threshold_at(cd, sweep.full_d, math.inf, sweep.config.high_threshold)
    share = cost_share(sweep, committee, t.share_sent)
    return CommitteePlan(
        committee,
        cost_share(sweep, committee, 0.0),
        (CurvePoint(t, share),),
        tuple(CurvePoint(t, share, target) for target in targets),
    )
