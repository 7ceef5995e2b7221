"""The provider emulator: an aiohttp app speaking OpenAI, Anthropic and Gemini wire formats.

Every route runs one pipeline: auth, body, rate limit, fault, persona, provider shape.
Providers differ only in their `Dialect`. `EmulatorServer` runs the app on a background
thread with its own event loop (tests, demo, benchmarks); `serve` runs it in the
foreground for `specstress emulate`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from actors.emulator import tasks  # noqa: F401  (importing it registers the task personas)
from actors.emulator.accounts import AccountState
from actors.emulator.batches import BatchDesk, batch_routes
from actors.emulator.config import EmulatorConfig, fingerprint
from actors.emulator.dialects.anthropic import AnthropicDialect
from actors.emulator.dialects.base import (
    JSON,
    ChatInput,
    ChatOutput,
    Dialect,
    EmbedInput,
    ErrorShape,
    WireError,
)
from actors.emulator.dialects.gemini import GeminiDialect
from actors.emulator.dialects.openai import OpenAIDialect
from actors.emulator.dialects.structured import constrained
from actors.emulator.faults import Fault, choose_fault, malform, truncate
from actors.emulator.personas import EmulatedRequest, persona_for
from actors.emulator.prompt_cache import CacheUse, PromptCache
from actors.emulator.stats import Stats, request_hash
from actors.emulator.tokens import count_tokens, pieces, truncate_tokens
from actors.emulator.vectors import embed_text, embedding_dim

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_response(status: int, body: JSON, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json", headers=headers
    )


class Emulator:
    """The shared request pipeline and the state it keeps: accounts, caches, stats."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.cache = PromptCache(config.cache_ttl_s, time.monotonic)
        self.batches = BatchDesk(config, self.stats, self.generate)
        """The batch APIs' state (actors/emulator/batches/)."""
        self._accounts: dict[str, AccountState] = {}

    def account(self, fp: str) -> AccountState:
        state = self._accounts.get(fp)
        if state is None:
            state = self._accounts[fp] = AccountState(self.config.limits_for(fp), time.monotonic)
        return state

    def route(self, dialect: Dialect, kind: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, dialect, kind)

        return handler

    def _error(self, dialect: Dialect, shape: ErrorShape, message: str) -> web.Response:
        status, body = dialect.error(shape, message)
        self.stats.status[str(status)] += 1
        return _json_response(status, body)

    async def handle(self, request: web.Request, dialect: Dialect, kind: str) -> web.StreamResponse:
        """Answer one request; `kind` is "chat" or "embed", or "path" to read it from a Gemini path."""
        self.stats.total += 1
        model: str | None = None
        if kind == "path":
            model, _, method = request.match_info["target"].rpartition(":")
            kind = {"generateContent": "chat", "batchEmbedContents": "embed"}.get(method, "")
            if not kind:
                return self._error(dialect, "not_found", f"unknown method {method!r}")
        key = dialect.api_key(request)
        if key is None:
            return self._error(dialect, "auth", "No API key was provided.")
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise WireError("the body must be a JSON object")
            parsed = dialect.parse_chat(body, model) if kind == "chat" else dialect.parse_embed(body, model)
            if isinstance(parsed, ChatInput):
                self.check_structured(parsed.request)
        except ValueError as exc:
            return self._error(dialect, "invalid", f"Invalid request: {exc}")
        fp = fingerprint(key)
        rhash = request_hash(request.path, body)
        attempt = self.stats.record_request(fp, rhash)
        account = self.account(fp)
        refusal = account.admit(parsed.input_tokens)
        if refusal is not None:
            payload, headers = dialect.rate_limited(refusal, account.views())
            self.stats.status["429"] += 1
            return _json_response(429, payload, headers)
        self.stats.admitted_at.append(time.time())
        fault = choose_fault(self.config.faults, self.config.seed, rhash, attempt)
        if fault is not None:
            self.stats.faults[fault] += 1
            failed = await self._inject(fault, request, dialect)
            if failed is not None:
                return failed
        if isinstance(parsed, ChatInput):
            out = self.generate(parsed, fp, rhash, dialect)
            account.settle_output(out.output_tokens)
            await self._sleep(out.output_tokens)
            payload = dialect.chat_body(parsed.request.model_id, out)
        else:
            await self._sleep(0)
            payload = self.embed(parsed, dialect)
        data = json.dumps(payload).encode()
        if fault == "malformed_json":
            data = malform(data)
        elif fault == "truncated_body":
            data = truncate(data)
        self.stats.status["200"] += 1
        if fault not in ("malformed_json", "truncated_body"):
            self.stats.ok_by_hash[rhash] += 1
        return web.Response(
            body=data, content_type="application/json", headers=dialect.limit_headers(account.views())
        )

    def check_structured(self, req: EmulatedRequest) -> None:
        """Refuse a response schema to a model configured without structured outputs."""
        if req.schema is not None and req.model_id in self.config.unstructured_models:
            raise WireError(
                f"a response schema (structured outputs) is not supported with model '{req.model_id}'"
            )

    async def _inject(self, fault: Fault, request: web.Request, dialect: Dialect) -> web.Response | None:
        """Act out a fault; returns the response that replaces the answer, or None to answer anyway."""
        if fault == "server_500":
            return self._error(dialect, "server", "The server had an error while processing your request.")
        if fault == "overloaded_529":
            return self._error(dialect, "overloaded", "The model is overloaded. Please try again later.")
        if fault == "reset":
            self.stats.status["reset"] += 1
            if request.transport is not None:
                request.transport.abort()
            # aiohttp drops a response whose transport is gone, so this is never sent.
            return web.Response(status=500)
        if fault == "hang":
            await asyncio.sleep(self.config.hang_s)
        return None

    async def _sleep(self, output_tokens: int) -> None:
        delay = self.config.latency.delay_s(output_tokens)
        if delay > 0:
            await asyncio.sleep(delay)

    def generate(self, chat: ChatInput, fp: str, rhash: str, dialect: Dialect) -> ChatOutput:
        """The persona's answer, capped at max tokens (thinking first), with cache use."""
        req = chat.request
        rng = random.Random(f"{self.config.seed}:{rhash}")
        reply = persona_for(req, self.config.quirks).reply(req, rng)
        thinking, text = reply.thinking, reply.text
        if req.schema is not None:
            text = constrained(text)
        thinking_tokens, text_tokens = count_tokens(thinking), count_tokens(text)
        finish = reply.finish_reason
        if req.max_tokens is not None and thinking_tokens + text_tokens > req.max_tokens:
            thinking = truncate_tokens(thinking, req.max_tokens)
            thinking_tokens = min(thinking_tokens, req.max_tokens)
            text = truncate_tokens(text, req.max_tokens - thinking_tokens)
            text_tokens = count_tokens(text)
            finish = "length"
        scope = f"{fp}\x00{req.model_id}"
        if dialect.cache_style == "explicit":
            prefix = chat.cache_prefix
            cache = self.cache.explicit(scope, prefix, count_tokens(prefix)) if prefix else CacheUse()
        else:
            cache = self.cache.implicit(scope, pieces("\n".join(chat.prompt_texts)))
        return ChatOutput(
            text=text,
            thinking=thinking if chat.show_thinking else "",
            finish=finish,
            input_tokens=chat.input_tokens,
            text_tokens=text_tokens,
            thinking_tokens=thinking_tokens,
            cache=cache,
            response_id=rhash[:24],
            tool=chat.answer_tool,
        )

    def embed(self, request: EmbedInput, dialect: Dialect) -> JSON:
        dim = request.dimensions or embedding_dim(request.model_id)
        vectors = [embed_text(text, dim) for text in request.texts]
        return dialect.embed_body(request, vectors)


EMULATOR = web.AppKey("emulator", Emulator)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """The emulator as an aiohttp application; the `Emulator` is at `app["emulator"]`."""
    emulator = Emulator(config or EmulatorConfig())
    openai, anthropic, gemini = OpenAIDialect(), AnthropicDialect(), GeminiDialect()
    app = web.Application(client_max_size=300 * 1024**2)  # batch uploads: OpenAI allows 200 MB
    app[EMULATOR] = emulator

    async def get_stats(request: web.Request) -> web.Response:
        return _json_response(200, emulator.stats.snapshot())

    async def reset_stats(request: web.Request) -> web.Response:
        emulator.stats.reset()
        return _json_response(200, {"reset": True})

    # Before the catch-all Gemini model route.
    app.router.add_routes(batch_routes(emulator.batches, openai, anthropic, gemini))
    app.router.add_routes(
        [
            # OpenAI clients put /v1 in base_url; compatible servers may not.
            web.post("/v1/chat/completions", emulator.route(openai, "chat")),
            web.post("/chat/completions", emulator.route(openai, "chat")),
            web.post("/v1/embeddings", emulator.route(openai, "embed")),
            web.post("/embeddings", emulator.route(openai, "embed")),
            web.post("/v1/messages", emulator.route(anthropic, "chat")),
            web.post("/{version:v1beta|v1}/models/{target}", emulator.route(gemini, "path")),
            web.get("/_stats", get_stats),
            web.post("/_stats/reset", reset_stats),
        ]
    )
    return app


class EmulatorServer:
    """The emulator on a background thread with its own event loop, as a context manager.

    Example:
        >>> with EmulatorServer(EmulatorConfig(latency=LatencyModel(0, 0))) as emu:  # doctest: +SKIP
        ...     base_url = emu.url + "/v1"
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._app: web.Application | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:41234"; OpenAI endpoints add "/v1"."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        async def boot() -> None:
            self._app = create_app(self.config)
            self._runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = self._runner.addresses[0][1]

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(boot())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="specstress-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise RuntimeError(f"emulator failed to start on {self.host}:{self.port}") from failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = self._runner = None

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop, so its state is never read mid-update."""
        assert self._loop is not None, "the emulator is not running"

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=10)

    @property
    def emulator(self) -> Emulator:
        assert self._app is not None, "the emulator is not running"
        return self._app[EMULATOR]

    def stats(self) -> dict[str, Any]:
        """The /_stats JSON."""
        return self._on_loop(self.emulator.stats.snapshot)

    def admitted_times(self) -> list[float]:
        """Unix times of the requests admitted past the rate limit (not in /_stats: it grows)."""
        return self._on_loop(lambda: list(self.emulator.stats.admitted_at))

    def reset_stats(self) -> None:
        self._on_loop(self.emulator.stats.reset)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8900) -> None:
    """Run the emulator in the foreground until interrupted."""
    web.run_app(create_app(config), host=host, port=port, access_log=None, print=None)


def main_emulate(port: int, config: EmulatorConfig | None = None, host: str = "127.0.0.1") -> None:
    """Entry point for `specstress emulate --port N`: announce the URLs, then serve."""
    print(
        f"specstress emulator on http://{host}:{port} (OpenAI base_url http://{host}:{port}/v1)", flush=True
    )
    serve(config, host, port)
