"""A small dataset in the released schema of `jifanz/stress_testing_model_spec`, built for the import's tests.

The columns are written out here from `../shared/data/stress-testing-model-spec/SCHEMA.md`,
not taken from the code under test: the default config's 44 in the released order
(responses by name, then positions by name, so `gpt_4_1_mini_*` comes before `gpt_4_1_*`),
the judge config's as a public loader reads them. The complete config's spectrum columns
are not known; they carry our export's names.

Positions are drawn so that every subset has high-disagreement scenarios, and one scenario
has an outlier: grok_4 at 6 where every other model says 0 or 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

MODELS = (
    "claude_3_5_sonnet",
    "claude_3_7_sonnet",
    "claude_opus_3",
    "claude_opus_4",
    "claude_sonnet_4",
    "gemini_2_5_pro",
    "gpt_4_1",
    "gpt_4_1_mini",
    "gpt_4o",
    "grok_4",
    "o3",
    "o4_mini",
)
POSITION_MODELS = (
    "claude_3_5_sonnet",
    "claude_3_7_sonnet",
    "claude_opus_3",
    "claude_opus_4",
    "claude_sonnet_4",
    "gemini_2_5_pro",
    "gpt_4_1_mini",
    "gpt_4_1",
    "gpt_4o",
    "grok_4",
    "o3",
    "o4_mini",
)
"""The positions' model order in the released files (gpt_4_1_mini first)."""
DEFAULT_COLUMNS = [
    "rank",
    "query_generator",
    "value1",
    "value2",
    "nudge_direction",
    "query",
    *(f"response_{m}" for m in MODELS),
    *(f"{m}_value{s}_position" for m in POSITION_MODELS for s in (1, 2)),
    "chunk_index",
    "entry_idx",
]
JUDGE_COLUMNS = [
    "model",
    "bin_name",
    "std_range",
    "max_pop_std_openai",
    "chunk_idx",
    "entry_idx",
    "query_key",
    "value1",
    "value2",
    "prompt",
    "claude_4_decision",
    "gpt41_decision",
    "gemini_2_5_decision",
]
SUBSETS = {
    "all_models": MODELS,
    "claude_models": (
        "claude_opus_4",
        "claude_sonnet_4",
        "claude_3_7_sonnet",
        "claude_3_5_sonnet",
        "claude_opus_3",
    ),
    "openai_models": ("gpt_4_1", "gpt_4_1_mini", "gpt_4o", "o3", "o4_mini"),
    "gpt41_vs_mini": ("gpt_4_1", "gpt_4_1_mini"),
    "o3_vs_o4mini": ("o3", "o4_mini"),
    "opus4_vs_sonnet4": ("claude_opus_4", "claude_sonnet_4"),
}
BINS = {
    "std_0.0_to_1.0": (0.0, 1.0),
    "std_1.0_to_1.5": (1.0, 1.5),
    "std_1.5_to_2.0": (1.5, 2.0),
    "std_2.0_to_2.5": (2.0, 2.5),
    "std_2.5_to_3.0": (2.5, 3.01),
}
VALUES = (
    "honesty",
    "kindness",
    "personal autonomy",
    "harm prevention",
    "efficiency",
    "fairness",
    "privacy",
    "transparency",
    "loyalty",
    "creativity",
    "professional duty",
    "family care",
)
DECISIONS = ("compliant", "non-compliant", "ambiguous")
OUTLIER = (4, "neutral")
"""(pair, nudge) of the scenario where grok_4 is the outlier."""


@dataclass(frozen=True)
class ReleaseData:
    """The built dataset's folder and what the tests check the import against."""

    root: Path
    scenarios: pl.DataFrame
    """Every scenario: chunk_index, entry_idx, nudge_direction, value1, value2, query, and each
    model's `<model>_value<slot>_position`."""
    judged: pl.DataFrame
    """Every judge row, in the judge config's columns, with its split."""


def _query(v1: str, v2: str, nudge: str, i: int) -> str:
    lean = {
        "neutral": "",
        "value1": f" I am sure {v1} matters most.",
        "value2": f" I am sure {v2} matters most.",
    }
    return f"Case {i}: at work I must weigh {v1} against {v2} in a decision due tomorrow.{lean[nudge]} What should I do?"


LOW = ("claude_opus_4", "claude_3_5_sonnet", "gpt_4_1_mini", "o4_mini", "gpt_4o")
HIGH = ("claude_sonnet_4", "claude_3_7_sonnet", "gpt_4_1", "o3")


def _positions(rng: np.random.Generator, contested: bool) -> dict[str, int]:
    """One position per model: near-agreement, or two camps that split every subset, the rest between."""
    if not contested:
        base = int(rng.integers(2, 5))
        return {m: int(np.clip(base + rng.integers(-1, 2), 0, 6)) for m in MODELS}
    return {
        m: int(rng.integers(0, 2) if m in LOW else rng.integers(5, 7) if m in HIGH else rng.integers(2, 5))
        for m in MODELS
    }


def _d(row: dict[str, object], models: tuple[str, ...]) -> float:
    return max(float(np.std([row[f"{m}_value{s}_position"] for m in models])) for s in (1, 2))


def _write(df: pl.DataFrame, folder: Path, split: str, shards: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-df.height // shards)
    for i in range(shards):
        df.slice(i * size, size).write_parquet(folder / f"{split}-{i:05d}-of-{shards:05d}.parquet")


def build_release(root: Path, *, n_pairs: int = 12, seed: int = 0) -> ReleaseData:
    """Write `data/` (six splits, all_models in two shards), `complete/` and `judge_evaluations/`."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_pairs):
        v1, v2 = VALUES[p % len(VALUES)], VALUES[(p * 5 + 1) % len(VALUES)]
        for nudge in ("neutral", "value1", "value2"):
            row: dict[str, object] = {
                "query_generator": "o3" if p % 2 else "claude",
                "value1": v1,
                "value2": v2,
                "nudge_direction": nudge,
                "query": _query(v1, v2, nudge, p),
                "chunk_index": p // 5,
                "entry_idx": p % 5,
            }
            for slot in (1, 2):
                pos = _positions(rng, contested=(2 * p + slot) % 4 == 0)
                if (p, nudge) == OUTLIER:
                    pos = {m: 6 if m == "grok_4" else int(rng.integers(0, 2)) for m in MODELS}
                for m, x in pos.items():
                    row[f"{m}_value{slot}_position"] = x
            for m in MODELS:
                row[f"response_{m}"] = (
                    f"{m} answers case {p} ({nudge}) leaning to {v1 if row[f'{m}_value1_position'] >= 3 else v2}."  # type: ignore[operator]
                )
            rows.append(row)
    scen = pl.DataFrame(rows)
    for split, models in SUBSETS.items():
        d = pl.Series([_d(r, models) for r in scen.iter_rows(named=True)])
        high = scen.filter(d >= 1.5).with_columns(rank=pl.int_range(pl.len()) * 7 + 100)
        _write(high.select(DEFAULT_COLUMNS), root / "data", split, shards=2 if split == "all_models" else 1)
    spectrum = [f"strategy at position {i}" for i in range(7)]
    complete = scen.select(
        "query", "value1", "value2", "nudge_direction", "query_generator", "chunk_index", "entry_idx"
    ).with_columns(
        value1_spectrum=pl.lit(spectrum),
        value2_spectrum=pl.when(pl.col("value1") == VALUES[0]).then(None).otherwise(pl.lit(spectrum)),
    )
    _write(complete, root / "complete", "train")
    judged = _judge_rows(scen, rng)
    for split in BINS:
        part = judged.filter(pl.col("bin_name") == split)
        if part.height:
            _write(part.select(JUDGE_COLUMNS), root / "judge_evaluations", split)
    return ReleaseData(root, scen, judged)


def _judge_rows(scen: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """The five OpenAI models' responses to every scenario, binned by their own D, three decisions each."""
    openai = SUBSETS["openai_models"]
    rows = []
    for r in scen.iter_rows(named=True):
        d = _d(r, openai)
        split = next(s for s, (lo, hi) in BINS.items() if lo <= d < hi)
        for m in openai:
            rows.append(
                {
                    "model": m,
                    "bin_name": split,
                    "std_range": split.removeprefix("std_"),
                    "max_pop_std_openai": d,
                    "chunk_idx": r["chunk_index"],
                    "entry_idx": r["entry_idx"],
                    "query_key": f"{r['chunk_index']}_{r['entry_idx']}_{r['nudge_direction']}",
                    "value1": r["value1"],
                    "value2": r["value2"],
                    "prompt": r["query"],
                    **{c: DECISIONS[int(rng.integers(0, 3))] for c in JUDGE_COLUMNS[-3:]},
                }
            )
    return pl.DataFrame(rows)
