"""Committee mode's statistics: the committee D that sends a scenario on, and the recall it buys.

A committee of a few models answers every scenario; the other models answer a scenario only
when the committee's disagreement (D over the committee) reaches a threshold. On a calibration
sample every model answered, so each calibration scenario has both the committee's D and the
full D. A scenario is *high* when its full D reaches `high_threshold` (1.5); the threshold sends
on a share of the high ones (the recall) and of all scenarios (what the rest costs).

Recall falls as the threshold rises and so does the share sent, so the least-cost threshold
for a target recall is the largest one that still reaches it: with the high scenarios'
committee Ds sorted from the top, the k-th of them for k = ceil(target x n_high). A scenario
whose committee has no D (too few committee scores) is always sent: nothing rules it out.

Recall is a share of the high calibration scenarios, so its interval is the exact binomial
(Clopper-Pearson) one. The threshold is chosen on the same sample it is measured on, which
biases the estimate up a little when the sample is small; the interval says how small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.proportion import proportion_confint

HIGH_D = 1.5
"""D over every model at or above which a scenario has high disagreement (METHOD.md §5)."""


@dataclass(frozen=True)
class Threshold:
    """The committee D at or above which a scenario goes to every model, and its recall on calibration."""

    threshold: float
    """Send a scenario on when the committee's D >= this (inf: only those without a committee D)."""
    recall: float
    """hits / n_high; NaN when the calibration sample has no high scenario."""
    recall_low: float
    recall_high: float
    """The recall's 95% Clopper-Pearson interval (0, 1 when n_high is 0)."""
    hits: int
    """High calibration scenarios the threshold sends on."""
    n_high: int
    """High calibration scenarios (full D >= high_threshold)."""
    sent: int
    """Calibration scenarios the threshold sends on, high or not."""
    n: int
    """Calibration scenarios with a full D."""

    @property
    def share_sent(self) -> float:
        """Share of the calibration scenarios the threshold sends on."""
        return self.sent / self.n if self.n else math.nan


def recall_interval(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial (Clopper-Pearson) interval of hits / n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    low, high = proportion_confint(hits, n, alpha=1 - level, method="beta")
    return float(low), float(high)


def sending_d(committee_d: np.ndarray) -> np.ndarray:
    """The committee D a threshold is compared with: NaN (no committee D) becomes inf, always sent."""
    d = np.asarray(committee_d, dtype=np.float64)
    return np.where(np.isnan(d), np.inf, d)


def threshold_at(
    committee_d: np.ndarray, full_d: np.ndarray, threshold: float, high_threshold: float = HIGH_D
) -> Threshold:
    """What `threshold` does on a calibration sample: its recall with interval, and what it sends.

    Scenarios without a full D (too few models scored) say nothing about recall and are left out.
    """
    full = np.asarray(full_d, dtype=np.float64)
    known = ~np.isnan(full)
    c = sending_d(committee_d)[known]
    high = full[known] >= high_threshold
    send = c >= threshold
    hits, n_high = int((send & high).sum()), int(high.sum())
    low, top = recall_interval(hits, n_high)
    recall = hits / n_high if n_high else math.nan
    return Threshold(threshold, recall, low, top, hits, n_high, int(send.sum()), int(known.sum()))


def choose_threshold(
    committee_d: np.ndarray, full_d: np.ndarray, target_recall: float, high_threshold: float = HIGH_D
) -> Threshold:
    """The largest threshold whose recall on the calibration sample reaches `target_recall`.

    With no high scenario in the sample there is nothing to aim at, and every scenario is sent
    (threshold 0): the run stays a full sweep rather than guessing.
    """
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    full = np.asarray(full_d, dtype=np.float64)
    known = ~np.isnan(full)
    high_d = np.sort(sending_d(committee_d)[known][full[known] >= high_threshold])[::-1]
    if not len(high_d):
        return threshold_at(committee_d, full_d, 0.0, high_threshold)
    # A float product like 0.9 * 10 can land a hair above the integer; round before the ceiling.
    k = max(1, math.ceil(round(target_recall * len(high_d), 9)))
    return threshold_at(committee_d, full_d, float(high_d[k - 1]), high_threshold)
