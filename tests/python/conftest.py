"""Shared fixtures: the mock upstream and the gateway server run as real processes started from
the installed ``ferrogate`` command, as a user would start them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

MOCK_KEY = "sk-mock-key-0123456789"
WRONG_KEY = "sk-wrong-secret-value-42"
# The mock verifies Bedrock's SigV4 signatures with these.
MOCK_AWS_KEY_ID = "AKIDMOCKEXAMPLE01"
MOCK_AWS_SECRET = "mock/Secret+Key/0123456789abcdefEXAMPLE"
#: A test-only Google service-account key (see the file); the mock checks assertions signed with it.
TEST_SERVICE_ACCOUNT = Path(__file__).resolve().parent.parent / "fixtures" / "gemini" / "test_service_account.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log.read_text(errors="replace") if log else ""
            raise RuntimeError(f"process exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{url}/health", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy")


def ferrogate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ferrogate", *args]


class Proc:
    """A ferrogate process on a free port."""

    def __init__(self, args: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        full_env = {**os.environ, "FERROGATE_LOG": "warn", **(env or {})}
        # Each server in a directory of its own: its default request log file lands there.
        self.workdir = tempfile.mkdtemp(prefix="ferrogate-proc-")
        # stderr to a file: an unread pipe would block the server once it filled up.
        self.log_path = Path(self.workdir) / "stderr.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log, env=full_env, cwd=self.workdir)
        wait_healthy(self.url, self.proc, log=self.log_path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[str]:
    """Base URL of a mock upstream requiring ``MOCK_KEY`` (and, for Bedrock, SigV4 signatures made
    with the mock AWS credentials)."""
    port = free_port()
    args = ["mock-upstream", "--port", str(port), "--api-key", MOCK_KEY]
    args += ["--aws-access-key-id", MOCK_AWS_KEY_ID, "--aws-secret-access-key", MOCK_AWS_SECRET]
    args += ["--google-service-account", str(TEST_SERVICE_ACCOUNT)]
    p = Proc(ferrogate_cmd(*args), port)
    yield p.url
    p.stop()


@pytest.fixture(scope="session")
def vertex_credentials(mock_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test service account with its ``token_uri`` at the mock's OAuth endpoint."""
    account = json.loads(TEST_SERVICE_ACCOUNT.read_text())
    account["token_uri"] = f"{mock_upstream}/oauth2/token"
    path = tmp_path_factory.mktemp("gcp") / "service-account.json"
    path.write_text(json.dumps(account))
    return path


def gateway_config(mock_url: str, vertex_credentials: Path | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {
            "openai": {"base_url": f"{mock_url}/v1", "api_key": MOCK_KEY},
            "badkey": {"base_url": f"{mock_url}/v1", "api_key": WRONG_KEY},
            "slowpoke": {"base_url": f"{mock_url}/v1", "api_key": MOCK_KEY, "timeouts": {"request": "500ms"}},
            "anthropic": {"base_url": mock_url, "api_key": MOCK_KEY},
            "bedrock": {
                "base_url": mock_url,
                "region": "us-east-1",
                "aws_access_key_id": MOCK_AWS_KEY_ID,
                "aws_secret_access_key": MOCK_AWS_SECRET,
            },
            "cohere": {"base_url": mock_url, "api_key": MOCK_KEY},
            # Azure OpenAI at the mock's root; `gpt-4o-mini` is served by a differently named
            # deployment, other models by a deployment of their own name.
            "azure": {"base_url": mock_url, "api_key": MOCK_KEY, "deployments": {"gpt-4o-mini": "gpt-4o-mini-eastus"}},
            "gemini": {"base_url": mock_url, "api_key": MOCK_KEY},
        },
        "aliases": {"fast": "openai/gpt-4o-mini", "embedder": "openai/text-embedding-3-small"},
        "server": {"max_request_body": "64KB", "shutdown_timeout": "10s"},
    }
    if vertex_credentials is not None:
        # VERTEX_BASE_URL's equivalent: only scheme and host; the adapter builds the path.
        config["providers"]["vertex"] = {"base_url": mock_url, "credentials_file": str(vertex_credentials)}
    return config


@pytest.fixture(scope="session")
def config_file(mock_upstream: str, vertex_credentials: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import yaml

    path = tmp_path_factory.mktemp("cfg") / "ferrogate.yaml"
    path.write_text(yaml.safe_dump(gateway_config(mock_upstream, vertex_credentials)))
    return path


@pytest.fixture(scope="session")
def server(config_file: Path) -> Iterator[str]:
    """Base URL of ``ferrogate serve --config <yaml>`` in front of the mock."""
    port = free_port()
    p = Proc(ferrogate_cmd("serve", "--config", str(config_file), "--port", str(port)), port)
    yield p.url
    p.stop()


@pytest.fixture(scope="session")
def gateway(mock_upstream: str, vertex_credentials: Path) -> Any:
    import ferrogate

    return ferrogate.Gateway(gateway_config(mock_upstream, vertex_credentials))


@pytest.fixture()
def mock_requests(mock_upstream: str) -> Any:
    """Returns the bodies the mock received, newest last."""

    def get() -> list[dict[str, Any]]:
        return httpx.get(f"{mock_upstream}/mock/requests").json()["requests"]  # type: ignore[no-any-return]

    return get
