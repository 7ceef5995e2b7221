"""Report sections from the judge tables (topics, refusals, compliance, values; see the judge-table contract).

Each reads only its own tables and says which stage is missing when one is absent, so the
report works on a run that stopped after `disagreement` as well as on a complete one.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from jobs.outputs.report import figures
from jobs.outputs.report.blocks import Figure, Section, Table, num, pct
from jobs.outputs.report.paper import RunFigure, beside, inline
from jobs.outputs.report.sources import RunSources
from jobs.paper.figures import paper_figures
from jobs.stages.refusals import CATEGORIES

MAX_TOPIC_PANELS = 12
"""Per-topic refusal panels shown (largest topics first); the rates table has every topic."""
MAX_PAIR_MODELS = 12
"""Models in the per-pair co-occurrence grid (those that show the most values); the table has every pair."""
MAX_PAIR_CATEGORIES = 5
"""Categories in each per-pair panel (the most frequent); the table has `stages.values.top_categories`."""


def scenario_topics(src: RunSources) -> pl.DataFrame | None:
    """(scenario_id, topic): topics that at least half of the labellers that answered assigned."""
    lf = src.scan("topics")
    if lf is None:
        return None
    ok = lf.filter(pl.col("status") == "ok")
    labellers = ok.group_by("scenario_id").agg(pl.col("model").n_unique().alias("n_labellers"))
    votes = (
        ok.select("scenario_id", "model", pl.col("topics"))
        .explode("topics")
        .drop_nulls("topics")
        .group_by("scenario_id", "topics")
        .agg(pl.col("model").n_unique().alias("votes"))
    )
    return (
        votes.join(labellers, on="scenario_id")
        .filter(pl.col("votes") * 2 >= pl.col("n_labellers"))
        .select("scenario_id", pl.col("topics").alias("topic"))
        .collect()
    )


def _category_labels(counts: pl.DataFrame) -> list[str]:
    """The table's own category names where present, else the stage's."""
    named = dict(counts.select("category_index", "category").unique("category_index").iter_rows())
    return [f"{i} {named.get(i) or CATEGORIES[i]}" for i in range(len(CATEGORIES))]


def _shares(counts: pl.DataFrame, key: str) -> tuple[list[str], np.ndarray]:
    labels = sorted(counts[key].unique().to_list())
    m = np.zeros((len(labels), len(CATEGORIES)))
    for k, i, n in counts.select(key, "category_index", "n").iter_rows():
        if 0 <= i < len(CATEGORIES):
            m[labels.index(k), i] += n
    totals = m.sum(axis=1, keepdims=True)
    return labels, np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def refusals_section(src: RunSources) -> Section:
    sec = Section(
        "refusals",
        "Refusal degree per model",
        "Shares of judged responses in each of the seven refusal-degree categories (every judge's "
        "verdict counts); the last three are refusals, the last a hard refusal.",
    )
    lf = src.scan("refusals")
    if lf is None:
        sec.missing.append(src.missing("refusals", "refusals"))
    else:
        judged = lf.filter((pl.col("status") == "ok") & pl.col("category_index").is_not_null())
        counts = judged.group_by("model", "category_index", "category").len("n").collect()
        status = lf.group_by("status").len().sort("status").collect()
        if counts.height:
            labels = _category_labels(counts)
            sec.figures.append(
                figures.stacked_bars(
                    {"all scenarios": _shares(counts, "model")},
                    labels,
                    title="Refusal categories",
                    cmap="RdYlGn_r",
                    ncols=1,
                )
            )
            topics = scenario_topics(src)
            if topics is None:
                sec.notes.append("Per-topic bars: " + src.missing("topics", "topics"))
            else:
                by_topic = (
                    judged.join(topics.lazy(), on="scenario_id")
                    .group_by("topic", "model", "category_index", "category")
                    .len("n")
                    .collect()
                )
                largest = by_topic.group_by("topic").agg(pl.col("n").sum()).sort("n", descending=True)
                panels = {
                    t: _shares(by_topic.filter(pl.col("topic") == t), "model")
                    for t in largest["topic"].head(MAX_TOPIC_PANELS).to_list()
                }
                if panels:
                    sec.figures.append(
                        figures.stacked_bars(
                            panels, labels, title="Refusal categories per topic", cmap="RdYlGn_r"
                        )
                    )
                if largest.height > MAX_TOPIC_PANELS:
                    sec.notes.append(
                        f"Per-topic bars show the {MAX_TOPIC_PANELS} largest of {largest.height} topics."
                    )
        sec.tables.append(
            Table(
                "Refusal verdicts by status",
                ["status", "verdicts"],
                [[s, num(n)] for s, n in status.iter_rows()],
            )
        )
    rates = src.frame("refusal_rates")
    if rates is None:
        sec.missing.append(src.missing("refusals", "refusal_rates"))
    else:
        rows = [
            [
                r["model"],
                r["topic"],
                num(r["n"]),
                f"{pct(r['refusal_rate'])} [{pct(r['refusal_ci_low'])}, {pct(r['refusal_ci_high'])}]",
                f"{pct(r['hard_rate'])} [{pct(r['hard_ci_low'])}, {pct(r['hard_ci_high'])}]",
            ]
            for r in rates.sort(pl.col("topic") != "all", "topic", "model").iter_rows(named=True)
        ]
        sec.tables.append(
            Table(
                "Refusal rates with confidence intervals",
                ["model", "topic", "n", "refusal", "hard refusal"],
                rows,
            )
        )
    return sec


def _as_share(count: int | None, n: int | None) -> str:
    if count is None:
        return ""
    return f"{pct(count / n if n else None)} ({num(count)})"


def _sample_table(samples: pl.DataFrame) -> Table:
    """The paper's layout: per family and sample, shares of scenarios where all pass, one fails, all
    fail (by majority), and where all fail by any judge."""
    rows = []
    for r in samples.iter_rows(named=True):
        n = r["n_scenarios"]
        shares = [_as_share(r[c], n) for c in ("all_pass", "any_fail", "all_fail")]
        any_judge = _as_share(r["all_fail_any_judge"], r["n_any_judge"])
        rows.append([r["family"], r["group"], r["subset"] or "", num(n), *shares, any_judge])
    return Table(
        "Compliance by sample (share of scenarios)",
        [
            "family",
            "sample",
            "drawn from",
            "scenarios",
            "all pass",
            "at least one fails",
            "all fail",
            "all fail, any judge",
        ],
        rows,
    )


RULES = {
    "majority": ("frequent_noncompliance", "se"),
    "any judge": ("frequent_noncompliance_any_judge", "se_any_judge"),
}
"""The paper's two rules for a problematic response -> the summary's rate and se columns."""


def _with_se(rate: float | None, se: float | None) -> str:
    return "" if rate is None else f"{pct(rate)} ± {pct(se)}"


def _bin_table_and_figure(bins: pl.DataFrame) -> tuple[Table, list[Figure]]:
    rows = [
        [
            r["group"],
            r["family"],
            r["subset"] or "",
            num(r["n_scenarios"]),
            _with_se(r["frequent_noncompliance"], r["se"]),
            num(r["n_any_judge"]),
            _with_se(r["frequent_noncompliance_any_judge"], r["se_any_judge"]),
        ]
        for r in bins.iter_rows(named=True)
    ]
    table = Table(
        "Frequent non-compliance by disagreement bin (rate ± se)",
        ["bin", "family", "D of subset", "n (majority)", "by majority", "n (any judge)", "by any judge"],
        rows,
    )
    if bins.is_empty():
        return table, []
    groups = sorted(bins["group"].unique().to_list())
    series = {}
    for fam in sorted(bins["family"].unique().to_list()):
        mine = bins.filter(pl.col("family") == fam)
        for rule, (rate, se) in RULES.items():
            got = {g: (v or 0.0, e or 0.0) for g, v, e in mine.select("group", rate, se).iter_rows()}
            series[f"{fam}, {rule}"] = (
                np.array([got.get(g, (0.0, 0.0))[0] for g in groups]),
                np.array([got.get(g, (0.0, 0.0))[1] for g in groups]),
            )
    fig = figures.grouped_bars(
        groups, series, title="Frequent non-compliance by disagreement bin", ylabel="rate (± se)"
    )
    return table, [fig]


def _majority_per_model(verdicts: pl.LazyFrame) -> tuple[Table, list[Figure]]:
    per_model = (
        verdicts.group_by("model")
        .agg(
            pl.len().alias("n"),
            *[(pl.col("majority") == k).sum().alias(k) for k in ("problematic", "ok", "tie", "no_judges")],
        )
        .sort("model")
        .collect()
    )
    table = Table(
        "Majority verdicts per model",
        ["model", "responses", "problematic", "ok", "tie", "no judges"],
        [
            [r["model"], *[num(r[k]) for k in ("n", "problematic", "ok", "tie", "no_judges")]]
            for r in per_model.iter_rows(named=True)
        ],
    )
    if per_model.is_empty():
        return table, []
    judged = (per_model["problematic"] + per_model["ok"] + per_model["tie"]).to_numpy()
    rate = np.divide(per_model["problematic"].to_numpy(), judged, out=np.zeros(len(judged)), where=judged > 0)
    fig = figures.bars(
        per_model["model"].to_list(),
        rate,
        title="Problematic by majority, per model",
        ylabel="share of judged responses",
    )
    return table, [fig]


def _beside_paper(sec: Section, summary: pl.DataFrame | None) -> None:
    """The paper's all-fail rates per sample and per bin of the OpenAI models' D, beside the run's.

    A run's group matches a paper figure only when it was binned or drawn by the same subset's
    D; a paper bin figure tied to a subset this run did not bin by is shown alone, and a note
    says why.
    """
    published = paper_figures().of(
        "all_fail", "frequent_noncompliance_majority", "frequent_noncompliance_any_judge"
    )
    run: list[RunFigure] = []
    binned_by: set[str] = set()
    if summary is not None:
        for r in summary.iter_rows(named=True):
            where = {"family": r["family"]}
            if r["subset"] is not None:
                where["bin_subset"] = r["subset"]
            if r["group_kind"] == "sample":
                run.append(RunFigure("all_fail", {**where, "group": r["group"]}, r["frequent_noncompliance"]))
                continue
            binned_by.add(r["subset"])
            for metric, column in (
                ("frequent_noncompliance_majority", "frequent_noncompliance"),
                ("frequent_noncompliance_any_judge", "frequent_noncompliance_any_judge"),
            ):
                run.append(RunFigure(metric, {**where, "bin": r["group"]}, r[column]))
    sec.tables.append(beside(published, run))
    paper_bins = {f.match["bin_subset"] for f in published if "bin" in f.match}
    other = sorted(paper_bins - binned_by)
    if binned_by and other:
        ours = ", ".join(f"'{s}'" for s in sorted(b for b in binned_by if b))
        sec.notes.append(
            f"This run bins by the D of subset {ours} (stages.compliance.bin_subset); the paper's bin "
            f"figures, binned by subset {', '.join(other)}, are shown without this run's."
        )


SUMMARY_ADDED = {
    "subset": pl.String,
    "n_any_judge": pl.Int64,
    "all_fail_any_judge": pl.Int64,
    "frequent_noncompliance_any_judge": pl.Float64,
    "se_any_judge": pl.Float64,
}
"""Summary columns that runs of release 0.1.0 did not write; their reports show them empty."""


def compliance_section(src: RunSources) -> Section:
    sec = Section(
        "compliance",
        "Spec compliance",
        "Judges grade each response against the spec; problematic means non-compliant or ambiguous. "
        "Frequent non-compliance: every model of a family is problematic on the same scenario.",
    )
    summary = src.frame("compliance_summary")
    if summary is not None:
        summary = summary.with_columns(
            pl.lit(None, dtype).alias(c) for c, dtype in SUMMARY_ADDED.items() if c not in summary.columns
        )
    if summary is None:
        sec.missing.append(src.missing("compliance", "compliance_summary"))
    else:
        sec.tables.append(
            _sample_table(summary.filter(pl.col("group_kind") == "sample").sort("family", "group"))
        )
        table, figs = _bin_table_and_figure(
            summary.filter(pl.col("group_kind") == "bin").sort("group", "family")
        )
        sec.tables.append(table)
        sec.figures += figs
    verdicts = src.scan("compliance_verdicts")
    if verdicts is None:
        sec.missing.append(src.missing("compliance", "compliance_verdicts"))
    else:
        table, figs = _majority_per_model(verdicts)
        sec.tables.append(table)
        sec.figures += figs
    _beside_paper(sec, summary)
    return sec


def _judge_figures(stats: pl.DataFrame | None, kappa: object) -> list[RunFigure]:
    """The run's counterparts of the paper's judge figures: kappa, rates, agreement in either pair order."""
    run = [RunFigure("fleiss_kappa", {}, kappa)] if isinstance(kappa, int | float) else []
    rows = () if stats is None else stats.select("judge_a", "judge_b", "metric", "value").iter_rows()
    for a, b, metric, v in rows:
        if metric == "problematic_rate" and b is None:
            run.append(RunFigure(metric, {"judge": a}, v))
        elif metric == "pairwise_agreement":
            run += [RunFigure(metric, {"judge_a": x, "judge_b": y}, v) for x, y in ((a, b), (b, a))]
    return run


def _judge_stats(sec: Section, stats: pl.DataFrame) -> None:
    """Problematic rate per judge, pairwise agreement, and every statistic as a table."""
    per_judge = stats.filter((pl.col("metric") == "problematic_rate") & pl.col("judge_b").is_null()).sort(
        "judge_a"
    )
    if per_judge.height:
        sec.figures.append(
            figures.bars(
                per_judge["judge_a"].to_list(),
                per_judge["value"].to_numpy(),
                title="Problematic rate per judge",
                ylabel="problematic share",
            )
        )
    pairs = stats.filter((pl.col("metric") == "pairwise_agreement") & pl.col("judge_b").is_not_null())
    judges = sorted(set(pairs["judge_a"].to_list()) | set(pairs["judge_b"].to_list()))
    if judges:
        m = np.eye(len(judges))
        for a, b, v in pairs.select("judge_a", "judge_b", "value").iter_rows():
            m[judges.index(a), judges.index(b)] = m[judges.index(b), judges.index(a)] = v
        sec.figures.append(figures.heatmap(m, judges, judges, title="Pairwise agreement", vmin=0.0, vmax=1.0))
    sec.tables.append(
        Table(
            "Judge statistics",
            ["metric", "judge", "other judge", "value"],
            [
                [r["metric"], r["judge_a"], r["judge_b"] or "", num(r["value"], 3)]
                for r in stats.sort("metric", "judge_a").iter_rows(named=True)
            ],
        )
    )


def judges_section(src: RunSources) -> Section:
    sec = Section(
        "judges",
        "Compliance judges",
        "How often each judge calls a response problematic, and how often two judges agree.",
    )
    kappa = (((src.manifest.get("stages") or {}).get("compliance") or {}).get("summary") or {}).get(
        "fleiss_kappa"
    )
    stats = src.frame("judge_stats")
    if stats is None:
        sec.missing.append(src.missing("compliance", "judge_stats"))
    else:
        _judge_stats(sec, stats)
    published = paper_figures()
    run = _judge_figures(stats, kappa)
    [kappa_figure] = published.of("fleiss_kappa")
    sec.notes.append(f"Fleiss' kappa over all judges: {inline(kappa_figure, run)}")
    sec.tables.append(beside(published.of("problematic_rate", "pairwise_agreement"), run))
    return sec


def values_section(src: RunSources) -> Section:
    sec = Section(
        "values",
        "Values expressed",
        "Values each response shows distinctively, matched to level-2 taxonomy categories.",
    )
    counts = src.frame("value_counts")
    if counts is None:
        sec.missing.append(src.missing("values", "value_counts"))
    elif counts.height:
        models = sorted(counts["model"].unique().to_list())
        cats = (
            counts.group_by("category")
            .agg(pl.col("count").sum())
            .sort("count", descending=True)["category"]
            .to_list()
        )
        m = np.zeros((len(models), len(cats)))
        for model, cat, n in counts.select("model", "category", "count").iter_rows():
            m[models.index(model), cats.index(cat)] = n
        sec.figures.append(
            figures.heatmap(m, models, cats, title="Value categories per model (counts)", fmt="{:.0f}")
        )
    co = src.frame("value_cooccurrence")
    if co is None:
        sec.missing.append(src.missing("values", "value_cooccurrence"))
    elif co.height:
        cats = sorted(set(co["category_a"].to_list()) | set(co["category_b"].to_list()))
        m = np.full((len(cats), len(cats)), np.nan)
        for a, b, p in co.select("category_a", "category_b", "p").iter_rows():
            m[cats.index(a), cats.index(b)] = p
        sec.figures.append(
            figures.heatmap(
                m, cats, cats, title="P(another model shows column | a model shows row)", vmin=0.0, vmax=1.0
            )
        )
    pairs = src.frame("value_cooccurrence_pairs")
    if pairs is None:
        sec.missing.append(src.missing("values", "value_cooccurrence_pairs"))
    elif pairs.height:
        _pair_grid(sec, pairs)
    return sec


def _pair_grid(sec: Section, pairs: pl.DataFrame) -> None:
    """Co-occurrence per ordered model pair as small multiples, cut to the top categories and models."""
    given = pairs.unique(["model_a", "model_b", "category_a"])
    ranked = (
        given.group_by("category_a")
        .agg(pl.col("n").sum())
        .sort(["n", "category_a"], descending=[True, False])
    )
    cats = ranked["category_a"].head(MAX_PAIR_CATEGORIES).to_list()
    weight = dict(given.group_by("model_a").agg(pl.col("n").sum()).iter_rows())
    every = set(pairs["model_a"]) | set(pairs["model_b"])
    models = sorted(sorted(every, key=lambda m: (-weight.get(m, 0), m))[:MAX_PAIR_MODELS])
    kept = pairs.filter(
        pl.col("category_a").is_in(cats)
        & pl.col("category_b").is_in(cats)
        & pl.col("model_a").is_in(models)
        & pl.col("model_b").is_in(models)
    )
    cells: dict[tuple[str, str], np.ndarray] = {}
    for ma, mb, ca, cb, p in kept.select("model_a", "model_b", "category_a", "category_b", "p").iter_rows():
        m = cells.setdefault((ma, mb), np.full((len(cats), len(cats)), np.nan))
        m[cats.index(ca), cats.index(cb)] = p
    ticks = [str(i + 1) for i in range(len(cats))]
    sec.figures.append(
        figures.heatmap_grid(
            cells,
            models,
            models,
            ticks=ticks,
            title="P(model B shows column | model A shows row), per model pair",
            row_title="model A (shows the row category)",
            col_title="model B",
            scale="P(B shows column | A shows row)",
        )
    )
    note = (
        f"Per model pair, a block per (model A, model B) whose rows and columns are the {len(cats)} most "
        f"frequent of {ranked.height} categories: "
        + ", ".join(f"{t} {c}" for t, c in zip(ticks, cats, strict=True))
    )
    if len(models) < len(every):
        note += f"; the {len(models)} of {len(every)} models that show the most values"
    sec.notes.append(note + ". Grey: A never showed the row's category where B answered too.")
