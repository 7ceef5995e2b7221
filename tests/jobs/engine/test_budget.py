"""The budget rule (jobs/engine/budget.py) and the token rule it prices with (actors/tokens.py)."""

from __future__ import annotations

import polars as pl
import pytest

from actors.errors import BudgetExceeded
from actors.tokens import (
    CHARS_PER_TOKEN,
    DEFAULT_OUTPUT_TOKENS,
    UNCAPPED_OUTPUT_TOKENS,
    estimate_input_tokens,
    output_cap,
)
from actors.types import Endpoint, Prices, chat, spec_to_json
from jobs.engine.budget import Budget, estimate_usd


def test_no_budget_never_refuses_or_stops() -> None:
    budget = Budget(None)
    budget.refuse_over(spent_usd=1e9, to_make_usd=1e9)
    assert not budget.reached(1e9)


def test_refuses_only_past_the_budget() -> None:
    budget = Budget(10.0)
    budget.refuse_over(spent_usd=4.0, to_make_usd=6.0)  # exactly at the budget: allowed
    with pytest.raises(BudgetExceeded):
        budget.refuse_over(spent_usd=4.0, to_make_usd=6.01)


def test_the_run_and_the_stage_refusals_keep_their_messages() -> None:
    budget = Budget(1.0)
    with pytest.raises(BudgetExceeded) as run:
        budget.refuse_over(spent_usd=0.5, to_make_usd=2.0)
    assert str(run.value) == (
        "the run's calls still to make would cost about $2.00, with $0.50 already spent: over budget_usd=$1.00. "
        "Raise budget_usd or shrink the run; nothing was sent. "
        "`specstress estimate CONFIG` shows the cost per stage and model."
    )
    with pytest.raises(BudgetExceeded) as stage:
        budget.refuse_over(spent_usd=0.5, to_make_usd=2.0, stage="responses", calls=40)
    assert str(stage.value) == (
        "stage 'responses' would cost about $2.00 for 40 calls, with $0.50 already spent: "
        "over budget_usd=$1.00. Raise budget_usd or shrink the run; nothing was sent. "
        "`specstress estimate CONFIG` shows the cost per stage and model before a run."
    )


def test_the_running_spend_stops_at_the_budget() -> None:
    budget = Budget(1.0)
    assert not budget.reached(0.99) and budget.reached(1.0)
    assert str(budget.stopped("s", 1.25)) == (
        "stage 's' stopped at budget_usd=$1.00 (spent $1.25); everything paid is stored. "
        "Raise budget_usd and run the same command to resume."
    )


def test_estimate_prices_spec_bytes_in_and_the_output_cap_out() -> None:
    ep = Endpoint("m", "openai", "m-1", "http://localhost", "KEY", "acc", Prices(input=1.0, output=10.0))
    capped, uncapped = spec_to_json(chat("m", "hello " * 100, max_tokens=64)), spec_to_json(chat("m", "hi"))
    pending = pl.LazyFrame({"model": ["m", "m"], "spec": [capped, uncapped]})
    tokens_in = (len(capped) + len(uncapped)) / CHARS_PER_TOKEN
    expected = ep.prices.cost_usd(int(tokens_in), 64 + DEFAULT_OUTPUT_TOKENS)
    assert estimate_usd(pending, {"m": ep}) == pytest.approx(expected)


def test_the_client_side_token_guess() -> None:
    spec = chat("m", "x" * 40, system="y" * 8, max_tokens=100)
    assert estimate_input_tokens(spec) == 48 // CHARS_PER_TOKEN + 4 * 2 + 1
    assert output_cap(spec) == 100 and output_cap(chat("m", "x")) == UNCAPPED_OUTPUT_TOKENS
