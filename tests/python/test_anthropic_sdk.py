"""The official `anthropic` SDK against the gateway's `/anthropic` drop-in route, with an
OpenAI-format upstream and with an Anthropic-format upstream, streamed and not, with tools."""

from __future__ import annotations

import anthropic
import pytest

UPSTREAMS = {"openai-upstream": "openai/gpt-4o-mini", "anthropic-upstream": "anthropic/claude-3-5-haiku-latest"}
TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client(server: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{server}/anthropic", api_key="unused", max_retries=0)


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
def test_message(client: anthropic.Anthropic, model: str) -> None:
    m = client.messages.create(
        model=model, max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "hello from the sdk"}]
    )
    assert m.content[0].type == "text" and m.content[0].text == "You said: hello from the sdk"
    assert m.stop_reason == "end_turn" and m.role == "assistant"
    assert m.usage.output_tokens == 6 and m.usage.input_tokens > 0


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
def test_stream(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=200, messages=[{"role": "user", "content": "stream from the sdk"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "You said: stream from the sdk"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6


@pytest.mark.parametrize("model", UPSTREAMS.values(), ids=UPSTREAMS.keys())
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_use_round_trip(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    messages: list = [{"role": "user", "content": "weather in Nairobi"}]
    if stream:
        with client.messages.stream(model=model, max_tokens=200, messages=messages, tools=[TOOL]) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=200, messages=messages, tools=[TOOL])
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and use.input == {"city": "Nairobi"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rainy"}]},
    ]
    second = client.messages.create(model=model, max_tokens=200, messages=messages, tools=[TOOL])
    assert second.content[0].text == "The tool returned: rainy"


def test_image_block(client: anthropic.Anthropic) -> None:
    m = client.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=50,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        ]}],
    )
    assert m.content[0].text == "You said: look (and 1 image)"


def test_errors_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="badkey/gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError) as nf:
        client.messages.create(model="nosuch/model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "known providers" in str(nf.value)
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="anthropic/claude-fail-429", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="openai/gpt-4o-mini", max_tokens=10, messages=[{"role": "robot", "content": "x"}])  # type: ignore[list-item]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="anthropic/claude-fail-529", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 503
