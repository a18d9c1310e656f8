"""The in-process front door: `ferrogate.completion` / `acompletion` / `embedding`, the
`OpenAI` / `AsyncOpenAI` clients, response objects, exceptions, and the GIL."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
import time
from typing import Any

import pytest

import ferrogate
from conftest import MOCK_KEY, WRONG_KEY, free_port

USER = [{"role": "user", "content": "hello facade"}]
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
}


def test_module_completion_litellm_style(mock_upstream: str) -> None:
    # No config at all: api_base / api_key per call, as with litellm.completion.
    r = ferrogate.completion(model="openai/gpt-4o-mini", messages=USER, api_base=f"{mock_upstream}/v1", api_key=MOCK_KEY)
    assert r.choices[0].message.content == "You said: hello facade"
    assert r["choices"][0]["message"]["content"] == "You said: hello facade"
    assert r.usage.total_tokens == r["usage"]["total_tokens"] > 0
    assert r.served_by.provider == "openai" and r.served_by.key_name == "request"
    assert r.served_by.overhead_us >= 0


def test_gateway_completion_and_response_objects(gateway: ferrogate.Gateway) -> None:
    r = gateway.completion("fast", USER, temperature=0.2, max_tokens=50, user="u-1", seed=3)
    assert isinstance(r, ferrogate.ChatCompletion)
    msg = r.choices[0].message
    assert msg.tool_calls is None and msg.refusal is None  # optional fields read as None
    with pytest.raises(AttributeError):
        _ = msg.no_such_field
    dumped = r.model_dump()
    assert type(dumped) is dict and type(dumped["choices"][0]) is dict
    assert json.loads(r.model_dump_json())["id"] == r.id
    assert json.loads(json.dumps(r)) == dumped
    again = pickle.loads(pickle.dumps(r))
    assert again == r and isinstance(again, ferrogate.ChatCompletion)
    assert r.served_by.model == "gpt-4o-mini" and r.served_by.attempts == 1


def test_unknown_kwargs_are_forwarded_gateway_options_are_not(gateway: ferrogate.Gateway, mock_requests: Any) -> None:
    gateway.completion(
        "openai/gpt-4o-mini",
        USER,
        reasoning_effort="low",
        extra_body={"x_vendor": {"k": [1, None]}},
        metadata={"team": "a"},
        timeout=30,
        temperature=None,
    )
    body = mock_requests()[-1]["body"]
    assert body["reasoning_effort"] == "low"
    assert body["x_vendor"] == {"k": [1, None]}
    for key in ("metadata", "timeout", "temperature", "api_key"):
        assert key not in body


def test_stream_sync_and_close(gateway: ferrogate.Gateway) -> None:
    stream = gateway.completion("fast", [{"role": "user", "content": "a b c"}], stream=True)
    chunks = list(stream)
    assert all(isinstance(c, ferrogate.ChatCompletionChunk) for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: a b c"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert stream.served_by.provider == "openai"
    with gateway.completion("fast", USER, stream=True) as s:
        first = next(s)
        assert first.choices[0].delta.role == "assistant"
    with pytest.raises(StopIteration):
        next(s)


async def test_acompletion_and_async_stream(gateway: ferrogate.Gateway) -> None:
    r = await gateway.acompletion("fast", USER)
    assert r.choices[0].message.content == "You said: hello facade"
    stream = await gateway.acompletion("fast", USER, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].usage.completion_tokens == 4
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "You said: hello facade"


async def test_200_concurrent_acompletions(gateway: ferrogate.Gateway) -> None:
    results = await asyncio.gather(
        *(gateway.acompletion("fast", [{"role": "user", "content": f"request {i}"}]) for i in range(200))
    )
    assert [r.choices[0].message.content for r in results] == [f"You said: request {i}" for i in range(200)]


async def test_module_acompletion_concurrent_streams(mock_upstream: str) -> None:
    async def one(i: int) -> str:
        s = await ferrogate.acompletion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": f"s{i}"}],
            stream=True,
            api_base=f"{mock_upstream}/v1",
            api_key=MOCK_KEY,
        )
        return "".join([c.choices[0].delta.content or "" async for c in s])

    texts = await asyncio.gather(*(one(i) for i in range(50)))
    assert texts == [f"You said: s{i}" for i in range(50)]


def test_tool_call_round_trip_in_process(gateway: ferrogate.Gateway) -> None:
    messages: list[Any] = [{"role": "user", "content": "find ferrogate"}]
    first = gateway.completion("fast", messages, tools=[TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "ferrogate"}
    messages.append(first.choices[0].message)  # a response object goes back in as it is
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "found it"})
    second = gateway.completion("fast", messages, tools=[TOOL])
    assert second.choices[0].message.content == "The tool returned: found it"


def test_embeddings(gateway: ferrogate.Gateway) -> None:
    r = gateway.embedding("embedder", ["x", "y", "z"], dimensions=8)
    assert isinstance(r, ferrogate.CreateEmbeddingResponse)
    assert len(r.data) == 3 and len(r.data[2].embedding) == 8
    assert r.served_by.provider == "openai"


async def test_aembedding(gateway: ferrogate.Gateway) -> None:
    r = await gateway.aembedding("embedder", "single")
    assert len(r.data) == 1


def test_openai_shaped_client(mock_upstream: str) -> None:
    client = ferrogate.OpenAI(base_url=f"{mock_upstream}/v1", api_key=MOCK_KEY)
    r = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert r.choices[0].message.content == "You said: hello facade"
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    e = client.embeddings.create(model="text-embedding-3-small", input=["q"])
    floats = client.embeddings.create(model="text-embedding-3-small", input=["q"], encoding_format="float")
    assert isinstance(e.data[0].embedding, list)
    assert e.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    assert "openai/mock-model" in [m.id for m in client.models.list()]


async def test_async_openai_shaped_client(mock_upstream: str) -> None:
    client = ferrogate.AsyncOpenAI(base_url=f"{mock_upstream}/v1", api_key=MOCK_KEY)
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert r.choices[0].message.content == "You said: hello facade"
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    assert [c async for c in stream][-1].choices[0].finish_reason == "stop"
    e = await client.embeddings.create(model="text-embedding-3-small", input="q")
    assert len(e.data[0].embedding) == 16


def test_exceptions(gateway: ferrogate.Gateway, mock_upstream: str) -> None:
    with pytest.raises(ferrogate.AuthenticationError) as auth:
        gateway.completion("badkey/gpt-4o-mini", USER)
    assert auth.value.status_code == 401 and auth.value.provider == "badkey"
    assert WRONG_KEY not in str(auth.value) and WRONG_KEY not in json.dumps(auth.value.body)
    assert isinstance(auth.value, ferrogate.APIStatusError)

    with pytest.raises(ferrogate.NotFoundError) as nf:
        gateway.completion("nosuch/model", USER)
    assert "known providers" in nf.value.message

    with pytest.raises(ferrogate.BadRequestError) as bad:
        gateway.completion("fast", [{"role": "user", "content": 5}])
    assert bad.value.param == "messages[0].content"

    with pytest.raises(ferrogate.RateLimitError) as rl:
        gateway.completion("openai/mock-fail-429", USER)
    assert rl.value.retry_after == 1.0

    with pytest.raises(ferrogate.APITimeoutError):
        gateway.completion("openai/mock-hang", USER, timeout=0.3)
    with pytest.raises(ferrogate.Timeout):  # LiteLLM's name
        gateway.completion("slowpoke/mock-hang", USER)

    with pytest.raises(ferrogate.BadGatewayError) as garbage:
        gateway.completion("openai/mock-garbage", USER)
    assert garbage.value.status_code == 502

    with pytest.raises(ferrogate.APIConnectionError):
        gateway.completion("openai/gpt-4o-mini", USER, api_base=f"http://127.0.0.1:{free_port()}/v1")

    with pytest.raises(ferrogate.APIConnectionError):
        list(gateway.completion("openai/mock-drop", [{"role": "user", "content": "a b c d"}], stream=True))


async def test_async_exceptions(gateway: ferrogate.Gateway) -> None:
    with pytest.raises(ferrogate.AuthenticationError):
        await gateway.acompletion("badkey/gpt-4o-mini", USER)
    with pytest.raises(ferrogate.InternalServerError) as e:
        await gateway.acompletion("openai/mock-fail-503", USER)
    assert isinstance(e.value, ferrogate.ServiceUnavailableError)


def test_config_errors_name_the_field(tmp_path: Any) -> None:
    with pytest.raises(ferrogate.ConfigError, match=r"providers\.openai\.api_kye: unknown field"):
        ferrogate.Gateway({"providers": {"openai": {"api_kye": "x"}}})
    with pytest.raises(ferrogate.ConfigError, match=r"timeouts\.request: invalid duration"):
        ferrogate.Gateway({"timeouts": {"request": "soon"}})
    with pytest.raises(ferrogate.ConfigError, match="cannot read config file"):
        ferrogate.Gateway(str(tmp_path / "missing.yaml"))
    f = tmp_path / "ok.json"
    f.write_text(json.dumps({"aliases": {"a": "groq/llama"}}))
    assert ferrogate.Gateway(f).config["aliases"] == {"a": "groq/llama"}
    assert isinstance(ferrogate.ConfigError("x"), ValueError)


def test_secrets_are_redacted_in_config_dump(gateway: ferrogate.Gateway) -> None:
    dumped = json.dumps(gateway.config)
    assert MOCK_KEY not in dumped and WRONG_KEY not in dumped and "[REDACTED]" in dumped


def test_gil_is_released_while_waiting(gateway: ferrogate.Gateway) -> None:
    """While one thread waits 600 ms on a slow upstream, another keeps running Python code."""
    done = threading.Event()

    def call() -> None:
        gateway.completion("openai/mock-slow-600", USER)
        done.set()

    t = threading.Thread(target=call)
    t.start()
    ticks = 0
    start = time.perf_counter()
    while not done.is_set():
        ticks += 1
        time.sleep(0)  # a pure-Python loop: progresses only if the GIL is free
    elapsed = time.perf_counter() - start
    t.join()
    assert elapsed >= 0.5
    assert ticks > 1000, f"main thread starved: {ticks} iterations in {elapsed:.2f}s"


def test_background_server_with_openai_sdk(mock_upstream: str) -> None:
    import openai

    from conftest import gateway_config

    with ferrogate.Server(gateway_config(mock_upstream)) as srv:
        client = openai.OpenAI(base_url=f"{srv.base_url}/v1", api_key="x", max_retries=0)
        r = client.chat.completions.create(model="fast", messages=USER)
        assert r.choices[0].message.content == "You said: hello facade"
    with pytest.raises(RuntimeError):
        _ = srv.base_url
