"""δ-selection and the farthest-first baseline on a torch device (a GPU, or CPU torch in tests).

Same greedy δ-net as `jobs.analysis.diversity` (see its docstring for why any scan order
gives the coverage and separation guarantees), without the k-means cell pruning: on a GPU
one GEMM checks a batch of points against every accepted centre faster than the pruning
bookkeeping would save. The scan visits a seeded permutation (or a given order) in batches:

1. each batch's points are checked against all centres accepted so far, in column chunks;
2. the still-free points are checked against each other, and the in-batch conflicts are
   resolved in scan order on the host (`sequential_mis`), exactly as the CPU scan does.

Distances are float32 with TF32 off; squared distances within a tolerance of δ² are
recomputed in float64, so the answer is exact, as on CPU. Fed the same order, both scans
accept the same points (the tests check this).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from jobs.analysis.diversity import DiverseSelection, as_matrix_f32, check_scan, sequential_mis
from jobs.analysis.torch_device import check_device, torch_module

_COL_CHUNK = 65_536
"""Centres per distance block: a 4,096-row batch block is 1 GiB of float32."""


@contextlib.contextmanager
def _exact_matmul() -> Iterator[None]:
    """Full float32 GEMMs (no TF32), restored afterwards: the border recheck assumes fp32 error."""
    torch = torch_module()
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def border_tolerance(dim: int) -> float:
    """Squared-distance band around δ² recomputed in float64: float32 dot-product error grows with d."""
    return 4e-8 * max(dim, 256)


class _Distances:
    """Exact `within δ` tests between row blocks on one device."""

    def __init__(self, delta: float, dim: int) -> None:
        self.d2 = float(delta) ** 2
        self.tol = border_tolerance(dim)

    def sq(self, a: Any, b: Any, a_sq: Any, b_sq: Any) -> Any:
        return (a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)).clamp_min_(0.0)

    def within(self, a: Any, b: Any, a_sq: Any, b_sq: Any) -> Any:
        torch = torch_module()
        sq = self.sq(a, b, a_sq, b_sq)
        inside = sq <= self.d2
        ii, jj = torch.nonzero((sq - self.d2).abs_() <= self.tol, as_tuple=True)
        if ii.numel():
            exact = (a[ii].double() - b[jj].double()).square_().sum(1)
            inside[ii, jj] = exact <= self.d2
        return inside

    def any_within(self, a: Any, b: Any, a_sq: Any, b_sq: Any) -> Any:
        hit = torch_module().zeros(len(a), dtype=torch_module().bool, device=a.device)
        for s in range(0, len(b), _COL_CHUNK):
            hit |= self.within(a, b[s : s + _COL_CHUNK], a_sq, b_sq[s : s + _COL_CHUNK]).any(1)
        return hit


def delta_select_torch(
    x: np.ndarray,
    *,
    delta: float = 0.4,
    seed: int = 0,
    order: np.ndarray | None = None,
    device: str = "cuda",
    batch_size: int = 4096,
) -> DiverseSelection:
    """Select a δ-diverse subset of `x` (n x d unit vectors) on `device`; see `delta_select`.

    Args:
        order: the scan order (a permutation of range(n)); default a seeded permutation.
        device: a torch device string ("cuda", "cuda:1", "cpu").
        batch_size: points checked per step.
    """
    torch = torch_module()
    x = as_matrix_f32(x)
    n, d = x.shape
    order = check_scan(n, delta, batch_size, order)
    if order is None:
        order = np.random.default_rng(seed).permutation(n)
    check_device(device)
    dist = _Distances(delta, d)
    with _exact_matmul(), torch.no_grad():
        xt = torch.from_numpy(x).to(device)
        x_sq = (xt * xt).sum(1)
        acc = torch.empty((min(n, 4 * batch_size), d), dtype=torch.float32, device=device)
        acc_sq = torch.empty(len(acc), dtype=torch.float32, device=device)
        acc_idx: list[np.ndarray] = []
        n_acc = 0
        for s in range(0, n, batch_size):
            bi = order[s : s + batch_size]
            bt = torch.from_numpy(bi).to(device)
            xb, xb_sq = xt[bt], x_sq[bt]
            blocked = dist.any_within(xb, acc[:n_acc], xb_sq, acc_sq[:n_acc])
            f = torch.nonzero(~blocked).squeeze(1)
            if not f.numel():
                continue
            adj = dist.within(xb[f], xb[f], xb_sq[f], xb_sq[f])
            adj.fill_diagonal_(False)
            keep = f.cpu().numpy()[sequential_mis(adj.cpu().numpy())]
            if n_acc + len(keep) > len(acc):
                acc, acc_sq = _grow(acc, n_acc + len(keep)), _grow(acc_sq, n_acc + len(keep))
            kt = torch.from_numpy(keep).to(device)
            acc[n_acc : n_acc + len(keep)] = xb[kt]
            acc_sq[n_acc : n_acc + len(keep)] = xb_sq[kt]
            n_acc += len(keep)
            acc_idx.append(bi[keep])
        accepted = np.concatenate(acc_idx) if acc_idx else np.empty(0, np.int64)
        center = _nearest(xt, x_sq, accepted, dist, batch_size)
    is_center = np.zeros(n, dtype=bool)
    is_center[accepted] = True
    center[accepted] = accepted
    diff = x - x[center]
    return DiverseSelection(
        diverse=is_center,
        center=center,
        center_distance=np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float32),
        order=order,
        n_cells=1,
    )


def _grow(buf: Any, need: int) -> Any:
    """`buf` with room for at least `need` rows (doubling), contents kept."""
    grown = buf.new_empty((max(2 * len(buf), need), *buf.shape[1:]))
    grown[: len(buf)] = buf
    return grown


def _nearest(xt: Any, x_sq: Any, accepted: np.ndarray, dist: _Distances, batch_size: int) -> np.ndarray:
    """Each point's nearest accepted point (index into x), by blocked argmin on the device."""
    torch = torch_module()
    n = len(xt)
    if not len(accepted):
        return np.full(n, -1, dtype=np.int64)
    ct = xt[torch.from_numpy(accepted).to(xt.device)]
    c_sq = x_sq[torch.from_numpy(accepted).to(xt.device)]
    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, batch_size):
        best = torch.full((min(batch_size, n - s),), math.inf, device=xt.device)
        arg = torch.zeros_like(best, dtype=torch.int64)
        for t in range(0, len(ct), _COL_CHUNK):
            v, j = dist.sq(
                xt[s : s + batch_size],
                ct[t : t + _COL_CHUNK],
                x_sq[s : s + batch_size],
                c_sq[t : t + _COL_CHUNK],
            ).min(1)
            better = v < best
            best = torch.where(better, v, best)
            arg = torch.where(better, j + t, arg)
        out[s : s + len(best)] = accepted[arg.cpu().numpy()]
    return out


def farthest_first_torch(
    x: np.ndarray,
    *,
    delta: float = 0.4,
    seed: int = 0,
    max_centers: int | None = None,
    device: str = "cuda",
    dtype: str = "float32",
) -> tuple[np.ndarray, np.ndarray]:
    """The plain farthest-first loop on a device: the GPU baseline the bench must beat.

    Same rule and seeding as `jobs.analysis.diversity.farthest_first`: one distance pass and
    one argmax per pick. `dtype` "bfloat16" matches the issue's H100 reference loop.
    """
    torch = torch_module()
    x = as_matrix_f32(x)
    n = len(x)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    check_device(device)
    d2 = float(delta) ** 2
    first = int(np.random.default_rng(seed).integers(n))
    with _exact_matmul(), torch.no_grad():
        xt = torch.from_numpy(x).to(device=device, dtype=getattr(torch, dtype))
        x_sq = (xt.float() ** 2).sum(1)
        mind = (x_sq + x_sq[first] - 2.0 * (xt @ xt[first]).float()).clamp_min_(0.0)
        picks, gaps = [first], [math.inf]
        limit = n if max_centers is None else max_centers
        while len(picks) < limit:
            v, j = mind.max(0)
            if float(v) <= d2:
                break
            j = int(j)
            picks.append(j)
            gaps.append(math.sqrt(float(v)))
            torch.minimum(mind, (x_sq + x_sq[j] - 2.0 * (xt @ xt[j]).float()).clamp_min_(0.0), out=mind)
    return np.asarray(picks, dtype=np.int64), np.asarray(gaps)
