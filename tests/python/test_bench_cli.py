"""`ferrogate bench`: against a config served by the built-in mock, against a running gateway
(streamed), and its refusals of bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import Proc, ferrogate_cmd, free_port


def run_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(ferrogate_cmd("bench", "--quiet", *args), capture_output=True, text=True, timeout=60, cwd=cwd)


def test_bench_a_config_against_the_mock(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        "providers:\n"
        "  openai: {api_key: sk-not-a-real-key}\n"
        "telemetry: {log_store: {enabled: false}}\n"
        "models:\n"
        "  smart:\n"
        "    deployments:\n"
        "      - {model: openai/gpt-4o-mini, weight: 3}\n"
        "      - {model: anthropic/claude-3-5-haiku-latest, weight: 1}\n"
    )
    out = tmp_path / "report.json"
    r = run_bench(
        "--config", str(cfg), "--model", "smart", "--rate", "200", "--duration", "2s",
        "--track-header", "x-ferrogate-deployment", "--json", str(out), cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["requests"] == 400 and report["ok"] == 400 and report["errors"] == {}
    assert report["gateway_overhead"]["count"] == 400
    served: dict[str, int] = {}
    for second in report["timeline"]:
        for name, n in second["header_values"].items():
            served[name] = served.get(name, 0) + n
    # Both deployments (one of them Anthropic-format) answered, by weight.
    assert set(served) == {"openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"}
    assert 0.6 < served["openai/gpt-4o-mini"] / 400 < 0.9
    assert "sk-not-a-real-key" not in r.stdout + r.stderr


def test_bench_a_running_gateway_streamed(tmp_path: Path) -> None:
    mock_port, gw_port = free_port(), free_port()
    mock = Proc(ferrogate_cmd("mock-upstream", "--port", str(mock_port)), mock_port)
    gw = Proc(
        ferrogate_cmd("serve", "--port", str(gw_port)),
        gw_port,
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{mock.url}/v1"},
    )
    try:
        out = tmp_path / "report.json"
        r = run_bench(
            "--url", gw.url, "--model", "openai/gpt-4o-mini", "--stream", "--rate", "100",
            "--duration", "1s", "--json", str(out), cwd=tmp_path,
        )
    finally:
        gw.stop()
        mock.stop()
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["stream"] is True and report["ok"] == 100 and report["errors"] == {}
    ttfb = report["time_to_first_byte"]
    assert ttfb["count"] == 100 and 0 < ttfb["p50_us"] <= report["latency"]["p50_us"]
    assert "first byte" in r.stdout


def test_bench_refuses_bad_input_and_reports_unreachable_servers(tmp_path: Path) -> None:
    r = run_bench("--rate=-5", cwd=tmp_path)
    assert r.returncode == 2 and "--rate" in r.stderr
    r = run_bench("--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert r.returncode == 1 and "missing.yaml" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {openai: {base_urll: x}}\n")
    r = run_bench("--config", str(bad), cwd=tmp_path)
    assert r.returncode == 1 and "base_urll" in r.stderr
    # Nothing listens there: every request is a counted connection error, and the exit code says so.
    out = tmp_path / "report.json"
    r = run_bench("--url", f"http://127.0.0.1:{free_port()}", "--rate", "50", "--duration", "1s", "--json", str(out), cwd=tmp_path)
    assert r.returncode == 1
    report = json.loads(out.read_text())
    assert report["ok"] == 0 and sum(report["errors"].values()) == report["requests"] == 50
