"""`specstress status`: the manifest's figures, readable while a run goes on and after it stops."""

from __future__ import annotations

import json
from typing import Any

from actors.errors import SpecstressError
from actors.storage import Location
from jobs.rundir import MANIFEST


def run_status(run_uri: str) -> dict[str, Any]:
    """Stage states and call figures of a run, with totals over stages."""
    text = Location(run_uri).read_text(MANIFEST)
    if text is None:
        raise SpecstressError(f"no {MANIFEST} in {run_uri}: not a run directory, or the run never started")
    data = json.loads(text)
    totals: dict[str, float] = {}
    for stage in data.get("stages", {}).values():
        for k, v in (stage.get("calls") or {}).items():
            if isinstance(v, int | float):
                totals[k] = totals.get(k, 0) + v
    data["totals"] = totals
    return data


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']} (created {status['created_at']})"]
    for name, st in status.get("stages", {}).items():
        calls = st.get("calls") or {}
        lines.append(
            f"  {name:<12} {st.get('state', '?'):<8} requests={calls.get('requests', '-')} "
            f"made={calls.get('made', '-')} cached={calls.get('cached', '-')} failed={calls.get('failed', '-')} "
            f"429s={calls.get('rate_limited', '-')} ${calls.get('cost_usd', 0.0):.4f}"
        )
        if st.get("error"):
            lines.append(f"    error: {st['error']}")
    t = status["totals"]
    lines.append(f"  total: made={int(t.get('made', 0))} cost=${t.get('cost_usd', 0.0):.4f}")
    for item in status.get("interrupted", []):
        lines.append(f"  resumed after a kill in {item['stage']}: {item['in_flight']} calls were in flight")
    return "\n".join(lines)
