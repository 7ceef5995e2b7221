"""Phrase-to-category matching (FAISS), counts and co-occurrence (per model pair and pooled) on known answers,
and with real MiniLM."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from jobs.analysis.embed.backends import BackendSpec, local_model_path, make_embed_fn
from jobs.analysis.value_match import category_counts, nearest, pair_cooccurrence, pooled_cooccurrence
from jobs.stages.taxonomy import load_categories, load_taxonomy
from tests.shared_data import shared_file


def unit(*rows: list[float]) -> np.ndarray:
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_nearest_is_the_largest_inner_product_and_keeps_the_l2_distance() -> None:
    cats = unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    phrases = unit([0.9, 0.1, 0], [0, 0.2, 1], [1, 0.8, 0], [0, -1, 0.5])
    idx, dist = nearest(phrases, cats)
    assert idx.tolist() == [0, 2, 0, 2]
    cos = (phrases * cats[idx]).sum(axis=1)
    np.testing.assert_allclose(dist, np.sqrt(2 - 2 * cos), atol=1e-6)
    assert dist[0] < dist[1] < dist[3] and dist[3] > 1.0
    assert nearest(np.empty((0, 3), dtype=np.float32), cats)[0].size == 0


def test_counts_and_cooccurrence_by_hand() -> None:
    # s1: A shows X (twice, counted once) and Y; B shows X; C shows nothing.
    # s2: A shows Y; B shows Y and X.
    expr = pl.DataFrame(
        {
            "scenario_id": ["s1", "s1", "s1", "s1", "s2", "s2", "s2"],
            "model": ["A", "A", "A", "B", "A", "B", "B"],
            "category": ["X", "X", "Y", "X", "Y", "Y", "X"],
        }
    )
    present = pl.DataFrame(
        {"scenario_id": ["s1", "s1", "s1", "s2", "s2"], "model": ["A", "B", "C", "A", "B"]}
    )
    counts = category_counts(expr)
    assert counts.rows() == [("A", "Y", 2), ("A", "X", 1), ("B", "X", 2), ("B", "Y", 1)]
    pairs = pair_cooccurrence(expr, present, top=2)
    per = {(ma, mb, a, b): (n, v) for ma, mb, a, b, n, v in pairs.rows()}
    # A shows X only in s1, where B shows X and not Y, and C shows nothing.
    assert per[("A", "B", "X", "X")] == (1, 1.0) and per[("A", "B", "X", "Y")] == (1, 0.0)
    assert per[("A", "C", "X", "X")] == (1, 0.0)
    # A shows Y in s1 (B: X) and s2 (B: X and Y); C answered s1 only.
    assert per[("A", "B", "Y", "X")] == (2, 1.0) and per[("A", "B", "Y", "Y")] == (2, 0.5)
    assert per[("A", "C", "Y", "Y")] == (1, 0.0)
    # B shows X in s1 and s2 (A: X, Y then Y); Y only in s2 (A: Y).
    assert per[("B", "A", "X", "X")] == (2, 0.5) and per[("B", "A", "X", "Y")] == (2, 1.0)
    assert per[("B", "A", "Y", "X")] == (1, 0.0) and per[("B", "A", "Y", "Y")] == (1, 1.0)
    # C shows nothing, so it is never the given model; nobody is paired with itself.
    assert not pairs.filter((pl.col("model_a") == "C") | (pl.col("model_a") == pl.col("model_b"))).height
    # Given (model_a, model_b, category_a): A-B-X, A-C-X, A-B-Y, A-C-Y, B-A-X, B-C-X, B-A-Y; a row per category_b.
    assert pairs.height == 7 * 2
    p = {(a, b): v for a, b, v in pooled_cooccurrence(pairs).rows()}
    # Given a model shows X: (s1, A->B), (s1, A->C), (s1, B->A), (s1, B->C), (s2, B->A): 5 cases.
    # Other shows X: s1 A->B yes, B->A yes; others no -> 2/5. Other shows Y: s1 B->A, s2 B->A -> 2/5.
    assert p[("X", "X")] == pytest.approx(2 / 5) and p[("X", "Y")] == pytest.approx(2 / 5)
    # Given Y: (s1, A->B), (s1, A->C), (s2, A->B), (s2, B->A): 4 cases; X: s1 A->B, s2 A->B -> 2/4;
    # Y: s2 A->B, s2 B->A -> 2/4.
    assert p[("Y", "X")] == pytest.approx(0.5) and p[("Y", "Y")] == pytest.approx(0.5)
    top1 = pooled_cooccurrence(pair_cooccurrence(expr, present, top=1))
    assert top1.height == 1 and top1["category_a"].item() == "X"  # X: 3 responses, Y: 3; X first by name


# Value names of the real taxonomy (level 0) whose level-2 category is plain from the words.
OBVIOUS = [
    "religious faith",
    "scientific rigor",
    "gender equality",
    "artistic creativity",
    "child safety",
    "environmental protection",
    "national security",
    "sensory pleasure",
]


def test_obvious_values_land_on_their_level2_category_with_minilm() -> None:
    if local_model_path() is None:
        pytest.skip("sentence_transformers or the packaged MiniLM is missing (install the embed extra)")
    vitw = shared_file("data", "values-in-the-wild", "values_tree.csv").parent
    tree, freqs = vitw / "values_tree.csv", vitw / "values_frequencies.csv"
    cats = load_categories(tree, level=2)
    truth = load_taxonomy(tree, freqs).filter(pl.col("value").is_in(OBVIOUS)).select("value", "l2_name")
    assert truth.height == len(OBVIOUS), "every chosen value is a real leaf of the taxonomy"
    embed = make_embed_fn(BackendSpec(kind="local"))
    cat_vecs = embed([f"{n}: {d}" for n, d in cats.select("name", "description").iter_rows()])
    idx, dist = nearest(embed(truth["value"].to_list()), cat_vecs)
    got = cats["name"].gather(idx).to_list()
    assert got == truth["l2_name"].to_list()
    assert (dist < math.sqrt(2)).all(), "each match is closer than an orthogonal vector"
