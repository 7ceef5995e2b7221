"""Which scenarios the compliance judges see: the paper's per-bin draws and Table 2's samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from actors.errors import ConfigError
from jobs.analysis.disagreement import BIN_LABELS, DISAGREEMENT_SCHEMA, bin_labels
from jobs.engine.rundir import RunDir
from jobs.stages.compliance_scope import sample_groups
from jobs.stages.settings.compliance import ComplianceConf, SamplesConf
from jobs.stages.tables import write_table

FAMILIES = {"openai": ["gpt_4_1", "o3"], "claude": ["claude_opus_4", "claude_sonnet_4"]}


def make_run(tmp_path: Path, n: int = 400, seed: int = 0) -> RunDir:
    """A disagreement table of `n` scenarios in subsets all, openai and claude, D spread over 0..3."""
    rng = np.random.default_rng(seed)
    ids = [f"s{i:04d}" for i in range(n)]
    frames = []
    for subset in ("all", "openai", "claude"):
        d = rng.uniform(0, 3, n)
        d[:3] = np.nan  # too few models: no D, never drawn
        frames.append(
            pl.DataFrame(
                {
                    "scenario_id": ids,
                    "subset": subset,
                    "n_models": 2,
                    "d": pl.Series(d).fill_nan(None),
                    "std_value1": d,
                    "std_value2": d,
                    "high": pl.Series(d >= 1.5).set(pl.Series(np.isnan(d)), None),
                    "bin": bin_labels(d),
                }
            )
        )
    run = RunDir.open(str(tmp_path / "run"))
    write_table(run, "disagreement", pl.concat(frames), DISAGREEMENT_SCHEMA)
    return run


def dis(run: RunDir, subset: str) -> pl.DataFrame:
    return pl.read_parquet(run.table_path("disagreement")).filter(pl.col("subset") == subset)


def members(groups: pl.DataFrame, kind: str, group: str, family: str | None) -> pl.DataFrame:
    fam = pl.col("family").is_null() if family is None else pl.col("family") == family
    return groups.filter((pl.col("group_kind") == kind) & (pl.col("group") == group) & fam)


def test_each_family_is_binned_by_its_own_subset_with_per_bin_draws(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    cc = ComplianceConf(per_bin=20, samples=SamplesConf(random=30, high_all=25, high_family=10))
    judged, groups = sample_groups(run, 7, cc, FAMILIES)
    for family in FAMILIES:
        own = dis(run, family).filter(pl.col("d").is_not_null())
        for label in BIN_LABELS:
            got = members(groups, "bin", label, family)
            assert got.height == 20 and set(got["subset"]) == {family}
            in_bin = set(own.filter(pl.col("bin") == label)["scenario_id"])
            assert set(got["scenario_id"]) <= in_bin  # drawn from the family's own bin only
        high = members(groups, "sample", "high_family", family)
        assert high.height == 10 and set(high["scenario_id"]) <= set(
            own.filter(pl.col("high"))["scenario_id"]
        )
    high_all = members(groups, "sample", "high_all", None)
    assert set(high_all["subset"]) == {"all"} and high_all.height == 25
    assert set(high_all["scenario_id"]) <= set(dis(run, "all").filter(pl.col("high"))["scenario_id"])
    random = members(groups, "sample", "random", None)
    assert random.height == 30 and random["subset"].is_null().all()
    assert not set(random["scenario_id"]) & {"s0000", "s0001", "s0002"}  # no D, never judged
    assert set(judged) == set(groups["scenario_id"]) and judged == sorted(judged)
    # Seeded: the same draws again, and another seed draws others.
    again, regrouped = sample_groups(run, 7, cc, FAMILIES)
    assert again == judged and regrouped.equals(groups)
    assert sample_groups(run, 8, cc, FAMILIES)[0] != judged


def test_a_bin_holds_only_its_own_draw(tmp_path: Path) -> None:
    """The high samples' scenarios are judged too, but a bin's rate is over its own draw alone."""
    run = make_run(tmp_path)
    cc = ComplianceConf(per_bin=5, samples=SamplesConf(random=0, high_all=200, high_family=0))
    judged, groups = sample_groups(run, 1, cc, {"openai": FAMILIES["openai"]})
    top = members(groups, "bin", "[2.5,3]", "openai")
    assert top.height == 5
    assert len(judged) > 5 * len(BIN_LABELS)  # the high_all draw adds scenarios to judge ...
    assert groups.filter(pl.col("group_kind") == "bin").height == 5 * len(BIN_LABELS)  # ... not to bins


def test_one_bin_subset_for_every_family_shares_the_draws(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    cc = ComplianceConf(per_bin=4, bin_subset="all", samples=SamplesConf(random=0, high_all=0, high_family=0))
    judged, groups = sample_groups(run, 3, cc, FAMILIES)
    bins = groups.filter(pl.col("group_kind") == "bin")
    assert set(bins["subset"]) == {"all"}
    per_family = [set(bins.filter(pl.col("family") == f)["scenario_id"]) for f in FAMILIES]
    assert per_family[0] == per_family[1] and len(judged) == 4 * len(BIN_LABELS)


@pytest.mark.parametrize(("per_bin", "expected"), [(None, "every"), (0, "none")])
def test_per_bin_none_takes_whole_bins_and_zero_draws_none(
    tmp_path: Path, per_bin: int | None, expected: str
) -> None:
    run = make_run(tmp_path, n=60)
    cc = ComplianceConf(per_bin=per_bin, samples=SamplesConf(random=2, high_all=0, high_family=0))
    judged, groups = sample_groups(run, 0, cc, {"openai": FAMILIES["openai"]})
    bins = groups.filter(pl.col("group_kind") == "bin")
    if expected == "none":
        assert bins.is_empty() and len(judged) == 2
    else:
        assert bins.height == dis(run, "openai")["d"].is_not_null().sum() == 57


def test_scope_all_judges_every_scored_scenario_and_bins_them_all(tmp_path: Path) -> None:
    run = make_run(tmp_path, n=50)
    cc = ComplianceConf(scope="all", per_bin=1, samples=SamplesConf(random=1, high_all=1, high_family=1))
    judged, groups = sample_groups(run, 0, cc, {"openai": FAMILIES["openai"]})
    assert len(judged) == 47
    assert groups.filter(pl.col("group_kind") == "bin").height == 47


@pytest.mark.parametrize(
    ("cc", "families", "key"),
    [
        (ComplianceConf(bin_subset="nobody"), {"openai": ["o3", "gpt_4_1"]}, "stages.compliance.bin_subset"),
        (ComplianceConf(), {"xai": ["grok_4", "o3"]}, "stages.compliance.families.xai"),
    ],
)
def test_a_missing_subset_names_the_setting_that_asked_for_it(
    tmp_path: Path, cc: ComplianceConf, families: dict[str, list[str]], key: str
) -> None:
    run = make_run(tmp_path, n=20)
    with pytest.raises(
        ConfigError, match=rf"{key.replace('.', '[.]')}.*'(nobody|xai)'.*known: \['all', 'claude', 'openai'\]"
    ):
        sample_groups(run, 0, cc, families)


def test_high_all_needs_a_subset_of_every_model(tmp_path: Path) -> None:
    run = make_run(tmp_path, n=20)
    table = pl.read_parquet(run.table_path("disagreement")).filter(pl.col("subset") != "all")
    write_table(run, "disagreement", table, DISAGREEMENT_SCHEMA)
    with pytest.raises(ConfigError, match=r"stages[.]compliance[.]samples[.]high_all.*'all'"):
        sample_groups(run, 0, ComplianceConf(), {"openai": FAMILIES["openai"]})
    no_high_all = ComplianceConf(samples=SamplesConf(high_all=0))
    assert sample_groups(run, 0, no_high_all, {"openai": FAMILIES["openai"]})[0]
