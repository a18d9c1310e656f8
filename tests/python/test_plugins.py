"""Python plugins, sync and async, in-process and in the server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import ferrogate
import sample_plugins as sp
from conftest import MOCK_KEY, Proc, ferrogate_cmd, free_port

HERE = Path(__file__).resolve().parent


def gateway_for(mock: str, *plugins: Any) -> ferrogate.Gateway:
    return ferrogate.Gateway(
        {"providers": {"openai": {"base_url": f"{mock}/v1", "api_key": MOCK_KEY}}, "routing": {"retries": 0}},
        plugins=plugins,
    )


def ask(gw: ferrogate.Gateway, text: str, model: str = "gpt-4o-mini", **kw: Any) -> Any:
    return gw.completion(model, [{"role": "user", "content": text}], **kw)


def test_sync_and_async_plugins_modify_and_tag(mock_upstream: str) -> None:
    gw = gateway_for(mock_upstream, sp.Shout(), sp.AsyncTagger())
    r = ask(gw, "hello plugins", metadata={"tags": ["from-caller"]})
    assert r.choices[0].message.content == "You said: HELLO PLUGINS"
    assert r["x_tags"] == ["from-caller", "tagged"]
    assert r["x_state"]["seen_by"] == "ferrogate-plugin-loop", "async hooks run on the plugin loop thread"
    assert r["x_served_by"] == "openai/gpt-4o-mini"
    assert gw.plugins == [("telemetry", True), ("Shout", True), ("AsyncTagger", True)]


def test_short_circuit_answer_and_rejection(mock_upstream: str, mock_requests: Any) -> None:
    gw = gateway_for(mock_upstream, sp.Quota(), sp.Canned())
    before = len(mock_requests())
    r = ask(gw, "x", model="canned")
    assert r.choices[0].message.content == "canned answer" and r.served_by.deployment == "plugin:Canned"
    assert len(mock_requests()) == before, "no upstream call"
    with pytest.raises(ferrogate.RateLimitError) as e:
        ask(gw, "x", user="greedy")
    assert e.value.status_code == 429 and e.value.code == "quota_exceeded" and "greedy" in e.value.message
    stream = gw.completion("canned", [{"role": "user", "content": "x"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "canned answer"


def test_post_hook_sees_errors_and_rescues(mock_upstream: str) -> None:
    gw = gateway_for(mock_upstream, sp.Rescue())
    r = ask(gw, "x", model="openai/mock-fail-503")
    assert r.choices[0].message.content == "sorry: 503"


def test_stream_chunk_hooks(mock_upstream: str) -> None:
    gw = gateway_for(mock_upstream, sp.Loud())
    chunks = list(gw.completion("gpt-4o-mini", [{"role": "user", "content": "make noise"}], stream=True))
    assert all(c.choices[0].delta.content != "" for c in chunks if c.choices)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "YOU SAID: MAKE NOISE"


def test_failures_and_timeouts(mock_upstream: str, caplog: Any) -> None:
    gw = gateway_for(mock_upstream, sp.Buggy(), sp.Sleepy(), sp.AsyncSleepy())
    started = time.perf_counter()
    assert ask(gw, "served anyway").choices[0].message.content == "You said: served anyway"
    assert time.perf_counter() - started < 1.0, "hooks are cut at their timeout"
    strict = gateway_for(mock_upstream, sp.StrictBuggy())
    with pytest.raises(ferrogate.InternalServerError) as e:
        ask(strict, "x")
    assert "strict-buggy" in e.value.message and "ValueError: this plugin has a bug" in e.value.message


def test_live_switching(mock_upstream: str) -> None:
    gw = gateway_for(mock_upstream, sp.Shout())
    gw.set_plugin_enabled("Shout", False)
    assert ask(gw, "abc").choices[0].message.content == "You said: abc"
    gw.set_plugin_enabled("Shout", True)
    assert ask(gw, "abc").choices[0].message.content == "You said: ABC"
    with pytest.raises(KeyError):
        gw.set_plugin_enabled("nope", True)


async def test_200_concurrent_requests_with_sync_and_async_plugins(mock_upstream: str) -> None:
    counting = sp.Counting()
    gw = gateway_for(mock_upstream, sp.Shout(), sp.AsyncTagger(), counting)
    results = await asyncio.wait_for(
        asyncio.gather(*(gw.acompletion("gpt-4o-mini", [{"role": "user", "content": f"n{i}"}]) for i in range(200))), 60
    )
    assert [r.choices[0].message.content for r in results] == [f"You said: N{i}" for i in range(200)]
    assert (counting.pre, counting.post) == (200, 200)


def test_gil_is_not_held_while_plugins_wait_on_the_network(mock_upstream: str) -> None:
    gw = gateway_for(mock_upstream, sp.Shout(), sp.AsyncTagger())
    done = threading.Event()

    def call() -> None:
        ask(gw, "x", model="openai/mock-slow-600")
        done.set()

    t = threading.Thread(target=call)
    t.start()
    ticks, start = 0, time.perf_counter()
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    t.join()
    assert time.perf_counter() - start >= 0.5 and ticks > 1000


@pytest.fixture(scope="module")
def plugin_server(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    cfg = tmp_path_factory.mktemp("plugins") / "plugins.json"
    cfg.write_text(
        json.dumps(
            {
                "providers": {"openai": {"base_url": f"{mock_upstream}/v1", "api_key": MOCK_KEY}},
                "plugins": [
                    {"python": "sample_plugins:Shout"},
                    {"python": "sample_plugins:AsyncTagger"},
                    {"python": "sample_plugins:Quota"},
                    {"python": "sample_plugins:ConfiguredSuffix", "config": {"suffix": " please"}},
                ],
            }
        )
    )
    port = free_port()
    env = {"PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = Proc(ferrogate_cmd("serve", "--config", str(cfg), "--port", str(port)), port, env=env)
    yield p.url
    p.stop()


async def test_server_runs_config_plugins_under_concurrency(plugin_server: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{plugin_server}/v1", api_key="x", max_retries=0)
    results = await asyncio.gather(
        *(client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"r{i}"}]) for i in range(200))
    )
    assert [r.choices[0].message.content for r in results] == [f"You said: R{i} please" for i in range(200)]
    assert results[0].model_extra["x_tags"] == ["tagged"]
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o-mini", user="greedy", messages=[{"role": "user", "content": "x"}])
    r = httpx.post(
        f"{plugin_server}/v1/chat/completions",
        headers={"x-ferrogate-tags": "team-a, batch"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "t"}]},
    )
    assert r.json()["x_tags"] == ["team-a", "batch", "tagged"]


def test_server_refuses_a_plugin_it_cannot_import(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("plugins:\n  - python: nosuch_module:Plugin\n")
    out = subprocess.run(ferrogate_cmd("serve", "--config", str(cfg), "--port", "0"), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "plugins[0].python: cannot load `nosuch_module:Plugin`: ModuleNotFoundError: No module named 'nosuch_module'" in out.stderr
    cfg.write_text("plugins:\n  - python: json:JSONDecoder\n")
    out = subprocess.run(ferrogate_cmd("check-config", str(cfg)), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "defines none of pre_hook" in out.stderr
