"""Disagreement-weighted k-center: Wang & Cheng's greedy for vertex-weighted k-center (METHOD.md §5).

The greedy starts at the heaviest point, then repeatedly picks the point that maximises
weight x distance to its nearest chosen centre, and stops when that maximum falls below
a threshold (default 0.8) or at k centres. Unlike k-means it keeps outliers: a heavy,
isolated scenario is picked early.

A plain loop updates all n distances after every pick (O(n·d) per centre, BLAS-2,
memory bound). We run the same greedy in rounds instead, and it picks the same points:

- Take the B points with the largest current weighted distance (`argpartition`). Every
  other point's value is at most the (B+1)-th value, and values only fall.
- Replay the greedy inside those B points with their exact pairwise distances: the
  next pick is the argmax there as long as it still exceeds that outside bound, so it
  is the argmax over all points. Each round yields many picks for one B x B block.
- Then update every still-open point against the round's picks in one GEMM (BLAS-3).

A point whose weighted distance is already below the threshold can never be picked
again and cannot break the stopping rule, so it is frozen: its recorded centre is a
chosen centre within threshold/weight, the nearest at the time it froze. This shrinks
each round's GEMM to the open points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from actors.errors import ConfigError

StopReason = Literal["threshold", "k", "exhausted"]


@dataclass(frozen=True)
class KCenterResult:
    """The result of `weighted_kcenter`.

    Attributes:
        indices: int64, the chosen points in rank order (rank 0 first).
        weighted_distance: float64, each pick's weight x distance to the earlier picks at
            the moment it was chosen (inf for the first, which has no earlier pick);
            non-increasing along the ranks.
        center: int64 (n,), for each point a chosen centre it is assigned to (see module doc).
        point_weighted_distance: float64 (n,), weight x distance to `center`.
        stop: why the greedy stopped: "threshold" (every point's value is < threshold),
            "k" (k picks made) or "exhausted" (every point is a centre).
    """

    indices: np.ndarray
    weighted_distance: np.ndarray
    center: np.ndarray
    point_weighted_distance: np.ndarray
    stop: StopReason


def _validate(
    x: np.ndarray, weights: np.ndarray, threshold: float, k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"x: expected a 2-D array (n, d), got shape {x.shape}")
    if w.shape != (len(x),):
        raise ConfigError(f"weights: expected shape ({len(x)},), got {w.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ConfigError("weights: must be finite and >= 0")
    if not threshold >= 0:
        raise ConfigError(f"threshold: must be >= 0, got {threshold}")
    if k is not None and k < 1:
        raise ConfigError(f"k: must be >= 1, got {k}")
    return x, w


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances a x b in float64 from one float32 GEMM."""
    sq = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0, dtype=np.float64))


def weighted_kcenter(
    x: np.ndarray,
    weights: np.ndarray,
    *,
    threshold: float = 0.8,
    k: int | None = None,
    seed: int = 0,
    round_size: int = 1024,
    chunk_rows: int = 8192,
) -> KCenterResult:
    """Run the Wang & Cheng greedy over `x` (n x d) with vertex weights (e.g. disagreement D).

    Args:
        x: the embeddings.
        weights: one weight >= 0 per point.
        threshold: stop once the largest weight x distance to the nearest centre is below it.
        k: stop after this many centres (None: only the threshold stops it).
        seed: breaks ties: points are ranked by a seeded permutation before any argmax.
        round_size: B, the candidates replayed per round.
        chunk_rows: rows per GEMM block in the update (bounds memory).

    Returns:
        The picks in rank order, with the assignment of every point.
    """
    x, w = _validate(x, weights, threshold, k)
    n = len(x)
    if n == 0:
        e = np.empty(0, np.int64)
        return KCenterResult(e, np.empty(0), e, np.empty(0), "exhausted")
    perm = np.random.default_rng(seed).permutation(n)  # ties resolve to the lowest permuted index
    xp, wp = x[perm], w[perm]
    limit = n if k is None else min(k, n)

    first = int(np.argmax(wp))
    picks: list[int] = [first]
    values: list[float] = [math.inf]
    dist = _dist(xp, xp[first : first + 1])[:, 0]
    center = np.full(n, first, dtype=np.int64)
    wd = wp * dist
    wd[first] = 0.0
    stop: StopReason = "exhausted"
    open_ = np.flatnonzero((wd >= threshold) & (wd > 0))

    while True:
        if len(picks) >= limit:
            stop = "k" if len(picks) < n else "exhausted"
            break
        if not open_.size or wd[open_].max() < threshold:
            stop = "threshold"
            break
        b = min(round_size, len(open_))
        if b < len(open_):
            part = np.argpartition(-wd[open_], b)
            top = np.sort(open_[part[:b]])
            outside = float(wd[open_[part[b:]]].max())
        else:
            top = open_
            outside = -math.inf
        cur = wd[top].copy()
        pair = _dist(xp[top], xp[top])
        new: list[int] = []
        while len(picks) < limit:
            j = int(np.argmax(cur))
            v = float(cur[j])
            if new and v <= outside:
                break
            if v < threshold or v <= 0.0:
                break
            picks.append(int(top[j]))
            values.append(v)
            new.append(j)
            np.minimum(cur, wp[top] * pair[j], out=cur)
            cur[j] = -math.inf
        if not new:
            stop = "threshold"
            break
        new_idx = top[new]
        cx = xp[new_idx]
        for s in range(0, len(open_), chunk_rows):
            rows = open_[s : s + chunk_rows]
            dd = _dist(xp[rows], cx)
            a = dd.argmin(axis=1)
            dmin = dd[np.arange(len(rows)), a]
            better = dmin < dist[rows]
            r = rows[better]
            dist[r] = dmin[better]
            center[r] = new_idx[a[better]]
        dist[new_idx] = 0.0
        center[new_idx] = new_idx
        wd[open_] = wp[open_] * dist[open_]
        open_ = open_[(wd[open_] >= threshold) & (wd[open_] > 0)]

    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    out_center = np.empty(n, dtype=np.int64)
    out_center[perm] = perm[center]
    out_wd = np.empty(n)
    out_wd[perm] = wd
    return KCenterResult(
        indices=perm[np.asarray(picks, dtype=np.int64)],
        weighted_distance=np.asarray(values),
        center=out_center,
        point_weighted_distance=out_wd,
        stop=stop,
    )


def weighted_kcenter_reference(
    x: np.ndarray, weights: np.ndarray, *, threshold: float = 0.8, k: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The greedy as a plain loop (O(n·d) per pick), with the same seeded tie-breaking.

    Returns:
        (picks in rank order, weighted distance at each pick; inf first).
    """
    x, w = _validate(x, weights, threshold, k)
    n = len(x)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0)
    perm = np.random.default_rng(seed).permutation(n)
    xp, wp = x[perm], w[perm]
    limit = n if k is None else min(k, n)
    first = int(np.argmax(wp))
    picks, values = [first], [math.inf]
    wd = wp * _dist(xp, xp[first : first + 1])[:, 0]
    wd[first] = 0.0
    while len(picks) < limit:
        j = int(np.argmax(wd))
        if wd[j] < threshold or wd[j] == 0.0:
            break
        picks.append(j)
        values.append(float(wd[j]))
        np.minimum(wd, wp * _dist(xp, xp[j : j + 1])[:, 0], out=wd)
        wd[j] = 0.0
    return perm[np.asarray(picks, dtype=np.int64)], np.asarray(values)
