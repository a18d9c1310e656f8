"""Failover under load: two deployments at a few hundred requests per second; one is killed
(SIGKILL) and later restarted. No client may see an error, the dead one must stop getting traffic,
and the restarted one must get its traffic back."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx

from conftest import Proc, ferrogate_cmd, free_port

RATE = 300  # requests per second
DURATION = 4.0
KILL_AT = 1.0
RESTART_AT = 2.2


async def test_failover_under_load(tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    a = Proc(ferrogate_cmd("mock-upstream", "--port", str(port_a)), port_a)
    b = Proc(ferrogate_cmd("mock-upstream", "--port", str(port_b)), port_b)
    config = {
        "providers": {
            "a": {"api": "openai", "base_url": f"{a.url}/v1"},
            "b": {"api": "openai", "base_url": f"{b.url}/v1"},
        },
        "models": {"ha": {"deployments": [{"model": "a/gpt-4o-mini"}, {"model": "b/gpt-4o-mini"}]}},
        "routing": {
            "circuit_breaker": {"failures": 2, "cooldown": "300ms", "max_cooldown": "600ms"},
            "backoff": {"initial": "5ms", "max": "20ms"},
        },
    }
    cfg = tmp_path / "ha.json"
    cfg.write_text(json.dumps(config))
    gw_port = free_port()
    gw = Proc(ferrogate_cmd("serve", "--config", str(cfg), "--port", str(gw_port)), gw_port)
    results: list[tuple[float, int, str]] = []
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10, limits=httpx.Limits(max_connections=200)) as client:

            async def one(sent_at: float) -> None:
                r = await client.post(
                    "/v1/chat/completions", json={"model": "ha", "messages": [{"role": "user", "content": "hi"}]}
                )
                results.append((sent_at, r.status_code, r.headers.get("x-ferrogate-deployment", "")))

            async def chaos() -> None:
                nonlocal b
                await asyncio.sleep(KILL_AT)
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait()
                await asyncio.sleep(RESTART_AT - KILL_AT)
                b = await asyncio.to_thread(Proc, ferrogate_cmd("mock-upstream", "--port", str(port_b)), port_b)

            start = time.monotonic()
            tasks = [asyncio.create_task(chaos())]
            n = int(RATE * DURATION)
            for i in range(n):
                delay = start + i / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(time.monotonic() - start)))
            await asyncio.gather(*tasks)
    finally:
        gw.stop()
        a.stop()
        b.stop()

    errors = [(t, s) for t, s, _ in results if s != 200]
    assert not errors, f"{len(errors)} client-visible errors, first: {errors[:5]}"
    assert len(results) == int(RATE * DURATION)
    before = [d for t, _, d in results if t < KILL_AT - 0.05]
    dead = [d for t, _, d in results if KILL_AT + 0.3 < t < RESTART_AT]
    after = [d for t, _, d in results if t > RESTART_AT + 1.0]
    assert before.count("b/gpt-4o-mini") > len(before) * 0.2, "b served while it was up"
    assert "b/gpt-4o-mini" not in dead, "nothing is answered by the dead deployment"
    assert after.count("b/gpt-4o-mini") > len(after) * 0.1, f"b earns traffic back after its restart ({after.count('b/gpt-4o-mini')}/{len(after)})"
