"""`ferrogate serve` driven by the official `openai` SDK (and raw HTTP for what the SDK cannot
send), in front of `ferrogate mock-upstream`."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import WRONG_KEY, Proc, ferrogate_cmd, free_port

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused-by-the-gateway", max_retries=0)


def test_chat(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == "You said: hello there"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.completion_tokens == 4 and r.usage.total_tokens == r.usage.prompt_tokens + 4
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-ferrogate-provider"] == "openai"
    assert raw.headers["x-ferrogate-model"] == "gpt-4o-mini"
    assert int(raw.headers["x-ferrogate-overhead-us"]) >= 0


def test_streamed_chat_with_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream these words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream these words"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_tool_call_round_trip(client: openai.OpenAI) -> None:
    messages: list = [{"role": "user", "content": "What's the weather in Paris"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'})
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == 'The tool returned: {"temp_c": 21}'


def test_streamed_tool_call(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Oslo"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    args = ""
    name = None
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    assert name == "get_weather"
    assert json.loads(args) == {"city": "Oslo", "unit": "c"}


def test_embeddings(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; the gateway passes it through.
    r = client.embeddings.create(model="embedder", input=["alpha", "beta"])
    assert [d.index for d in r.data] == [0, 1]
    assert len(r.data[0].embedding) == 16
    as_floats = client.embeddings.create(model="embedder", input=["alpha", "beta"], encoding_format="float")
    assert as_floats.data[0].embedding == pytest.approx(r.data[0].embedding, rel=1e-6)
    assert r.usage.prompt_tokens == 2


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "fast" in ids and "embedder" in ids
    assert "openai/mock-model" in ids  # asked from the provider itself
    assert client.models.retrieve("fast").id == "fast"


def test_errors_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        client.chat.completions.create(model="badkey/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert auth.value.status_code == 401
    assert WRONG_KEY not in str(auth.value.body) and WRONG_KEY not in str(auth.value)

    with pytest.raises(openai.NotFoundError) as nf:
        client.chat.completions.create(model="nosuch/model", messages=[{"role": "user", "content": "x"}])
    assert "known providers" in str(nf.value) and "groq" in str(nf.value)

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])

    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="openai/mock-fail-429", messages=[{"role": "user", "content": "x"}])

    with pytest.raises(openai.InternalServerError) as garbage:
        client.chat.completions.create(model="openai/mock-garbage", messages=[{"role": "user", "content": "x"}])
    assert garbage.value.status_code == 502

    with pytest.raises(openai.InternalServerError) as hang:
        client.chat.completions.create(model="slowpoke/mock-hang", messages=[{"role": "user", "content": "x"}])
    assert hang.value.status_code == 504

    # A stream that breaks mid-way raises instead of ending quietly.
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(
            model="openai/mock-drop", messages=[{"role": "user", "content": "a b c d e"}], stream=True
        ):
            pass


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "invalid request body"),
        (b"", 400, "empty"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "missing field `model`"),
        (b'{"model": "gpt-4o-mini"}', 400, "missing field `messages`"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 12}]}', 400, "messages[0].content"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}', 400, "max_tokens"),
        (b'{"model": "nope/x", "messages": [{"role": "user", "content": "x"}]}', 404, "unknown provider `nope`"),
        (json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 70_000}]}).encode(), 413, "limit"),
    ],
)
def test_bad_input_gets_a_clear_error(server: str, body: bytes, status: int, needle: str) -> None:
    r = httpx.post(f"{server}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"]
    assert err["type"]
    # The server is still healthy afterwards.
    assert httpx.get(f"{server}/health").status_code == 200


def test_sigterm_drains_in_flight_requests(config_file: Path) -> None:
    port = free_port()
    p = Proc(ferrogate_cmd("serve", "--config", str(config_file), "--port", str(port)), port)
    result: dict = {}

    def slow_call() -> None:
        r = httpx.post(
            f"{p.url}/v1/chat/completions",
            json={"model": "openai/mock-slow-700", "messages": [{"role": "user", "content": "finish me"}]},
            timeout=10,
        )
        result["status"] = r.status_code
        result["content"] = r.json()["choices"][0]["message"]["content"]

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.25)
    p.proc.send_signal(signal.SIGTERM)
    t.join(timeout=10)
    assert p.proc.wait(timeout=10) == 0
    assert result == {"status": 200, "content": "You said: finish me"}


def test_invalid_config_stops_startup_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  openai:\n    api_kye: sk-x\n")
    out = subprocess.run(ferrogate_cmd("serve", "--config", str(bad), "--port", "0"), capture_output=True, text=True, timeout=20)
    assert out.returncode == 2
    assert "providers.openai.api_kye: unknown field `api_kye`" in out.stderr
    bad.write_text("server:\n  port: eighty\n")
    out = subprocess.run(ferrogate_cmd("check-config", str(bad)), capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "server.port" in out.stderr
