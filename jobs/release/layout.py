"""Names and shapes of the released dataset, shared by the export and the import.

The release (Hugging Face `jifanz/stress_testing_model_spec`, Apache-2.0) has three configs,
each a folder of Parquet shards named `<split>-<i>-of-<n>.parquet`:

- `default` (`data/`): six splits, the weighted k-center selections of six model subsets,
  44 columns (`DEFAULT_HEAD`, responses, positions, `INDEX_COLUMNS`; `default_columns`);
- `complete` (`complete/`, split `train`): every scenario and its spectrums;
- `judge_evaluations` (`judge_evaluations/`): compliance verdicts, one split per bin of the
  OpenAI models' disagreement.

What is known of it comes from `../shared/data/stress-testing-model-spec/SCHEMA.md`: the
default config's columns exactly; the complete config's spectrum columns and the judge
config's columns less surely. Where we had to choose, the choice is here and the exported
dataset card says what our columns hold.
"""

from __future__ import annotations

import re
from pathlib import Path

from jobs.analysis.disagreement import BIN_EDGES, BIN_LABELS

CONFIG_DIRS: dict[str, str] = {
    "default": "data",
    "complete": "complete",
    "judge_evaluations": "judge_evaluations",
}
"""Each config's folder in the dataset."""
COMPLETE_SPLIT = "train"

SPLIT_OF_SUBSET: dict[str, str] = {
    "all": "all_models",
    "claude": "claude_models",
    "openai": "openai_models",
    "gpt41_vs_mini": "gpt41_vs_mini",
    "o3_vs_o4mini": "o3_vs_o4mini",
    "opus4_vs_sonnet4": "opus4_vs_sonnet4",
}
"""Our disagreement subset -> the release's split of its selections; other subsets keep their names."""
SUBSET_OF_SPLIT: dict[str, str] = {v: k for k, v in SPLIT_OF_SUBSET.items()}

BIN_SUBSET = "openai"
"""The subset whose D bins the release's judge splits (its `max_pop_std_openai`)."""
BIN_MAX = 3.0
"""Upper end of the last bin: the population std of positions 0..6 is at most 3."""
BIN_SPLITS: dict[str, str] = {
    label: f"std_{lo:.1f}_to_{hi:.1f}"
    for label, lo, hi in zip(BIN_LABELS, BIN_EDGES, (*BIN_EDGES[1:], BIN_MAX), strict=True)
}
"""Our bin label -> the release's judge split, e.g. "[1,1.5)" -> "std_1.0_to_1.5"."""
BIN_OF_SPLIT: dict[str, str] = {v: k for k, v in BIN_SPLITS.items()}

SCENARIO_COLUMNS = ("query_generator", "value1", "value2", "nudge_direction", "query")
DEFAULT_HEAD = ("rank", *SCENARIO_COLUMNS)
INDEX_COLUMNS = ("chunk_index", "entry_idx")
"""Together with nudge_direction they name a scenario (the public ids "stresstest_{c}_{e}_{nudge}")."""
SPECTRUM_COLUMNS = ("value1_spectrum", "value2_spectrum")
"""Our names in `complete`: the 7 descriptions of positions 0..6 (the release's names are not known)."""

JUDGE_HEAD = (
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
)
DECISION_SUFFIX = "_decision"
JUDGE_COLUMN_OF: dict[str, str] = {
    "claude_sonnet_4": "claude_4",
    "o3": "gpt41",
    "gemini_2_5_pro": "gemini_2_5",
}
"""Our judge key -> the release's decision column prefix. The paper names its judges Claude 4
Sonnet, o3 and Gemini 2.5 Pro; the released middle column is called `gpt41_decision`, and we
read it as the paper's o3. Other judges keep their keys."""
JUDGE_OF_COLUMN: dict[str, str] = {v: k for k, v in JUDGE_COLUMN_OF.items()}

_SHARD = re.compile(r"^(?P<split>\w+(?:\.\w+)*)-(?P<i>\d{5})-of-(?P<n>\d{5})\.parquet$")


def response_column(model: str) -> str:
    return f"response_{model}"


def position_column(model: str, slot: int) -> str:
    return f"{model}_value{slot}_position"


def model_columns(models: list[str]) -> list[str]:
    """Responses, then positions, each sorted by column name as in the released files (so
    `gpt_4_1_mini_value1_position` comes before `gpt_4_1_value1_position`)."""
    responses = sorted(response_column(m) for m in models)
    positions = sorted(position_column(m, s) for m in models for s in (1, 2))
    return responses + positions


def default_columns(models: list[str]) -> list[str]:
    """The default config's columns, in order: 44 for the paper's twelve models."""
    return [*DEFAULT_HEAD, *model_columns(models), *INDEX_COLUMNS]


def complete_columns(models: list[str]) -> list[str]:
    """Our complete config: every scenario with its responses, positions and both spectrums."""
    return [*SCENARIO_COLUMNS, *model_columns(models), *INDEX_COLUMNS, *SPECTRUM_COLUMNS]


def judge_column(judge: str) -> str:
    return JUDGE_COLUMN_OF.get(judge, judge) + DECISION_SUFFIX


def judge_columns(judges: list[str]) -> list[str]:
    """Decision columns of `judges`: the release's three in its order, then others by name."""
    known = [j for j in JUDGE_COLUMN_OF if j in judges]
    return [judge_column(j) for j in [*known, *sorted(set(judges) - set(known))]]


def judge_of(column: str) -> str:
    """Our judge key of a decision column (`judge_column` reversed)."""
    prefix = column.removesuffix(DECISION_SUFFIX)
    return JUDGE_OF_COLUMN.get(prefix, prefix)


def valid_split(name: str) -> bool:
    """Whether `name` can be a split (Hugging Face's rule: word characters, dots between them)."""
    return re.fullmatch(r"\w+(?:\.\w+)*", name) is not None


def shard_name(split: str, i: int, n: int) -> str:
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


def parse_shard(path: Path) -> tuple[str, int, int] | None:
    """(split, index, count) of a shard file (`all_models-00001-of-00004.parquet` -> all_models, 1, 4)."""
    m = _SHARD.match(path.name)
    return (m.group("split"), int(m.group("i")), int(m.group("n"))) if m else None
