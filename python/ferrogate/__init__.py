"""ferrogate: a fast LLM gateway with a Rust core.

In-process (replaces ``import litellm`` and the ``openai`` client)::

    import ferrogate
    r = ferrogate.completion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    print(r.choices[0].message.content)

As a server: ``ferrogate serve`` (or :func:`ferrogate.serve` / :class:`ferrogate.Server`).
"""

from __future__ import annotations

from . import _core
from ._gateway import (
    AsyncStream,
    CustomStreamWrapper,
    Gateway,
    Stream,
    acompletion,
    aembedding,
    completion,
    configure,
    default_gateway,
    embedding,
    metrics_text,
    register_plugin,
)
from .plugins import Context, Plugin
from .client import AsyncOpenAI, OpenAI
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    ConfigError,
    ConflictError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    FerrogateError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
)
from .router import Router
from .server import Server, serve
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    CreateEmbeddingResponse,
    EmbeddingResponse,
    ModelList,
    ModelResponse,
    ServedBy,
)

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "completion",
    "acompletion",
    "embedding",
    "aembedding",
    "configure",
    "default_gateway",
    "Gateway",
    "Router",
    "Plugin",
    "Context",
    "register_plugin",
    "metrics_text",
    "OpenAI",
    "AsyncOpenAI",
    "Stream",
    "AsyncStream",
    "CustomStreamWrapper",
    "serve",
    "Server",
    "ChatCompletion",
    "ChatCompletionChunk",
    "CreateEmbeddingResponse",
    "EmbeddingResponse",
    "ModelList",
    "ModelResponse",
    "ServedBy",
    "FerrogateError",
    "ConfigError",
    "APIError",
    "APIStatusError",
    "APIConnectionError",
    "APITimeoutError",
    "Timeout",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "ConflictError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
]
