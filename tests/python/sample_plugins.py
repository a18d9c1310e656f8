"""Plugins used by the plugin tests (in-process, and by `ferrogate serve` through its config)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import ferrogate


class Shout(ferrogate.Plugin):
    """Sync: uppercases the user's text."""

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        for m in request["messages"]:
            if m["role"] == "user" and isinstance(m.get("content"), str):
                m["content"] = m["content"].upper()


class AsyncTagger(ferrogate.Plugin):
    """Async: tags the request, and reports the tags and state in the response."""

    async def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        ctx.tags.append("tagged")
        ctx.state["seen_by"] = threading.current_thread().name

    async def post_hook(self, ctx: ferrogate.Context, response: dict[str, Any] | None, error: Any) -> None:
        if response is not None:
            response["x_tags"] = ctx.tags
            response["x_state"] = ctx.state
            response["x_served_by"] = (ctx.served_by or {}).get("deployment")


class Canned(ferrogate.Plugin):
    """Answers requests for the model `canned` itself."""

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> Any:
        if request["model"] == "canned":
            return {
                "id": "canned-1",
                "object": "chat.completion",
                "created": 0,
                "model": "canned",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "canned answer"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
        return None


class Quota(ferrogate.Plugin):
    """Rejects the user `greedy`."""

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        if ctx.user == "greedy":
            raise ferrogate.RateLimitError("quota exceeded for greedy", status_code=429, code="quota_exceeded")


class Rescue(ferrogate.Plugin):
    """Turns upstream errors into a polite answer."""

    def post_hook(self, ctx: ferrogate.Context, response: Any, error: Any) -> Any:
        if error is not None:
            return {
                "id": "rescued",
                "object": "chat.completion",
                "created": 0,
                "model": ctx.model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": f"sorry: {error.status_code}"}, "finish_reason": "stop"}
                ],
            }
        return None


class Loud(ferrogate.Plugin):
    """Uppercases streamed content; drops the empty role chunk."""

    def on_stream_chunk(self, ctx: ferrogate.Context, chunk: dict[str, Any]) -> Any:
        choices = chunk.get("choices") or []
        if not choices:
            return None
        content = choices[0].get("delta", {}).get("content")
        if content == "":
            return False
        if content:
            choices[0]["delta"]["content"] = content.upper()
        return None


class Buggy(ferrogate.Plugin):
    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        raise ValueError("this plugin has a bug")


class StrictBuggy(Buggy):
    name = "strict-buggy"
    fail_closed = True


class Sleepy(ferrogate.Plugin):
    timeout = 0.2

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        time.sleep(1.0)


class AsyncSleepy(ferrogate.Plugin):
    timeout = 0.2

    async def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        await asyncio.sleep(1.0)


class Counting(ferrogate.Plugin):
    """Counts calls of both hooks (thread-safe), sync pre and async post."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.lock = threading.Lock()
        self.pre = 0
        self.post = 0

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        with self.lock:
            self.pre += 1

    async def post_hook(self, ctx: ferrogate.Context, response: Any, error: Any) -> None:
        with self.lock:
            self.post += 1


class ConfiguredSuffix(ferrogate.Plugin):
    """Appends `config["suffix"]` to the last user message (shows config reaching a plugin)."""

    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        request["messages"][-1]["content"] += self.config.get("suffix", "")
