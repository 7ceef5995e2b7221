"""`specstress bench gpu` (also the `gpu` part of `bench analysis`): the analysis cores on a CUDA GPU.

- `d384` / `d3072`: `delta_select_torch` over 410,000 points at 384 and 3,072 dimensions (the
  analysis bench's clustered data; 3,072 by a random Gaussian map of the same seeds), exact
  coverage and separation on a 5,000-point sample, and the baseline to beat: the plain
  farthest-first loop in bfloat16 on the same GPU, 500 picks timed per centre and scaled by
  our centre count.
- `embeddings_per_s`: the local model on the GPU against the bare CPU model, same texts.

Imports only numpy and torch up front (the model and its stack lazily), so it also runs as
`python -m jobs.bench.gpu` on a GPU machine that lacks the rest of the stack.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from jobs.analysis.diversity import check_selection
from jobs.bench.data import D, lift, numbered_texts, seeds, synthetic_vectors


def _embedding_figures(device: str, n_texts: int) -> dict[str, Any]:
    try:
        from jobs.analysis.embed.backends import bare_throughput, local_model_path
    except ImportError as e:
        return {"embeddings_skipped": f"analysis stack missing ({e.name})"}
    many = numbered_texts(n_texts)
    if not many or local_model_path() is None:
        return {"embeddings_skipped": "embed extra or sample queries missing"}
    on_device = bare_throughput(many, batch_size=256, device=device)
    on_cpu = bare_throughput(many[: min(n_texts, 1_000)], device="cpu")
    return {
        "embeddings_per_s": round(on_device, 1),
        "cpu_embeddings_per_s": round(on_cpu, 1),
        "embeddings_speedup_vs_cpu": round(on_device / on_cpu, 1),
    }


def gpu_bench(
    quick: bool,
    *,
    seed_vectors: np.ndarray | None = None,
    device: str = "cuda",
    n: int | None = None,
    dims: tuple[int, ...] = (D, 3072),
    naive_centers: int = 500,
    n_texts: int | None = None,
) -> dict[str, Any]:
    """The GPU figures; `{"skipped": reason}` when torch or a CUDA GPU is missing.

    `device` and the sizes exist so the tests can run the same code, small, on CPU torch.
    """
    try:
        import torch  # type: ignore[import-not-found]
    except ImportError:
        return {"skipped": "torch is not installed (the embed extra)"}
    if device.startswith("cuda") and not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA GPU on this machine"}
    from jobs.analysis.diversity_torch import delta_select_torch, farthest_first_torch

    rng = np.random.default_rng(1)
    n = n or (40_000 if quick else 410_000)
    out: dict[str, Any] = {"device": device, "n_points": n}
    if seed_vectors is None:
        seed_vectors, out["real_seeds"] = seeds(rng)
    if device.startswith("cuda"):
        out["name"] = torch.cuda.get_device_name(device)
    delta = 0.4
    warm = synthetic_vectors(2_000, seed_vectors, rng)
    delta_select_torch(warm, delta=delta, device=device)  # pays CUDA context and kernel set-up
    farthest_first_torch(warm, delta=delta, device=device, max_centers=10, dtype="bfloat16")
    for dim in dims:
        base = seed_vectors if dim == seed_vectors.shape[1] else lift(seed_vectors, dim, rng)
        x = synthetic_vectors(n, base, rng)
        t0 = time.perf_counter()
        sel = delta_select_torch(x, delta=delta, seed=0, device=device)
        secs = time.perf_counter() - t0
        k = int(sel.diverse.sum())
        cov, sep = check_selection(x, sel, delta=delta, sample=5_000, seed=1)
        t0 = time.perf_counter()
        picks, _ = farthest_first_torch(
            x, delta=delta, seed=0, device=device, max_centers=naive_centers, dtype="bfloat16"
        )
        per_center = (time.perf_counter() - t0) / len(picks)
        out[f"d{dim}"] = {
            "delta_seconds": round(secs, 2),
            "delta_centers": k,
            "coverage_ok": cov,
            "separation_ok": sep,
            "naive_bf16_ms_per_center": round(per_center * 1e3, 3),
            "naive_seconds_extrapolated": round(per_center * k, 1),
            "speedup": round(per_center * k / max(secs, 1e-9), 1),
        }
        del x
    out.update(_embedding_figures(device, n_texts or (2_000 if quick else 20_000)))
    return out


def main(argv: list[str]) -> None:
    """`python -m jobs.bench.gpu [--quick] [--seeds SEEDS.npy]`.

    `--seeds` takes the real queries' embeddings saved by `python -m jobs.bench.data PATH` on
    a machine with the local model, so a GPU box without it still runs on real seeds.
    """
    seed_vectors = None
    if "--seeds" in argv:
        seed_vectors = np.load(argv[argv.index("--seeds") + 1]).astype(np.float32)
    out = gpu_bench(quick="--quick" in argv, seed_vectors=seed_vectors)
    if seed_vectors is not None and "skipped" not in out:
        out["real_seeds"] = "from --seeds"
    print(json.dumps(out))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
