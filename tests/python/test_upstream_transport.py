"""The upstream HTTP client against real network pieces: TLS (and HTTP/2 by ALPN) from nginx with
a throwaway certificate authority, and a forward proxy (tinyproxy) named by HTTPS_PROXY /
HTTP_PROXY, with NO_PROXY honoured. Driven through `ferrogate serve` with the `openai` SDK."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from conftest import MOCK_KEY, Proc, ferrogate_cmd, free_port
from h2_upstream import turning_away
from services import ThrowawayCA, TlsFront, nginx_tls, tinyproxy

PROXY_USER, PROXY_PASSWORD = "fg-user", "fg-proxy-pass-7731"


@pytest.fixture(scope="module")
def tls_front(mock_upstream: str) -> Iterator[TlsFront]:
    with nginx_tls(mock_upstream) as front:
        yield front


@pytest.fixture()
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Proc] = []

    def start(providers: dict[str, Any], env: dict[str, str],
              server: dict[str, Any] | None = None) -> tuple[Proc, openai.OpenAI]:
        config = tmp_path / f"ferrogate-{len(started)}.json"
        # No retries: each test counts what reached the upstream and the proxy.
        config.write_text(json.dumps({"providers": providers, "routing": {"retries": 0}, "server": server or {}}))
        port = free_port()
        # The proxy variables of the machine running the tests must not leak into the gateway.
        clean = {v: "" for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                                 "NO_PROXY", "no_proxy")}
        proc = Proc(ferrogate_cmd("serve", "--config", str(config), "--port", str(port)), port, env={**clean, **env})
        started.append(proc)
        return proc, openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0)

    yield start
    for proc in started:
        proc.stop()


def chat(client: openai.OpenAI, model: str, text: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return r.choices[0].message.content or ""


def streamed(client: openai.OpenAI, model: str, text: str) -> str:
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def trusting(serve: Any, tls_front: TlsFront, url: str, server: dict[str, Any] | None = None) -> openai.OpenAI:
    """A gateway with provider `secure` at `url`, trusting the front's CA (SSL_CERT_FILE)."""
    _, client = serve({"secure": {"api": "openai", "base_url": f"{url}/v1", "api_key": MOCK_KEY}},
                      {"SSL_CERT_FILE": tls_front.ca.ca_cert}, server)
    return client


def test_https_upstream_over_http2_trusting_ssl_cert_file(tls_front: TlsFront, serve: Any) -> None:
    client = trusting(serve, tls_front, tls_front.url)
    seen = len(tls_front.requests())
    assert chat(client, "secure/gpt-4o-mini", "over tls") == "You said: over tls"
    assert streamed(client, "secure/gpt-4o-mini", "streamed over tls") == "You said: streamed over tls"
    # Both went through nginx, over HTTP/2 (offered by ALPN and chosen by nginx).
    assert tls_front.requests()[seen:] == ["HTTP/2.0 POST /v1/chat/completions 200"] * 2


def logged(entries: Any, seen: int, count: int) -> list[tuple[str, str]]:
    """The `count` log entries after the first `seen`; nginx logs a request once it has sent the
    whole response, so they may come a little after the answers."""
    deadline = time.monotonic() + 5
    while len(entries()) < seen + count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(entries()[seen:])


def at_once(count: int, send: Callable[[int], str]) -> list[str]:
    """The answers of `send(i)` for each i below `count`, all started together."""
    start = threading.Barrier(count)

    def one(i: int) -> str:
        start.wait()
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def burst(entries: Any, protocol: str, count: int, send: Callable[[str], str], prefix: str) -> Counter[str]:
    """Sends `count` requests together (texts `<prefix> <i>`), checks their answers and that nginx
    answered each once over `protocol`; how many requests each of nginx's connections carried."""
    seen = len(entries())
    answers = at_once(count, lambda i: send(f"{prefix} {i}"))
    assert answers == [f"You said: {prefix} {i}" for i in range(count)]
    got = logged(entries, seen, count)
    assert [line for _, line in got] == [f"{protocol} POST /v1/chat/completions 200"] * count
    return Counter(connection for connection, _ in got)


def test_a_burst_of_requests_shares_one_new_http2_connection(tls_front: TlsFront, serve: Any) -> None:
    # One serving thread: each keeps its own upstream connections.
    client = trusting(serve, tls_front, tls_front.url, {"threads": 1})
    # All of them reach the gateway while its first connection to nginx is still being opened.
    per_connection = burst(tls_front.requests_by_connection, "HTTP/2.0", 24,
                           lambda text: chat(client, "secure/gpt-4o-mini", text), "burst")
    # The requests that found no connection waited for the one being opened (HTTP/2, settled
    # by ALPN) instead of each opening its own: one TLS handshake for the whole burst.
    assert len(per_connection) == 1, per_connection


def test_requests_past_a_connections_stream_limit_go_on_another(tls_front: TlsFront, serve: Any) -> None:
    client = trusting(serve, tls_front, tls_front.url, {"threads": 1})
    assert chat(client, "secure/gpt-4o-mini", "warm") == "You said: warm"
    # More answers in flight at once than the gateway sends on one HTTP/2 connection (100), each
    # taking long enough that all of them are in flight together.
    per_connection = burst(tls_front.requests_by_connection, "HTTP/2.0", 130,
                           lambda text: chat(client, "secure/x-slow-1500", text), "slow")
    # The first connection (kept from the warm-up) took 100; the rest shared a second one rather
    # than wait for streams of the first to end, or open one each.
    assert sorted(per_connection.values()) == [30, 100], per_connection


def test_requests_a_closing_http2_connection_turned_away_go_on_another(tls_front: TlsFront, serve: Any) -> None:
    # nginx closes each connection gracefully after 10 requests (GOAWAY): the requests sent on it
    # past those are turned away unprocessed, and must go on a new connection rather than fail
    # (the gateway's own retries are off here: routing.retries 0).
    client = trusting(serve, tls_front, tls_front.url_recycled, {"threads": 1})
    per_connection: Counter[str] = Counter()
    for send in (chat, streamed):
        per_connection += burst(tls_front.requests_recycled, "HTTP/2.0", 40,
                                lambda text: send(client, "secure/x-slow-100", text), "turn")
    assert max(per_connection.values()) <= 10 and len(per_connection) >= 8, per_connection


@pytest.mark.parametrize("how", ["goaway", "refuse"])
def test_a_request_turned_away_on_a_new_connection_is_sent_again(how: str, serve: Any, tmp_path: Path) -> None:
    # A draining server takes the connection, then turns its first request away unprocessed (a
    # GOAWAY letting no stream through, or REFUSED_STREAM). The gateway's own retries are off: the
    # request is sent again by the upstream client, on a new connection after a GOAWAY and on the
    # same one after a refused stream.
    ca = ThrowawayCA(str(tmp_path))
    with turning_away(how, ca) as upstream:
        _, client = serve({"draining": {"api": "openai", "base_url": f"{upstream.url}/v1", "api_key": MOCK_KEY}},
                          {"SSL_CERT_FILE": ca.ca_cert})
        assert chat(client, "draining/gpt-4o-mini", "first") == "You said: first"
        assert chat(client, "draining/gpt-4o-mini", "second") == "You said: second"
        assert (upstream.turned_away, upstream.answered) == (1, 2)
        assert upstream.connections == (2 if how == "goaway" else 1)


def test_a_burst_to_an_http1_upstream_opens_a_connection_per_request(tls_front: TlsFront, serve: Any) -> None:
    client = trusting(serve, tls_front, tls_front.url_h1, {"threads": 1})
    per_connection = burst(tls_front.requests_h1, "HTTP/1.1", 8,
                           lambda text: streamed(client, "secure/gpt-4o-mini", text), "burst")
    # Once TLS settled on HTTP/1, the requests that had waited opened connections of their own.
    assert len(per_connection) > 1, per_connection


def test_https_upstream_over_http1_keeps_its_connection_open(tls_front: TlsFront, serve: Any) -> None:
    # One serving thread: each keeps its own upstream connections, and the SDK may send a request
    # on a new connection of its own, which could land on another thread.
    client = trusting(serve, tls_front, tls_front.url_h1, {"threads": 1})
    seen = len(tls_front.requests_h1())
    assert chat(client, "secure/gpt-4o-mini", "one") == "You said: one"
    assert streamed(client, "secure/gpt-4o-mini", "two") == "You said: two"
    # A stream's answer is over at its `[DONE]` event; the end of its body (which nginx writes on
    # its own) is read off in the background before the connection serves again.
    time.sleep(0.2)
    assert chat(client, "secure/gpt-4o-mini", "three") == "You said: three"
    assert streamed(client, "secure/gpt-4o-mini", "four") == "You said: four"
    got = logged(tls_front.requests_h1, seen, 4)
    # HTTP/1.1 with a Host header (nginx answers 400 without one), and all four on one TLS
    # connection: the gateway keeps it open between requests, streams included.
    assert [line for _, line in got] == ["HTTP/1.1 POST /v1/chat/completions 200"] * 4
    assert len({connection for connection, _ in got}) == 1, got


def test_untrusted_certificate_is_refused_with_a_clear_error(
    tls_front: TlsFront, serve: Any, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca"
    other_ca.mkdir()
    proc, client = serve({"secure": {"api": "openai", "base_url": f"{tls_front.url}/v1", "api_key": MOCK_KEY}},
                         {"SSL_CERT_FILE": ThrowawayCA(str(other_ca), "some other CA").ca_cert})
    seen = len(tls_front.requests())
    with pytest.raises(openai.APIStatusError) as info:
        chat(client, "secure/gpt-4o-mini", "hello")
    assert info.value.status_code == 502
    message = str(info.value)
    assert "cannot connect to provider `secure`" in message and "invalid peer certificate" in message, message
    assert MOCK_KEY not in message
    # Nothing was sent, and the gateway is still serving.
    assert tls_front.requests()[seen:] == []
    assert httpx.get(f"{proc.url}/health").status_code == 200


def test_proxy_from_the_environment(tls_front: TlsFront, serve: Any, mock_upstream: str) -> None:
    with tinyproxy(PROXY_USER, PROXY_PASSWORD) as proxy:
        proxy_url = proxy.url(PROXY_USER, PROXY_PASSWORD)
        proc, client = serve(
            {
                "secure": {"api": "openai", "base_url": f"{tls_front.url}/v1", "api_key": MOCK_KEY},
                "plain": {"api": "openai", "base_url": f"{mock_upstream}/v1", "api_key": MOCK_KEY},
            },
            {"SSL_CERT_FILE": tls_front.ca.ca_cert, "HTTPS_PROXY": proxy_url, "HTTP_PROXY": proxy_url},
        )
        assert chat(client, "secure/gpt-4o-mini", "via tunnel") == "You said: via tunnel"
        assert streamed(client, "secure/gpt-4o-mini", "tunnel stream") == "You said: tunnel stream"
        assert chat(client, "plain/gpt-4o-mini", "via proxy") == "You said: via proxy"
        requests = proxy.requests()
    # HTTPS through a CONNECT tunnel (TLS end to end, so the proxy sees only the host); plain HTTP
    # handed to the proxy in absolute form.
    tls_host = tls_front.url.removeprefix("https://")
    assert any(r.startswith(f"CONNECT {tls_host} ") for r in requests), requests
    assert any(r.startswith(f"POST {mock_upstream}/v1/chat/completions ") for r in requests), requests
    assert PROXY_PASSWORD not in proc.log_path.read_text(errors="replace")


def test_no_proxy_and_refused_proxy_credentials(tls_front: TlsFront, serve: Any, mock_upstream: str) -> None:
    with tinyproxy(PROXY_USER, PROXY_PASSWORD) as proxy:
        wrong = proxy.url(PROXY_USER, "not-the-password-55")
        _, client = serve(
            {
                "secure": {"api": "openai", "base_url": f"{tls_front.url}/v1", "api_key": MOCK_KEY},
                "plain": {"api": "openai", "base_url": f"{mock_upstream}/v1", "api_key": MOCK_KEY},
            },
            {"SSL_CERT_FILE": tls_front.ca.ca_cert, "HTTPS_PROXY": wrong, "HTTP_PROXY": wrong, "NO_PROXY": "127.0.0.1"},
        )
        # 127.0.0.1 is exempt: straight to the upstream, the proxy never sees it.
        assert chat(client, "plain/gpt-4o-mini", "direct") == "You said: direct"
        # The proxy refuses the tunnel: a connection error saying so, without the credentials.
        with pytest.raises(openai.APIStatusError) as info:
            chat(client, "secure/gpt-4o-mini", "hello")
        requests = proxy.requests()
    assert info.value.status_code == 502
    message = str(info.value)
    assert "proxy" in message.lower() and "not-the-password-55" not in message, message
    assert not any("127.0.0.1" in r and "/v1/chat/completions" in r for r in requests), requests
