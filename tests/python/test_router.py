"""`ferrogate.Router` with LiteLLM's `model_list` shape, on the Rust router."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest

import ferrogate
from conftest import MOCK_KEY, Proc, ferrogate_cmd, free_port


@pytest.fixture(scope="module")
def second_mock() -> str:
    port = free_port()
    p = Proc(ferrogate_cmd("mock-upstream", "--port", str(port)), port)
    yield p.url
    p.stop()


def model_list(a: str, b: str) -> list[dict]:
    return [
        {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{a}/v1", "api_key": MOCK_KEY}},
        {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": f"{b}/v1", "api_key": "sk-other-1234"}},
        {"model_name": "broken", "litellm_params": {"model": "openai/mock-fail-503", "api_base": f"{a}/v1", "api_key": MOCK_KEY}},
        {"model_name": "refused", "litellm_params": {"model": "openai/mock-fail-400", "api_base": f"{a}/v1", "api_key": MOCK_KEY}},
    ]


def test_spreads_over_deployments_and_falls_back(mock_upstream: str, second_mock: str) -> None:
    router = ferrogate.Router(
        model_list=model_list(mock_upstream, second_mock),
        fallbacks=[{"broken": ["chat"]}],
        num_retries=1,
        timeout=30,
    )
    assert router.get_model_names() == ["broken", "chat", "refused"]
    served = Counter(router.completion(model="chat", messages=[{"role": "user", "content": "hi"}]).served_by.deployment for _ in range(60))
    assert len(served) == 2 and min(served.values()) > 10, served
    r = router.completion(model="broken", messages=[{"role": "user", "content": "still answered"}])
    assert r.choices[0].message.content == "You said: still answered"
    assert r.served_by.fallback_index == 1 and r.served_by.attempts == 3  # 2 tries on `broken`, then `chat`
    with pytest.raises(ferrogate.BadRequestError):
        router.completion(model="refused", messages=[{"role": "user", "content": "x"}])
    # Secrets given in the model list never show in the config dump.
    assert MOCK_KEY not in json.dumps(router.config) and "sk-other-1234" not in json.dumps(router.config)


async def test_async_and_per_call_fallbacks(mock_upstream: str, second_mock: str) -> None:
    router = ferrogate.Router(model_list=model_list(mock_upstream, second_mock), num_retries=0)
    rs = await asyncio.gather(*(router.acompletion(model="chat", messages=[{"role": "user", "content": f"n{i}"}]) for i in range(50)))
    assert [r.choices[0].message.content for r in rs] == [f"You said: n{i}" for i in range(50)]
    r = await router.acompletion(model="broken", messages=[{"role": "user", "content": "x"}], fallbacks=["chat"])
    assert r.served_by.fallback_index == 1
    with pytest.raises(ferrogate.ServiceUnavailableError):
        await router.acompletion(model="broken", messages=[{"role": "user", "content": "x"}])


def test_model_list_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="model_list\\[0\\] needs"):
        ferrogate.Router(model_list=[{"model_name": "x"}])
    with pytest.raises(ferrogate.ConfigError, match="models.x.fallbacks\\[0\\]"):
        ferrogate.Router(
            model_list=[{"model_name": "x", "litellm_params": {"model": "openai/gpt-4o"}}], fallbacks=[{"x": ["nowhere"]}]
        )
    with pytest.raises(ValueError, match="routing_strategy"):
        ferrogate.Router(model_list=[], routing_strategy="random-ish")


def test_server_honours_fallbacks_in_the_body(server: str) -> None:
    r = httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "openai/mock-fail-500", "messages": [{"role": "user", "content": "x"}],
              "fallbacks": ["fast"], "num_retries": 0},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-ferrogate-fallback-index"] == "1" and r.headers["x-ferrogate-attempts"] == "2"
    bad = httpx.post(f"{server}/v1/chat/completions", json={"model": "fast", "messages": [{"role": "user", "content": "x"}], "fallbacks": "fast"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "fallbacks"
