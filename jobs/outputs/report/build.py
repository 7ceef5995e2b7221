"""`specstress report RUN`: gather every section and write `<run>/report/index.html`."""

from __future__ import annotations

from dataclasses import dataclass

from actors.errors import ConfigError
from jobs.outputs.report import facts, page
from jobs.outputs.report.explorer import explorer_data
from jobs.outputs.report.sections_analysis import disagreement_section, outliers_section, positions_section
from jobs.outputs.report.sections_findings import findings_section
from jobs.outputs.report.sections_judges import (
    compliance_section,
    judges_section,
    refusals_section,
    values_section,
)
from jobs.outputs.report.sections_spec import spec_sections_section
from jobs.outputs.report.sections_versions import spec_versions_section
from jobs.outputs.report.sources import RunSources

REPORT_FILE = "index.html"


@dataclass(frozen=True)
class ReportOptions:
    """Bounds on the explorer, which set the page's weight together with the number of models."""

    max_scenarios: int = 100
    """Selected scenarios in the explorer, highest disagreement first."""
    max_chars: int = 4000
    """Characters kept of each response (the rest is cut, and the cut is shown)."""

    def __post_init__(self) -> None:
        for name in ("max_scenarios", "max_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"report option '{name}': must be >= 1, got {getattr(self, name)}")


def build_report(run_uri: str, options: ReportOptions | None = None) -> str:
    """Write the report of a run (finished, stopped or still running); returns its path."""
    opts = options or ReportOptions()
    src = RunSources.open(run_uri)
    explorer = explorer_data(src, max_scenarios=opts.max_scenarios, max_chars=opts.max_chars)
    run_facts = facts.facts_section(src)
    run_facts.collapsed = True
    # What was found first; how the run went (configuration, timings, engine figures, costs) last.
    sections = [
        findings_section(src, explorer),
        disagreement_section(src),
        positions_section(src),
        outliers_section(src),
        refusals_section(src),
        compliance_section(src),
        spec_sections_section(src, explorer),
        spec_versions_section(src),
        judges_section(src),
        values_section(src),
        run_facts,
    ]
    html = page.render(
        run_id=str(src.manifest.get("run_id")),
        sections=sections,
        config_text=facts.config_text(src),
        explorer=explorer,
    )
    out = src.run.root.child("report")
    out.makedirs()
    out.write_text(REPORT_FILE, html)
    return out.join(REPORT_FILE)
