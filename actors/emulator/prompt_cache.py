"""Prompt caching as each provider reports it, on one small prefix store.

OpenAI and Gemini cache implicitly: a prompt of at least 1,024 tokens whose leading
tokens were seen recently reports the shared part as cached, in 128-token blocks
(https://platform.openai.com/docs/guides/prompt-caching). Anthropic caches explicitly:
the system blocks up to one marked `cache_control` are written on first use and read
on later uses within the TTL, which each hit refreshes
(https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching). Entries are
scoped by key fingerprint and model, as real caches are per organisation and model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from actors.buckets import Clock

MIN_CACHED_TOKENS = 1024
"""Shortest prefix any of the three providers caches."""
BLOCK_TOKENS = 128
"""Granularity of implicit cache hits."""
_MAX_ENTRIES = 200_000


@dataclass(frozen=True)
class CacheUse:
    """Tokens read from and written to the cache by one request."""

    read: int = 0
    write: int = 0


class PromptCache:
    """Hashes of recently seen prompt prefixes, each with its last-use time."""

    def __init__(self, ttl_s: float, clock: Clock) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._seen: dict[str, float] = {}

    def implicit(self, scope: str, tokens: list[str]) -> CacheUse:
        """OpenAI/Gemini style: the longest remembered block-aligned prefix of `tokens` is read."""
        if len(tokens) < MIN_CACHED_TOKENS:
            return CacheUse()
        now = self._clock()
        digest = hashlib.sha256(scope.encode())
        hit = 0
        for end in range(BLOCK_TOKENS, len(tokens) + 1, BLOCK_TOKENS):
            digest.update("\x00".join(tokens[end - BLOCK_TOKENS : end]).encode())
            if end < MIN_CACHED_TOKENS:
                continue
            key = digest.hexdigest()
            if self._fresh(key, now):
                hit = end
            self._seen[key] = now
        self._prune(now)
        return CacheUse(read=hit)

    def explicit(self, scope: str, prefix: str, prefix_tokens: int) -> CacheUse:
        """Anthropic style: a marked prefix is written once, then read while fresh."""
        if prefix_tokens < MIN_CACHED_TOKENS:
            return CacheUse()
        now = self._clock()
        key = hashlib.sha256(f"{scope}\x00{prefix}".encode()).hexdigest()
        fresh = self._fresh(key, now)
        self._seen[key] = now
        self._prune(now)
        return CacheUse(read=prefix_tokens) if fresh else CacheUse(write=prefix_tokens)

    def _fresh(self, key: str, now: float) -> bool:
        seen = self._seen.get(key)
        return seen is not None and now - seen <= self._ttl_s

    def _prune(self, now: float) -> None:
        if len(self._seen) > _MAX_ENTRIES:
            self._seen = {k: t for k, t in self._seen.items() if now - t <= self._ttl_s}
