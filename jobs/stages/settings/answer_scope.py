"""The `scope` setting of the answering stages (responses, rubrics, scores): `diverse` or `all`.

Which scenarios each scope answers, and what selecting saves, is `jobs/stages/answer_scope.py`'s.
"""

from __future__ import annotations

from typing import Any

from actors.errors import ConfigError

SCOPES = ("diverse", "all")


def check_scope(stage: str, scope: str | None) -> None:
    if scope not in SCOPES:
        raise ConfigError(f"config key 'stages.{stage}.scope': must be one of {SCOPES}, got '{scope}'")


def inherit_scope(settings: Any, stages: Any) -> None:
    """Rubrics and scores follow the responses' scenarios unless their own `scope` is set."""
    if settings.scope is None:
        settings.scope = stages.responses.scope


def scope_reads(settings: Any) -> dict[str, str]:
    """The table `scope: diverse` makes a stage read (`StageSpec.reads_when`)."""
    return {"diversity": "scope"} if settings.scope == "diverse" else {}
