"""Empty plugins, to measure what the plugin pipeline itself costs."""

from __future__ import annotations

from typing import Any

import ferrogate


class EmptySync(ferrogate.Plugin):
    def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        return None

    def post_hook(self, ctx: ferrogate.Context, response: Any, error: Any) -> None:
        return None


class EmptyAsync(ferrogate.Plugin):
    async def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        return None

    async def post_hook(self, ctx: ferrogate.Context, response: Any, error: Any) -> None:
        return None
