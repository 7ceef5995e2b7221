"""The analysis bench's δ-selection case, at a small size."""

from __future__ import annotations

import numpy as np

from jobs.bench.analysis import delta_case
from jobs.bench.data import realistic_vectors
from tests.jobs.bench.test_bench_data import anisotropic_seeds


def test_delta_case_reports_an_exact_selection_against_its_gemm_ceiling() -> None:
    rng = np.random.default_rng(0)
    r = delta_case(realistic_vectors(3_000, anisotropic_seeds(rng), rng), 0.4)
    assert r["n_points"] == 3_000 and r["dim"] == 96
    assert r["coverage_ok"] and r["separation_ok"]
    assert 0.65 <= r["kept_share"] <= 0.75 and r["centers"] == round(r["kept_share"] * 3_000)
    assert r["low_checks"] > 0 and r["full_checks"] > 0
    assert r["gemm_low_pairs_per_s"] > 0 and r["low_gemm_efficiency"] > 0
    assert r["gemm_full_pairs_per_s"] > 0 and r["peak_rss_mb"] > 0
