"""Every native provider end to end, against the mock speaking that provider's wire format: the
official `openai` SDK through `ferrogate serve`, and `ferrogate.Gateway` in-process. Each must
give the canonical answer the mock encodes, with the right usage and finish reason."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

import ferrogate

#: provider name -> a model name that provider's mock answers
PROVIDERS = {
    "anthropic": "anthropic/claude-3-5-haiku-latest",
    "bedrock": "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0",
    "cohere": "cohere/command-a-03-2025",
    "azure": "azure/gpt-4o-mini",
    "gemini": "gemini/gemini-2.0-flash",
    "vertex": "vertex/gemini-2.0-flash",
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# A 1x1 PNG.
PIXEL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def fault(model: str, word: str) -> str:
    """The same model with a mock fault word in its name."""
    provider, name = model.split("/", 1)
    return f"{provider}/{name}-{word}"


@pytest.mark.parametrize("model", PROVIDERS.values(), ids=PROVIDERS.keys())
class TestThroughServer:
    def test_chat(self, client: openai.OpenAI, model: str) -> None:
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello native"}],
            max_tokens=100,
        )
        assert r.choices[0].message.content == "You said: hello native"
        assert r.choices[0].finish_reason == "stop"
        assert r.usage.completion_tokens == 4 and r.usage.prompt_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    def test_stream(self, client: openai.OpenAI, model: str) -> None:
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "stream native words"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "You said: stream native words"
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5

    def test_tool_round_trip(self, client: openai.OpenAI, model: str) -> None:
        messages: list[Any] = [{"role": "user", "content": "weather in Lima"}]
        first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        assert first.choices[0].finish_reason == "tool_calls"
        call = first.choices[0].message.tool_calls[0]
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Lima"}
        messages += [first.choices[0].message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "warm"}]
        second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
        assert second.choices[0].message.content == "The tool returned: warm"
        assert second.choices[0].finish_reason == "stop"

    def test_streamed_tool_call(self, client: openai.OpenAI, model: str) -> None:
        args, names = "", []
        for c in client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "weather in Kyiv"}], tools=[WEATHER], stream=True
        ):
            for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                if tc.function.name:
                    names.append(tc.function.name)
                args += tc.function.arguments or ""
        assert names == ["get_weather"] and json.loads(args) == {"city": "Kyiv"}

    def test_image_input(self, client: openai.OpenAI, model: str) -> None:
        r = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PIXEL}}]}],
        )
        assert r.choices[0].message.content == "You said: what is this (and 1 image)"

    def test_native_errors(self, client: openai.OpenAI, model: str) -> None:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model=fault(model, "fail-401"), messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=fault(model, "fail-429"), messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.BadRequestError) as too_long:
            client.chat.completions.create(model=fault(model, "toolong"), messages=[{"role": "user", "content": "x"}])
        assert too_long.value.code == "context_length_exceeded"
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=fault(model, "fail-500"), messages=[{"role": "user", "content": "x"}])
        r = client.chat.completions.create(model=fault(model, "refuse"), messages=[{"role": "user", "content": "x"}])
        assert r.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("model", PROVIDERS.values(), ids=PROVIDERS.keys())
class TestInProcess:
    def test_chat_stream_tools(self, gateway: ferrogate.Gateway, model: str) -> None:
        r = gateway.completion(model, [{"role": "user", "content": "in process"}])
        assert r.choices[0].message.content == "You said: in process"
        assert r.served_by.provider == model.split("/")[0]
        chunks = list(gateway.completion(model, [{"role": "user", "content": "in process stream"}], stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: in process stream"
        t = gateway.completion(model, [{"role": "user", "content": "weather in Quito"}], tools=[WEATHER])
        assert json.loads(t.choices[0].message.tool_calls[0].function.arguments) == {"city": "Quito"}

    async def test_async_and_errors(self, gateway: ferrogate.Gateway, model: str) -> None:
        r = await gateway.acompletion(model, [{"role": "user", "content": [{"type": "text", "text": "pic"}, {"type": "image_url", "image_url": {"url": PIXEL}}]}])
        assert r.choices[0].message.content == "You said: pic (and 1 image)"
        with pytest.raises(ferrogate.ContextWindowExceededError):
            await gateway.acompletion(fault(model, "toolong"), [{"role": "user", "content": "x"}])
        with pytest.raises(ferrogate.RateLimitError) as rl:
            gateway.completion(fault(model, "fail-429"), [{"role": "user", "content": "x"}])
        assert rl.value.provider == model.split("/")[0]


def test_azure_prompt_filter(client: openai.OpenAI, mock_requests: Any) -> None:
    """Azure's two content filters: a filtered completion is a `content_filter` finish (the shared
    `refuse` case above); a filtered prompt is a 400 with code `content_filter`."""
    with pytest.raises(openai.BadRequestError) as filtered:
        client.chat.completions.create(model="azure/gpt-4o-mini-jailbreak", messages=[{"role": "user", "content": "x"}])
    assert filtered.value.code == "content_filter"
    client.chat.completions.create(model="azure/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert mock_requests()[-1]["path"] == "/openai/deployments/gpt-4o-mini-eastus/chat/completions"


def test_cohere_embeddings(client: openai.OpenAI, mock_requests: Any) -> None:
    r = client.embeddings.create(model="cohere/embed-v4.0", input=["one two", "three"], dimensions=8)
    assert [len(d.embedding) for d in r.data] == [8, 8] and r.usage.prompt_tokens == 3
    sent = mock_requests()[-1]
    assert sent["path"] == "/v2/embed" and sent["body"]["input_type"] == "search_document"
