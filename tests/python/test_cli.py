"""The `ferrogate` command line as installed by the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import Proc, free_port


def test_console_script_and_module_entry_point() -> None:
    exe = shutil.which("ferrogate", path=str(Path(sys.executable).parent))
    assert exe, "the wheel installs a `ferrogate` console script"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and "serve" in out.stdout and "mock-upstream" in out.stdout
    out = subprocess.run([sys.executable, "-m", "ferrogate", "--version"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.startswith("ferrogate ")
    out = subprocess.run([exe, "serve", "--port", "not-a-port"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "--port" in out.stderr


def test_zero_config_serve_reads_standard_env_vars(mock_upstream: str) -> None:
    from conftest import MOCK_KEY

    port = free_port()
    p = Proc(
        [sys.executable, "-m", "ferrogate", "serve", "--port", str(port)],
        port,
        env={"OPENAI_BASE_URL": f"{mock_upstream}/v1", "OPENAI_API_KEY": MOCK_KEY, "FERROGATE_CONFIG": ""},
    )
    try:
        r = httpx.post(
            f"{p.url}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "zero config"}]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "You said: zero config"
        assert r.headers["x-ferrogate-key"] == "OPENAI_API_KEY"  # the key's name, never its value
        assert MOCK_KEY not in r.text and MOCK_KEY not in str(r.headers)
    finally:
        p.stop()


def test_mock_upstream_rejects_bad_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ferrogate", "mock-upstream", "--error-rate", "2"], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 2 and "--error-rate" in out.stderr


def test_mock_upstream_random_faults() -> None:
    port = free_port()
    p = Proc(
        [sys.executable, "-m", "ferrogate", "mock-upstream", "--port", str(port), "--error-rate", "1", "--error-status", "429"],
        port,
    )
    try:
        r = httpx.post(f"{p.url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    finally:
        p.stop()


def test_serve_runs_the_bundled_native_executable_unless_python_plugins_are_configured(
    mock_upstream: str, tmp_path: Path
) -> None:
    """`ferrogate serve` replaces the Python process with the native executable the wheel bundles
    (no interpreter around the server); a config with Python plugins keeps the interpreter."""
    from conftest import MOCK_KEY
    from ferrogate.cli import native_executable

    native = native_executable()
    assert native is not None, "the wheel built by `make build` bundles ferrogate/_bin/ferrogate"
    provider = {"openai": {"base_url": f"{mock_upstream}/v1", "api_key": MOCK_KEY}}
    here = Path(__file__).resolve().parent
    env = {"PYTHONPATH": str(here) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cases = [
        ({"providers": provider}, native),
        ({"providers": provider, "plugins": [{"python": "sample_plugins:Shout"}]}, Path(sys.executable).resolve()),
    ]
    for config, expected_exe in cases:
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps(config))
        port = free_port()
        p = Proc([sys.executable, "-m", "ferrogate", "serve", "--config", str(cfg), "--port", str(port)], port, env=env)
        try:
            assert Path(os.readlink(f"/proc/{p.proc.pid}/exe")).resolve() == expected_exe.resolve()
            r = httpx.post(
                f"{p.url}/v1/chat/completions",
                json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "who serves"}]},
            )
            assert r.status_code == 200, r.text
        finally:
            p.stop()
