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
    # (sent, answered, status, deployment), in seconds since the start; the kill and restart times
    # are the moments they really happened (the event loop may run late under this load).
    results: list[tuple[float, float, int, str]] = []
    events: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10, limits=httpx.Limits(max_connections=200)) as client:

            async def one() -> None:
                sent = time.monotonic() - start
                r = await client.post(
                    "/v1/chat/completions", json={"model": "ha", "messages": [{"role": "user", "content": "hi"}]}
                )
                done = time.monotonic() - start
                results.append((sent, done, r.status_code, r.headers.get("x-ferrogate-deployment", "")))

            async def chaos() -> None:
                nonlocal b
                await asyncio.sleep(KILL_AT)
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait()
                events["killed"] = time.monotonic() - start
                await asyncio.sleep(RESTART_AT - KILL_AT)
                events["restarting"] = time.monotonic() - start
                b = await asyncio.to_thread(Proc, ferrogate_cmd("mock-upstream", "--port", str(port_b)), port_b)

            start = time.monotonic()
            tasks = [asyncio.create_task(chaos())]
            n = int(RATE * DURATION)
            for i in range(n):
                delay = start + i / RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
    finally:
        gw.stop()
        a.stop()
        b.stop()

    errors = [(t, s) for t, _, s, _ in results if s != 200]
    assert not errors, f"{len(errors)} client-visible errors, first: {errors[:5]}"
    assert len(results) == int(RATE * DURATION)
    killed, restarting = events["killed"], events["restarting"]
    before = [d for sent, done, _, d in results if done < KILL_AT - 0.05]
    # Sent well after the kill and answered before the new process existed.
    dead = [d for sent, done, _, d in results if sent > killed + 0.3 and done < restarting]
    after = [d for sent, _, _, d in results if sent > restarting + 1.0]
    assert len(dead) > 50, f"the dead window holds enough requests ({len(dead)})"
    assert len(after) > 30, f"enough requests after the restart ({len(after)})"
    assert before.count("b/gpt-4o-mini") > len(before) * 0.2, "b served while it was up"
    assert "b/gpt-4o-mini" not in dead, "nothing is answered by the dead deployment"
    assert after.count("b/gpt-4o-mini") > len(after) * 0.1, f"b earns traffic back after its restart ({after.count('b/gpt-4o-mini')}/{len(after)})"
