"""Fail fast: stop a stage whose model fails every call for a reason retrying cannot fix.

A wrong key, an account out of credit, a model id the provider does not know, or a
parameter every request carries fails each call of one model alike; without this rule a
paper-scale run would make every one of them and go on over the other models. Per model and stage run, the rule counts the
failures of kinds the client never retries (`actors.errors.RETRYABLE`) until the model's
first answer: `engine.fail_fast_after` of them with no answer stops the stage. Once a model
has answered, its failures are those of single requests and never stop a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from actors.errors import RETRYABLE, SystematicFailure
from actors.types import Endpoint

MESSAGE_CHARS = 300
"""The provider's message is cut to this length in the error (it is stored in full)."""


@dataclass
class ModelOutcomes:
    """One model's outcomes so far in this stage run, as far as the rule needs them."""

    answered: bool = False
    hopeless: int = 0
    """Calls failed with a kind the client never retries, while none was answered."""
    kind: str = ""
    error: str = ""
    """The latest such failure's kind and stored error (the provider's message)."""


class FailFast:
    """Counts stored rows per model and names the first model that trips the rule."""

    def __init__(self, stage: str, after: int | None, endpoints: Mapping[str, Endpoint]) -> None:
        """`after`: `engine.fail_fast_after` (0 or None: never trip)."""
        self.stage = stage
        self.after = after or 0
        self.endpoints = endpoints
        self.models: dict[str, ModelOutcomes] = {}
        self.tripped: str | None = None
        """The model key that tripped the rule, if one did."""

    def add(self, rows: pa.Table) -> None:
        """Count stored rows (store schema: model, status, error_kind, error)."""
        if not self.after or self.tripped is not None:
            return
        columns = (rows[c].to_pylist() for c in ("model", "status", "error_kind", "error"))
        for model, status, kind, error in zip(*columns, strict=True):
            seen = self.models.setdefault(model, ModelOutcomes())
            if seen.answered:
                continue
            if status == "ok":
                seen.answered = True
            elif kind not in RETRYABLE:
                seen.hopeless += 1
                seen.kind, seen.error = kind, error or ""
                if seen.hopeless >= self.after:
                    self.tripped = model
                    return

    def check(self) -> None:
        """Raise `SystematicFailure` if a model tripped the rule."""
        if self.tripped is None:
            return
        model, seen = self.tripped, self.models[self.tripped]
        ep = self.endpoints[model]
        message = seen.error if len(seen.error) <= MESSAGE_CHARS else seen.error[:MESSAGE_CHARS] + "..."
        raise SystematicFailure(
            f"stage '{self.stage}': model '{model}' failed {seen.hopeless} calls with '{seen.kind}', "
            f"an error retrying cannot fix, and answered none (engine.fail_fast_after={self.after}); "
            f"the stage stopped. Endpoint {ep.base_url}, model id '{ep.model_id}', key variable "
            f"{ep.api_key_env}. The provider said: {message}. Fix the key, the account's credit, "
            "the model id or parameters, then run the same command: answered calls are kept and failed ones are sent again "
            "(engine.retry_failed, on by default)."
        )
