"""Python plugins.

Subclass :class:`Plugin` and override any of its hooks, with ``def`` or ``async def``::

    class Redact(ferrogate.Plugin):
        def pre_hook(self, ctx, request):
            for m in request["messages"]:
                if isinstance(m.get("content"), str):
                    m["content"] = EMAIL.sub("[email]", m["content"])

Register it in-process (``ferrogate.Gateway(plugins=[Redact()])`` or
``ferrogate.register_plugin(Redact())``), or for the server in the config::

    plugins:
      - python: mypackage.plugins:Redact
        config: {...}          # passed to __init__
        fail_closed: false     # default: a failing plugin is logged and skipped
        timeout: 1s

Hooks never run on the gateway's network threads: ``def`` hooks run on a small pool of Python
threads, ``async def`` hooks on one asyncio loop thread owned by ferrogate. Each call has a
timeout. What a hook may do:

``pre_hook(ctx, request)``
    change ``request`` (a dict in the OpenAI shape) in place, or return a new dict; return a
    response (a dict shaped like a chat completion, or an embeddings response) to answer without
    calling any provider; raise (or return) a :class:`ferrogate.APIError` such as
    ``RateLimitError`` to reject the request with that status.
``post_hook(ctx, response, error)``
    exactly one of ``response`` / ``error`` is set. Change ``response`` in place or return a new
    one; return a response to replace an error; raise an ``APIError`` to replace either with an
    error. For streams it runs once the stream has ended, with the folded answer (read-only).
``on_stream_chunk(ctx, chunk)``
    change ``chunk`` in place or return a new one; return ``False`` to drop it. It sees every
    chunk the upstream sent, including the final usage chunk (``choices`` empty) that the gateway
    asks for on the caller's behalf; that one is taken out afterwards if the caller did not ask
    for usage.

``ctx`` is a :class:`Context`: ``request_id``, ``endpoint``, ``model``, ``stream``, ``user``,
``tags``, ``metadata``, ``served_by`` (in post-hooks) and ``state``, a dict shared by all hooks
of the request. Any other exception a hook raises is logged with the plugin's name; the request
goes on without the plugin unless it is fail-closed.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import asyncio

from .errors import APIError

_HOOKS = ("pre_hook", "post_hook", "on_stream_chunk")


class Context:
    """What the hooks of one request share."""

    __slots__ = ("request_id", "endpoint", "stream", "model", "user", "virtual_key", "tags", "metadata", "state", "served_by")

    def __init__(self, data: dict[str, Any], served_by: dict[str, Any] | None = None) -> None:
        self.request_id: str = data.get("request_id", "")
        self.endpoint: str = data.get("endpoint", "")
        self.stream: bool = bool(data.get("stream", False))
        self.model: str = data.get("model", "")
        self.user: str | None = data.get("user")
        self.virtual_key: str | None = data.get("virtual_key")
        self.tags: list[str] = list(data.get("tags") or [])
        self.metadata: dict[str, Any] = dict(data.get("metadata") or {})
        self.state: dict[str, Any] = dict(data.get("state") or {})
        self.served_by: dict[str, Any] | None = served_by

    def _changes(self) -> dict[str, Any]:
        return {"user": self.user, "tags": self.tags, "metadata": self.metadata, "state": self.state}

    def __repr__(self) -> str:
        return f"Context(request_id={self.request_id!r}, model={self.model!r}, user={self.user!r}, tags={self.tags!r})"


class Plugin:
    """Base class of Python plugins. Override the hooks you need; the others cost nothing."""

    #: Name in logs and for switching the plugin on and off; defaults to the class name.
    name: ClassVar[str | None] = None
    #: Fail the request when this plugin fails (default: log and go on without it).
    fail_closed: ClassVar[bool] = False
    #: Longest a hook call may take, in seconds.
    timeout: ClassVar[float] = 1.0

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})

    def pre_hook(self, ctx: Context, request: dict[str, Any]) -> Any:
        return None

    def post_hook(self, ctx: Context, response: dict[str, Any] | None, error: APIError | None) -> Any:
        return None

    def on_stream_chunk(self, ctx: Context, chunk: dict[str, Any]) -> Any:
        return None


# --- used by the Rust bridge -------------------------------------------------------------------


def _plugin_name(plugin: Any) -> str:
    return str(getattr(plugin, "name", None) or type(plugin).__name__)


def _hook_modes(plugin: Any) -> tuple[str, str, str]:
    """For each hook: "absent" (not overridden), "sync" or "async"."""
    import inspect  # here, not at the top: `import ferrogate` stays fast (asyncio alone is ~40 ms)

    modes = []
    for hook in _HOOKS:
        method = getattr(type(plugin), hook, None)
        base = getattr(Plugin, hook)
        if method is None or method is base:
            modes.append("absent")
        elif inspect.iscoroutinefunction(method):
            modes.append("async")
        else:
            modes.append("sync")
    return (modes[0], modes[1], modes[2])


def _load(target: str, config: dict[str, Any]) -> Any:
    """Imports ``package.module:ClassName`` and instantiates it with ``config``."""
    import importlib

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected `package.module:ClassName`, got {target!r}")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module `{module_name}` has no attribute `{attr}`") from None
    instance = cls(config) if config else cls()
    if not any(mode != "absent" for mode in _hook_modes(instance)):
        raise TypeError(f"`{target}` defines none of {', '.join(_HOOKS)}")
    return instance


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop async hooks run on, in its own daemon thread."""
    import asyncio

    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="ferrogate-plugin-loop", daemon=True).start()
            _loop = loop
        return _loop


def _error_json(err: APIError) -> bytes:
    return json.dumps(
        {"status": err.status_code or 500, "message": err.message, "code": err.code, "param": err.param}
    ).encode()


def _as_error(value: Any) -> APIError | None:
    return value if isinstance(value, APIError) else None


def _is_response(value: Any) -> bool:
    return isinstance(value, dict) and ("choices" in value or value.get("object") == "list" and "data" in value)


def _pre_result(ctx: Context, request: dict[str, Any], returned: Any) -> tuple[str, bytes, bytes]:
    changes = json.dumps(ctx._changes()).encode()
    err = _as_error(returned)
    if err is not None:
        return ("reject", _error_json(err), changes)
    if _is_response(returned):
        return ("respond", json.dumps(returned).encode(), changes)
    if isinstance(returned, dict):
        request = returned
    elif returned is not None:
        raise TypeError(f"pre_hook must return None, a request dict, a response or an APIError, not {type(returned).__name__}")
    return ("continue", json.dumps(request).encode(), changes)


def _post_result(ctx: Context, response: Any, returned: Any) -> tuple[str, bytes | None, bytes]:
    changes = json.dumps(ctx._changes()).encode()
    err = _as_error(returned)
    if err is not None:
        return ("error", _error_json(err), changes)
    if isinstance(returned, dict):
        return ("response", json.dumps(returned).encode(), changes)
    if returned is not None:
        raise TypeError(f"post_hook must return None, a response or an APIError, not {type(returned).__name__}")
    if response is None:
        return ("keep", None, changes)
    return ("response", json.dumps(response).encode(), changes)


def _chunk_result(ctx: Context, chunk: dict[str, Any], returned: Any) -> tuple[str, bytes | None, bytes]:
    changes = json.dumps(ctx._changes()).encode()
    if returned is False:
        return ("drop", None, changes)
    if isinstance(returned, dict):
        chunk = returned
    elif returned is not None:
        raise TypeError(f"on_stream_chunk must return None, a chunk dict or False, not {type(returned).__name__}")
    return ("keep", json.dumps(chunk).encode(), changes)


def _args(hook: str, ctx_json: bytes, payload: bytes | None, extra: bytes | None) -> tuple[Context, Any, Any]:
    data = json.loads(ctx_json)
    ctx = Context(data, data.get("served_by"))
    body = json.loads(payload) if payload is not None else None
    if hook == "post_hook":
        error = None
        if extra is not None:
            from .errors import _from_core

            error = _from_core(**json.loads(extra))
        return ctx, body, error
    return ctx, body, None


def _finish(hook: str, ctx: Context, body: Any, returned: Any) -> tuple[str, bytes | None, bytes]:
    if hook == "pre_hook":
        return _pre_result(ctx, body, returned)
    if hook == "post_hook":
        return _post_result(ctx, body, returned)
    return _chunk_result(ctx, body, returned)


def _invoke(plugin: Any, hook: str, ctx_json: bytes, payload: bytes | None, extra: bytes | None) -> tuple[str, bytes | None, bytes]:
    ctx, body, error = _args(hook, ctx_json, payload, extra)
    try:
        returned = getattr(plugin, hook)(ctx, body, error) if hook == "post_hook" else getattr(plugin, hook)(ctx, body)
    except APIError as e:
        returned = e
    return _finish(hook, ctx, body, returned)


async def _invoke_async(
    plugin: Any, hook: str, ctx_json: bytes, payload: bytes | None, extra: bytes | None
) -> tuple[str, bytes | None, bytes]:
    ctx, body, error = _args(hook, ctx_json, payload, extra)
    try:
        if hook == "post_hook":
            returned = await getattr(plugin, hook)(ctx, body, error)
        else:
            returned = await getattr(plugin, hook)(ctx, body)
    except APIError as e:
        returned = e
    return _finish(hook, ctx, body, returned)


__all__ = ["Plugin", "Context"]
