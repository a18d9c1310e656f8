"""The example plugins at work, in-process, against the bundled mock provider.

    python examples/plugins_demo.py
"""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ferrogate  # noqa: E402
from examples.plugins.redact_pii import RedactPII  # noqa: E402
from examples.plugins.tag_requests import TagRequests  # noqa: E402
from examples.plugins.token_quota import TokenQuota  # noqa: E402


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
        quota = TokenQuota({"tokens_per_window": 30, "window_seconds": 60})
        gw = ferrogate.Gateway(
            {"providers": {"local": {"api": "openai", "base_url": f"{url}/v1"}}, "default_provider": "local"},
            plugins=[RedactPII(), TagRequests(), quota],
        )
        r = gw.completion("mock-model", [{"role": "user", "content": "mail me at jane.doe@example.com or +1 415 555 0100"}])
        print("redacted prompt reached the provider as:", r.choices[0].message.content)
        assert "example.com" not in r.choices[0].message.content

        r = gw.completion("mock-model", [{"role": "user", "content": "hi"}], metadata={"team": "search"})
        print("tags:", r["x_ferrogate_tags"])

        served = 0
        try:
            for i in range(100):
                gw.completion("mock-model", [{"role": "user", "content": f"question number {i}"}], user="alice")
                served += 1
        except ferrogate.RateLimitError as e:
            print(f"alice was throttled after {served} requests ({quota.used('alice')} tokens): {e.status_code} {e.message}")
        else:
            raise SystemExit("alice was never throttled")
    finally:
        mock.terminate()
        mock.wait()


if __name__ == "__main__":
    main()
