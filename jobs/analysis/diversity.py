"""δ-diverse selection: an exact, seeded greedy δ-net over unit vectors (METHOD.md §2).

The paper runs greedy farthest-first with threshold δ and stops once the next pick lies
within δ of a chosen point. What a user needs from that set are two guarantees:

- coverage: every point lies within δ (L2) of a selected point;
- separation: selected points are pairwise more than δ apart.

Both hold for *any* maximal δ-separated set (a δ-net), whatever order built it: scan
the points in some order and accept a point iff no accepted point lies within δ. An
accepted point is more than δ from every earlier acceptance (separation); a rejected
point had an accepted point within δ (coverage). Farthest-first is one such order (fed
its own pick order, the scan returns exactly its set; the tests check this), but it
needs the global maximum of n distances after every pick, about 30 ms per centre at
n = 410k and hours overall. We therefore pick the order for speed instead:

1. Partition the points into k-means cells (FAISS) and record, for each pair of cells
   (i, j), the least distance from a point of cell i to centroid j.
2. Visit cells in seeded order and points inside a cell in seeded order. A point is
   checked against the centres already accepted in its own cell and in those earlier
   cells that the triangle inequality cannot rule out: cell j is skipped for cell i
   only when min_{x in i} |x - mu_j| - max_{c centre in j} |c - mu_j| > δ, which proves
   no centre of j lies within δ of any point of i.
3. The checks are exact distances in blocks (BLAS), with pairs near the threshold
   recomputed in float64, so pruning never changes the answer; it only skips work.

On clustered data (real query embeddings are) cells prune well and the cost is close
to n times the centres near each point. On unstructured data the pruning fails
gracefully towards exact blocked brute force.

Convention: a point is covered when its distance to a centre is <= δ, and centres are
> δ apart, matching "stop once the next pick lies within δ".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from actors.errors import ConfigError

_F32 = np.float32
_BORDER_TOL = 1e-5
"""Squared distances within this of δ² are recomputed in float64 (float32 GEMM error is ~1e-6)."""
_PRUNE_MARGIN = 1e-4
"""Slack added to the triangle-inequality bound so float32 rounding never prunes a true neighbour."""
_COL_CHUNK = 16_384
"""Centres per distance block: bounds a block at batch x 16k floats (128 MB at 2,048 rows)."""


@dataclass(frozen=True)
class DiverseSelection:
    """The result of `delta_select`.

    Attributes:
        diverse: bool (n,), True for the selected (kept) points.
        center: int64 (n,), the nearest selected point to each point (itself when selected);
            always within δ, so it names what each kept point stands for.
        center_distance: float32 (n,), the L2 distance to `center`.
        order: int64 (n,), the order the greedy scan visited the points; rerunning
            `delta_select(x, order=order)` reproduces the selection.
        n_cells: the number of k-means cells used for pruning (1 for an explicit order).
    """

    diverse: np.ndarray
    center: np.ndarray
    center_distance: np.ndarray
    order: np.ndarray
    n_cells: int

    @property
    def selected(self) -> np.ndarray:
        """Indices of the selected points, in the order they were accepted."""
        return self.order[self.diverse[self.order]]


def as_matrix_f32(x: np.ndarray, name: str = "x") -> np.ndarray:
    """`x` as a C-contiguous float32 (n, d) matrix of finite values, or a ConfigError naming it."""
    x = np.ascontiguousarray(x, dtype=_F32)
    if x.ndim != 2:
        raise ConfigError(f"{name}: expected a 2-D array (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ConfigError(f"{name}: contains NaN or infinite values")
    return x


def _sqdist(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared L2 distances a x b by one GEMM (float32, clipped at 0)."""
    out = a @ b.T
    out *= -2.0
    out += a_sq[:, None]
    out += b_sq[None, :]
    np.maximum(out, 0.0, out=out)
    return out


def _within(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray, d2: float) -> np.ndarray:
    """Bool matrix |a_i - b_j|^2 <= d2, exact: near-threshold pairs are redone in float64."""
    sq = _sqdist(a, b, a_sq, b_sq)
    inside = sq <= d2
    ii, jj = np.nonzero(np.abs(sq - d2) <= _BORDER_TOL)
    if ii.size:
        exact = np.square(a[ii].astype(np.float64) - b[jj].astype(np.float64)).sum(axis=1)
        inside[ii, jj] = exact <= d2
    return inside


def _any_within(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray, d2: float) -> np.ndarray:
    """Bool (len(a),): does any row of b lie within sqrt(d2) of a_i. Chunks b to bound memory."""
    hit = np.zeros(len(a), dtype=bool)
    for s in range(0, len(b), _COL_CHUNK):
        missing = np.flatnonzero(~hit)
        if not missing.size:
            break
        hit[missing] = _within(
            a[missing], b[s : s + _COL_CHUNK], a_sq[missing], b_sq[s : s + _COL_CHUNK], d2
        ).any(1)
    return hit


def sequential_mis(adj: np.ndarray) -> np.ndarray:
    """Greedy independent set of a symmetric adjacency in row order (row i before row i+1).

    Rows without edges are kept outright, so the Python loop runs only over rows that
    have a neighbour in the batch.
    """
    keep = np.ones(len(adj), dtype=bool)
    blocked = np.zeros(len(adj), dtype=bool)
    for i in np.flatnonzero(adj.any(axis=1)):
        if blocked[i]:
            keep[i] = False
        else:
            blocked |= adj[i]
    return keep


def _greedy_scan(
    x: np.ndarray,
    x_sq: np.ndarray,
    idx: np.ndarray,
    prior: np.ndarray,
    prior_sq: np.ndarray,
    d2: float,
    batch_size: int,
) -> np.ndarray:
    """Accept points of `idx` in order unless a prior or earlier-accepted centre is within δ.

    Returns the accepted global indices, in acceptance order.
    """
    d = x.shape[1]
    acc = np.empty((len(idx), d), dtype=_F32)
    acc_sq = np.empty(len(idx), dtype=_F32)
    accepted: list[np.ndarray] = []
    n_acc = 0
    for s in range(0, len(idx), batch_size):
        bi = idx[s : s + batch_size]
        xb, xb_sq = x[bi], x_sq[bi]
        blocked = np.zeros(len(bi), dtype=bool)
        if len(prior):
            blocked |= _any_within(xb, prior, xb_sq, prior_sq, d2)
        if n_acc:
            free = np.flatnonzero(~blocked)
            blocked[free] = _any_within(xb[free], acc[:n_acc], xb_sq[free], acc_sq[:n_acc], d2)
        free = np.flatnonzero(~blocked)
        if not free.size:
            continue
        adj = _within(xb[free], xb[free], xb_sq[free], xb_sq[free], d2)
        np.fill_diagonal(adj, False)
        keep = free[sequential_mis(adj)]
        acc[n_acc : n_acc + len(keep)] = xb[keep]
        acc_sq[n_acc : n_acc + len(keep)] = xb_sq[keep]
        n_acc += len(keep)
        accepted.append(bi[keep])
    return np.concatenate(accepted) if accepted else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class _Partition:
    """k-means cells with the bounds the pruning needs."""

    assign: np.ndarray  # int64 (n,) cell of each point
    centroids: np.ndarray  # float32 (C, d)
    min_to_centroid: np.ndarray  # float32 (C, C): [i, j] = min over x in cell i of |x - mu_j|
    members: list[np.ndarray]  # per cell, point indices (ascending)

    @property
    def n_cells(self) -> int:
        return len(self.centroids)


def _partition(x: np.ndarray, x_sq: np.ndarray, n_cells: int, seed: int, batch_size: int) -> _Partition:
    n, d = x.shape
    if n_cells <= 1:
        centroids = x.mean(axis=0, keepdims=True).astype(_F32)
    else:
        import faiss  # here, so the GPU scan (which shares this module) runs where faiss is absent

        km = faiss.Kmeans(
            d,
            n_cells,
            niter=8,
            seed=seed,
            max_points_per_centroid=32,
            min_points_per_centroid=1,
            verbose=False,
        )
        km.train(x)
        centroids = np.ascontiguousarray(km.centroids, dtype=_F32)
    c = len(centroids)
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    assign = np.empty(n, dtype=np.int64)
    mins = np.full((c, c), np.inf, dtype=_F32)
    for s in range(0, n, batch_size * 4):
        dist = np.sqrt(_sqdist(x[s : s + batch_size * 4], centroids, x_sq[s : s + batch_size * 4], c_sq))
        a = dist.argmin(axis=1)
        assign[s : s + len(a)] = a
        order = np.argsort(a, kind="stable")
        a_sorted = a[order]
        starts = np.flatnonzero(np.r_[True, a_sorted[1:] != a_sorted[:-1]])
        block_min = np.minimum.reduceat(dist[order], starts, axis=0)
        cells = a_sorted[starts]
        mins[cells] = np.minimum(mins[cells], block_min)
    by_cell = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[by_cell], np.arange(c + 1))
    members = [by_cell[bounds[i] : bounds[i + 1]] for i in range(c)]
    return _Partition(assign=assign, centroids=centroids, min_to_centroid=mins, members=members)


def default_n_cells(n: int) -> int:
    """Cells for the pruning partition: about 4·sqrt(n), at most 4,096 (2,561 at n = 410k).

    More cells give tighter radii and better pruning, at the price of k-means and the
    n x cells assignment; 4·sqrt(n) keeps both to a few seconds at 410k.
    """
    return int(min(4096, max(1, round(4 * math.sqrt(n)))))


def _nearest_centers(
    x: np.ndarray,
    x_sq: np.ndarray,
    part: _Partition,
    is_center: np.ndarray,
    delta: float,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest selected point (exact), searching only cells the bound allows."""
    n = len(x)
    c = part.n_cells
    center = np.full(n, -1, dtype=np.int64)
    best = np.full(n, np.inf, dtype=_F32)
    cells_c = [m[is_center[m]] for m in part.members]
    radius = np.full(c, -np.inf, dtype=_F32)
    for j, cj in enumerate(cells_c):
        if cj.size:
            radius[j] = np.sqrt(np.square(x[cj] - part.centroids[j]).sum(axis=1)).max()
    for i in range(c):
        pts = part.members[i]
        if not pts.size:
            continue
        cand = np.flatnonzero(part.min_to_centroid[i] <= radius + delta + _PRUNE_MARGIN)
        cidx = np.concatenate([cells_c[j] for j in cand]) if cand.size else np.empty(0, np.int64)
        if not cidx.size:
            continue
        cx, cx_sq = x[cidx], x_sq[cidx]
        for s in range(0, len(pts), batch_size):
            p = pts[s : s + batch_size]
            for t in range(0, len(cidx), _COL_CHUNK):
                sq = _sqdist(x[p], cx[t : t + _COL_CHUNK], x_sq[p], cx_sq[t : t + _COL_CHUNK])
                j = sq.argmin(axis=1)
                v = sq[np.arange(len(p)), j]
                better = v < best[p]
                best[p[better]] = v[better]
                center[p[better]] = cidx[t + j[better]]
    center[is_center] = np.flatnonzero(is_center)
    # GEMM distances lose precision near 0; report each point's distance from the difference.
    dist = np.empty(n, dtype=_F32)
    for s in range(0, n, batch_size * 4):
        diff = x[s : s + batch_size * 4] - x[center[s : s + batch_size * 4]]
        dist[s : s + len(diff)] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return center, dist


def check_scan(n: int, delta: float, batch_size: int, order: np.ndarray | None) -> np.ndarray | None:
    """Check a δ-scan's arguments, naming the bad one; returns `order` as int64 (or None)."""
    if not delta > 0:
        raise ConfigError(f"delta: must be > 0, got {delta}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
    if order is None:
        return None
    order = np.asarray(order, dtype=np.int64)
    if order.shape != (n,) or not np.array_equal(np.sort(order), np.arange(n)):
        raise ConfigError("order: must be a permutation of range(n)")
    return order


def delta_select(
    x: np.ndarray,
    *,
    delta: float = 0.4,
    seed: int = 0,
    order: np.ndarray | None = None,
    n_cells: int | None = None,
    batch_size: int = 2048,
) -> DiverseSelection:
    """Select a δ-diverse subset of `x` (n x d, unit vectors): a seeded greedy δ-net.

    Args:
        x: the embeddings, one row per point; float32 is used internally.
        delta: the L2 threshold (the paper's 0.4).
        seed: seeds the k-means partition, the cell order and the order inside cells.
        order: an explicit scan order (a permutation of range(n)), e.g. a farthest-first
            order or a priority; the scan then runs in exactly that order against all
            accepted centres (exact, O(n·k·d), no cell pruning).
        n_cells: cells for the pruning partition; default `default_n_cells(n)`.
        batch_size: rows per distance block.

    Returns:
        The selection with each point's covering (nearest selected) centre.
    """
    x = as_matrix_f32(x)
    n = len(x)
    order = check_scan(n, delta, batch_size, order)
    d2 = float(delta) ** 2
    x_sq = np.einsum("ij,ij->i", x, x)
    rng = np.random.default_rng(seed)
    empty = np.empty((0, x.shape[1]), dtype=_F32)
    if n == 0:
        z = np.empty(0, dtype=np.int64)
        return DiverseSelection(np.zeros(0, bool), z, np.empty(0, _F32), z, 0)

    if order is not None:
        accepted = _greedy_scan(x, x_sq, order, empty, empty[:, 0], d2, batch_size)
        part = _partition(x, x_sq, 1, seed, batch_size)
        used_order = order
    else:
        c = max(1, min(default_n_cells(n) if n_cells is None else int(n_cells), n))
        part = _partition(x, x_sq, c, seed, batch_size)
        c = part.n_cells
        radius = np.full(c, -np.inf, dtype=_F32)  # max |centre - mu_j| over a done cell's centres
        done_centers: list[np.ndarray] = [np.empty(0, np.int64)] * c
        parts_acc: list[np.ndarray] = []
        parts_order: list[np.ndarray] = []
        for i in rng.permutation(c):
            pts = part.members[i]
            if not pts.size:
                continue
            pts = pts[rng.permutation(len(pts))]
            parts_order.append(pts)
            cand = np.flatnonzero(part.min_to_centroid[i] <= radius + delta + _PRUNE_MARGIN)
            prior_idx = (
                np.concatenate([done_centers[j] for j in cand]) if cand.size else np.empty(0, np.int64)
            )
            acc = _greedy_scan(x, x_sq, pts, x[prior_idx], x_sq[prior_idx], d2, batch_size)
            done_centers[i] = acc
            if acc.size:
                radius[i] = np.sqrt(np.square(x[acc] - part.centroids[i]).sum(axis=1)).max()
            parts_acc.append(acc)
        accepted = np.concatenate(parts_acc) if parts_acc else np.empty(0, np.int64)
        used_order = np.concatenate(parts_order)

    is_center = np.zeros(n, dtype=bool)
    is_center[accepted] = True
    center, dist = _nearest_centers(x, x_sq, part, is_center, delta, batch_size)
    return DiverseSelection(
        diverse=is_center, center=center, center_distance=dist, order=used_order, n_cells=part.n_cells
    )


def farthest_first(
    x: np.ndarray, *, delta: float = 0.4, seed: int = 0, max_centers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's rule as a plain numpy loop: the reference for tests and the bench baseline.

    Starts at a seeded random point, then repeatedly picks the point farthest from the
    chosen set (first index on ties) while that distance is > δ. Each pick costs O(n·d).

    Returns:
        (picked indices in pick order, each pick's distance to the set at pick time; inf first).
    """
    x = as_matrix_f32(x)
    n = len(x)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    x_sq = np.einsum("ij,ij->i", x, x)
    first = int(np.random.default_rng(seed).integers(n))
    picks, gaps = [first], [math.inf]
    mind = np.maximum(x_sq + x_sq[first] - 2.0 * (x @ x[first]), 0.0)
    limit = n if max_centers is None else max_centers
    d2 = float(delta) ** 2
    while len(picks) < limit:
        j = int(mind.argmax())
        if mind[j] <= d2:
            break
        picks.append(j)
        gaps.append(math.sqrt(float(mind[j])))
        np.minimum(mind, np.maximum(x_sq + x_sq[j] - 2.0 * (x @ x[j]), 0.0), out=mind)
    return np.asarray(picks, dtype=np.int64), np.asarray(gaps)


def check_selection(
    x: np.ndarray,
    sel: DiverseSelection,
    *,
    delta: float,
    sample: int | None = None,
    seed: int = 0,
) -> tuple[bool, bool]:
    """Exact float64 checks of coverage and separation, on all points or a seeded sample.

    Coverage: each sampled point has some selected point within δ (searched over all
    selected points, not just the reported centre). Separation: each sampled selected
    point has no other selected point within δ.

    Returns:
        (coverage_ok, separation_ok).
    """
    x = as_matrix_f32(x)
    rng = np.random.default_rng(seed)
    n = len(x)
    pts = np.arange(n) if sample is None or sample >= n else rng.choice(n, sample, replace=False)
    centers = np.flatnonzero(sel.diverse)
    c64 = x[centers].astype(np.float64)
    c_sq = np.einsum("ij,ij->i", c64, c64)
    d2 = float(delta) ** 2
    coverage_ok = True
    separation_ok = True
    sample_centers = pts[sel.diverse[pts]]
    for s in range(0, len(pts), 512):
        p64 = x[pts[s : s + 512]].astype(np.float64)
        sq = np.einsum("ij,ij->i", p64, p64)[:, None] + c_sq[None, :] - 2.0 * p64 @ c64.T
        coverage_ok &= bool((sq.min(axis=1) <= d2 + 1e-9).all())
    for s in range(0, len(sample_centers), 512):
        q = sample_centers[s : s + 512]
        p64 = x[q].astype(np.float64)
        sq = np.einsum("ij,ij->i", p64, p64)[:, None] + c_sq[None, :] - 2.0 * p64 @ c64.T
        sq[centers[None, :] == q[:, None]] = np.inf
        separation_ok &= bool((sq > d2 - 1e-9).all())
    return coverage_ok, separation_ok
