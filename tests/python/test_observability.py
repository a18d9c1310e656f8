"""Observability end to end: Prometheus metrics parsed with a real parser, the request log store
under a burst (SQLite and a real PostgreSQL server), traces received by a real OTLP receiver
(HTTP/protobuf and gRPC), and no secret anywhere in them."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import ferrogate
from conftest import MOCK_KEY, Proc, ferrogate_cmd, free_port
from services import postgres


def serve(config: dict[str, Any], tmp: Path, env: dict[str, str] | None = None) -> Proc:
    cfg = tmp / f"config-{secrets.token_hex(4)}.json"
    cfg.write_text(json.dumps(config))
    port = free_port()
    return Proc(ferrogate_cmd("serve", "--config", str(cfg), "--port", str(port)), port, env=env)


def base_config(mock: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"openai": {"base_url": f"{mock}/v1", "api_key": MOCK_KEY}},
        "routing": {"retries": 1, "backoff": {"initial": "1ms", "max": "2ms"}, "circuit_breaker": {"failures": 1000}},
    }
    config.update(extra)
    return config


def samples(text: str, name: str, **labels: str) -> list[float]:
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append(s.value)
    return out


@pytest.fixture(scope="module")
def obs_server(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("obs")
    p = serve(
        base_config(
            mock_upstream,
            prices={"openai/gpt-4o-mini": {"input": 1.0, "output": 2.0}},
            telemetry={
                "metrics": {"header_labels": {"x-team": "team"}},
                "log_store": {"path": str(tmp / "logs.db"), "flush_interval": "50ms"},
            },
        ),
        tmp,
    )
    yield p.url
    p.stop()


def test_prometheus_metrics(obs_server: str) -> None:
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hello metrics"}]}
    with httpx.Client(base_url=obs_server, timeout=30) as c:
        for _ in range(10):
            assert c.post("/v1/chat/completions", json=chat, headers={"x-team": "search"}).status_code == 200
        for _ in range(3):
            r = c.post("/v1/chat/completions", json={**chat, "stream": True, "stream_options": {"include_usage": True}})
            assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        # A stream whose caller did not ask for usage is accounted all the same (the gateway asks).
        r = c.post("/v1/chat/completions", json={**chat, "stream": True})
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]") and '"usage":{' not in r.text
        for _ in range(2):
            r = c.post("/v1/chat/completions", json={**chat, "model": "openai/mock-fail-500"})
            assert r.status_code == 500
        for _ in range(2):
            assert c.post("/v1/embeddings", json={"model": "openai/text-embedding-3-small", "input": "x"}).status_code == 200
        text = c.get("/metrics").text

    assert MOCK_KEY not in text
    ok = dict(endpoint="chat.completions", model="openai/gpt-4o-mini", status="200")
    assert sum(samples(text, "ferrogate_requests_total", **ok, stream="false", team="search")) == 10
    assert sum(samples(text, "ferrogate_requests_total", **ok, stream="true")) == 4
    assert sum(samples(text, "ferrogate_requests_total", model="openai/mock-fail-500", status="500")) == 2
    assert sum(samples(text, "ferrogate_requests_total", endpoint="embeddings", status="200")) == 2
    # Each request is `hello metrics` (3 prompt tokens for the mock) -> `You said: hello metrics` (4).
    tokens = lambda kind: sum(samples(text, "ferrogate_tokens_total", provider="openai", model="gpt-4o-mini", kind=kind))  # noqa: E731
    assert (tokens("input"), tokens("output")) == (14 * 3, 14 * 4)
    cost = sum(samples(text, "ferrogate_cost_usd_total", provider="openai", model="gpt-4o-mini"))
    assert cost == pytest.approx((42 * 1.0 + 56 * 2.0) / 1e6)
    assert sum(samples(text, "ferrogate_request_duration_seconds_count", endpoint="chat.completions", model="openai/gpt-4o-mini")) == 14
    assert sum(samples(text, "ferrogate_time_to_first_token_seconds_count", provider="openai", model="openai/gpt-4o-mini")) == 4
    assert sum(samples(text, "ferrogate_inter_token_latency_seconds_count", provider="openai")) >= 4 * 3
    # Two failing requests, each tried twice (retries: 1), each retry counted once.
    assert sum(samples(text, "ferrogate_upstream_requests_total", deployment="openai/mock-fail-500", outcome="upstream_server")) == 4
    assert sum(samples(text, "ferrogate_retries_total", deployment="openai/mock-fail-500", reason="upstream_server")) == 2
    assert sum(samples(text, "ferrogate_key_selections_total", provider="openai", key="default")) >= 14 + 4 + 2
    assert sum(samples(text, "ferrogate_upstream_duration_seconds_count", deployment="openai/gpt-4o-mini")) == 14
    assert sum(samples(text, "ferrogate_http_requests_total", route="chat.completions", status="200")) >= 14
    states = samples(text, "ferrogate_health_state", kind="deployment", target="openai/gpt-4o-mini")
    assert states == [0.0], "closed"


async def burst(url: str, n: int, tag: str) -> dict[str, str]:
    """Sends `n` requests (10% fail with 503); returns request id -> model."""
    sent: dict[str, str] = {}
    limit = asyncio.Semaphore(64)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)) as c:

        async def one(i: int) -> None:
            model = "openai/mock-fail-503" if i % 10 == 0 else f"openai/{tag}-model"
            rid = f"{tag}-{i}"
            sent[rid] = model
            async with limit:
                await c.post(
                    "/v1/chat/completions",
                    headers={"x-request-id": rid},
                    json={"model": model, "user": f"user{i % 5}", "num_retries": 0,
                          "messages": [{"role": "user", "content": f"burst {i}"}]},
                )

        await asyncio.gather(*(one(i) for i in range(n)))
    return sent


def all_rows(url: str, headers: dict[str, str] | None = None, **filters: Any) -> list[dict[str, Any]]:
    rows, cursor = [], None
    while True:
        params = {**filters, "limit": 100, **({"cursor": cursor} if cursor else {})}
        resp = httpx.get(f"{url}/admin/logs", params=params, headers=headers or {})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        rows += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


def wait_rows(url: str, expected: int, **filters: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        rows = all_rows(url, **filters)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def check_log_store(url: str, tag: str) -> None:
    started = int(time.time() * 1000)
    sent = asyncio.run(burst(url, 1000, tag))
    ok_model = f"openai/{tag}-model"
    rows = wait_rows(url, 900, model=ok_model)
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 900, "exactly one row per request"
    assert set(ids) == {rid for rid, m in sent.items() if m == ok_model}
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True), "newest first"
    r0 = rows[0]
    assert r0["status"] == 200 and r0["provider"] == "openai" and r0["key_name"] == "default"
    assert r0["prompt_tokens"] > 0 and r0["completion_tokens"] > 0 and r0["latency_ms"] > 0
    assert r0["request"] is None and r0["response"] is None, "content is not stored unless enabled"

    failed = wait_rows(url, 100, model="openai/mock-fail-503", status=503, since=started)
    assert len(failed) == 100 and all(r["error_type"] == "upstream_server" for r in failed)
    assert len(all_rows(url, model=ok_model, user="user3")) == 200
    assert len(all_rows(url, q="overloaded", since=started)) == 100, "free text finds the error message"
    assert len(all_rows(url, model=ok_model, provider="nope")) == 0
    assert len(all_rows(url, model=ok_model, since=started, until=int(time.time() * 1000) + 1)) == 900
    first = httpx.get(f"{url}/admin/logs", params={"model": ok_model, "limit": 7}).json()
    assert len(first["data"]) == 7 and first["next_cursor"]
    second = httpx.get(f"{url}/admin/logs", params={"model": ok_model, "limit": 7, "cursor": first["next_cursor"]}).json()
    assert not {r["id"] for r in first["data"]} & {r["id"] for r in second["data"]}
    bad = httpx.get(f"{url}/admin/logs", params={"cursor": "garbage"})
    assert bad.status_code == 400
    bad = httpx.get(f"{url}/admin/logs", params={"unknown_filter": "1"})
    assert bad.status_code == 400 and "unknown_filter" in bad.json()["error"]["message"]


def test_log_store_sqlite(obs_server: str) -> None:
    check_log_store(obs_server, "sqlite")


def test_log_store_postgres(mock_upstream: str, tmp_path: Path) -> None:
    with postgres() as url:
        p = serve(
            base_config(mock_upstream, telemetry={"log_store": {"backend": "postgres", "url": url, "flush_interval": "50ms"}}),
            tmp_path,
        )
        try:
            check_log_store(p.url, "pg")
        finally:
            p.stop()


def test_log_store_refuses_a_database_it_cannot_reach(mock_upstream: str, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(base_config(mock_upstream, telemetry={"log_store": {
        "backend": "postgres", "url": f"postgres://u:hunter2@127.0.0.1:{free_port()}/db"}})))
    import subprocess

    out = subprocess.run(ferrogate_cmd("serve", "--config", str(cfg), "--port", "0"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "cannot connect to the PostgreSQL log store" in out.stderr
    assert "hunter2" not in out.stderr, "the password is never shown"


def test_admin_token_and_no_secrets_in_logs(mock_upstream: str, tmp_path: Path) -> None:
    p = serve(base_config(mock_upstream, server={"admin_token": "admin-token-123"},
                          telemetry={"log_store": {"path": str(tmp_path / "l.db"), "log_content": True, "flush_interval": "50ms"}}), tmp_path)
    try:
        httpx.post(f"{p.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        assert httpx.get(f"{p.url}/admin/logs").status_code == 401
        assert httpx.get(f"{p.url}/admin/logs", headers={"authorization": "Bearer wrong"}).status_code == 401
        rows = wait_rows_auth(p.url, "admin-token-123")
        assert rows[0]["request"] and json.loads(rows[0]["request"])["messages"][0]["content"] == "x"
        assert rows[0]["response"] and "You said: x" in rows[0]["response"]
        dump = json.dumps(rows) + httpx.get(f"{p.url}/metrics").text
        assert MOCK_KEY not in dump and "admin-token-123" not in dump
    finally:
        p.stop()


def wait_rows_auth(url: str, token: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = httpx.get(f"{url}/admin/logs", headers={"authorization": f"Bearer {token}"}).json()["data"]
        if rows:
            return rows
        time.sleep(0.05)
    raise AssertionError("no log rows")


def test_in_process_metrics_and_log_store(mock_upstream: str, tmp_path: Path) -> None:
    gw = ferrogate.Gateway(base_config(mock_upstream, telemetry={"log_store": {"enabled": True, "path": str(tmp_path / "ip.db")}}))
    for i in range(20):
        gw.completion("openai/in-process-model", [{"role": "user", "content": f"m{i}"}], metadata={"tags": ["ip"]})
    assert gw.flush_logs()
    page = gw.query_logs(model="openai/in-process-model", limit=100)
    assert len(page["data"]) == 20 and page["data"][0]["tags"] == ["ip"]
    text = ferrogate.metrics_text()
    assert sum(samples(text, "ferrogate_requests_total", model="openai/in-process-model", status="200")) == 20


# --- OpenTelemetry ---------------------------------------------------------------------------

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc  # noqa: E402


class Received:
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def add(self, request: Any) -> None:
        with self.lock:
            for rs in request.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), None)
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.spans.append((service, span))

    def wait(self, trace_id: bytes, count: int) -> list[tuple[str | None, Any]]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with self.lock:
                found = [(s, sp) for s, sp in self.spans if sp.trace_id == trace_id]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"only {len(found)} spans arrived")


def attrs(span: Any) -> dict[str, Any]:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") else v.double_value
    return out


def http_receiver(received: Received) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            received.add(req)
            out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def grpc_receiver(received: Received) -> tuple[Any, int]:
    import grpc

    class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802
            received.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_traces_reach_an_otlp_receiver(mock_upstream: str, tmp_path: Path, protocol: str) -> None:
    received = Received()
    receiver, port = http_receiver(received) if protocol == "http/protobuf" else grpc_receiver(received)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    p = serve(base_config(mock_upstream, routing={"retries": 1, "backoff": {"initial": "1ms", "max": "2ms"}}), tmp_path, env=env)
    try:
        trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
        r = httpx.post(
            f"{p.url}/v1/chat/completions",
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "trace me"}]},
        )
        assert r.status_code == 200
        spans = received.wait(bytes.fromhex(trace_id), 2)
    finally:
        p.stop()
        receiver.shutdown() if protocol == "http/protobuf" else receiver.stop(0)
    assert {s for s, _ in spans} == {"gateway-under-test"}
    by_name = {sp.name: sp for _, sp in spans}
    request, attempt = by_name["chat openai/gpt-4o-mini"], by_name["upstream openai"]
    assert request.parent_span_id == bytes.fromhex(parent_id), "the caller's trace is continued"
    assert attempt.parent_span_id == request.span_id, "one child span per upstream attempt"
    a = attrs(request)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert a["gen_ai.system"] == "openai" and a["gen_ai.response.model"] == "gpt-4o-mini"
    assert a["gen_ai.usage.input_tokens"] == 3 and a["gen_ai.usage.output_tokens"] == 4
    assert a["gen_ai.response.finish_reasons"] == '["stop"]'
    assert attrs(attempt)["ferrogate.key"] == "default" and attrs(attempt)["gen_ai.system"] == "openai"
    assert MOCK_KEY not in str(spans)
