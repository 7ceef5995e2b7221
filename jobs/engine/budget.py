"""The `budget_usd` rule and its messages, in one place.

Three guards share it: the driver's refusal before any stage (from the config estimate),
the engine's refusal before each stage (from the calls it is about to make), and the
engine's stop once the running spend reaches the budget (estimates can be low).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from actors.errors import BudgetExceeded
from actors.tokens import CHARS_PER_TOKEN, DEFAULT_OUTPUT_TOKENS
from actors.types import Endpoint

ESTIMATE_HINT = "`specstress estimate CONFIG` shows the cost per stage and model"


@dataclass(frozen=True)
class Budget:
    """A run's `budget_usd` (None: no budget) and the refusals built from it."""

    limit_usd: float | None

    def refuse_over(
        self, spent_usd: float, to_make_usd: float, *, stage: str | None = None, calls: int = 0
    ) -> None:
        """Raise `BudgetExceeded` (nothing sent) when `spent_usd` plus `to_make_usd` passes the budget.

        `stage` None: the run's calls still to make (the driver, before any stage); else the
        `calls` of one stage (the engine, before it dispatches them).
        """
        if self.limit_usd is None or spent_usd + to_make_usd <= self.limit_usd:
            return
        if stage is None:
            what, when = f"the run's calls still to make would cost about ${to_make_usd:.2f}", ""
        else:
            what, when = (
                f"stage '{stage}' would cost about ${to_make_usd:.2f} for {calls} calls",
                " before a run",
            )
        raise BudgetExceeded(
            f"{what}, with ${spent_usd:.2f} already spent: over budget_usd=${self.limit_usd:.2f}. "
            f"Raise budget_usd or shrink the run; nothing was sent. {ESTIMATE_HINT}{when}."
        )

    def reached(self, spent_usd: float) -> bool:
        """True once the spend is at the budget: dispatch stops."""
        return self.limit_usd is not None and spent_usd >= self.limit_usd

    def stopped(self, stage: str, spent_usd: float) -> BudgetExceeded:
        """The error of a stage that stopped at the budget (resumable: everything paid is stored)."""
        return BudgetExceeded(
            f"stage '{stage}' stopped at budget_usd=${self.limit_usd:.2f} "
            f"(spent ${spent_usd:.2f}); everything paid is stored. "
            "Raise budget_usd and run the same command to resume."
        )


def estimate_usd(pending: pl.LazyFrame, endpoints: dict[str, Endpoint]) -> float:
    """Dollars of `pending` calls (columns model, spec): spec JSON at `CHARS_PER_TOKEN` in,
    max_tokens (or `DEFAULT_OUTPUT_TOKENS`) out. Errs high: every cap is assumed used."""
    per_model = (
        pending.with_columns(
            in_tok=pl.col("spec").str.len_bytes() / CHARS_PER_TOKEN,
            out_tok=pl.col("spec")
            .str.extract(r'"max_tokens":(\d+)')
            .cast(pl.Float64, strict=False)
            .fill_null(float(DEFAULT_OUTPUT_TOKENS)),
        )
        .group_by("model")
        .agg(pl.col("in_tok").sum(), pl.col("out_tok").sum())
        .collect()
    )
    return sum(
        endpoints[row["model"]].prices.cost_usd(int(row["in_tok"]), int(row["out_tok"]))
        for row in per_model.iter_rows(named=True)
    )
