"""Report sections from the analysis tables: disagreement, spectrum positions, outliers."""

from __future__ import annotations

import numpy as np
import polars as pl

from jobs.analysis.disagreement import BIN_LABELS
from jobs.outputs.report import figures
from jobs.outputs.report.blocks import Section, Table, num, pct
from jobs.outputs.report.paper import RunFigure, beside
from jobs.outputs.report.sources import RunSources
from jobs.paper.figures import paper_figures
from jobs.stages.rubrics import POSITIONS

D_MAX = 3.0
"""Largest possible D: the population std of positions on a 0..6 scale."""
D_STEP = 0.1


def disagreement_section(src: RunSources) -> Section:
    sec = Section(
        "disagreement",
        "Disagreement per model subset",
        "D(x, M) is the larger standard deviation of the subset's positions on either value; "
        "the dashed line is the high-disagreement threshold.",
    )
    lf = src.scan("disagreement")
    if lf is None:
        sec.missing.append(src.missing("disagreement", "disagreement"))
        sec.tables.append(_beside_paper(src, None, None))
        return sec
    threshold = float(src.stage_setting("disagreement", "high_threshold", 1.5))
    n_bins = round(D_MAX / D_STEP)
    binned = (
        lf.filter(pl.col("d").is_not_null())
        .with_columns(b=(pl.col("d") / D_STEP + 1e-9).floor().cast(pl.Int64).clip(0, n_bins - 1))
        .group_by("subset", "b")
        .len()
        .collect()
    )
    subsets = _subset_order(src, binned["subset"].unique().to_list())
    counts = {s: np.zeros(n_bins) for s in subsets}
    for subset, b, n in binned.iter_rows():
        counts[subset][b] = n
    if counts:
        sec.figures.append(
            figures.histograms(
                counts,
                np.linspace(0.0, D_MAX, n_bins + 1),
                threshold=threshold,
                title="Disagreement histograms",
                xlabel="D (max std of positions)",
            )
        )
    per_bin = (
        lf.group_by("subset")
        .agg(
            pl.len().alias("scenarios"),
            pl.col("high").fill_null(False).sum().alias("high"),
            *[(pl.col("bin") == b).sum().alias(b) for b in BIN_LABELS],
        )
        .collect()
    )
    picked = src.frame("selections")
    selected = dict(picked.group_by("subset").len().iter_rows()) if picked is not None else {}
    rows = []
    for r in sorted(
        per_bin.iter_rows(named=True),
        key=lambda r: subsets.index(r["subset"]) if r["subset"] in subsets else 99,
    ):
        rows.append(
            [
                r["subset"],
                num(r["scenarios"]),
                f"{num(r['high'])} ({pct(r['high'] / max(r['scenarios'], 1))})",
            ]
            + [num(r[b]) for b in BIN_LABELS]
            + [num(selected.get(r["subset"], 0)) if picked is not None else "not run"]
        )
    sec.tables.append(
        Table(
            f"Scenarios per subset and disagreement bin (high: D ≥ {threshold})",
            ["subset", "scenarios", "high", *BIN_LABELS, "selected (k-center)"],
            rows,
        )
    )
    sec.tables.append(_beside_paper(src, per_bin, selected if picked is not None else None))
    _committee(src, sec)
    return sec


def _committee(src: RunSources, sec: Section) -> None:
    """In committee mode: the rule's outcome on the calibration sample, and what it leaves without D."""
    summary = ((src.manifest.get("stages") or {}).get("responses") or {}).get("summary") or {}
    c = summary.get("committee")
    if not c:
        return
    stopped = c["scenarios"] - c["sent"]
    sec.notes.append(
        f"Committee mode: {', '.join(c['models'])} answered every scenario, the other models "
        f"{num(c['sent'])} of {num(c['scenarios'])}. D over a subset is computed only where every model of "
        f"the subset was asked, so the {num(stopped)} scenarios only the committee answered have no D over "
        "subsets with other models. The recall below is measured on the calibration sample, which every "
        "model answered."
    )
    recall = "not measured (no high scenario in the sample)"
    if c["recall"] is not None:
        low, high = c["recall_interval"]
        recall = f"{pct(c['recall'])} ({pct(low)} – {pct(high)})"
    cost = (
        ""
        if c["cost_share"] is None
        else f"{pct(c['cost_share'])} (${c['responses_usd']:,.2f} of ${c['full_sweep_usd']:,.2f})"
    )
    sec.tables.append(
        Table(
            "Committee mode, on its calibration sample",
            [
                "calibration scenarios",
                "high among them",
                "threshold (committee D ≥)",
                "recall (95% interval)",
                "target",
                "sent to every model",
                "responses' cost against a full sweep",
            ],
            [
                [
                    num(c["calibration"]),
                    num(c["high_in_calibration"]),
                    f"{c['threshold']:.3g}",
                    recall,
                    pct(c["target_recall"], 0),
                    f"{num(c['sent'])} ({pct(c['share_sent'])})",
                    cost,
                ]
            ],
        )
    )


def _beside_paper(src: RunSources, per_bin: pl.DataFrame | None, selected: dict[str, int] | None) -> Table:
    """The paper's scenario counts and split sizes beside the run's (δ-diverse set, high D, selections)."""
    run: list[RunFigure] = []
    scenarios = src.scan("scenarios")
    if scenarios is not None:
        run.append(RunFigure("scenarios_generated", {}, scenarios.select(pl.len()).collect().item()))
    diversity = src.scan("diversity")
    if diversity is not None:
        n = diversity.filter(pl.col("diverse")).select(pl.len()).collect().item()
        run.append(RunFigure("scenarios_diverse", {}, n))
    for subset, scored, high in (
        () if per_bin is None else per_bin.select("subset", "scenarios", "high").iter_rows()
    ):
        run.append(RunFigure("scenarios_high", {"subset": subset}, high))
        run.append(RunFigure("scenarios_high_share", {"subset": subset}, high / scored if scored else None))
        if selected is not None:
            run.append(RunFigure("split_size", {"subset": subset}, selected.get(subset, 0)))
    figs = paper_figures().of(
        "scenarios_generated",
        "scenarios_diverse",
        "scenarios_some_pair",
        "scenarios_some_pair_share",
        "scenarios_high",
        "scenarios_high_share",
        "split_size",
    )
    return beside(figs, run)


def _subset_order(src: RunSources, present: list[str]) -> list[str]:
    summary = ((src.manifest.get("stages", {}).get("disagreement") or {}).get("summary") or {}).get("subsets")
    order = [s for s in (summary or {}) if s in present]
    return order + sorted(set(present) - set(order))


def positions_section(src: RunSources) -> Section:
    sec = Section(
        "positions",
        "Spectrum positions per model",
        "Share of each model's scored responses at each rubric position (0 extreme_oppose .. 6 extreme_favor).",
    )
    lf = src.scan("scores")
    if lf is None:
        sec.missing.append(src.missing("scores", "scores"))
        return sec
    sample = int(src.stage_setting("disagreement", "sample", 0))
    counts = (
        lf.filter(
            (pl.col("status") == "ok") & pl.col("position").is_not_null() & (pl.col("sample") == sample)
        )
        .group_by("model", "value_slot", "position")
        .len()
        .collect()
    )
    status = lf.group_by("status").len().sort("status").collect()
    models = sorted(counts["model"].unique().to_list())
    panels = {}
    for slot in (1, 2):
        m = np.zeros((len(models), len(POSITIONS)))
        for model, s, pos, n in counts.iter_rows():
            if s == slot and 0 <= pos < len(POSITIONS):
                m[models.index(model), pos] = n
        totals = m.sum(axis=1, keepdims=True)
        panels[f"value {slot}"] = (models, np.divide(m, totals, out=np.zeros_like(m), where=totals > 0))
    if models:
        sec.figures.append(
            figures.stacked_bars(
                panels,
                [f"{i} {p}" for i, p in enumerate(POSITIONS)],
                title="Position distributions",
                cmap="RdBu",
            )
        )
    sec.tables.append(
        Table("Score rows by status", ["status", "rows"], [[s, num(n)] for s, n in status.iter_rows()])
    )
    return sec


def outliers_section(src: RunSources) -> Section:
    sec = Section(
        "outliers",
        "Outlier responses per model",
        "A response is an outlier when its position is far from most other models' on either value.",
    )
    df = src.frame("outlier_counts")
    if df is None:
        sec.missing.append(src.missing("disagreement", "outlier_counts"))
        return sec
    df = df.sort("n_outliers", descending=True)
    if df.height:
        sec.figures.append(
            figures.bars(
                df["model"].to_list(),
                df["n_outliers"].to_numpy(),
                title="Outliers per model",
                ylabel="outlier responses",
                annotate=[pct(r) for r in df["outlier_rate"]],
            )
        )
    sec.tables.append(
        Table(
            "Outlier counts",
            ["model", "responses", "outliers", "rate"],
            [
                [r["model"], num(r["n_responses"]), num(r["n_outliers"]), pct(r["outlier_rate"])]
                for r in df.iter_rows(named=True)
            ],
        )
    )
    return sec
