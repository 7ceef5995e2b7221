"""A multi-node local Ray cluster: embedding actors and per-subset selections land on several nodes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from jobs.analysis.disagreement import DisagreementConfig, disagreement
from jobs.analysis.embed.backends import BackendSpec, hashing_embed
from jobs.analysis.embed.cache import to_matrix
from jobs.analysis.embed.pipeline import embed_column
from jobs.analysis.selection import select_by_subset

pytestmark = pytest.mark.slow


class NodeRecordingEmbedder:
    """An 'api' backend factory that notes which node built it (files in a shared folder)."""

    def __init__(self, marks: str) -> None:
        self.marks = marks

    def __call__(self):  # type: ignore[no-untyped-def]
        import ray

        node = ray.get_runtime_context().get_node_id()
        Path(self.marks, f"{node}-{os.getpid()}").touch()
        return hashing_embed


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.add_node(num_cpus=1, num_gpus=1)  # a logical GPU: Ray schedules on it; torch stays on CPU
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    yield
    ray.shutdown()
    c.shutdown()


def test_embedding_and_selection_spread_across_nodes(cluster: None, tmp_path: Path) -> None:
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 3
    marks = tmp_path / "marks"
    marks.mkdir()
    ids = [f"s{i}" for i in range(600)]
    df = pl.DataFrame(
        {
            "scenario_id": ids,
            "query": [f"scenario {i} trades value {i % 13} against {i % 5}" for i in range(600)],
        }
    )
    spec = BackendSpec(kind="api", model="node-recording", factory=NodeRecordingEmbedder(str(marks)))
    out, stats = embed_column(
        df, "query", spec=spec, cache_dir=tmp_path / "cache", num_actors=3, batch_size=25
    )
    assert stats.n_embedded == 600
    nodes = {p.name.split("-")[0] for p in marks.iterdir()}
    assert len(nodes) >= 2, nodes

    rng = np.random.default_rng(0)
    models = ["a", "b", "c", "d"]
    rows = [(sid, m, slot, int(rng.integers(0, 7))) for sid in ids for m in models for slot in (1, 2)]
    scores = pl.DataFrame(rows, schema=["scenario_id", "model", "value_slot", "position"], orient="row")
    subsets = {"all": tuple(models), "ab": ("a", "b"), "cd": ("c", "d")}
    table = disagreement(scores, DisagreementConfig(subsets=subsets))
    emb = to_matrix(out.column("embedding"))
    sel = select_by_subset(emb, pl.Series(ids), table, use_ray=True)
    assert set(sel.table["subset"].unique()) == set(subsets)
    assert len(set(sel.nodes.values())) >= 2, sel.nodes
    local = select_by_subset(emb, pl.Series(ids), table)
    assert sel.table.equals(local.table)


def test_gpu_selection_runs_as_a_task_on_the_node_with_a_gpu(cluster: None) -> None:
    """`stages.diversity.device=cuda` sends the scan to a GPU node; here it computes on CPU torch."""
    pytest.importorskip("torch", reason="the torch path needs the embed extra (CI installs it)")
    import ray

    from jobs.analysis.diversity_torch import delta_select_torch
    from jobs.stages.devices import require_gpu
    from jobs.stages.diversity import _select_on_gpu

    require_gpu("stages.diversity.device", "cuda", autoscaled=False)  # the cluster has one GPU: accepted
    gpu_nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]
    assert len(gpu_nodes) == 1  # so the task, which holds a GPU, can only run there
    x = hashing_embed([f"query {i % 40} about value {i % 7}" for i in range(300)])
    sel = _select_on_gpu(x, 0.9, 3, "cpu")
    local = delta_select_torch(x, delta=0.9, seed=3, device="cpu")
    np.testing.assert_array_equal(sel.diverse, local.diverse)
    np.testing.assert_array_equal(sel.center, local.center)
