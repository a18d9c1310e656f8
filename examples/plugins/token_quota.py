"""Per-user token accounting with throttling.

Counts the tokens each user spends (from the response's usage) and rejects a user's requests
with 429 once they are over their quota for the current window. Users are identified by the
request's `user` field. Counts live in this process; a shared store would go in `state` of a
real deployment.

    plugins:
      - python: examples.plugins.token_quota:TokenQuota
        config: {tokens_per_window: 10000, window_seconds: 60}
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ferrogate


class TokenQuota(ferrogate.Plugin):
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.limit = int(self.config.get("tokens_per_window", 10_000))
        self.window = float(self.config.get("window_seconds", 60))
        self._lock = threading.Lock()
        self._used: dict[str, tuple[float, int]] = {}  # user -> (window start, tokens)

    def _usage(self, user: str) -> int:
        start, tokens = self._used.get(user, (0.0, 0))
        return tokens if time.monotonic() - start < self.window else 0

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        if ctx.user is None:
            return
        with self._lock:
            used = self._usage(ctx.user)
        if used >= self.limit:
            raise ferrogate.RateLimitError(
                f"user {ctx.user!r} used {used} of {self.limit} tokens in the last {self.window:.0f}s",
                status_code=429,
                code="token_quota_exceeded",
            )

    def post_hook(self, ctx: ferrogate.Context, response: dict[str, Any] | None, error: Any) -> None:
        if ctx.user is None or not response or not response.get("usage"):
            return
        spent = int(response["usage"].get("total_tokens", 0))
        with self._lock:
            start, tokens = self._used.get(ctx.user, (time.monotonic(), 0))
            if time.monotonic() - start >= self.window:
                start, tokens = time.monotonic(), 0
            self._used[ctx.user] = (start, tokens + spent)

    def used(self, user: str) -> int:
        with self._lock:
            return self._usage(user)
