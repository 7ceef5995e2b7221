"""Committee mode in the estimate: what the other models answer, what scoring costs, and the budget's two plans.

Before the committee has been scored, the other models' share of the scenarios is a planning guess:
the calibration sample plus `expected_share` of the rest (lines marked ~). Once
`tables/committee.parquet` exists the responses stage's plan holds exactly the scenarios the rule
sent on, and the share is the run's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from jobs.conf.loader import endpoint
from jobs.conf.schema import RunConf
from jobs.engine.rundir import RunDir
from jobs.estimate.lines import TYPICAL, Line, typical
from jobs.stages.committee_table import committee_scenarios

SCORING_STAGES = ("responses", "scores")
"""The stages whose calls committee mode changes: the budget's plans compare these."""


@dataclass(frozen=True)
class SentShare:
    """The share of the scope's scenarios every model answers in committee mode."""

    share: float
    measured: bool
    """Read from the run's committee table; else calibration_share + (1 - it) x expected_share."""

    def note(self) -> str:
        if self.measured:
            return f"{self.share:.0%} of the scenarios went to every model (tables/committee.parquet)"
        return f"~{self.share:.0%} of the scenarios expected to go to every model (calibration and expected_share)"


def sent_share(conf: RunConf, run: RunDir) -> SentShare:
    """What committee mode sends to every model: the run's own share once its rule has run."""
    table = committee_scenarios(run)
    if table is not None and table.height:
        return SentShare(table.select(pl.col("sent").mean()).item(), measured=True)
    cc = conf.stages.responses.committee
    return SentShare(cc.calibration_share + (1 - cc.calibration_share) * cc.expected_share, measured=False)


def _scaled(line: Line, calls: int) -> Line:
    """`line` grown to `calls`, its tokens in proportion; counted, so no longer exact."""
    factor = calls / line.calls if line.calls else 0.0
    line.input_tokens *= factor
    line.output_tokens *= factor
    line.cached_input_tokens *= factor
    line.calls = calls
    line.exact = False
    return line


def responses_lines(conf: RunConf, run: RunDir, planned: list[Line] | None, kept: int) -> list[Line]:
    """The responses in committee mode: the committee on every scenario, the others on the sent share.

    With a plan (the scenarios exist) the committee's lines are exact; the others' are exact once
    the rule has run, and before that their calibration calls plus the expected rest.
    """
    rc = conf.stages.responses
    share = sent_share(conf, run)
    if planned is None:
        return [
            typical(
                "responses",
                m,
                kept if m in rc.committee.models else round(kept * share.share),
                "responses",
                None,
            )
            for m in rc.models
        ]
    if share.measured:
        return planned
    cal = rc.committee.calibration_share
    rest = round(kept * (1 - cal) * rc.committee.expected_share)
    return [ln if ln.model in rc.committee.models else _scaled(ln, ln.calls + rest) for ln in planned]


def score_line(conf: RunConf, scenarios: int, share: float) -> Line:
    """Scoring in committee mode, counted: joint scores every scenario on the committee's responses
    and once more on every model's where it went on; per response scores each response once."""
    sc, rc = conf.stages.scores, conf.stages.responses
    n_models, n_committee = len(sc.models or rc.models), len(rc.committee.models)
    sent = round(scenarios * share)
    if sc.mode == "joint":
        line = typical("scores", sc.model, scenarios + sent, "scores_per_model", None)
        units = scenarios * n_committee + sent * n_models
        tin, tout = TYPICAL["scores_per_model"]
        line.input_tokens, line.output_tokens = units * tin, units * tout
        return line
    responses = scenarios * n_committee + sent * (n_models - n_committee)
    return typical("scores", sc.model, responses, "scores_per_model", None)


@dataclass(frozen=True)
class BudgetPlans:
    """What `budget_usd` buys in responses and scores, as a full sweep and in committee mode."""

    budget_usd: float
    other_usd: float
    """The estimate's other stages (to make and stored), paid from the budget first."""
    full_per_scenario: float
    committee_per_scenario: float
    share: SentShare

    @property
    def left(self) -> float:
        return max(self.budget_usd - self.other_usd, 0.0)

    @property
    def full_scenarios(self) -> int:
        return math.floor(self.left / self.full_per_scenario) if self.full_per_scenario else 0

    @property
    def committee_scenarios(self) -> int:
        return math.floor(self.left / self.committee_per_scenario) if self.committee_per_scenario else 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "budget_usd": self.budget_usd,
            "other_stages_usd": round(self.other_usd, 4),
            "full_sweep_usd_per_scenario": round(self.full_per_scenario, 6),
            "committee_usd_per_scenario": round(self.committee_per_scenario, 6),
            "sent_share": round(self.share.share, 4),
            "sent_share_measured": self.share.measured,
            "full_sweep_scenarios": self.full_scenarios,
            "committee_scenarios": self.committee_scenarios,
        }

    def lines(self) -> list[str]:
        mark = "" if self.share.measured else "~"
        return [
            f"  budget ${self.budget_usd:,.2f}: after the other stages (${self.other_usd:,.2f}), "
            f"${self.left:,.2f} buys responses and scores for {self.full_scenarios:,} scenarios as a full sweep "
            f"(${self.full_per_scenario:.4f} each) or {mark}{self.committee_scenarios:,} in committee mode "
            f"({mark}${self.committee_per_scenario:.4f} each; {self.share.note()})"
        ]


def budget_plans(
    conf: RunConf,
    run: RunDir,
    lines: list[Line],
    cost: dict[tuple[str, str], float],
    stored: dict[tuple[str, str], float],
) -> BudgetPlans | None:
    """Both plans, for a committee-mode run with a budget; None otherwise.

    A response costs what its line's calls cost on average (to make, or stored); a scoring call what
    `TYPICAL` sizes cost at the scorer's prices, per response it covers.
    """
    rc, sc = conf.stages.responses, conf.stages.scores
    if not rc.committee.models or conf.budget_usd is None:
        return None
    share = sent_share(conf, run)
    per_call: dict[str, float] = {}
    for ln in lines:
        if ln.stage == "responses" and ln.calls:
            key = (ln.stage, ln.model)
            per_call[ln.model] = (cost[key] + stored[key]) / ln.calls
    tin, tout = TYPICAL["scores_per_model"]
    unit = endpoint(conf, sc.model).prices.cost_usd(tin, tout)
    committee = [m for m in rc.models if m in rc.committee.models]
    others = [m for m in rc.models if m not in rc.committee.models]
    n_models = len(sc.models or rc.models)
    full = sum(per_call.get(m, 0.0) for m in rc.models) + n_models * unit
    asked = sum(per_call.get(m, 0.0) for m in committee) + share.share * sum(
        per_call.get(m, 0.0) for m in others
    )
    if sc.mode == "joint":
        scoring = (len(committee) + share.share * n_models) * unit
    else:
        scoring = (len(committee) + share.share * len(others)) * unit
    other = sum(c + stored[key] for key, c in cost.items() if key[0] not in SCORING_STAGES)
    return BudgetPlans(conf.budget_usd, other, full, asked + scoring, share)
