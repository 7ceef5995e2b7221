"""An estimate's lines and the rules every way of counting them shares: typical sizes, visible output."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.conf.schema import RunConf
from jobs.engine.rundir import Manifest, RunDir

TYPICAL: dict[str, tuple[int, int]] = {
    "scenarios_neutral": (250, 700),
    "scenarios_biased": (400, 350),
    "responses": (150, 600),
    "rubrics": (900, 1600),
    "scores_per_model": (700, 160),
    "embeddings": (40, 0),
    "topics": (250, 80),
    "refusals": (800, 80),
    "compliance": (800, 400),
    "values": (2500, 600),
    "values_embeddings": (8, 0),  # per phrase or category text
}
"""(input, output) tokens assumed per call: whole calls where exact requests cannot be built
yet, and the visible answer size where they can."""


TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "stored_input_tokens",
    "stored_output_tokens",
)
"""The token counts of a `Line`, which add up when lines are summed."""


@dataclass
class Line:
    """One stage x model row of the estimate."""

    stage: str
    model: str
    calls: int
    cached: int = 0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    exact: bool = False
    cached_input_tokens: float = 0.0
    """Prompt tokens expected to be read from the provider's prompt cache (part of input_tokens)."""
    cache_write_tokens: float = 0.0
    """Prompt tokens expected to be written to the cache (Anthropic bills these apart)."""
    stored_input_tokens: float = 0.0
    """Input tokens of the calls already in the call store: they cost nothing again."""
    stored_output_tokens: float = 0.0
    versions: dict[str, Line] = field(default_factory=dict, compare=False)
    """Where several spec versions are judged (compliance): this line's part per version label,
    each version's spec the cached prefix of its own calls. The parts sum to the line."""

    @property
    def to_make(self) -> int:
        return self.calls - self.cached

    def add(self, other: Line) -> None:
        """Add another line's calls and tokens to this one's."""
        self.calls += other.calls
        self.cached += other.cached
        for name in TOKEN_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def visible_output(conf: RunConf, stage: str) -> int:
    """Visible answer tokens assumed for one exact request of `stage` (a joint score covers every model)."""
    if stage == "scores":
        sc = conf.stages.scores
        per_model = TYPICAL["scores_per_model"][1]
        return per_model * len(sc.models or conf.stages.responses.models) if sc.mode == "joint" else per_model
    return TYPICAL[stage][1]


def typical(stage: str, model: str, calls: int, kind: str, max_tokens: int | None) -> Line:
    tin, tout = TYPICAL[kind]
    return Line(
        stage, model, calls, input_tokens=calls * tin, output_tokens=calls * min(tout, max_tokens or tout)
    )


def stage_done(run: RunDir, stage: str) -> bool:
    """Whether the run's manifest records `stage` as finished."""
    return Manifest(run.root).data["stages"].get(stage, {}).get("state") == "done"


def with_unwritten(run: RunDir, stage: str, earlier: list[Line], whole: Line) -> list[Line]:
    """`earlier` (exact lines from the requests a stage wrote) plus, when the stage stopped part-way,
    the calls of the chunks it never wrote: `whole` (the stage counted from config) less those seen.

    Chunked stages (rubrics, scores, the labelling stages) write each chunk's requests just
    before sending them, so a stopped stage's tables cover its first chunks only. The rest
    joins the line of the same model, which is then no longer exact.
    """
    seen = sum(ln.calls for ln in earlier)
    if stage_done(run, stage) or whole.calls <= seen:
        return earlier
    rest, share = whole.calls - seen, (whole.calls - seen) / whole.calls
    same = next((ln for ln in earlier if ln.model == whole.model), None)
    line = same or Line(whole.stage, whole.model, 0)
    line.calls += rest
    line.input_tokens += whole.input_tokens * share
    line.output_tokens += whole.output_tokens * share
    line.exact = False
    return earlier if same else [*earlier, line]
