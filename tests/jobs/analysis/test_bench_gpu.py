"""The GPU part of `specstress bench analysis`, run small on CPU torch so its code is exercised here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.analysis.embed import local_model_path
from jobs.bench_analysis import gpu_bench

torch = pytest.importorskip("torch", reason="the GPU bench needs the embed extra (CI installs it)")


def test_gpu_bench_code_runs_on_cpu_torch_and_reports_valid_selections() -> None:
    rng = np.random.default_rng(0)
    seeds = rng.normal(size=(40, 384)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    out = gpu_bench(True, seeds=seeds, device="cpu", n=3_000, dims=(384, 96), naive_centers=20, n_texts=16)
    json.dumps(out)
    assert out["device"] == "cpu" and out["n_points"] == 3_000
    for dim in (384, 96):
        fig = out[f"d{dim}"]
        assert fig["coverage_ok"] and fig["separation_ok"], fig
        assert 0 < fig["delta_centers"] <= 3_000
        assert fig["naive_seconds_extrapolated"] > 0 and fig["speedup"] > 0
    if local_model_path() is not None:
        assert out["embeddings_per_s"] > 0 and out["cpu_embeddings_per_s"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_bench_says_why_it_skipped() -> None:
    assert gpu_bench(True) == {"skipped": "torch sees no CUDA GPU on this machine"}
