"""Live progress of a fan-out, per model: done/total, rates, 429s, retries, dollars, ETA.

A rich table on a terminal; plain log lines every `log_every_s` seconds otherwise (CI, Ray
job logs), so long unattended runs still say where they are.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.live import Live
from rich.table import Table

from jobs.engine.accounting import retries

log = logging.getLogger("specstress.progress")


@dataclass
class ModelProgress:
    total: int
    done: int
    made: int = 0
    failed: int = 0
    rate_limited: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


def _eta(remaining: int, rate: float) -> str:
    if remaining <= 0:
        return "done"
    if rate <= 0:
        return "?"
    secs = int(remaining / rate)
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else f"{secs // 60}m{secs % 60:02d}s"


class Progress:
    """Counts per model from each answered batch and shows them."""

    def __init__(
        self,
        stage: str,
        totals: dict[str, int],
        to_make: dict[str, int],
        *,
        live: bool | None = None,
        log_every_s: float = 10.0,
    ) -> None:
        self.stage = stage
        self.models = {
            m: ModelProgress(total=n, done=n - to_make.get(m, 0)) for m, n in sorted(totals.items())
        }
        self._t0 = time.monotonic()
        self._last_log = self._t0
        self._log_every_s = log_every_s
        self._live: Live | None = None
        if live if live is not None else sys.stderr.isatty():
            self._live = Live(
                self._table(), console=Console(stderr=True), refresh_per_second=2, transient=False
            )
            self._live.start()

    def update(self, batch: pa.Table) -> None:
        model = batch["model"][0].as_py()
        p = self.models[model]
        n = batch.num_rows
        p.done += n
        p.made += n
        p.failed += n - (pc.sum(pc.equal(batch["status"], "ok")).as_py() or 0)
        p.rate_limited += pc.sum(batch["rate_limited"]).as_py() or 0
        p.retries += retries(batch["attempts"])
        p.input_tokens += pc.sum(batch["input_tokens"]).as_py() or 0
        p.output_tokens += pc.sum(batch["output_tokens"]).as_py() or 0
        p.cost_usd += pc.sum(batch["cost_usd"]).as_py() or 0.0

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
        elif time.monotonic() - self._last_log >= self._log_every_s:
            self._last_log = time.monotonic()
            for line in self.lines():
                log.info(line)

    def lines(self) -> list[str]:
        el = max(time.monotonic() - self._t0, 1e-9)
        out = []
        for m, p in self.models.items():
            rps = p.made / el
            out.append(
                f"[{self.stage}] {m}: {p.done}/{p.total} {rps:.1f} req/s "
                f"{(p.input_tokens + p.output_tokens) / el:.0f} tok/s 429s={p.rate_limited} "
                f"retries={p.retries} failed={p.failed} ${p.cost_usd:.4f} eta={_eta(p.total - p.done, rps)}"
            )
        return out

    def _table(self) -> Table:
        el = max(time.monotonic() - self._t0, 1e-9)
        t = Table(title=f"stage {self.stage}", expand=False)
        for col in ("model", "done/total", "req/s", "tok/s", "429s", "retries", "failed", "USD", "ETA"):
            t.add_column(col, justify="right" if col != "model" else "left")
        for m, p in self.models.items():
            rps = p.made / el
            t.add_row(
                m,
                f"{p.done}/{p.total}",
                f"{rps:.1f}",
                f"{(p.input_tokens + p.output_tokens) / el:.0f}",
                str(p.rate_limited),
                str(p.retries),
                str(p.failed),
                f"{p.cost_usd:.4f}",
                _eta(p.total - p.done, rps),
            )
        return t

    def close(self) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()
        else:
            for line in self.lines():
                log.info(line)
