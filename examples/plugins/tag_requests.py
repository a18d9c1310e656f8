"""Tagging requests for metrics: labels each request with its team (from metadata, or the
`x-ferrogate-tags` header) and its size class, so logs and metrics can be broken down by them."""

from __future__ import annotations

from typing import Any

import ferrogate


class TagRequests(ferrogate.Plugin):
    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        team = ctx.metadata.get("team")
        if team:
            ctx.tags.append(f"team:{team}")
        words = sum(len(str(m.get("content") or "").split()) for m in request.get("messages", []))
        ctx.tags.append("size:large" if words > 500 else "size:small")

    def post_hook(self, ctx: ferrogate.Context, response: dict[str, Any] | None, error: Any) -> None:
        if response is not None:
            response["x_ferrogate_tags"] = ctx.tags
