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
    for figures in data.get("calls", {}).values():
        for k, v in figures.items():
            if isinstance(v, int | float) and k != "elapsed_s":
                totals[k] = totals.get(k, 0) + v
    data["totals"] = totals
    return data


def format_status(status: dict[str, Any]) -> str:
    lines = [f"run {status['run_id']} (created {status['created_at']})"]
    if "state" in status:
        resumable = " (resumable: run the same command)" if status.get("resumable") else ""
        lines.append(f"  state: {status['state']}{resumable}")
    for name, st in status.get("stages", {}).items():
        lines.append(f"  stage {name:<14} {st.get('state', '?')}")
        if st.get("error"):
            lines.append(f"    error: {st['error']}")
    for name, c in status.get("calls", {}).items():
        failures = ", ".join(f"{k} {v}" for k, v in sorted((c.get("failures") or {}).items())) or "none"
        lines.append(
            f"  calls {name:<22} requests={c['requests']} made={c['made']} cached={c['cached']} "
            f"retries={c['retries']} 429s={c['rate_limited']} failed={c['failed']} ({failures}) ${c['cost_usd']:.4f}"
        )
    t = status["totals"]
    lines.append(f"  total: made={int(t.get('made', 0))} cost=${t.get('cost_usd', 0.0):.4f}")
    for item in status.get("interrupted", []):
        lines.append(f"  resumed after a kill in {item['stage']}: {item['in_flight']} calls were in flight")
    return "\n".join(lines)
