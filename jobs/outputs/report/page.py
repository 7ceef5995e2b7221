"""Rendering the report page: one HTML file with its CSS, JS, plots and data inline.

The template is autoescaped (Jinja2), so every table cell, note and caption is escaped.
The explorer's data goes into a `<script type="application/json">` block with `<`, `>`
and `&` written as JSON escapes, so no string in it (a model answer holding
`</script>`, say) can end the block; the page's script reads it with `JSON.parse` and
writes it with `textContent` only. A Content-Security-Policy allows only that script
(by its hash) and data-URI images: injected markup could neither run nor fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from jobs.outputs.report.blocks import Section

_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def script_json(data: Any) -> str:
    """JSON that is safe inside a `<script>` element: no `<`, `>` or `&` survives literally."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).translate(
        _JSON_ESCAPES
    )


def _asset(name: str) -> str:
    return resources.files("jobs.outputs.report").joinpath("assets", name).read_text(encoding="utf-8")


def render(*, run_id: str, sections: list[Section], config_text: str, explorer: dict[str, Any]) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(_asset("report.html"))
    js = _asset("report.js")
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    return template.render(
        run_id=run_id,
        sections=sections,
        config_text=config_text,
        css=Markup(_asset("report.css")),
        js=Markup(js),
        script_hash=f"sha256-{digest}",
        data_json=Markup(script_json(explorer)),
        explorer_missing=list(explorer["missing"].values()),
        n_scenarios=len(explorer["scenarios"]),
        max_scenarios=explorer["max_scenarios"],
        max_chars=explorer["max_chars"],
    )
