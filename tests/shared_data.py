"""The real data in `../shared` beside the checkout: present for CI and developers, absent on a plain clone.

A test that needs it calls `shared_file`. On a plain clone the test is skipped with the path
it looked for; where `SPECSTRESS_REQUIRE_SHARED=1` (set by `.ci/run`, which has the data) a
missing file fails the test instead, so CI cannot pass by quietly skipping what it should run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
"""Where the shared data checkout sits: beside the repository root."""

REQUIRE_ENV = "SPECSTRESS_REQUIRE_SHARED"


def shared_available(*parts: str) -> bool:
    """Whether `../shared/<parts>` exists (for skip conditions evaluated at collection)."""
    return SHARED.joinpath(*parts).exists()


def shared_file(*parts: str) -> Path:
    """`../shared/<parts>`; skips the calling test when it is absent (fails where it is required)."""
    path = SHARED.joinpath(*parts)
    if path.exists():
        return path
    reason = f"{path} is absent (the ../shared data checkout is not beside this clone)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, but {REQUIRE_ENV}=1 requires it")
    pytest.skip(reason)
