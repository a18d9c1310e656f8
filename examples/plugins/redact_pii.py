"""PII redaction: e-mail addresses, phone numbers and card-like numbers in prompts are replaced
before the request leaves the gateway. Async, to show that `async def` hooks work too."""

from __future__ import annotations

import re
from typing import Any

import ferrogate

PATTERNS = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[EMAIL]"),
    (re.compile(r"\b(?:\d[ -]?){13,16}\b"), "[CARD]"),
    (re.compile(r"\+?\d[\d ().-]{7,}\d"), "[PHONE]"),
]


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactPII(ferrogate.Plugin):
    async def pre_hook(self, ctx: ferrogate.Context, request: dict[str, Any]) -> None:
        redacted = 0
        for message in request.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                new = redact(content)
                redacted += new != content
                message["content"] = new
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        new = redact(part["text"])
                        redacted += new != part["text"]
                        part["text"] = new
        ctx.state["pii_redacted_messages"] = redacted
