"""``OpenAI`` and ``AsyncOpenAI``: clients with the official SDK's surface
(``client.chat.completions.create``, ``client.embeddings.create``, ``client.models.list``) that
call the ferrogate engine in this process instead of sending HTTP to one provider.

Models are named ``provider/model`` (``groq/llama-3.1-8b-instant``); bare OpenAI names such as
``gpt-4o-mini`` go to OpenAI. ``api_key`` and ``base_url``, when given, apply to every call of the
client, as they would with the official SDK.
"""

from __future__ import annotations

import base64
import os
import sys
from array import array
from typing import Any, Mapping

from ._gateway import AsyncStream, Gateway, Stream, _is_unset, default_gateway
from .types import ChatCompletion, CreateEmbeddingResponse, Model, ModelList


def _decode_base64_embeddings(response: CreateEmbeddingResponse) -> CreateEmbeddingResponse:
    """The SDK asks for base64 (smaller on the wire) and hands out floats; so do we."""
    for item in response.data:
        value = item.get("embedding")
        if isinstance(value, str):
            floats = array("f")
            floats.frombytes(base64.b64decode(value))
            if sys.byteorder != "little":
                floats.byteswap()
            item["embedding"] = floats.tolist()
    return response


class _ClientBase:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        gateway: Gateway | None = None,
        **_ignored: Any,
    ) -> None:
        if gateway is not None and config is not None:
            raise ValueError("pass either `gateway` or `config`, not both")
        self._gateway = gateway if gateway is not None else (Gateway(config) if config is not None else default_gateway())
        self.api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.default_headers = dict(default_headers or {})

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        """Merges the client's defaults into one call's keyword arguments."""
        if self.api_key is not None:
            params.setdefault("api_key", self.api_key)
        if self.base_url is not None:
            params.setdefault("api_base", str(self.base_url))
        if self.timeout is not None:
            params.setdefault("timeout", self.timeout)
        if self.default_headers:
            headers = dict(self.default_headers)
            headers.update(params.get("extra_headers") or {})
            params["extra_headers"] = headers
        return params

    @property
    def gateway(self) -> Gateway:
        return self._gateway

    def close(self) -> None:
        """Nothing to release: connections belong to the shared engine."""


class _Completions:
    def __init__(self, client: OpenAI) -> None:
        self._client = client

    def create(self, *, model: str, messages: list[Any], stream: bool = False, **params: Any) -> ChatCompletion | Stream:
        params = self._client._options(params)
        return self._client._gateway.completion(model, messages, stream=bool(stream), **params)  # type: ignore[no-any-return]


class _Chat:
    def __init__(self, client: OpenAI) -> None:
        self.completions = _Completions(client)


class _Embeddings:
    def __init__(self, client: OpenAI) -> None:
        self._client = client

    def create(self, *, model: str, input: Any, **params: Any) -> CreateEmbeddingResponse:
        params = self._client._options(params)
        decode = _is_unset(params.get("encoding_format"))
        if decode:
            params["encoding_format"] = "base64"
        response = self._client._gateway.embedding(model, input, **params)
        return _decode_base64_embeddings(response) if decode else response


class _Models:
    def __init__(self, client: _ClientBase) -> None:
        self._client = client

    def list(self) -> ModelList:
        return self._client._gateway.models(**self._client._options({}))

    def retrieve(self, model: str) -> Model:
        from .errors import NotFoundError

        for m in self.list():
            if m.get("id") == model:
                return m
        raise NotFoundError(f"model {model!r} is not known to this gateway", status_code=404, code="model_not_found")


class OpenAI(_ClientBase):
    """Drop-in for ``openai.OpenAI``, served by the in-process engine."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)
        self.models = _Models(self)

    def with_options(self, **kwargs: Any) -> OpenAI:
        merged = dict(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            gateway=self._gateway,
        )
        merged.update(kwargs)
        return OpenAI(**merged)

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _AsyncCompletions:
    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def create(
        self, *, model: str, messages: list[Any], stream: bool = False, **params: Any
    ) -> ChatCompletion | AsyncStream:
        params = self._client._options(params)
        return await self._client._gateway.acompletion(model, messages, stream=bool(stream), **params)  # type: ignore[no-any-return]


class _AsyncChat:
    def __init__(self, client: AsyncOpenAI) -> None:
        self.completions = _AsyncCompletions(client)


class _AsyncEmbeddings:
    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def create(self, *, model: str, input: Any, **params: Any) -> CreateEmbeddingResponse:
        params = self._client._options(params)
        decode = _is_unset(params.get("encoding_format"))
        if decode:
            params["encoding_format"] = "base64"
        response = await self._client._gateway.aembedding(model, input, **params)
        return _decode_base64_embeddings(response) if decode else response


class _AsyncModels:
    def __init__(self, client: AsyncOpenAI) -> None:
        self._client = client

    async def list(self) -> ModelList:
        return await self._client._gateway.amodels(**self._client._options({}))

    async def retrieve(self, model: str) -> Model:
        from .errors import NotFoundError

        for m in await self.list():
            if m.get("id") == model:
                return m
        raise NotFoundError(f"model {model!r} is not known to this gateway", status_code=404, code="model_not_found")


class AsyncOpenAI(_ClientBase):
    """Drop-in for ``openai.AsyncOpenAI``, served by the in-process engine."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat = _AsyncChat(self)
        self.embeddings = _AsyncEmbeddings(self)
        self.models = _AsyncModels(self)

    async def close(self) -> None:  # type: ignore[override]
        """Nothing to release: connections belong to the shared engine."""

    async def __aenter__(self) -> AsyncOpenAI:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        pass
