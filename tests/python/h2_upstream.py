"""An HTTPS upstream speaking HTTP/2 (the `h2` protocol library over `ssl`) that turns away the
first request of its first connection without processing it, the way a server or load balancer
that is draining does: with a GOAWAY letting no stream through, or by resetting the stream with
REFUSED_STREAM (RFC 9113, 8.7). Every other request gets an OpenAI chat completion echoing the
last user message, as the mock upstream answers."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from services import ThrowawayCA


class TurningAway:
    """``mode`` is ``goaway`` or ``refuse``; ``url`` is the server's base URL."""

    def __init__(self, mode: str, ca: ThrowawayCA) -> None:
        self.mode = mode
        self.ca = ca
        self.url = ""
        self.connections = 0
        self.turned_away = 0
        self.answered = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(ca.cert, ca.key)
        self._tls.set_alpn_protocols(["h2"])

    def serve(self) -> None:
        self.url = f"https://localhost:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                first = self.connections == 1
            threading.Thread(target=self._connection, args=(sock, first), daemon=True).start()

    def _connection(self, raw: socket.socket, first: bool) -> None:
        try:
            sock = self._tls.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        bodies: dict[int, bytearray] = {}
        turn_away = first
        try:
            sock.sendall(conn.data_to_send())
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        bodies[event.stream_id] = bytearray()
                    elif isinstance(event, h2.events.DataReceived):
                        bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        body = bytes(bodies.pop(event.stream_id, b""))
                        if turn_away:
                            turn_away = False
                            with self._lock:
                                self.turned_away += 1
                            if self.mode == "goaway":
                                # No stream processed: the client may send them all again.
                                conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=0)
                            else:
                                conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                        else:
                            self._answer(conn, event.stream_id, body)
                sock.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            sock.close()

    def _answer(self, conn: h2.connection.H2Connection, stream_id: int, body: bytes) -> None:
        request = json.loads(body)
        text = request["messages"][-1]["content"]
        answer = json.dumps({
            "id": "chatcmpl-h2", "object": "chat.completion", "created": 1700000000, "model": request["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"You said: {text}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }).encode()
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/json"),
                                      ("content-length", str(len(answer)))])
        conn.send_data(stream_id, answer, end_stream=True)
        with self._lock:
            self.answered += 1


@contextmanager
def turning_away(mode: str, ca: ThrowawayCA) -> Iterator[TurningAway]:
    server = TurningAway(mode, ca)
    server.serve()
    try:
        yield server
    finally:
        server.close()
