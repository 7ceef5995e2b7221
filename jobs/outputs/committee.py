"""`specstress committee`: plan a committee on a finished run's scores and response costs.

Reads `tables/scores.parquet` (valid positions of the analysed sample) and
`tables/responses.parquet` (cost_usd), and the run's `config.yaml` for the disagreement
settings (std kind, min_models, high threshold, the sample, the `all` subset when one is
configured) and the scoring mode. The computation is `jobs.analysis.committee_plan`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl
from omegaconf import OmegaConf

from actors.errors import SpecstressError
from actors.storage import Location
from jobs.analysis.committee_plan import (
    GREEDY_TARGET,
    TARGETS,
    CommitteePlan,
    CurvePoint,
    Sweep,
    build_sweep,
    greedy_committees,
    model_costs,
    plan_committee,
)
from jobs.analysis.disagreement import DisagreementConfig
from jobs.engine.rundir import MANIFEST, RunDir
from jobs.stages.committee_table import committee_scenarios
from jobs.stages.settings.disagreement import DisagreementConf
from jobs.stages.streaming import scan_table

APPROXIMATION = (
    "the committee's D here comes from positions scored with every model's responses in view; "
    "a committee run scores the committee's responses alone, so these figures approximate it"
)


@dataclass(frozen=True)
class CommitteeReport:
    """What `specstress committee` prints: the sweep's facts and the committees' plans."""

    run: str
    sweep: Sweep
    search: str
    """given (one committee from --models) or greedy (the path to a committee of k)."""
    plans: tuple[CommitteePlan, ...]
    """The given committee's plan, or the greedy path's, sizes 1..k."""
    scoring_mode: str | None
    notes: tuple[str, ...]

    @property
    def n(self) -> int:
        return int((~np.isnan(self.sweep.full_d)).sum())

    @property
    def n_high(self) -> int:
        return int(
            (self.sweep.full_d[~np.isnan(self.sweep.full_d)] >= self.sweep.config.high_threshold).sum()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "models": list(self.sweep.models),
            "scenarios": self.n,
            "high": self.n_high,
            "high_threshold": self.sweep.config.high_threshold,
            "cost_basis": self.sweep.basis,
            "cost_per_scenario": self.sweep.cost,
            "search": self.search,
            "scoring_mode": self.scoring_mode,
            "plans": [_plan_dict(p) for p in self.plans],
            "notes": list(self.notes),
        }


def _point_dict(p: CurvePoint) -> dict[str, Any]:
    t = p.threshold
    return {
        **({"target": p.target} if p.target is not None else {}),
        "threshold": None if math.isinf(t.threshold) else t.threshold,
        "recall": None if math.isnan(t.recall) else t.recall,
        "recall_low": t.recall_low,
        "recall_high": t.recall_high,
        "hits": t.hits,
        "n_high": t.n_high,
        "sent": t.sent,
        "n": t.n,
        "share_sent": t.share_sent,
        "cost_share": p.cost_share,
    }


def _plan_dict(p: CommitteePlan) -> dict[str, Any]:
    return {
        "committee": list(p.committee),
        "floor": p.floor,
        "curve": [_point_dict(c) for c in p.curve],
        "targets": [_point_dict(c) for c in p.targets],
    }


def _disagreement_config(conf: dict[str, Any]) -> tuple[DisagreementConfig, int, list[str] | None]:
    """The run's disagreement settings, its analysed sample and its `all` subset (None if unset)."""
    recorded = ((conf.get("stages") or {}).get("disagreement")) or {}
    # The stage's own record supplies what the run's config.yaml leaves out.
    dc = DisagreementConf(
        **{f.name: recorded[f.name] for f in fields(DisagreementConf) if f.name in recorded}
    )
    cfg = DisagreementConfig(
        std=dc.std, high_threshold=float(dc.high_threshold), min_models=int(dc.min_models)
    )  # type: ignore[arg-type]
    subsets = dc.subsets or {}
    return cfg, int(dc.sample), (list(subsets["all"]) if subsets.get("all") else None)


def committee_report(
    run_uri: str,
    models: Sequence[str] | None = None,
    k: int = 3,
    targets: Sequence[float] = TARGETS,
) -> CommitteeReport:
    """Plan the committee `models`, or search greedily for one of `k`, on the run at `run_uri`.

    Raises:
        SpecstressError: not a run directory, its scores or responses table missing, no valid
            score, a committee of unknown models, of fewer than two or of every model, a bad k.
    """
    root = Location(run_uri)
    if root.read_text(MANIFEST) is None:
        raise SpecstressError(f"no {MANIFEST} in {run_uri}: not a run directory, or the run never started")
    for t in targets:
        if not 0 < t <= 1:
            raise SpecstressError(f"--targets: each target recall must be in (0, 1], got {t}")
    run = RunDir(root)
    conf: dict[str, Any] = OmegaConf.to_container(OmegaConf.create(root.read_text("config.yaml") or "{}"))  # type: ignore[assignment]
    cfg, sample, all_subset = _disagreement_config(conf)
    scores = (
        scan_table(run, "scores")
        .filter((pl.col("status") == "ok") & pl.col("position").is_not_null() & (pl.col("sample") == sample))
        .select("scenario_id", "model", "value_slot", "position")
        .collect()
    )
    responses = scan_table(run, "responses").select("scenario_id", "model", "cost_usd").collect()
    notes: list[str] = []
    asked = committee_scenarios(run)
    if asked is not None:
        # Committee mode asked every model only the calibration sample and the scenarios its rule
        # picked; the calibration sample alone is an unbiased draw with every model's positions.
        calibration = asked.filter(pl.col("calibration")).select("scenario_id")
        scores = scores.join(calibration, on="scenario_id", how="semi")
        responses = responses.join(calibration, on="scenario_id", how="semi")
        notes.append(
            f"a committee run: the plan uses its {calibration.height} calibration scenarios, "
            "the only unbiased ones every model answered"
        )
    if not scores.height:
        raise SpecstressError(f"{run_uri}: the scores table has no valid position (sample {sample})")
    scored = sorted(scores["model"].unique().to_list())
    full_models = scored
    if all_subset is not None:
        missing = sorted(set(all_subset) - set(scored))
        if missing:
            notes.append(
                f"the config's `all` subset names models without scores {missing}: full D is over {scored}"
            )
        else:
            full_models = sorted(all_subset)
    sweep = build_sweep(scores, model_costs(responses), full_models, cfg)
    if models is not None:
        plans: tuple[CommitteePlan, ...] = (plan_committee(sweep, list(models), targets),)
        search = "given"
    else:
        plans = tuple(greedy_committees(sweep, k, targets))
        search = "greedy"
    mode = ((conf.get("stages") or {}).get("scores") or {}).get("mode")
    notes += [*sweep.notes, _scoring_note(mode), APPROXIMATION]
    return CommitteeReport(run_uri, sweep, search, plans, mode, tuple(notes))


def _scoring_note(mode: str | None) -> str:
    if mode == "per_response":
        return (
            "cost shares count responses only, not scoring calls; with per_response scoring, scoring "
            "calls follow the responses one for one"
        )
    return (
        "cost shares count responses only, not scoring calls; with joint scoring a committee run pays "
        "one committee-only scoring call per scenario plus a full one per scenario sent on"
    )


def _threshold(t: float) -> str:
    return "inf" if math.isinf(t) else f"{t:.3f}"


COLUMNS = f"{'threshold':>9} {'recall':>7} {'95% CI':>16} {'hits/high':>11} {'sent on':>8} {'scenarios':>15}"


def _columns(p: CurvePoint, threshold: str | None = None) -> str:
    """threshold, recall, its interval, hits of high, share sent and its count (COLUMNS)."""
    t = p.threshold
    recall = "n/a" if math.isnan(t.recall) else f"{t.recall:.1%}"
    ci = f"[{t.recall_low:.1%}, {t.recall_high:.1%}]"
    return (
        f"{threshold or _threshold(t.threshold):>9} {recall:>7} {ci:>16} {f'{t.hits}/{t.n_high}':>11} "
        f"{t.share_sent:>8.1%} {f'{t.sent}/{t.n}':>15}"
    )


def _row(p: CurvePoint, first: str) -> str:
    return f"  {first:<7} {_columns(p)} {p.cost_share:>10.1%}"


def _header(first: str) -> str:
    return f"  {first:<7} {COLUMNS} {'cost share':>10}"


def format_plan(plan: CommitteePlan, curve: bool = True) -> list[str]:
    """A committee's targets table and, with `curve`, its curve from the lowest threshold up."""
    lines = [
        f"committee {', '.join(plan.committee)} (answering every scenario alone: {plan.floor:.1%} of the cost)",
        _header("target"),
    ]
    lines += [_row(p, f"{p.target:.0%}") for p in plan.targets]
    if curve:
        lines += ["  curve (send a scenario on when the committee's D >= threshold):", _header("")]
        lines += [_row(p, "") for p in plan.curve]
    return lines


def format_committee(report: CommitteeReport) -> str:
    s = report.sweep
    unit = "$" if s.basis == "usd" else ""
    costs = ", ".join(
        f"{m} {unit}{c:.4f}" if s.basis == "usd" else m
        for m, c in sorted(s.cost.items(), key=lambda kv: kv[1])
    )
    lines = [
        f"run {report.run}: {report.n} scenarios with a D over all {len(s.models)} models, "
        f"{report.n_high} of them high (D >= {s.config.high_threshold:g}, {report.n_high / max(report.n, 1):.1%})",
        f"  response cost per scenario: {costs}" if s.basis == "usd" else f"  models: {costs}",
    ]
    if report.search == "greedy":
        lines.append(
            f"greedy search, each step adding the model with the least cost share at {GREEDY_TARGET:.0%} recall:"
        )
        lines.append(f"  {'size':>4}  {'added':<20} {COLUMNS} {'cost share':>10}")
        for size, p in enumerate(report.plans, 1):
            at = p.at(GREEDY_TARGET)
            threshold = "no D" if size == 1 else None
            lines.append(
                f"  {size:>4}  {p.committee[-1]:<20} {_columns(at, threshold)} {at.cost_share:>10.1%}"
            )
        lines.append("  (a committee of one has no D: it sends every scenario on)")
    lines += format_plan(report.plans[-1])
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
