"""Observability overhead: added latency per request of Prometheus metrics and of metrics plus
the request log store (SQLite), against everything off, measured in-process
(`Gateway.completion`, sequential) and through the server (`ferrogate bench`, one request at a
time and at a fixed 1,000 RPS), against the zero-latency mock, all in one run on this machine.

    python benches/observability.py [--requests 3000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ferrogate
from bench_common import free_port, overhead_table, percentile, wait_up

ROOT = Path(__file__).resolve().parent.parent


def variants(work: Path) -> dict[str, dict]:
    return {
        "all off": {"metrics": {"enabled": False}, "log_store": {"enabled": False}},
        "metrics": {"metrics": {"enabled": True}, "log_store": {"enabled": False}},
        "metrics + log store (SQLite)": {
            "metrics": {"enabled": True},
            "log_store": {"enabled": True, "backend": "sqlite", "path": str(work / "logs.db")},
        },
    }


def in_process(mock: str, requests: int, work: Path) -> dict[str, dict[str, float]]:
    out = {}
    for name, telemetry in variants(work).items():
        gw = ferrogate.Gateway({"providers": {"mock": {"api": "openai", "base_url": f"{mock}/v1"}}, "telemetry": telemetry})
        msg = [{"role": "user", "content": "a short prompt of a few words"}]
        for _ in range(300):
            gw.completion("mock/m", msg)
        times = []
        for _ in range(requests):
            t = time.perf_counter()
            gw.completion("mock/m", msg)
            times.append((time.perf_counter() - t) * 1e6)
        out[name] = {"p50_us": percentile(times, 0.5), "p99_us": percentile(times, 0.99), "mean_us": statistics.fmean(times)}
    return out


def server(mock: str, seconds: int, work: Path, rate: int, concurrency: int) -> dict[str, dict[str, float]]:
    out = {}
    env = {**os.environ, "FERROGATE_LOG": "warn"}
    for i, (name, telemetry) in enumerate(variants(work).items()):
        cfg = work / f"{rate}-{i}.json"
        cfg.write_text(json.dumps({"providers": {"mock": {"api": "openai", "base_url": f"{mock}/v1"}}, "telemetry": telemetry}))
        port = free_port()
        srv = subprocess.Popen([sys.executable, "-m", "ferrogate", "serve", "--config", str(cfg), "--port", str(port)], env=env, cwd=work)
        try:
            wait_up(f"http://127.0.0.1:{port}")
            report = work / f"{rate}-{i}.report.json"
            bench = [sys.executable, "-m", "ferrogate", "bench", "--url", f"http://127.0.0.1:{port}", "--model", "mock/m",
                     "--rate", str(rate), "--concurrency", str(concurrency), "--quiet", "--json", str(report)]
            subprocess.run([*bench, "--duration", "1s"], check=True, capture_output=True)  # warm-up
            subprocess.run([*bench, "--duration", f"{seconds}s"], check=True, capture_output=True)
            r = json.loads(report.read_text())
            out[name] = {"p50_us": r["latency"]["p50_us"], "p99_us": r["latency"]["p99_us"], "rps": r["achieved_rps"],
                         "errors": r["errors"]}
        finally:
            srv.terminate()
            srv.wait()
    return out


def table(title: str, results: dict[str, dict[str, float]]) -> str:
    return overhead_table(title, "telemetry", "all off", results)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench-results"))
    args = ap.parse_args()
    port = free_port()
    mock = subprocess.Popen([sys.executable, "-m", "ferrogate", "mock-upstream", "--port", str(port)], stderr=subprocess.DEVNULL)
    mock_url = f"http://127.0.0.1:{port}"
    try:
        wait_up(mock_url)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            results = {
                "in_process": in_process(mock_url, args.requests, work),
                "server_sequential": server(mock_url, args.seconds, work, 0, 1),
                "server_1000rps": server(mock_url, args.seconds, work, 1000, 64),
            }
    finally:
        mock.terminate()
        mock.wait()
    report = (
        "## Observability overhead (zero-latency mock; load, gateway and mock share this machine)\n\n"
        + table("In-process (`Gateway.completion`, sequential)", results["in_process"])
        + "\n"
        + table("Server, one request at a time (`ferrogate bench --rate 0 --concurrency 1`)", results["server_sequential"])
        + "\n"
        + table("Server at 1,000 RPS (`ferrogate bench --rate 1000`)", results["server_1000rps"])
    )
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "observability.json").write_text(json.dumps(results, indent=2))
    (out / "observability.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
