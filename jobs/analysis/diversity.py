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
3. A pair is first tested in a low view: the points projected on 32 orthonormal
   directions near the data's leading principal ones, one GEMM of 33 columns (32 and an
   augmented column that folds the norms in). Projection never lengthens a difference,
   so a pair more than δ apart there (beyond a rigorous float32 rounding bound) is more
   than δ apart in full. Embeddings keep much of their variance in few directions (the 500
   sample queries' MiniLM embeddings: half in 32 of 384), so
   this rules out nearly every far pair; the pairs left get a full-dimension GEMM, with
   pairs near δ² recomputed in float64. Neither step can change the answer; both only
   skip work.

On clustered data (real query embeddings are) cells prune well and the cost is close
to n times the centres near each point. Where most points are centres (the paper kept
~73%), cells prune little and the cost is the low view's all-pairs GEMM: 33 columns a
pair instead of 385 (or 3,073 for Gemini embeddings).

Convention: a point is covered when its distance to a centre is <= δ, and centres are
> δ apart, matching "stop once the next pick lies within δ".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from actors.errors import ConfigError

_F32 = np.float32
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
        low_checks: (point, centre) pairs tested in the low view (a GEMM of 33 columns each).
        full_checks: pairs tested in all dimensions, those the low view could not rule out.
    """

    diverse: np.ndarray
    center: np.ndarray
    center_distance: np.ndarray
    order: np.ndarray
    n_cells: int
    low_checks: int = 0
    full_checks: int = 0

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


def _gamma(k: int) -> float:
    """Higham's bound on the relative error of a float32 sum of k products (k·u, u = 2^-24), doubled."""
    return 2.0 * k * 2.0**-24


class _Space:
    """The points with the two views the scan tests distances in.

    - full: the float32 points; a squared distance by GEMM is within `tol` of the float64
      one (a rigorous float32 bound), so only pairs that close to δ² are redone in float64
      and every `within δ` answer is exact.
    - low: the points projected on `LOW_DIM` orthonormal directions (the sample's leading
      principal directions, where most of an embedding's variance lies). Projection never
      lengthens a difference, so a pair farther than δ in the low view, by more than its
      rounding bound, is farther than δ in full: one GEMM of 33 columns instead of 385
      rules out almost all pairs. Only pairs it cannot rule out get a full-dimension GEMM.
    """

    LOW_DIM = 32

    def __init__(self, x: np.ndarray, delta: float, seed: int) -> None:
        n, d = x.shape
        self.x = x
        self.sq = np.einsum("ij,ij->i", x, x)
        self.d2 = float(delta) ** 2
        big = float(np.sqrt(self.sq.max())) * (1 + 1e-6) if n else 1.0
        self.tol = _gamma(d + 3) * 4 * big**2
        basis = _principal_directions(x, min(self.LOW_DIM, d), seed)
        m = basis.shape[1]
        y = np.empty((n, m + 1), dtype=_F32)  # [y, 1]: a query row in the augmented dot below
        for s in range(0, n, 65_536):
            y[s : s + 65_536, :m] = x[s : s + 65_536].astype(np.float64) @ basis
        y[:, m] = 1.0
        self.y = y
        y_sq = np.einsum("ij,ij->i", y[:, :m].astype(np.float64), y[:, :m].astype(np.float64))
        # Rounding y to float32 moves each point by at most 2^-24·|y|: widen δ by twice that.
        d2_low = (float(delta) + 2.0**-23 * big) ** 2
        self.half_sq = (y_sq / 2).astype(_F32)
        # |y_a - y_c|² <= d2_low  <=>  y_a·y_c - |y_c|²/2 >= (|y_a|² - d2_low)/2
        self.low_threshold = (y_sq - d2_low) / 2 - _gamma(m + 3) * 2 * big**2
        self.low_checks = 0
        self.full_checks = 0

    def centre_rows(self, idx: np.ndarray) -> np.ndarray:
        """The low view of centres as GEMM columns: [y_c, -|y_c|²/2]."""
        out = self.y[idx].copy()
        out[:, -1] = -self.half_sq[idx]
        return out

    def sqdist(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """float32 squared distances between points a and points b (counted)."""
        self.full_checks += len(a) * len(b)
        return _sqdist(self.x[a], self.x[b], self.sq[a], self.sq[b])

    def within(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bool matrix: |x_a_i - x_b_j| <= δ, exact (pairs near δ² are redone in float64)."""
        x = self.x
        sq = self.sqdist(a, b)
        inside = sq <= self.d2
        ii, jj = np.nonzero(np.abs(sq - self.d2) <= self.tol)
        if ii.size:
            exact = np.square(x[a[ii]].astype(np.float64) - x[b[jj]].astype(np.float64)).sum(axis=1)
            inside[ii, jj] = exact <= self.d2
        return inside


def _principal_directions(x: np.ndarray, m: int, seed: int) -> np.ndarray:
    """float64 (d, m) orthonormal columns near the top-m principal directions of a sample.

    Two rounds of subspace iteration on 8,192 sampled points: cheap at any d, and any
    orthonormal basis keeps the low view's bound valid; a better one only prunes more.
    """
    n, d = x.shape
    rng = np.random.default_rng(seed)
    sample = x[np.sort(rng.choice(n, min(n, 8192), replace=False))].astype(np.float64)
    sample -= sample.mean(axis=0)
    basis = rng.normal(size=(d, m))
    for _ in range(2):
        basis, _ = np.linalg.qr(sample.T @ (sample @ basis))
    return basis


class _Centres:
    """Accepted centres in acceptance order: their indices and their low view as GEMM columns.

    A cell's centres are accepted while its points are scanned, so each cell owns one
    contiguous run of the buffer, and `runs` turns a set of cells into a few slices.
    """

    def __init__(self, space: _Space, capacity: int) -> None:
        self.space = space
        self.idx = np.empty(capacity, dtype=np.int64)
        self.low = np.empty((capacity, space.y.shape[1]), dtype=_F32)
        self.n = 0

    def add(self, idx: np.ndarray) -> None:
        self.idx[self.n : self.n + len(idx)] = idx
        self.low[self.n : self.n + len(idx)] = self.space.centre_rows(idx)
        self.n += len(idx)

    def candidates(
        self, rows: np.ndarray, runs: list[tuple[int, int]], alive: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row positions, centre indices) blocks holding every centre within δ of `rows`.

        Scans `runs` of the buffer in column chunks; a chunk yields only the rows and
        centres of pairs the low view cannot rule out. `alive` (bool over rows) is read
        before each chunk, so the caller can drop rows it has settled.
        """
        space = self.space
        if len(runs) == 1:
            slices = [slice(s, min(s + _COL_CHUNK, runs[0][1])) for s in range(*runs[0], _COL_CHUNK)]
        else:  # many cells' slices: gathered into full-width chunks, fewer and larger GEMMs
            pos = np.concatenate([np.arange(a, b) for a, b in runs]) if runs else np.empty(0, np.int64)
            slices = [pos[s : s + _COL_CHUNK] for s in range(0, len(pos), _COL_CHUNK)]
        for cols in slices:
            live = np.flatnonzero(alive)
            if not live.size:
                return
            g = space.y[rows[live]] @ self.low[cols].T
            space.low_checks += g.size
            thr = space.low_threshold[rows[live]]
            near = np.flatnonzero(g.max(axis=1) >= thr)
            if not near.size:
                continue
            hit = np.flatnonzero((g[near] >= thr[near, None]).any(axis=0))
            yield live[near], self.idx[cols][hit]


def _runs(cells: np.ndarray, start: np.ndarray, stop: np.ndarray) -> list[tuple[int, int]]:
    """Merged buffer slices holding the centres of `cells`.

    Cells own disjoint slices, so sorted by start they are sorted by stop too.
    """
    cells = cells[stop[cells] > start[cells]]
    if not cells.size:
        return []
    by_start = np.argsort(start[cells])
    a, b = start[cells][by_start], stop[cells][by_start]
    cut = np.flatnonzero(a[1:] != b[:-1]) + 1
    firsts, lasts = np.r_[0, cut], np.r_[cut - 1, len(a) - 1]
    return list(zip(a[firsts].tolist(), b[lasts].tolist(), strict=True))


_GROUP_BELOW = 0.9
"""A cell whose candidate runs hold at least this share of the centres prunes too little to
be worth its own small GEMMs: it joins consecutive such cells in one block of rows."""


def _prunes(runs: list[tuple[int, int]], n_centres: int) -> bool:
    """Do `runs` leave out enough of the `n_centres` centres to scan their cell on its own?"""
    return sum(b - a for a, b in runs) < _GROUP_BELOW * n_centres


def _scan_block(centres: _Centres, rows: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """Accept `rows` in order unless a centre in `runs` or an earlier row of the block is within δ.

    Adds the accepted rows to `centres` and returns them.
    """
    space = centres.space
    alive = np.ones(len(rows), dtype=bool)
    for pos, cidx in centres.candidates(rows, runs, alive):
        alive[pos] = ~space.within(rows[pos], cidx).any(axis=1)
    free = rows[alive]
    if free.size:
        adj = space.within(free, free)
        np.fill_diagonal(adj, False)
        free = free[sequential_mis(adj)]
        centres.add(free)
    return free


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


def _nearest_in(
    centres: _Centres,
    pts: np.ndarray,
    runs: list[tuple[int, int]],
    batch_size: int,
    center: np.ndarray,
    best: np.ndarray,
) -> None:
    """Lower `best` (squared distance) and `center` of `pts` with the centres in `runs`."""
    space = centres.space
    for s in range(0, len(pts), batch_size):
        p = pts[s : s + batch_size]
        for pos, cidx in centres.candidates(p, runs, np.ones(len(p), dtype=bool)):
            sq = space.sqdist(p[pos], cidx)
            j = sq.argmin(axis=1)
            v = sq[np.arange(len(pos)), j]
            better = v < best[p[pos]]
            best[p[pos[better]]] = v[better]
            center[p[pos[better]]] = cidx[j[better]]


def _nearest_centers(
    centres: _Centres, part: _Partition, cell_runs: list[tuple[int, int]], delta: float, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each point's nearest selected point (exact), searching only the cells the bound allows.

    The nearest centre is within δ, so it is among the candidates the low view keeps.
    """
    space = centres.space
    x = space.x
    n = len(x)
    center = np.full(n, -1, dtype=np.int64)
    best = np.full(n, np.inf, dtype=_F32)
    is_center = np.zeros(n, dtype=bool)
    is_center[centres.idx[: centres.n]] = True
    start = np.array([r[0] for r in cell_runs], dtype=np.int64)
    stop = np.array([r[1] for r in cell_runs], dtype=np.int64)
    radius = np.full(part.n_cells, -np.inf, dtype=_F32)
    for j, (a, b) in enumerate(cell_runs):
        if b > a:
            radius[j] = np.linalg.norm(x[centres.idx[a:b]] - part.centroids[j], axis=1).max()
    everything = [(0, centres.n)]
    unpruned: list[np.ndarray] = []  # points of cells that prune too little, searched together
    for i in range(part.n_cells):
        pts = part.members[i][~is_center[part.members[i]]]
        runs = _runs(np.flatnonzero(part.min_to_centroid[i] <= radius + delta + _PRUNE_MARGIN), start, stop)
        if _prunes(runs, centres.n):
            _nearest_in(centres, pts, runs, batch_size, center, best)
        else:
            unpruned.append(pts)
    if unpruned:
        _nearest_in(centres, np.concatenate(unpruned), everything, batch_size, center, best)
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
    if n == 0:
        z = np.empty(0, dtype=np.int64)
        return DiverseSelection(np.zeros(0, bool), z, np.empty(0, _F32), z, 0)
    space = _Space(x, delta, seed)
    centres = _Centres(space, n)
    if order is not None:
        part = _partition(x, space.sq, 1, seed, batch_size)
        for s in range(0, n, batch_size):
            _scan_block(centres, order[s : s + batch_size], [(0, centres.n)])
        cell_runs = [(0, centres.n)]
        used_order = order
    else:
        c = max(1, min(default_n_cells(n) if n_cells is None else int(n_cells), n))
        part = _partition(x, space.sq, c, seed, batch_size)
        c = part.n_cells
        rng = np.random.default_rng(seed)
        radius = np.full(c, -np.inf, dtype=_F32)  # max |centre - mu_j| over a done cell's centres
        start = np.zeros(c, dtype=np.int64)  # cell j's centres are centres.idx[start[j]:stop[j]]
        stop = np.zeros(c, dtype=np.int64)
        parts_order: list[np.ndarray] = []
        group: list[tuple[int, np.ndarray]] = []  # consecutive cells scanned as one block

        def candidate_runs(i: int) -> list[tuple[int, int]]:
            """The slices of done cells' centres the triangle inequality cannot rule out for cell i."""
            near = part.min_to_centroid[i] <= radius + delta + _PRUNE_MARGIN
            return _runs(np.flatnonzero(near), start, stop)

        def scan_group(prior: list[tuple[int, int]]) -> None:
            rows = np.concatenate([pts for _, pts in group])
            first = centres.n
            for s in range(0, len(rows), batch_size):
                _scan_block(centres, rows[s : s + batch_size], [*prior, (first, centres.n)])
            # rows run cell by cell, so each cell's acceptances are one contiguous slice
            owner = part.assign[centres.idx[first : centres.n]]
            for i, _ in group:
                mine = np.flatnonzero(owner == i)
                start[i] = stop[i] = first
                if mine.size:
                    start[i], stop[i] = first + mine[0], first + mine[-1] + 1
                    own = x[centres.idx[start[i] : stop[i]]]
                    radius[i] = np.linalg.norm(own - part.centroids[i], axis=1).max()
            group.clear()

        for i in rng.permutation(c):
            pts = part.members[i]
            if not pts.size:
                continue
            pts = pts[rng.permutation(len(pts))]
            parts_order.append(pts)
            prior = candidate_runs(i)
            rows = sum(len(p) for _, p in group) + len(pts)
            if not _prunes(prior, centres.n) and rows <= batch_size:
                group.append((int(i), pts))
                continue
            if group:  # its centres now exist, so this cell's candidates must count them
                scan_group([(0, centres.n)])
                prior = candidate_runs(i)
            group.append((int(i), pts))
            if _prunes(prior, centres.n):
                scan_group(prior)
        if group:
            scan_group([(0, centres.n)])
        cell_runs = list(zip(start.tolist(), stop.tolist(), strict=True))
        used_order = np.concatenate(parts_order)

    center, dist = _nearest_centers(centres, part, cell_runs, delta, batch_size)
    is_center = np.zeros(n, dtype=bool)
    is_center[centres.idx[: centres.n]] = True
    return DiverseSelection(
        diverse=is_center,
        center=center,
        center_distance=dist,
        order=used_order,
        n_cells=part.n_cells,
        low_checks=space.low_checks,
        full_checks=space.full_checks,
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
