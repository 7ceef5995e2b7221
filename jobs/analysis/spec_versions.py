"""Two versions of a spec judged on the same responses: which verdicts flipped, and the sections behind them.

A unit is a judged response (scenario_id, model, sample) and its verdict under a version
is its majority verdict: problematic or ok; a tie or no answer pairs with nothing. Versions
are compared in the order configured, each with the next (`pairs_of`). Flips are counted
over every response judged under both versions and over each family's responses;
McNemar's test (`jobs.spec.flips`) says whether the newer version flags problems more or
less often. The section diff joined with the citations says which rewritten sections the
problems cite more or less often after the rewrite, on the same responses.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import polars as pl
import pyarrow as pa

from jobs.analysis.agreement import PROBLEMATIC
from jobs.spec.diff import diff_sections
from jobs.spec.flips import SHIFT_SCHEMA, FlipTest, citation_shift, flip_test, pair_verdicts
from jobs.spec.sections import Spec

UNIT = ("scenario_id", "model", "sample")
PAIR_SCHEMA: dict[str, pl.DataType] = {
    "spec_a": pl.String(),  # the older version's label
    "spec_b": pl.String(),
    "family": pl.String(),  # null: every response judged under both
}
FLIPS_SCHEMA: dict[str, pl.DataType] = {
    **PAIR_SCHEMA,
    **{f.name: {"int": pl.Int64(), "bool": pl.Boolean()}.get(str(f.type), pl.Float64())
       for f in dataclasses.fields(FlipTest)},
}  # fmt: skip
"""`tables/spec_version_flips.parquet`: per pair of versions and family, the paired majority
verdicts counted (`FlipTest`: n, both, neither, a_only, b_only, rates with standard errors,
McNemar's statistic and two-sided p-value)."""
SECTION_SHIFT_SCHEMA: dict[str, pl.DataType] = {"spec_a": pl.String(), "spec_b": pl.String(), **SHIFT_SCHEMA}
"""`tables/spec_section_shift.parquet`: per pair of versions, each section rewritten between
them, the share of the problematic responses citing it under A and under B (`SHIFT_SCHEMA`)."""


_ARROW = {
    pl.String(): pa.string(),
    pl.Int64(): pa.int64(),
    pl.Float64(): pa.float64(),
    pl.Boolean(): pa.bool_(),
}


def arrow_schema(schema: Mapping[str, pl.DataType]) -> pa.Schema:
    """A table's schema as `jobs.stages.tables.write_table` takes it."""
    return pa.schema([(name, _ARROW[dtype]) for name, dtype in schema.items()])


def pairs_of(labels: Sequence[str]) -> list[tuple[str, str]]:
    """Each version with the next, in the order configured."""
    return list(itertools.pairwise(labels))


def majority_verdicts(verdict_table: pl.DataFrame) -> pl.DataFrame:
    """`verdict_table` (with `spec`) as `pair_verdicts` reads it: version, problematic (null: undecided)."""
    decided = pl.col("majority").is_in(["problematic", "ok"])
    return verdict_table.select(
        *UNIT,
        pl.col("spec").alias("version"),
        problematic=pl.when(decided).then(pl.col("majority") == "problematic"),
    )


def flips_table(
    verdict_table: pl.DataFrame, labels: Sequence[str], families: Mapping[str, Sequence[str]]
) -> pl.DataFrame:
    """The `FLIPS_SCHEMA` rows: every pair of consecutive versions, overall and per family."""
    verdicts = majority_verdicts(verdict_table)
    rows = []
    for a, b in pairs_of(labels):
        pairs = pair_verdicts(verdicts, version_a=a, version_b=b, unit=UNIT)
        scopes: list[tuple[str | None, pl.DataFrame]] = [(None, pairs)]
        scopes += [(f, pairs.filter(pl.col("model").is_in(list(ms)))) for f, ms in families.items()]
        for family, mine in scopes:
            if family is not None and mine.is_empty():
                continue  # a family judged under one of the two only
            rows.append({"spec_a": a, "spec_b": b, "family": family, **dataclasses.asdict(flip_test(mine))})
    return pl.DataFrame(rows, schema=FLIPS_SCHEMA)


def shift_table(
    verdict_table: pl.DataFrame, judgements: pl.DataFrame, citations: pl.DataFrame, specs: Mapping[str, Spec]
) -> pl.DataFrame:
    """The `SECTION_SHIFT_SCHEMA` rows: the rewritten sections of each pair of consecutive versions.

    A response cites a section under a version when a problematic judgement of it does.
    """
    verdicts = majority_verdicts(verdict_table)
    problematic = judgements.filter(pl.col("decision").is_in(list(PROBLEMATIC))).select(
        *UNIT, "judge", "spec"
    )
    cited = citations.join(problematic, on=[*UNIT, "judge", "spec"], how="semi").select(
        *UNIT, "section_id", version=pl.col("spec")
    )
    parts = [pl.DataFrame(schema=SECTION_SHIFT_SCHEMA)]  # no pair of versions: no rows
    for a, b in pairs_of(list(specs)):
        pairs = pair_verdicts(verdicts, version_a=a, version_b=b, unit=UNIT)
        diff = diff_sections(specs[a], specs[b])
        shift = citation_shift(pairs, cited, diff, version_a=a, version_b=b, unit=UNIT)
        parts.append(shift.select(pl.lit(a).alias("spec_a"), pl.lit(b).alias("spec_b"), *SHIFT_SCHEMA))
    return pl.concat(parts)
