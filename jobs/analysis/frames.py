"""Rows to polars frames typed by a pyarrow table schema.

It lives in analysis, which builds its tables with it and may not import stages; the
stages that write tables from rows import it from here.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa


def frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pl.DataFrame:
    """Rows as a frame with the polars types of `schema`, so an empty part keeps its columns."""
    empty = pl.from_arrow(schema.empty_table())
    assert isinstance(empty, pl.DataFrame)
    return pl.DataFrame(rows, schema=empty.schema)
