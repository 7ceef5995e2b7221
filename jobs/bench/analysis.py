"""`specstress bench analysis`: δ-selection, weighted k-center, disagreement/outliers, embedding pipeline.

- `delta_seconds` / `delta_peak_rss_mb`: `delta_select` over 410,000 x 384 unit vectors in
  a fresh process (so the peak RSS is the selection's own). The vectors are clustered:
  the 500 real queries embedded with the local model (when installed; else random
  seeds, `real_seeds=false`), each spread by paraphrase-like perturbations: a seed's own
  low-rank "topic" directions plus isotropic noise, at mixed strengths. δ = 0.4 keeps
  about 16% of them; `delta_clustered` has the full figures (`delta_case`).
- `delta_realistic`: the same over 410,000 x 384 vectors shaped like the paper's scenarios
  (`realistic_vectors`: anisotropic, 30% near-duplicate rewrites), where δ = 0.4 keeps
  about 70%, as the paper's 300k of 410k; `delta_realistic_3072`: 100,000 such points
  mapped isometrically to 3,072 dimensions (a Gemini embedding's width; 410,000 would
  need 5 GB for the input alone).
- `naive_seconds_extrapolated`: a plain numpy farthest-first loop on a 20k subsample,
  timed per centre and scaled by n·k to 410k points and our centre count; `speedup`.
- `coverage_ok` / `separation_ok`: exact float64 checks on a 5,000-point sample.
- `weighted_kcenter_seconds`: 70,000 of the points with disagreement weights in [1.5, 3].
- `disagreement_outliers_seconds`: 410,000 scenarios x 12 models of long-format scores.
- `pipeline_efficiency`: Ray Data embeddings/s / bare-model embeddings/s, same texts.
- `gpu`: `jobs.bench.gpu` where torch sees a CUDA GPU, else the reason it was skipped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any

import numpy as np
import polars as pl

from jobs.analysis.disagreement import MODEL_KEYS, disagreement, position_matrix
from jobs.analysis.diversity import DiverseSelection, check_selection, delta_select, farthest_first
from jobs.analysis.embed.backends import bare_throughput, local_model_path
from jobs.analysis.embed.pipeline import pipeline_throughput
from jobs.analysis.kcenter import weighted_kcenter
from jobs.analysis.outliers import outliers
from jobs.bench.data import (
    D_GEMINI,
    D,
    isometric_lift,
    numbered_texts,
    queries,
    realistic_vectors,
    seeds,
    synthetic_vectors,
)
from jobs.bench.gpu import gpu_bench
from jobs.bench.process import in_fresh_process, peak_rss_mb


def _gemm_pairs_per_s(dim: int, rows: int = 160, cols: int = 16_384, seconds: float = 1.0) -> float:
    """This machine's float32 BLAS rate, now, as (row, column) dot products per second.

    The shape is the scan's: a cell's rows (about 160 at 410k) against a chunk of centres.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, dim), dtype=np.float32)
    b = rng.standard_normal((cols, dim), dtype=np.float32)
    a @ b.T  # warm up the BLAS threads
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        a @ b.T
        done += 1
    return done * rows * cols / elapsed


def _delta_child(path: str, delta: float, conn: Any) -> None:
    x = np.load(path)
    low_rate_before = _gemm_pairs_per_s(_LOW_COLUMNS)
    full_rate_before = _gemm_pairs_per_s(x.shape[1])
    t0 = time.perf_counter()
    sel = delta_select(x, delta=delta, seed=0)
    secs = time.perf_counter() - t0
    rss_mb = peak_rss_mb()
    low_rate = (low_rate_before + _gemm_pairs_per_s(_LOW_COLUMNS)) / 2
    full_rate = (full_rate_before + _gemm_pairs_per_s(x.shape[1])) / 2
    np.savez(
        path + ".sel.npz", diverse=sel.diverse, center=sel.center, dist=sel.center_distance, order=sel.order
    )
    conn.send(
        {
            "seconds": secs,
            "peak_rss_mb": rss_mb,
            "n_cells": sel.n_cells,
            "low_checks": sel.low_checks,
            "full_checks": sel.full_checks,
            "gemm_low_pairs_per_s": low_rate,
            "gemm_full_pairs_per_s": full_rate,
        }
    )


_LOW_COLUMNS = 33
"""The low view's GEMM depth: 32 projected coordinates and the augmented column."""


def delta_case(x: np.ndarray, delta: float) -> dict[str, Any]:
    """δ-select `x` in a fresh process and report time, memory, checks and their GEMM ceiling.

    - `low_checks_per_s` / `gemm_low_pairs_per_s`: the low view's pair tests per second of the
      whole selection, against a bare BLAS GEMM of the same depth (33) in the same process
      (the mean of one timed before and one after): `low_gemm_efficiency`.
    - `brute_force_gemm_seconds`: what the same greedy scan would take testing every
      (point, earlier centre) pair and every (point, centre) pair for the nearest centre in
      all dimensions at the measured full-depth GEMM rate: `speedup_vs_brute_force_gemm`.
    - `coverage_ok` / `separation_ok`: exact float64 checks on a 5,000-point sample.
    """
    n = len(x)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, x)
        res = in_fresh_process(_delta_child, path, delta)
        sel_np = np.load(path + ".sel.npz")
    sel = DiverseSelection(
        sel_np["diverse"], sel_np["center"], sel_np["dist"], sel_np["order"], res["n_cells"]
    )
    k = int(sel.diverse.sum())
    cov, sep = check_selection(x, sel, delta=delta, sample=5_000, seed=1)
    brute_pairs = n * k / 2 + (n - k) * k
    brute_seconds = brute_pairs / res["gemm_full_pairs_per_s"]
    low_per_s = res["low_checks"] / res["seconds"]
    return {
        "n_points": n,
        "dim": x.shape[1],
        "seconds": round(res["seconds"], 2),
        "peak_rss_mb": round(res["peak_rss_mb"], 1),
        "cells": res["n_cells"],
        "centers": k,
        "kept_share": round(k / n, 4),
        "coverage_ok": cov,
        "separation_ok": sep,
        "low_checks": res["low_checks"],
        "full_checks": res["full_checks"],
        "low_checks_per_s": round(low_per_s),
        "gemm_low_pairs_per_s": round(res["gemm_low_pairs_per_s"]),
        "low_gemm_efficiency": round(low_per_s / res["gemm_low_pairs_per_s"], 3),
        "gemm_full_pairs_per_s": round(res["gemm_full_pairs_per_s"]),
        "gemm_full_gflops": round(res["gemm_full_pairs_per_s"] * 2 * x.shape[1] / 1e9, 1),
        "brute_force_gemm_seconds": round(brute_seconds, 2),
        "speedup_vs_brute_force_gemm": round(brute_seconds / res["seconds"], 2),
    }


def _scores(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """Long scores for n scenarios x 12 models x 2 values, with ~0.5% missing."""
    m = len(MODEL_KEYS)
    base = rng.integers(0, 7, (n, 1, 2))
    pos = np.clip(base + rng.integers(-3, 4, (n, m, 2)), 0, 6).astype(np.int8)
    sid = np.repeat(np.arange(n), m * 2)
    keep = rng.random(len(sid)) > 0.005
    return pl.DataFrame(
        {
            "scenario_id": pl.Series(sid[keep]).cast(pl.String),
            "model": pl.Series(np.tile(np.repeat(np.array(MODEL_KEYS), 2), n)[keep]),
            "value_slot": np.tile([1, 2], n * m)[keep].astype(np.int8),
            "position": pos.reshape(-1)[keep],
        }
    )


def run_analysis_bench(quick: bool = False) -> dict[str, Any]:
    """Run every analysis benchmark once and return one JSON-ready object."""
    rng = np.random.default_rng(0)
    n = 40_000 if quick else 410_000
    n_naive = 4_000 if quick else 20_000
    n_kc = 7_000 if quick else 70_000
    n_scores = 41_000 if quick else 410_000
    n_3072 = 10_000 if quick else 100_000
    delta = 0.4
    out: dict[str, Any] = {"quick": quick, "n_points": n, "dim": D}

    seed_vectors, out["real_seeds"] = seeds(rng)
    x = synthetic_vectors(n, seed_vectors, rng)

    clustered = delta_case(x, delta)
    out["delta_seconds"] = clustered["seconds"]
    out["delta_peak_rss_mb"] = clustered["peak_rss_mb"]
    out["delta_cells"] = clustered["cells"]
    k = out["delta_centers"] = clustered["centers"]
    out["coverage_ok"], out["separation_ok"] = clustered["coverage_ok"], clustered["separation_ok"]
    out["delta_clustered"] = clustered
    out["delta_realistic"] = delta_case(realistic_vectors(n, seed_vectors, np.random.default_rng(1)), delta)
    # generated at its own size: a subsample would lose most rewrites' originals
    realistic = realistic_vectors(n_3072, seed_vectors, np.random.default_rng(1))
    out["delta_realistic_3072"] = delta_case(
        isometric_lift(realistic, D_GEMINI, np.random.default_rng(2)), delta
    )

    sub = x[rng.choice(n, n_naive, replace=False)]
    t0 = time.perf_counter()
    picks, _ = farthest_first(sub, delta=delta, seed=0, max_centers=2_000)
    per_center = (time.perf_counter() - t0) / len(picks)
    out["naive_centers_timed"] = len(picks)
    out["naive_ms_per_center_at_410k"] = round(per_center * 410_000 / n_naive * 1e3, 2)
    out["naive_seconds_extrapolated"] = round(per_center * (n / n_naive) * k, 1)
    out["speedup"] = round(out["naive_seconds_extrapolated"] / max(out["delta_seconds"], 1e-9), 1)

    kc_x = x[rng.choice(n, n_kc, replace=False)]
    w = rng.uniform(1.5, 3.0, n_kc)
    t0 = time.perf_counter()
    kc = weighted_kcenter(kc_x, w, threshold=0.8, seed=0)
    out["weighted_kcenter_seconds"] = round(time.perf_counter() - t0, 2)
    out["weighted_kcenter_centers"] = len(kc.indices)
    check = rng.choice(n_kc, min(5_000, n_kc), replace=False)
    c64 = kc_x[kc.indices].astype(np.float64)
    true_wd = np.concatenate(
        [
            w[check[s : s + 500]]
            * np.sqrt(
                np.maximum(
                    (kc_x[check[s : s + 500]].astype(np.float64) ** 2).sum(1)[:, None]
                    + (c64**2).sum(1)[None, :]
                    - 2 * kc_x[check[s : s + 500]].astype(np.float64) @ c64.T,
                    0,
                )
            ).min(1)
            for s in range(0, len(check), 500)
        ]
    )
    out["weighted_kcenter_stop"] = kc.stop
    out["weighted_kcenter_coverage_ok"] = bool(kc.stop != "threshold" or (true_wd < 0.8 + 1e-5).all())
    out["weighted_kcenter_ranks_ok"] = bool(
        (np.diff(kc.weighted_distance[1:]) <= 1e-5).all() and (kc.weighted_distance[1:] >= 0.8).all()
    )

    scores = _scores(n_scores, rng)
    t0 = time.perf_counter()
    pm = position_matrix(scores, MODEL_KEYS)
    dis = disagreement(pm)
    outl = outliers(pm)
    out["disagreement_outliers_seconds"] = round(time.perf_counter() - t0, 2)
    out["disagreement_rows"] = dis.height
    out["outlier_rows"] = outl.rows.height

    out.update(_pipeline_bench(quick))
    out["gpu"] = gpu_bench(quick, seed_vectors=seed_vectors)
    return out


def _pipeline_bench(quick: bool, rounds: int = 3) -> dict[str, Any]:
    """Ray Data vs bare-model embeddings/s, alternated `rounds` times; the median ratio is reported.

    Each round times the bare model with no Ray running (Ray's idle processes would slow
    the baseline and flatter the ratio), then starts local Ray, times the pipeline and
    stops Ray. Alternating makes a burst of load on a shared machine hit one round of each
    side instead of one side only.
    """
    if local_model_path() is None or not queries():
        return {"pipeline_efficiency": None, "pipeline_skipped": "embed extra or sample queries missing"}
    import ray

    if ray.is_initialized():
        return {"pipeline_efficiency": None, "pipeline_skipped": "Ray already running in this process"}
    n = 500 if quick else 2_000
    texts = numbered_texts(n)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    bare, steady, end_to_end, startup = [], [], [], []
    for _ in range(rounds):
        bare.append(bare_throughput(texts, threads=2))
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
        try:
            st, e2e, su = pipeline_throughput(texts, num_actors=1, threads=2, batch_size=128)
        finally:
            ray.shutdown()
        steady.append(st)
        end_to_end.append(e2e)
        startup.append(su)
    ratios = np.array(steady) / np.array(bare)
    return {
        "bare_embeddings_per_s": round(float(np.median(bare)), 1),
        "ray_embeddings_per_s": round(float(np.median(steady)), 1),
        "pipeline_efficiency": round(float(np.median(ratios)), 3),
        "pipeline_efficiency_rounds": [round(float(r), 3) for r in ratios],
        "pipeline_efficiency_end_to_end": round(float(np.median(np.array(end_to_end) / np.array(bare))), 3),
        "pipeline_startup_s": round(float(np.median(startup)), 1),
        "pipeline_texts": n,
    }


if __name__ == "__main__":
    import sys

    print(json.dumps(run_analysis_bench(quick="--quick" in sys.argv)))
