"""The in-process gateway: ``Gateway`` and the module-level ``completion`` / ``acompletion`` /
``embedding`` / ``aembedding`` functions (LiteLLM's calling conventions), all running on the Rust
engine with the GIL released while waiting on the network."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from . import _core
from .types import ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse, ModelList, ServedBy

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

ConfigLike = "str | os.PathLike[str] | Mapping[str, Any] | None"

# Per-call options handled by the gateway rather than sent to the provider.
_OPTION_KEYS = ("api_key", "api_base", "timeout", "extra_headers", "metadata", "request_id")
# Accepted for compatibility with LiteLLM / the openai SDK; they configure client-side behaviour
# that the gateway handles through its config instead.
_IGNORED_KEYS = frozenset(
    {"max_retries", "drop_params", "logger_fn", "litellm_logging_obj", "litellm_call_id", "client", "http_client"}
)


def _is_unset(value: Any) -> bool:
    """None, or the openai SDK's NOT_GIVEN / omit sentinels (checked by name: no import)."""
    return value is None or type(value).__name__ in ("NotGiven", "Omit")


def _jsonable(value: Any) -> Any:
    """Converts SDK objects (pydantic models) in a request to plain data."""
    if isinstance(value, (dict, str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return value


def _split_call(model: str, payload: dict[str, Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separates gateway options from the request body, LiteLLM-style."""
    options: dict[str, Any] = {}
    for key in _OPTION_KEYS:
        value = kwargs.pop(key, None)
        if not _is_unset(value):
            options[key] = value
    base_url = kwargs.pop("base_url", None)
    if not _is_unset(base_url) and "api_base" not in options:
        options["api_base"] = str(base_url)
    request_timeout = kwargs.pop("request_timeout", None)
    if not _is_unset(request_timeout) and "timeout" not in options:
        options["timeout"] = request_timeout
    timeout = options.get("timeout")
    if timeout is not None and not isinstance(timeout, (int, float)):
        # httpx.Timeout and similar: use its overall value.
        options["timeout"] = getattr(timeout, "read", None) or getattr(timeout, "timeout", None)
        if options["timeout"] is None:
            del options["timeout"]
    provider = kwargs.pop("custom_llm_provider", None)
    if provider and not model.startswith(f"{provider}/"):
        model = f"{provider}/{model}"
    extra_body = kwargs.pop("extra_body", None)
    kwargs.pop("extra_query", None)
    for key in _IGNORED_KEYS:
        kwargs.pop(key, None)
    body: dict[str, Any] = {"model": model}
    body.update(payload)
    for key, value in kwargs.items():
        if not _is_unset(value):
            body[key] = _jsonable(value)
    if extra_body:
        body.update(extra_body)
    return body, options


def _served(obj: Any, core_response: Any) -> Any:
    obj._served_by = ServedBy(core_response.served_by())
    return obj


class Stream:
    """A streamed chat completion: iterate it for :class:`ChatCompletionChunk` objects.
    Closing it (or leaving a ``with`` block) closes the upstream connection."""

    def __init__(self, core_stream: Any) -> None:
        self._core = core_stream

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return ChatCompletionChunk(self._core.__next__())

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def served_by(self) -> ServedBy:
        return ServedBy(self._core.served_by())


class AsyncStream:
    """The ``async for`` counterpart of :class:`Stream`."""

    def __init__(self, core_stream: Any) -> None:
        self._core = core_stream

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return ChatCompletionChunk(await self._core.__anext__())

    async def aclose(self) -> None:
        self._core.close()

    async def close(self) -> None:
        self._core.close()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._core.close()

    @property
    def served_by(self) -> ServedBy:
        return ServedBy(self._core.served_by())


#: LiteLLM's name for the stream object.
CustomStreamWrapper = Stream


class Gateway:
    """The engine, in this process.

    ``config`` is a path to a JSON/YAML file, a dict of the same shape, or ``None`` for the
    built-in defaults (each provider reads its standard environment variables, e.g.
    ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``). An invalid config raises
    :class:`ferrogate.ConfigError` naming the bad field.
    """

    def __init__(
        self, config: str | os.PathLike[str] | Mapping[str, Any] | None = None, *, plugins: Iterable[Any] = ()
    ) -> None:
        self._core = _core.Gateway(config)
        for plugin in plugins:
            self.register_plugin(plugin)

    def register_plugin(self, plugin: Any) -> str:
        """Adds a plugin (a :class:`ferrogate.Plugin`) after the existing ones; returns its name.
        Its ``fail_closed`` and ``timeout`` attributes say how it is run."""
        return self._core.register_plugin(  # type: ignore[no-any-return]
            plugin, bool(getattr(plugin, "fail_closed", False)), float(getattr(plugin, "timeout", 1.0))
        )

    def set_plugin_enabled(self, name: str, enabled: bool) -> None:
        """Switches a plugin on or off, live."""
        if not self._core.set_plugin_enabled(name, enabled):
            raise KeyError(f"no plugin named {name!r}")

    @property
    def plugins(self) -> list[tuple[str, bool]]:
        """The plugins in order, with whether each is enabled."""
        return self._core.plugins()  # type: ignore[no-any-return]

    def reload(self, config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> None:
        """Swaps the config atomically; requests in flight finish on the old one."""
        self._core.reload(config)

    @property
    def config(self) -> dict[str, Any]:
        """The effective config, with secrets redacted."""
        return self._core.config()  # type: ignore[no-any-return]

    def completion(self, model: str, messages: list[Any], *, stream: bool = False, **kwargs: Any) -> Any:
        body, options = _split_call(model, {"messages": _jsonable(messages)}, kwargs)
        if stream:
            return Stream(self._core.completion_stream(body, options))
        core = self._core.completion(body, options)
        return _served(ChatCompletion(core.data()), core)

    async def acompletion(self, model: str, messages: list[Any], *, stream: bool = False, **kwargs: Any) -> Any:
        body, options = _split_call(model, {"messages": _jsonable(messages)}, kwargs)
        if stream:
            return AsyncStream(await self._core.acompletion_stream(body, options))
        core = await self._core.acompletion(body, options)
        return _served(ChatCompletion(core.data()), core)

    def embedding(self, model: str, input: Any, **kwargs: Any) -> CreateEmbeddingResponse:
        body, options = _split_call(model, {"input": _jsonable(input)}, kwargs)
        core = self._core.embedding(body, options)
        return _served(CreateEmbeddingResponse(core.data()), core)  # type: ignore[no-any-return]

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> CreateEmbeddingResponse:
        body, options = _split_call(model, {"input": _jsonable(input)}, kwargs)
        core = await self._core.aembedding(body, options)
        return _served(CreateEmbeddingResponse(core.data()), core)  # type: ignore[no-any-return]

    def models(self, **options: Any) -> ModelList:
        """Aliases, configured models and the models each configured provider reports. With
        ``api_base`` (and ``api_key``), the models that server reports."""
        _, opts = _split_call("", {}, options)
        return ModelList(self._core.models(opts))

    async def amodels(self, **options: Any) -> ModelList:
        _, opts = _split_call("", {}, options)
        return ModelList(await self._core.amodels(opts))

    def query_logs(self, **filters: Any) -> dict[str, Any]:
        """Queries the request log store: ``since`` / ``until`` (Unix ms), ``provider``,
        ``model``, ``status``, ``key``, ``user``, ``virtual_key``, ``request_id``, ``q`` (free
        text), ``limit``, ``cursor`` (``next_cursor`` of the previous page)."""
        return self._core.query_logs({k: v for k, v in filters.items() if v is not None})  # type: ignore[no-any-return]

    def flush_logs(self, timeout: float = 10.0) -> bool:
        """Waits until every queued log record is written."""
        return self._core.flush_logs(timeout)  # type: ignore[no-any-return]

    def metrics_text(self) -> str:
        """Prometheus text of this process's metrics, with this gateway's circuit and queue state."""
        return _core.metrics_text(self._core)  # type: ignore[no-any-return]

    @property
    def provider_names(self) -> list[str]:
        return self._core.provider_names()  # type: ignore[no-any-return]


_default: Gateway | None = None
_default_lock = threading.Lock()


def default_gateway() -> Gateway:
    """The gateway behind the module-level functions, built on first use from
    ``$FERROGATE_CONFIG`` (a file path) or the built-in defaults."""
    global _default
    gw = _default
    if gw is None:
        with _default_lock:
            if _default is None:
                _default = Gateway(os.environ.get("FERROGATE_CONFIG") or None)
            gw = _default
    return gw


def configure(config: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> Gateway:
    """Replaces the gateway behind the module-level functions."""
    global _default
    gw = Gateway(config)
    with _default_lock:
        _default = gw
    return gw


def register_plugin(plugin: Any) -> str:
    """Adds a plugin to the gateway behind the module-level functions."""
    return default_gateway().register_plugin(plugin)


def metrics_text() -> str:
    """Prometheus text of every metric recorded in this process."""
    return default_gateway().metrics_text()


def completion(model: str, messages: list[Any] | None = None, *, stream: bool = False, **kwargs: Any) -> Any:
    """Chat completion, LiteLLM-style: ``completion(model="openai/gpt-4o-mini", messages=[...])``.

    Returns a :class:`ChatCompletion`, or a :class:`Stream` of chunks with ``stream=True``.
    ``api_key``, ``api_base`` (or ``base_url``), ``timeout`` and ``extra_headers`` apply to this
    call; every other keyword is sent to the provider as a request field.
    """
    return default_gateway().completion(model, messages or [], stream=stream, **kwargs)


async def acompletion(model: str, messages: list[Any] | None = None, *, stream: bool = False, **kwargs: Any) -> Any:
    """The awaitable :func:`completion`; ``stream=True`` gives an :class:`AsyncStream`."""
    return await default_gateway().acompletion(model, messages or [], stream=stream, **kwargs)


def embedding(model: str, input: Any = None, **kwargs: Any) -> CreateEmbeddingResponse:
    """Embeddings, LiteLLM-style: ``embedding(model="openai/text-embedding-3-small", input=["a"])``."""
    return default_gateway().embedding(model, input, **kwargs)


async def aembedding(model: str, input: Any = None, **kwargs: Any) -> CreateEmbeddingResponse:
    return await default_gateway().aembedding(model, input, **kwargs)
