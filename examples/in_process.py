"""ferrogate in-process, end to end, against the bundled mock provider (no account needed).

    python examples/in_process.py
"""

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request

import ferrogate


def start_mock() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferrogate", "mock-upstream", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{url}/health")
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("mock did not start")


def main() -> None:
    mock, url = start_mock()
    try:
        gw = ferrogate.Gateway(
            {
                "providers": {"local": {"api": "openai", "base_url": f"{url}/v1"}},
                "aliases": {"fast": "local/mock-model"},
            }
        )

        r = gw.completion("fast", [{"role": "user", "content": "Hello from Python"}])
        print("completion:", r.choices[0].message.content, "| tokens:", r.usage.total_tokens)
        print("served by:", r.served_by.provider, r.served_by.model, f"overhead {r.served_by.overhead_us} us")

        print("stream:", end=" ")
        for chunk in gw.completion("fast", [{"role": "user", "content": "stream this"}], stream=True):
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        print()

        tool = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
        messages = [{"role": "user", "content": "weather in Lisbon"}]
        first = gw.completion("fast", messages, tools=[tool])
        call = first.choices[0].message.tool_calls[0]
        print("tool call:", call.function.name, json.loads(call.function.arguments))
        messages += [first.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24C"}]
        print("after tool:", gw.completion("fast", messages, tools=[tool]).choices[0].message.content)

        async def many() -> list[str]:
            rs = await asyncio.gather(*(gw.acompletion("fast", [{"role": "user", "content": f"#{i}"}]) for i in range(100)))
            return [r.choices[0].message.content for r in rs]

        print("100 concurrent acompletion calls:", len(asyncio.run(many())), "answers")

        e = gw.embedding("local/embedder", ["one", "two"])
        print("embeddings:", len(e.data), "vectors of", len(e.data[0].embedding))

        try:
            gw.completion("local/mock-fail-429", [{"role": "user", "content": "x"}])
        except ferrogate.RateLimitError as err:
            print("rate limited as expected:", err.status_code, "retry after", err.retry_after, "s")
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
