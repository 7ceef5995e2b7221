"""The offline committee planner: curves and the greedy search on hand-worked and random sweeps."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from actors.errors import SpecstressError
from jobs.analysis.committee import choose_threshold
from jobs.analysis.committee_plan import (
    Sweep,
    _curve_thresholds,
    build_sweep,
    check_committee,
    cost_share,
    greedy_committees,
    model_costs,
    plan_committee,
    rank,
)

# Four models; value 2 is 3 for everyone, so D is the population std of value 1's positions.
#        A  B  C  D   full D (mean 3 unless said)         {A,B}  {A,C}  {A,D}  (a pair's D: |a-b|/2)
# s1     0  0  6  6   sqrt((9+9+9+9)/4) = 3      high      0      3      3
# s2     0  6  0  6   3                          high      3      0      3
# s3     3  3  3  3   0                                    0      0      0
# s4     0  6  3  3   sqrt((9+9)/4) = 2.121      high      3      1.5    1.5
# s5     2  4  3  3   sqrt((1+1)/4) = 0.707                1      0.5    0.5
# s6     3  3  0  6   2.121                      high      0      1.5    1.5
# Mean response cost per scenario: A 1, B 2, C 3, D 4 (total 10).
VALUE1 = {
    "s1": (0, 0, 6, 6),
    "s2": (0, 6, 0, 6),
    "s3": (3, 3, 3, 3),
    "s4": (0, 6, 3, 3),
    "s5": (2, 4, 3, 3),
    "s6": (3, 3, 0, 6),
}
MODELS = ("A", "B", "C", "D")
COST = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}


def long_scores(value1: dict[str, tuple[int, ...]], models: tuple[str, ...] = MODELS) -> pl.DataFrame:
    rows = []
    for sid, positions in value1.items():
        for m, p in zip(models, positions, strict=True):
            rows.append((sid, m, 1, p))
            rows.append((sid, m, 2, 3))
    return pl.DataFrame(rows, schema=["scenario_id", "model", "value_slot", "position"], orient="row")


@pytest.fixture
def sweep() -> Sweep:
    return build_sweep(long_scores(VALUE1), COST)


def test_full_d_and_costs(sweep: Sweep) -> None:
    assert sweep.basis == "usd" and sweep.models == MODELS
    assert sweep.full_d == pytest.approx([3, 3, 0, 4.5**0.5, 0.5**0.5, 4.5**0.5])


def test_curve_of_a_pair_hand_worked(sweep: Sweep) -> None:
    plan = plan_committee(sweep, ["A", "B"], targets=[0.5, 0.9])
    # {A,B} pays 3 of 10 alone; the others' 7 scale with the share sent on.
    assert plan.floor == pytest.approx(0.3)
    rows = [(p.threshold.threshold, p.threshold.hits, p.threshold.sent, p.cost_share) for p in plan.curve]
    # Distinct committee Ds 0, 1, 3, then inf (nothing sent on).
    # 0 sends all 6 (4/4 high); 1 sends s2 s4 s5 (2 high), (3 + 7 x 3/6) / 10 = 0.65;
    # 3 sends s2 s4 (2 high), (3 + 7 x 2/6) / 10 = 0.5333; inf sends none: 0.3.
    assert rows == [
        (0.0, 4, 6, pytest.approx(1.0)),
        (1.0, 2, 3, pytest.approx(0.65)),
        (3.0, 2, 2, pytest.approx(16 / 30)),
        (math.inf, 0, 0, pytest.approx(0.3)),
    ]
    # Target 0.5: the 2nd largest high committee D, 3. Target 0.9: all four, down to 0.
    half, most = plan.at(0.5), plan.at(0.9)
    assert (half.threshold.threshold, half.threshold.recall, half.cost_share) == (
        3.0,
        0.5,
        pytest.approx(16 / 30),
    )
    assert (most.threshold.threshold, most.threshold.recall, most.cost_share) == (
        0.0,
        1.0,
        pytest.approx(1.0),
    )
    # The interval is Clopper-Pearson's for 2 of 4.
    assert half.threshold.recall_low == pytest.approx(0.0676, abs=1e-4)
    assert half.threshold.recall_high == pytest.approx(0.9324, abs=1e-4)


def test_a_target_uses_choose_threshold(sweep: Sweep) -> None:
    plan = plan_committee(sweep, ["A", "C"], targets=[0.75])
    cd = np.array([3, 0, 0, 1.5, 0.5, 1.5])
    assert plan.at(0.75).threshold == choose_threshold(cd, sweep.full_d, 0.75)
    # {A,C}: high committee Ds 3, 1.5, 1.5, 0; 3 of 4 needs 1.5, which sends s1 s4 s6:
    # (4 + 6 x 3/6) / 10 = 0.7.
    assert plan.at(0.75).cost_share == pytest.approx(0.7)


def test_greedy_path_hand_worked(sweep: Sweep) -> None:
    path = greedy_committees(sweep, 2, targets=[0.5, 0.75], target=0.75)
    # Size 1: no D, everything sent, cost share 1 for any model; the cheapest, A, goes first.
    assert path[0].committee == ("A",) and path[0].at(0.75).cost_share == 1.0
    # Size 2 at 0.75: {A,B} needs threshold 0 (1.0); {A,C} 1.5 (0.7);
    # {A,D}: high Ds 3, 3, 1.5, 1.5 -> 1.5 sends s1 s2 s4 s6: (5 + 5 x 4/6) / 10 = 0.8333.
    assert path[1].committee == ("A", "C")
    assert path[1].at(0.75).cost_share == pytest.approx(0.7)
    # At 0.5 the same step picks {A,B} (0.5333 against {A,C} 0.7 and {A,D} 0.6667).
    assert greedy_committees(sweep, 2, targets=[0.5], target=0.5)[1].committee == ("A", "B")


def test_a_tie_in_cost_share_goes_to_the_higher_recall() -> None:
    # Equal costs; target 0.5 of the two high scenarios s1 s2 needs one hit.
    #        A  B  C  D   full D                                         {A,B} {A,C} {A,D}
    # s1     0  2  6  6   mean 3.5: (12.25+2.25+6.25+6.25)/4 -> 2.598 high   1     3     3
    # s2     0  0  6  6   3 high                                           0     3     3
    # s3     2  4  2  3   mean 2.75: (.5625+1.5625+.5625+.0625)/4 -> .829   1     0     0.5
    # s4     3  3  3  3   0                                                0     0     0
    value1 = {"s1": (0, 2, 6, 6), "s2": (0, 0, 6, 6), "s3": (2, 4, 2, 3), "s4": (3, 3, 3, 3)}
    sw = build_sweep(long_scores(value1), dict.fromkeys(MODELS, 1.0))
    ab, ac = (plan_committee(sw, c, targets=[0.5]) for c in (["A", "B"], ["A", "C"]))
    # {A,B}: threshold 1 sends s1 s3, one hit; {A,C}: threshold 3 sends s1 s2, two hits.
    # Both send 2 of 4: (2 + 2 x 2/4) / 4 = 0.75.
    assert ab.at(0.5).cost_share == ac.at(0.5).cost_share == 0.75
    assert (ab.at(0.5).threshold.recall, ac.at(0.5).threshold.recall) == (0.5, 1.0)
    # The greedy step takes {A,C} over {A,B} (which the name alone would pick); {A,D} ties
    # {A,C} on cost and recall, and the name decides.
    assert greedy_committees(sw, 2, targets=[0.5], target=0.5)[1].committee == ("A", "C")


def test_model_costs_sum_samples_and_average_scenarios() -> None:
    responses = pl.DataFrame(
        {
            "scenario_id": ["s1", "s1", "s2", "s1", "s2", "s1"],
            "model": ["A", "A", "A", "B", "B", "C"],
            "cost_usd": [1.0, 2.0, 5.0, 0.5, None, None],
        }
    )
    # A: s1 3 (two samples), s2 5 -> 4. B: s1 0.5, s2 unknown -> 0.5. C: no cost at all.
    costs = model_costs(responses)
    assert costs["A"] == 4.0 and costs["B"] == 0.5 and math.isnan(costs["C"])


def test_without_costs_the_shares_are_of_responses() -> None:
    sw = build_sweep(long_scores(VALUE1), {"A": 1.0, "B": math.nan})
    assert sw.basis == "responses" and set(sw.cost.values()) == {1.0}
    assert "no response cost recorded for ['B', 'C', 'D']" in sw.notes[0]
    # {A,B} alone answers 2 of 4 responses per scenario.
    assert cost_share(sw, ["A", "B"], 0.0) == 0.5
    assert build_sweep(long_scores(VALUE1), {}).notes == (
        "the run records no response costs: shares are of responses, not dollars",
    )


def test_bad_committees_are_refused(sweep: Sweep) -> None:
    with pytest.raises(SpecstressError, match=r"models \['Z'\] are not among"):
        check_committee(sweep, ["A", "Z"])
    with pytest.raises(SpecstressError, match="two or more"):
        check_committee(sweep, ["A"])
    with pytest.raises(SpecstressError, match="every model"):
        check_committee(sweep, list(MODELS))
    with pytest.raises(SpecstressError, match="k must be"):
        greedy_committees(sweep, 4)


def _by_hand(
    positions: np.ndarray, cost: np.ndarray, committee: tuple[int, ...], target: float
) -> tuple[float, float]:
    """Cost share and recall of `committee` at `target`, from numpy alone (no D missing here)."""
    full = positions.std(axis=1).max(axis=1)
    cd = positions[:, list(committee), :].std(axis=1).max(axis=1)
    high = full >= 1.5
    k = math.ceil(round(target * high.sum(), 9))
    t = np.sort(cd[high])[::-1][k - 1]
    send = cd >= t
    own = cost[list(committee)].sum()
    share = (own + (cost.sum() - own) * send.mean()) / cost.sum()
    return share, (send & high).sum() / high.sum()


@pytest.mark.parametrize("seed", range(6))
def test_greedy_is_computed_right_and_never_beats_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_models, n = 6, 60
    # Positions: a scenario's common lean plus each model's own noise, so committees differ.
    lean = rng.integers(0, 7, size=(n, 1, 2))
    spread = rng.integers(0, 4, size=(n, 1, 1))
    positions = np.clip(lean + rng.integers(-3, 4, size=(n, n_models, 2)) * spread // 2, 0, 6).astype(float)
    cost = rng.uniform(0.1, 2.0, size=n_models)
    models = tuple(f"m{i}" for i in range(n_models))
    rows = [
        (f"s{s}", models[m], v + 1, int(positions[s, m, v]))
        for s in range(n)
        for m in range(n_models)
        for v in range(2)
    ]
    scores = pl.DataFrame(rows, schema=["scenario_id", "model", "value_slot", "position"], orient="row")
    # position_matrix orders scenarios by id; follow it for the hand computation.
    order = np.argsort([f"s{s}" for s in range(n)])
    positions = positions[order]
    sw = build_sweep(scores, dict(zip(models, cost.tolist(), strict=True)))
    if not (sw.full_d >= 1.5).any():
        pytest.skip("no high scenario drawn")
    for k in (2, 3):
        greedy = greedy_committees(sw, k)[-1]
        at = greedy.at(0.9)
        share, recall = _by_hand(positions, cost, tuple(models.index(m) for m in greedy.committee), 0.9)
        assert at.cost_share == pytest.approx(share) and at.threshold.recall == pytest.approx(recall)
        brute = min(
            rank(plan_committee(sw, c, targets=[0.9]), 0.9) for c in itertools.combinations(models, k)
        )
        assert brute <= rank(greedy, 0.9)


def test_curve_thresholds_merge_float_twins_and_thin_by_rank() -> None:
    # 2.357... reached through different positions can differ in the last bits: one row, the least.
    d = np.array([1.0, 2.0 + 1e-12, 2.0, np.inf])
    assert _curve_thresholds(d, 20) == [1.0, 2.0, math.inf]
    # 100 distinct Ds thinned to 5 rows: 4 evenly by rank (0, 33, 66, 99) and inf.
    assert _curve_thresholds(np.arange(100.0), 5) == [0.0, 33.0, 66.0, 99.0, math.inf]
