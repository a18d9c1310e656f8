"""Running the Rust HTTP server from Python: :func:`serve` blocks until Ctrl-C / SIGTERM (then
drains in-flight requests), :class:`Server` runs it in background threads of this process."""

from __future__ import annotations

import os
from typing import Any, Mapping

from . import _core
from ._gateway import Gateway


def _gateway_for(config: Any, gateway: Gateway | None) -> Gateway:
    if gateway is not None and config is not None:
        raise ValueError("pass either `gateway` or `config`, not both")
    return gateway if gateway is not None else Gateway(config)


def serve(
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    gateway: Gateway | None = None,
    log_level: str | None = None,
) -> None:
    """Serves the OpenAI-compatible API until interrupted (default 127.0.0.1:8080, or the
    config's ``server.host`` / ``server.port``)."""
    gw = _gateway_for(config, gateway)
    _core.init_logging(log_level or gw.config.get("logging", {}).get("level", "info"), gw.config.get("logging", {}).get("format", "auto"))
    _core.serve(gw._core, host, port)


class Server:
    """The HTTP server in the background::

        with ferrogate.Server(config) as server:
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused")

    ``port=0`` (the default) picks a free port; ``base_url`` tells which.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        gateway: Gateway | None = None,
    ) -> None:
        self.gateway = _gateway_for(config, gateway)
        self._host = host
        self._port = port
        self._handle: Any = None

    def start(self) -> Server:
        if self._handle is None:
            self._handle = _core.start_server(self.gateway._core, self._host, self._port)
        return self

    def stop(self) -> None:
        """Stops accepting connections and waits for in-flight requests to finish."""
        if self._handle is not None:
            self._handle.stop()
            self._handle = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server (the OpenAI API is under ``/v1``)."""
        if self._handle is None:
            raise RuntimeError("the server is not running; call start() or use it in a `with` block")
        return self._handle.base_url  # type: ignore[no-any-return]

    @property
    def port(self) -> int:
        if self._handle is None:
            raise RuntimeError("the server is not running")
        return self._handle.port  # type: ignore[no-any-return]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
