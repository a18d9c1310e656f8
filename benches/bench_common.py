"""Helpers shared by the Python benchmarks (inprocess.py, plugins.py, observability.py)."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(400):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def overhead_table(title: str, column: str, baseline: str, results: dict[str, dict[str, float]]) -> str:
    """A Markdown table of p50/p99 per variant and what each adds over `baseline`."""
    base = results[baseline]
    lines = [f"### {title}", "", f"| {column} | p50 | p99 | added p50 | added p99 |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['p50_us']:.0f} us | {r['p99_us']:.0f} us | {r['p50_us'] - base['p50_us']:+.0f} us | {r['p99_us'] - base['p99_us']:+.0f} us |"
        )
    return "\n".join(lines) + "\n"
