"""Plugin overhead: added latency per request of no plugin, an empty Rust plugin, an empty sync
Python plugin and an empty async Python plugin (each with a pre- and a post-hook), measured
in-process (`Gateway.completion`, sequential) and through the server (`ferrogate bench`, one
request at a time), against the zero-latency mock, all in one run on this machine.

    python benches/plugins.py [--requests 3000] [--seconds 5]
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_plugins import EmptyAsync, EmptySync  # noqa: E402

VARIANTS = {
    "none": [],
    "rust (empty)": [{"builtin": "noop"}],
    "python sync (empty)": [{"python": "bench_plugins:EmptySync"}],
    "python async (empty)": [{"python": "bench_plugins:EmptyAsync"}],
}


def in_process(mock: str, requests: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, plugins in VARIANTS.items():
        config = {"providers": {"mock": {"api": "openai", "base_url": f"{mock}/v1"}}, "plugins": plugins}
        if plugins and "python" in plugins[0]:
            # In-process, Python plugins are registered as objects.
            config.pop("plugins")
            gw = ferrogate.Gateway(config, plugins=[EmptySync() if "Sync" in plugins[0]["python"] else EmptyAsync()])
        else:
            gw = ferrogate.Gateway(config)
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


def server(mock: str, seconds: int, work: Path) -> dict[str, dict[str, float]]:
    out = {}
    env = {**os.environ, "PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""), "FERROGATE_LOG": "warn"}
    for name, plugins in VARIANTS.items():
        cfg = work / f"{len(out)}.json"
        cfg.write_text(json.dumps({"providers": {"mock": {"api": "openai", "base_url": f"{mock}/v1"}}, "plugins": plugins}))
        port = free_port()
        srv = subprocess.Popen([sys.executable, "-m", "ferrogate", "serve", "--config", str(cfg), "--port", str(port)], env=env)
        try:
            wait_up(f"http://127.0.0.1:{port}")
            report = work / f"{len(out)}.report.json"
            bench = [sys.executable, "-m", "ferrogate", "bench", "--url", f"http://127.0.0.1:{port}", "--model", "mock/m",
                     "--rate", "0", "--concurrency", "1", "--quiet", "--json", str(report)]
            subprocess.run([*bench, "--duration", "1s"], check=True, capture_output=True)  # warm-up
            subprocess.run([*bench, "--duration", f"{seconds}s"], check=True, capture_output=True)
            r = json.loads(report.read_text())
            out[name] = {"p50_us": r["latency"]["p50_us"], "p99_us": r["latency"]["p99_us"], "rps": r["achieved_rps"]}
        finally:
            srv.terminate()
            srv.wait()
    return out


def table(title: str, results: dict[str, dict[str, float]]) -> str:
    return overhead_table(title, "plugins", "none", results)


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
            results = {"in_process": in_process(mock_url, args.requests), "server": server(mock_url, args.seconds, Path(tmp))}
    finally:
        mock.terminate()
        mock.wait()
    report = (
        "## Plugin overhead (one request at a time, zero-latency mock; load, gateway and mock share this machine)\n\n"
        + table("In-process (`Gateway.completion`)", results["in_process"])
        + "\n"
        + table("Server (`ferrogate bench --rate 0 --concurrency 1`)", results["server"])
    )
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "plugins.json").write_text(json.dumps(results, indent=2))
    (out / "plugins.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
