"""One small exception hierarchy for the whole project.

Messages always name the offending key, model or row. They never carry an API key.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "rate_limit",  # 429: honour retry-after, slow the account down
    "overloaded",  # 529 / 503 overloaded: transient, slow down
    "server",  # other 5xx: transient
    "timeout",  # no answer within the client timeout
    "connection",  # reset, refused, closed mid-body
    "malformed",  # 2xx whose body is not the wire format (invalid JSON, truncated body)
    "client",  # 4xx other than 429: the request itself is wrong, never retried
    "auth",  # 401/403, or Gemini's 400 API_KEY_INVALID: the key is wrong or missing, never retried
    "quota",  # 402, or a 429 saying credit or a spend cap is used up: no wait fixes it, never retried
]

RETRYABLE: frozenset[str] = frozenset(
    {"rate_limit", "overloaded", "server", "timeout", "connection", "malformed"}
)


class SpecstressError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(SpecstressError):
    """A configuration key or value is invalid. Raised before anything is spent."""


class SettingError(ConfigError, ValueError):
    """A settings record was built with a bad value (see `actors/settings.py`).

    Attributes:
        field: the field at fault, or None when the record as a whole is (rates that sum past 1);
            the config loader prefixes it with the record's key to name the config key.
        problem: what is wrong, e.g. "must be > 0 or null, got -5.0".
    """

    def __init__(self, record: str, field: str | None, problem: str) -> None:
        super().__init__(f"{record}{'.' + field if field else ''}: {problem}")
        self.field = field
        self.problem = problem


class SpecError(ConfigError):
    """A model spec file cannot be read as markdown text (`jobs/spec/sections.py`).

    Attributes:
        file: the spec file at fault (or the label given for a text held in memory).
        problem: what is wrong, e.g. "is not UTF-8 (byte 0xff at offset 12)".
    """

    def __init__(self, file: str, problem: str) -> None:
        super().__init__(f"spec {file}: {problem}")
        self.file = file
        self.problem = problem


class BudgetExceeded(SpecstressError):
    """The estimated or actual spend passes `budget_usd`."""


class CallsFailed(SpecstressError):
    """A stage ended without a usable answer, or one of its models cannot get one.

    Retrying inside the run would not help, yet the cause (a key, a model id, a parameter)
    can be fixed outside it: everything answered is stored, the run is marked failed and
    resumable, and the same command sends the failed calls again (`engine.retry_failed`).
    """


class SystematicFailure(CallsFailed):
    """A model's calls all fail with an error retrying cannot fix (see `engine.fail_fast_after`).

    The message names the model key, its endpoint and key variable (never the key) and
    the provider's message.
    """


class Interrupted(SpecstressError):
    """The run was stopped by a signal (SIGINT, SIGTERM) and drained; the same command resumes it.

    Attributes:
        signum: the signal; `specstress run` exits with 128 + signum (130 for SIGINT).
        abandoned: calls still in flight when the drain timed out (they may be paid twice).
    """

    def __init__(self, signum: int, abandoned: int = 0) -> None:
        super().__init__(f"interrupted by signal {signum}; {abandoned} calls in flight were abandoned")
        self.signum = signum
        self.abandoned = abandoned


class DatasetError(SpecstressError):
    """A dataset file given to read is malformed or incomplete (`specstress import`).

    Attributes:
        file: the file (or folder) at fault.
        column: the column at fault, or None when the file as a whole is.
        problem: what is wrong, e.g. "2 values outside 0..6 (first: 9)".
    """

    def __init__(self, file: str, column: str | None, problem: str) -> None:
        super().__init__(f"{file}: {f'column {column!r}: ' if column else ''}{problem}")
        self.file = file
        self.column = column
        self.problem = problem


class ProviderError(SpecstressError):
    """A provider call that did not give a usable answer.

    Attributes:
        kind: what went wrong, see `ErrorKind`; decides whether the client retries.
        status: HTTP status, or None when no response arrived.
        retry_after_s: the provider's requested wait, if it sent one.
        raw: the response body as text (kept so nothing paid for is lost).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(f"{kind}: {message}" + (f" (HTTP {status})" if status else ""))
        self.kind: ErrorKind = kind
        self.status = status
        self.retry_after_s = retry_after_s
        self.raw = raw

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE
