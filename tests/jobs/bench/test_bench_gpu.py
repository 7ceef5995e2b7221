"""The GPU part of `specstress bench analysis`, run small on CPU torch so its code is exercised here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.analysis.embed.backends import local_model_path
from jobs.bench.data import queries
from jobs.bench.gpu import gpu_bench
from tests.shared_data import shared_file

torch = pytest.importorskip("torch", reason="the GPU bench needs the embed extra (CI installs it)")


def test_gpu_bench_code_runs_on_cpu_torch_and_reports_valid_selections() -> None:
    rng = np.random.default_rng(0)
    seeds = rng.normal(size=(40, 384)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    out = gpu_bench(
        True, seed_vectors=seeds, device="cpu", n=3_000, dims=(384, 96), naive_centers=20, n_texts=16
    )
    json.dumps(out)
    assert out["device"] == "cpu" and out["n_points"] == 3_000
    for dim in (384, 96):
        fig = out[f"d{dim}"]
        assert fig["coverage_ok"] and fig["separation_ok"], fig
        assert 0 < fig["delta_centers"] <= 3_000
        assert fig["naive_seconds_extrapolated"] > 0 and fig["speedup"] > 0
    if local_model_path() is not None and queries():
        assert out["embeddings_per_s"] > 0 and out["cpu_embeddings_per_s"] > 0
    else:  # a plain clone has no ../shared sample queries to time the model on
        assert out["embeddings_skipped"] == "embed extra or sample queries missing"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_bench_says_why_it_skipped() -> None:
    assert gpu_bench(True) == {"skipped": "torch sees no CUDA GPU on this machine"}


BLOCK_STACK = """
import sys
from pathlib import Path
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"polars", "faiss", "pyarrow", "ray", "omegaconf", "sentence_transformers"}:
            raise ImportError(f"blocked {name}", name=name)
sys.meta_path.insert(0, Block())
import json
import subprocess
import sys
from pathlib import Path
from jobs.bench.gpu import gpu_bench
print(json.dumps(gpu_bench(True, device="cpu", n=1_500, dims=(64,), naive_centers=5, n_texts=8)))
"""


def test_gpu_bench_needs_only_numpy_and_torch() -> None:
    """A GPU box may have torch but not our stack: the bench must still give the δ figures."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_STACK], capture_output=True, text=True, timeout=300, check=True
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["real_seeds"] is False
    assert out["d64"]["coverage_ok"] and out["d64"]["separation_ok"]
    # the embedding backends import numpy only, so the bench gets as far as finding no model
    assert out["embeddings_skipped"] == "embed extra or sample queries missing"


def test_real_seeds_can_be_saved_for_a_gpu_box(tmp_path: Path) -> None:
    if local_model_path() is None:
        pytest.skip("the embed extra is not installed")
    shared_file("data", "stress-testing-model-spec", "sample_queries_500.jsonl")
    path = tmp_path / "seeds.npy"
    subprocess.run([sys.executable, "-m", "jobs.bench.data", str(path)], check=True, timeout=300)
    seeds = np.load(path)
    assert seeds.shape == (500, 384) and seeds.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(seeds, axis=1), 1.0, atol=1e-5)
