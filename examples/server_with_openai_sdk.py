"""The ferrogate HTTP server (running in this process's background threads) used by the official
`openai` SDK, in front of the bundled mock provider.

    pip install openai && python examples/server_with_openai_sdk.py
"""

import socket
import subprocess
import sys
import time
import urllib.request

import openai

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
    config = {"providers": {"local": {"api": "openai", "base_url": f"{url}/v1"}}, "default_provider": "local"}
    try:
        with ferrogate.Server(config) as server:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="not-needed", max_retries=0)
            r = client.chat.completions.create(model="mock-model", messages=[{"role": "user", "content": "Hi server"}])
            print("chat:", r.choices[0].message.content)
            stream = client.chat.completions.create(
                model="mock-model",
                messages=[{"role": "user", "content": "count the chunks"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            print("stream:", len(chunks), "chunks, usage", chunks[-1].usage.total_tokens, "tokens")
            print("models:", [m.id for m in client.models.list()])
            try:
                client.chat.completions.create(model="mock-fail-429", messages=[{"role": "user", "content": "x"}])
            except openai.RateLimitError as err:
                print("rate limited ->", err.status_code, "retry-after", err.response.headers["retry-after"])
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
