"""The dataset card (README.md) of an export: the Hub's config list, and what our columns hold.

The Hub reads the YAML header to find each config's splits and files; the prose tells a
reader of the released dataset where our columns mean something else than its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from jobs.release import layout


@dataclass(frozen=True)
class SplitInfo:
    """One split of the default config: the disagreement subset it holds the selections of."""

    split: str
    subset: str
    models: list[str]
    rows: int


@dataclass(frozen=True)
class CardFacts:
    """What the card describes."""

    splits: dict[str, list[str]]
    """config -> the splits written (configs and splits without rows are absent)."""
    default: list[SplitInfo]
    models: list[str]
    chunk_size: int
    std: str
    """population or sample: the standard deviation D was computed with."""
    judged: tuple[str, list[str]] | None
    """(the subset whose D bins the judge data, the judges), when judge_evaluations was written."""
    notes: list[str]


def _header(facts: CardFacts) -> str:
    """The Hub's YAML: each config's splits and the shards of each (`<folder>/<split>-*.parquet`)."""
    configs = [
        {
            "config_name": config,
            "data_files": [
                {"split": s, "path": f"{layout.CONFIG_DIRS[config]}/{s}-*.parquet"} for s in splits
            ],
        }
        for config, splits in facts.splits.items()
    ]
    return yaml.safe_dump({"license": "apache-2.0", "configs": configs}, sort_keys=False)


def _judge_lines(facts: CardFacts) -> list[str]:
    if facts.judged is None:
        return []
    subset, judges = facts.judged
    columns = ", ".join(f"`{c}` ({layout.judge_of(c)})" for c in layout.judge_columns(judges))
    return [
        "",
        "## judge_evaluations",
        "",
        f"One row per judged response (`model` answered), one split per bin of the disagreement D of "
        f"subset `{subset}` ({facts.std} standard deviation). `max_pop_std_openai` keeps the release's "
        f"name but holds that D (the release's is the OpenAI models' population std); `std_range` is our "
        "bin label; `query_key` is `{chunk_index}_{entry_idx}_{nudge_direction}`; `prompt` is the user "
        f"query. Decisions (compliant, non-compliant, ambiguous; null where the judge's call failed): "
        f"{columns}. The release's `gpt41_decision` holds the paper's o3 judge, and ours holds o3's.",
    ]


def dataset_card(facts: CardFacts) -> str:
    """The card's text: the YAML header, then each config and the columns whose meaning is ours."""
    rows = [f"| {s.split} | {s.subset} | {', '.join(s.models)} | {s.rows} |" for s in facts.default]
    lines = [
        "---",
        _header(facts).rstrip(),
        "---",
        "# specstress export",
        "",
        "A specstress run in the layout of `jifanz/stress_testing_model_spec` (arXiv 2510.07686): "
        f"responses and spectrum positions of {len(facts.models)} models ({', '.join(facts.models)}). "
        "`specstress import` reads it back into a run directory.",
    ]
    if facts.default:
        lines += [
            "",
            "## default",
            "",
            "Each split holds one model subset's disagreement-weighted k-center selections among its "
            "high-disagreement scenarios, in the order picked.",
            "",
            "| split | subset | models | rows |",
            "|---|---|---|---|",
            *rows,
        ]
    lines += [
        "",
        "## complete",
        "",
        "Every scenario, with the default config's columns except `rank`, then `value1_spectrum` and "
        "`value2_spectrum`: the rubric's seven answer strategies for each value, positions 0 "
        "(extreme_oppose) to 6 (extreme_favor); null where the rubric failed. Unlike the release's, ours "
        "also carries every scenario's responses and positions, so D, bins and outliers of the whole run "
        "can be recomputed from it.",
        *_judge_lines(facts),
        "",
        "## Where our columns differ from the release's",
        "",
        "- `rank`: 0-based order in which the subset's weighted k-center picked the scenario.",
        "- `query_generator`: the model key of the model that wrote the neutral query (the release: "
        "`o3` or `claude`).",
        f"- `chunk_index`, `entry_idx`: the value pair's draw order in the run (0-based), as "
        f"order // {facts.chunk_size} and order % {facts.chunk_size}; a pair's three framings share them "
        "(a run imported from a dataset keeps that dataset's own).",
        "- Responses are each model's first sample; a position is null where scoring failed.",
    ]
    if facts.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in facts.notes]]
    return "\n".join(lines) + "\n"
