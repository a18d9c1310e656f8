"""Server load benchmark: one proxy hop through `ferrogate serve` against one through nginx.

Starts a zero-latency upstream (`ferrogate mock-upstream`), nginx `proxy_pass` in front of it (the
baseline cost of one proxy hop) and `ferrogate serve` in front of it, then measures, in one run:

1. the mock's own ceiling (oha, unthrottled), which must exceed the highest fixed rate;
2. fixed rates (500, 2,500, 5,000 RPS by default, oha with --latency-correction so coordinated
   omission is accounted for): achieved RPS, errors, p50/p99/p99.9, latency added over direct,
   ferrogate's added p50 as a multiple of nginx's, CPU time per request and RSS of each server;
3. one request at a time: added p50/p99;
4. capacity: the highest of a few coarse rates held with p99 <= 1 ms and no errors;
5. streaming: time to first byte (the first SSE chunk) added over direct, with `ferrogate bench`.

`--litellm` adds the LiteLLM proxy (in its own virtualenv) as a fourth target.

Everything (load generator, upstream, proxies) shares this machine's cores: the figures are
comparisons measured side by side in one run, not absolute capacities. Writes
bench-results/server_load.{json,md,png}.

    make bench                                  # installs the tools, then runs this
    .venv/bin/python benches/server_load.py --quick        # smoke run, about 2 minutes
    .venv/bin/python benches/server_load.py [--rates 500,2500,5000] [--duration 15]
        [--connections 256] [--litellm] [--out bench-results]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# FERROGATE_BIN benchmarks another build (e.g. target/dist/ferrogate, the native binary).
FERROGATE = os.environ.get("FERROGATE_BIN") or str(VENV_BIN / "ferrogate")
INSTALL_HINT = "run scripts/install-bench-tools.sh (or `make bench`, which runs it)"
PROMPT = "Summarize the plot of Hamlet in two sentences."
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The DESIGN targets this benchmark checks.
TARGET_ADDED_VS_NGINX = 2.0  # ferrogate's added p50 at most this multiple of nginx's
TARGET_SEQ_P50_US, TARGET_SEQ_P99_US = 60, 150
TARGET_CPU_PER_REQ_US = 100
TARGET_RSS_IDLE_MB, TARGET_RSS_LOAD_MB = 20, 64
TARGET_TTFT_ADDED_P99_US = 1000
CAPACITY_P99_US = 1000

# A request that takes longer than this counts as an error (LiteLLM at high rates). It also bounds
# how long any single oha / `ferrogate bench` run may take: duration + REQUEST_TIMEOUT_S + margin.
REQUEST_TIMEOUT_S = 10


# --- Tools ----------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """A tool from PATH, ~/.cargo/bin (oha) or /usr/sbin (nginx); exits with a hint if missing."""
    for candidate in (shutil.which(name), Path.home() / ".cargo/bin" / name, Path("/usr/sbin") / name):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    sys.exit(f"error: {name} not found: {INSTALL_HINT}")


def first_line(cmd: list[str]) -> str:
    """A tool's version line (nginx prints it on stderr)."""
    with contextlib.suppress(Exception):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0]
    return "?"


# --- /proc: process trees, CPU and RSS ---------------------------------------------------


def children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # The command name may contain spaces and parentheses: split after the last ')'.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def status_field(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pids: list[int]) -> float:
    return sum(status_field(p, "VmRSS") for p in pids) / 1024


def listen_backlog(port: int) -> int | None:
    """The accept queue length a listener asked for (ss's Send-Q on a LISTEN socket): when 256
    connections open at once, a short one overflows and some SYNs wait for a 1 s retransmit."""
    with contextlib.suppress(Exception):
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout.split()
        return int(out[2])
    return None


def listening_pids(port: int) -> set[int]:
    """The processes holding the socket that listens on 127.0.0.1:port (found through /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(cols[9])
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.add(int(proc.name))
                    break
    return found


# --- Processes under test -------------------------------------------------------------------


@dataclass
class Server:
    """A process this script started, and the processes whose CPU and RSS are reported for it."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    measured: Callable[[], list[int]] = field(repr=False, default=lambda: [])
    layout: str = ""  # how the serving processes look, for the report

    def pids(self) -> list[int]:
        return self.measured()

    def stop(self) -> None:
        """SIGTERM to the whole process group (nginx workers, LiteLLM's uvicorn workers), then
        SIGKILL if it has not gone within 10 s."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@dataclass
class Target:
    """One thing the load generator talks to: the mock directly, or a proxy in front of it."""

    name: str
    base_url: str  # without /v1
    model: str
    server: Server | None = None
    headers: list[str] = field(default_factory=list)
    api_key: str | None = None

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    def body(self, stream: bool = False) -> str:
        body: dict = {"model": self.model, "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            body["stream"] = True
        return json.dumps(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], log: Path, **kw) -> subprocess.Popen[bytes]:
    # Own session: Ctrl-C in the terminal reaches only this script, which then stops each server
    # itself (and its whole process group) in order.
    with log.open("wb") as f:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    """Until `url` answers anything over HTTP (any status: it is listening and serving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def serving_tree(server: Server) -> Callable[[], list[int]]:
    """The process that actually listens (the `ferrogate` console script could be a launcher
    that execs or forks the server) and its children, re-read on each call. Resolved once: the
    /proc scan is too costly to repeat every 200 ms on cores shared with the servers."""
    listeners = listening_pids(server.port) & set(descendants(server.proc.pid))
    root = min(listeners) if listeners else server.proc.pid
    return lambda: descendants(root)


def describe_layout(server: Server, pids: list[int]) -> str:
    """e.g. `1 process: pid 12 python3 .venv/bin/ferrogate serve ... (threads: ferrogate x1, ...)`."""
    parts = []
    for pid in pids:
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            cmd = cmd.replace(str(ROOT) + "/", "").replace(tempfile.gettempdir() + "/", "")
            names: dict[str, int] = {}
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    name = (task / "comm").read_text().strip()
                    names[name] = names.get(name, 0) + 1
            threads = ", ".join(f"{n} x{c}" for n, c in names.items())
            parts.append(f"pid {pid} `{cmd[:100]}` (threads: {threads})")
    where = "the process started" if pids and pids[0] == server.proc.pid else f"not the started pid {server.proc.pid}"
    return f"{len(pids)} process(es); the listener is {where}: " + "; ".join(parts)


def start_mock(stack: contextlib.ExitStack, tmp: Path) -> Target:
    port = free_port()
    log = tmp / "mock.log"
    proc = spawn([FERROGATE, "mock-upstream", "--port", str(port)], log)
    server = Server("mock", proc, port)
    stack.callback(server.stop)
    wait_ready(f"http://127.0.0.1:{port}/health", proc, "ferrogate mock-upstream", log)
    server.measured = serving_tree(server)
    return Target("direct", f"http://127.0.0.1:{port}", "gpt-4o-mini", server)


NGINX_CONF = """\
# One worker per core (`auto`): ferrogate's runtime also uses every core, so each proxy may use
# the same CPU. Everything else is the usual keep-alive reverse proxy set-up.
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mock {{
        server 127.0.0.1:{mock};
        keepalive 256;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(stack: contextlib.ExitStack, tmp: Path, mock: Target) -> Target:
    assert mock.server
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, mock=mock.server.port, port=port))
    log = tmp / "nginx.log"
    proc = spawn([find_tool("nginx"), "-p", str(tmp), "-c", str(conf)], log)
    server = Server("nginx", proc, port)
    stack.callback(server.stop)
    wait_ready(f"http://127.0.0.1:{port}/health", proc, "nginx", log)
    # The workers do the proxying; the master only supervises them (its RSS is in the layout).
    server.measured = lambda: children(proc.pid)
    return Target("nginx", f"http://127.0.0.1:{port}", mock.model, server)


def start_ferrogate(stack: contextlib.ExitStack, tmp: Path, mock: Target, log_store: bool) -> Target:
    assert mock.server
    port = free_port()
    config = {
        "providers": {"openai": {"base_url": f"http://127.0.0.1:{mock.server.port}/v1", "api_key": "sk-bench"}},
        # At the default `info` the server writes one line per request: `warn`, like nginx's
        # `access_log off`. The request log store (SQLite, on by default for the server) is off
        # too unless --log-store; Prometheus metrics stay on, as in production.
        "logging": {"level": "warn"},
        "telemetry": {"log_store": {"enabled": log_store, "path": str(tmp / "ferrogate-logs.db")}},
    }
    cfg = tmp / "ferrogate.json"
    cfg.write_text(json.dumps(config, indent=2))
    log = tmp / "ferrogate.log"
    proc = spawn([FERROGATE, "serve", "--config", str(cfg), "--port", str(port)], log, cwd=tmp)
    server = Server("ferrogate", proc, port)
    stack.callback(server.stop)
    wait_ready(f"http://127.0.0.1:{port}/health", proc, "ferrogate serve", log)
    server.measured = serving_tree(server)
    return Target("ferrogate", f"http://127.0.0.1:{port}", "openai/gpt-4o-mini", server)


LITELLM_CONFIG = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{mock}/v1
      api_key: sk-bench
litellm_settings:
  telemetry: false
  set_verbose: false
  json_logs: false
general_settings:
  disable_spend_logs: true
"""
# Keeps LiteLLM quiet and off the network (there may be none): no telemetry, local cost map.
# Recent proxies refuse to start without a (strong) master key; clients then send it as a bearer
# token, which is also what a production set-up does.
LITELLM_MASTER_KEY = "sk-bench-" + "5f0c1d7e9a3b4c2d8e6f1a0b9c7d3e2f4a6b8c0d1e3f5a7b9c2d4e6f8a0b1c3d"
LITELLM_ENV = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY}


def ensure_litellm(venv: Path) -> Path:
    """The `litellm` proxy command, installing `litellm[proxy]` into its own venv on first use."""
    exe = venv / "bin" / "litellm"
    marker = venv / ".proxy-installed"
    if exe.exists() and marker.exists():
        return exe
    print(f"installing the LiteLLM proxy into {venv} (first run only)...", flush=True)
    base = shutil.which("python3") or sys.executable  # a plain interpreter, not .venv's
    for step in ([base, "-m", "venv", str(venv)], [str(venv / "bin/pip"), "install", "-q", "litellm[proxy]"]):
        r = subprocess.run(step)
        if r.returncode != 0:
            sys.exit(f"error: --litellm: `{' '.join(step)}` failed (exit {r.returncode}); LiteLLM cannot be benchmarked here")
    marker.touch()
    return exe


def start_litellm(stack: contextlib.ExitStack, tmp: Path, mock: Target, venv: Path) -> Target:
    assert mock.server
    exe = ensure_litellm(venv)
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(LITELLM_CONFIG.format(mock=mock.server.port))
    log = tmp / "litellm.log"
    workers = len(os.sched_getaffinity(0))  # one per core, like nginx's `auto`
    cmd = [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", str(workers)]
    proc = spawn(cmd, log, cwd=tmp, env={**os.environ, **LITELLM_ENV})
    server = Server("litellm", proc, port)
    stack.callback(server.stop)
    wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc, "litellm proxy", log, timeout=180)
    server.measured = lambda: descendants(proc.pid)  # uvicorn's supervisor and its workers
    return Target("litellm", f"http://127.0.0.1:{port}", "gpt-4o-mini", server, [f"Authorization: Bearer {LITELLM_MASTER_KEY}"], LITELLM_MASTER_KEY)


# --- Load -----------------------------------------------------------------------------------


@dataclass
class LoadRun:
    """One oha run against one target."""

    target: str
    kind: str  # "ceiling", "rate", "sequential", "capacity"
    asked_rps: float | None  # None: unthrottled / one at a time
    seconds: float
    achieved_rps: float
    requests: int  # answered or failed
    errors: int  # non-2xx answers + connection errors and timeouts
    error_kinds: dict[str, int]
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    cpu_us_per_request: float | None = None  # the target's server processes
    rss_peak_mb: float | None = None
    note: str = ""


@dataclass
class StreamRun:
    """One `ferrogate bench --stream` run against one target."""

    target: str
    asked_rps: float
    achieved_rps: float
    requests: int
    errors: int
    error_kinds: dict[str, int]
    ttfb_p50_us: float
    ttfb_p99_us: float
    latency_p50_us: float
    latency_p99_us: float
    gateway_overhead_p50_us: float | None = None  # ferrogate's own x-ferrogate-overhead-us
    gateway_overhead_p99_us: float | None = None
    cpu_us_per_request: float | None = None  # the target's server (for direct, the mock's)
    note: str = ""


@contextlib.contextmanager
def measuring(target: Target) -> Iterator[dict[str, float]]:
    """CPU seconds used and peak RSS (sampled every 200 ms) of the target's server during a run."""
    out: dict[str, float] = {}
    if target.server is None:
        yield out
        return
    pids = target.server.pids()
    samples = [rss_mb(pids)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            samples.append(rss_mb(target.server.pids()))  # type: ignore[union-attr]

    cpu0 = cpu_seconds(pids)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        yield out
    finally:
        done.set()
        t.join()
        # Re-read the pids: a worker that died would make the delta negative; clamp at 0.
        out["cpu_s"] = max(0.0, cpu_seconds(target.server.pids()) - cpu0)
        out["rss_peak_mb"] = max(samples)


def settle(target: Target, limit_s: float = 120) -> None:
    """Waits until the target's server is idle (under 5% of a core over 0.5 s). A server that
    could not keep up (LiteLLM) keeps working through requests the client has given up on; the
    next run must not share the cores with that backlog."""
    if target.server is None:
        return
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = cpu_seconds(target.server.pids())
        time.sleep(0.5)
        if cpu_seconds(target.server.pids()) - before < 0.025:
            break
    waited = time.monotonic() - start
    if waited > 3:
        print(f"  ({target.name} took {waited:.0f} s to go idle after the run)", flush=True)


def oha(target: Target, kind: str, *, rate: float | None, seconds: float, connections: int, requests: int | None = None) -> LoadRun:
    """Runs oha once. With `rate`: open loop at that rate for `seconds`; latency counted from when
    each request was due (--latency-correction), so a slow server cannot hide its queueing.
    With `requests`: that many, one at a time."""
    args = [find_tool("oha"), "--no-tui", "--output-format", "json", "-m", "POST", "-T", "application/json", "-d", target.body(), "-t", f"{REQUEST_TIMEOUT_S}s"]
    for h in target.headers:
        args += ["-H", h]
    if requests is not None:
        args += ["-n", str(requests), "-c", "1"]
        budget = requests * REQUEST_TIMEOUT_S  # never hit in practice; bounded by -t anyway
    else:
        # -w: requests still in flight at the deadline are awaited (not counted as aborted).
        args += ["-z", f"{seconds}s", "-c", str(connections), "-w"]
        if rate:
            args += ["-q", str(rate), "--latency-correction"]
        budget = seconds + REQUEST_TIMEOUT_S + 30
    with measuring(target) as use:
        try:
            out = subprocess.run(args + [target.chat_url], capture_output=True, text=True, timeout=budget)
        except subprocess.TimeoutExpired:
            out = None
    settle(target)
    if out is None or out.returncode != 0:
        why = "oha did not finish in time" if out is None else f"oha failed: {out.stderr.strip()[-300:]}"
        print(f"  warning: {target.name}: {why}", flush=True)
        return LoadRun(target.name, kind, rate, seconds, 0, 0, 0, {why: 1}, 0, 0, 0, 0, note=why)
    return parse_oha(json.loads(out.stdout), target, kind, rate, seconds, use)


def parse_oha(d: dict, target: Target, kind: str, rate: float | None, seconds: float, use: dict[str, float]) -> LoadRun:
    codes = {str(k): int(v) for k, v in d.get("statusCodeDistribution", {}).items()}
    error_kinds = {f"HTTP {k}": v for k, v in codes.items() if not k.startswith("2")}
    error_kinds.update({str(k): int(v) for k, v in d.get("errorDistribution", {}).items()})
    errors = sum(error_kinds.values())
    requests = sum(codes.values()) + sum(int(v) for v in d.get("errorDistribution", {}).values())
    wall = d["summary"].get("total") or seconds
    pct = d.get("latencyPercentiles") or {}
    us = lambda key: (pct.get(key) or 0) * 1e6  # noqa: E731
    return LoadRun(
        target=target.name,
        kind=kind,
        asked_rps=rate,
        seconds=wall,
        achieved_rps=requests / wall if wall else 0,
        requests=requests,
        errors=errors,
        error_kinds=error_kinds,
        p50_us=us("p50"),
        p99_us=us("p99"),
        p999_us=us("p99.9"),
        max_us=(d["summary"].get("slowest") or 0) * 1e6,
        cpu_us_per_request=use["cpu_s"] / requests * 1e6 if "cpu_s" in use and requests else None,
        rss_peak_mb=use.get("rss_peak_mb"),
    )


def median_of_rounds(rounds: list[LoadRun]) -> LoadRun:
    """One-at-a-time rounds of one target as one run: each percentile the median of the rounds',
    counts and CPU over all of them."""
    med = lambda key: statistics.median(getattr(r, key) for r in rounds)  # noqa: E731
    requests = sum(r.requests for r in rounds)
    wall = sum(r.seconds for r in rounds)
    cpu = [r.cpu_us_per_request * r.requests for r in rounds if r.cpu_us_per_request is not None]
    kinds: dict[str, int] = {}
    for r in rounds:
        for k, v in r.error_kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    return LoadRun(
        target=rounds[0].target, kind="sequential", asked_rps=None, seconds=wall,
        achieved_rps=requests / wall if wall else 0, requests=requests, errors=sum(r.errors for r in rounds),
        error_kinds=kinds, p50_us=med("p50_us"), p99_us=med("p99_us"), p999_us=med("p999_us"),
        max_us=max(r.max_us for r in rounds),
        cpu_us_per_request=sum(cpu) / requests if cpu and requests else None,
        note="; ".join(r.note for r in rounds if r.note),
    )


def stream_run(target: Target, *, rate: float, seconds: float, connections: int, tmp: Path) -> StreamRun:
    """`ferrogate bench --stream`: the same client for every target; it reports time to first
    byte (the first SSE chunk, i.e. the first token's event) and, through ferrogate, the
    gateway's own overhead header."""
    report = tmp / f"stream-{target.name}.json"
    args = [FERROGATE, "bench", "--url", target.base_url, "--model", target.model, "--stream", "--rate", str(rate), "--duration", f"{seconds:g}s", "--concurrency", str(connections), "--prompt-words", str(len(PROMPT.split())), "--json", str(report), "--quiet"]
    if target.api_key:
        args += ["--api-key", target.api_key]
    try:
        with measuring(target) as use:
            r = subprocess.run(args, capture_output=True, text=True, timeout=seconds + REQUEST_TIMEOUT_S + 60)
        ok = r.returncode == 0 and report.exists()
        why = "" if ok else f"ferrogate bench failed: {(r.stderr or r.stdout).strip()[-300:]}"
    except subprocess.TimeoutExpired:
        ok, why = False, "ferrogate bench did not finish in time"
    settle(target)
    if not ok:
        print(f"  warning: {target.name}: {why}", flush=True)
        return StreamRun(target.name, rate, 0, 0, 0, {why: 1}, 0, 0, 0, 0, note=why)
    d = json.loads(report.read_text())
    ttfb, lat, ov = d.get("time_to_first_byte") or {}, d.get("latency") or {}, d.get("gateway_overhead")
    errors = {str(k): int(v) for k, v in (d.get("errors") or {}).items()}
    return StreamRun(
        target=target.name,
        asked_rps=rate,
        achieved_rps=d["achieved_rps"],
        requests=d["requests"],
        errors=sum(errors.values()),
        error_kinds=errors,
        ttfb_p50_us=ttfb.get("p50_us", 0),
        ttfb_p99_us=ttfb.get("p99_us", 0),
        latency_p50_us=lat.get("p50_us", 0),
        latency_p99_us=lat.get("p99_us", 0),
        gateway_overhead_p50_us=ov["p50_us"] if ov else None,
        gateway_overhead_p99_us=ov["p99_us"] if ov else None,
        cpu_us_per_request=use["cpu_s"] * 1e6 / d["requests"] if d["requests"] and "cpu_s" in use else None,
    )


def holds(run: LoadRun) -> bool:
    """The capacity criterion: p99 <= 1 ms, no errors, and the asked rate actually achieved."""
    return run.errors == 0 and run.p99_us <= CAPACITY_P99_US and run.achieved_rps >= 0.95 * (run.asked_rps or 0)


def capacity(target: Target, steps: list[int], seconds: float, connections: int) -> tuple[int, list[LoadRun]]:
    """Climbs `steps` until one fails: the last rate that held (0 if the first did not). A step
    that fails is tried once more before giving up: on shared cores one hiccup in a short run is
    enough to push p99 over 1 ms."""
    held, runs = 0, []
    for rate in steps:
        for attempt in (1, 2):
            run = oha(target, "capacity", rate=rate, seconds=seconds, connections=connections)
            runs.append(run)
            ok = holds(run)
            print(f"  capacity {target.name:9} {rate:>6} RPS (try {attempt}): achieved {run.achieved_rps:7.0f}  p99 {run.p99_us:8.0f} us  errors {run.errors}  -> {'holds' if ok else 'fails'}", flush=True)
            if ok or run.errors or run.p99_us > 5 * CAPACITY_P99_US:  # no point retrying a clear failure
                break
        if not ok:
            break
        held = rate
    return held, runs


# --- Results and report ---------------------------------------------------------------------


@dataclass
class Memory:
    """RSS of a server's processes: after start-up (no request yet), peak under load, after."""

    target: str
    idle_mb: float
    peak_mb: float = 0.0
    after_mb: float = 0.0
    layout: str = ""


@dataclass
class Results:
    command: str
    machine: dict[str, str]
    settings: dict[str, object]
    ceiling: LoadRun | None = None
    runs: list[LoadRun] = field(default_factory=list)  # fixed rates and sequential
    capacity: dict[str, int] = field(default_factory=dict)
    capacity_runs: list[LoadRun] = field(default_factory=list)
    streams: list[StreamRun] = field(default_factory=list)
    memory: dict[str, Memory] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # the DESIGN targets, as in the Markdown

    def run(self, target: str, kind: str, rate: float | None = None) -> LoadRun | None:
        return next((r for r in self.runs if r.target == target and r.kind == kind and r.asked_rps == rate), None)

    def stream(self, target: str) -> StreamRun | None:
        return next((s for s in self.streams if s.target == target), None)


def fmt(v: float | None, spec: str = ".0f", signed: bool = False) -> str:
    if v is None:
        return "–"
    return format(v, ("+" if signed else "") + spec)


def verdict(value: float | None, limit: float, unit: str) -> str:
    if value is None:
        return "not measured"
    # One decimal when whole units would hide the difference (60.4 against 60 is not "60 > 60").
    spec = ",.1f" if abs(value - limit) < 1 and value != limit else ",.0f"
    if value <= limit:
        return f"met ({value:{spec}} {unit} ≤ {limit:g})"
    return f"**missed by {value - limit:{spec}} {unit}** ({value:{spec}} > {limit:g})"


def ratio_vs_nginx(res: Results, target: str, rate: float) -> tuple[float | None, float | None, float | None]:
    """(target's added p50, nginx's added p50, their ratio) at one rate."""
    d, t, n = res.run("direct", "rate", rate), res.run(target, "rate", rate), res.run("nginx", "rate", rate)
    if not (d and t and n):
        return None, None, None
    added, nginx_added = t.p50_us - d.p50_us, n.p50_us - d.p50_us
    return added, nginx_added, (added / nginx_added if nginx_added > 0 else None)


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows), ""]


def report(res: Results) -> str:
    m, s = res.machine, res.settings
    proxies = [t for t in res.targets if t != "direct"]
    lines = [
        "# Server load: direct vs nginx vs ferrogate serve",
        "",
        f"**Everything runs on the same {m['nproc']} cores**: the load generator (oha, `ferrogate bench`), the "
        "zero-latency upstream (`ferrogate mock-upstream`), nginx and the gateway(s) compete for them, so the "
        "figures compare targets measured side by side in this run; they are not absolute capacities. "
        f"Load average (1, 5, 15 min) when the run started: {m['loadavg']}; when it ended: {m.get('loadavg_end', '?')} "
        "(a 1-minute figure above ~0.5 at the start means other work, e.g. a Rust build, was sharing the cores: noisier figures).",
        "",
        f"- Machine: `nproc` {m['nproc']}, {m['kernel']}, {m['cpu']}",
        f"- Versions: {m['nginx']}; {m['oha']}; {m['ferrogate']}; Python {m['python']}" + (f"; {m['litellm']}" if "litellm" in m else ""),
        f"- Command: `{res.command}`",
        f"- oha: {s['connections']} connections, fixed rates {s['rates']} RPS for {s['duration']} s each, "
        "`--latency-correction` (latency counts from when a request was due), `-w` (in-flight requests at the "
        f"deadline are awaited), {REQUEST_TIMEOUT_S} s request timeout (counted as an error).",
        f"- nginx: `worker_processes auto` ({s['nginx_workers']} workers, one per core, as ferrogate's runtime "
        "uses every core), `access_log off`, upstream `keepalive 256`, `proxy_http_version 1.1`, "
        "`proxy_buffering off`. CPU and RSS are its workers' (the master only supervises).",
        f"- Listen backlogs (accept queue): {', '.join(f'{k} {v}' for k, v in s.get('listen_backlog', {}).items())}.",
        f"- ferrogate serve: `logging.level: warn` (no line per request), request log store "
        f"{'on (SQLite)' if s['log_store'] else 'off'}, metrics on. Process layout: {res.memory['ferrogate'].layout if 'ferrogate' in res.memory else '?'}",
    ]
    if "litellm" in res.memory:
        lines.append(f"- LiteLLM proxy: `--num_workers {s['nginx_workers']}`, `LITELLM_LOG=ERROR`, telemetry off. Layout: {res.memory['litellm'].layout}")
    c = res.ceiling
    if c:
        verdict_c = "comfortably above" if c.achieved_rps >= 1.5 * max(s["rates"]) else ("above" if c.achieved_rps >= max(s["rates"]) else "**BELOW**")
        lines += ["", f"**Mock ceiling** (direct, unthrottled, {s['connections']} connections): {c.achieved_rps:,.0f} RPS, p99 {c.p99_us:,.0f} µs, "
                  f"{c.errors} errors — {verdict_c} the highest fixed rate ({max(s['rates']):,} RPS)."]

    lines += ["", "## Fixed rates (non-streaming chat completions)", "",
              "Added = target minus direct at the same rate. Ratio = the target's added p50 / nginx's added p50. "
              "CPU µs/req: user+system time of the target's server processes over the run, per request (for "
              "direct, the mock's own).", ""]
    rows = []
    for rate in s["rates"]:
        d = res.run("direct", "rate", rate)
        for t in res.targets:
            r = res.run(t, "rate", rate)
            if not r:
                continue
            added = t != "direct" and d is not None
            ratio = ratio_vs_nginx(res, t, rate)[2] if t not in ("direct", "nginx") else None
            rows.append([t, f"{rate:,}", fmt(r.achieved_rps, ",.0f"), str(r.errors), fmt(r.p50_us), fmt(r.p99_us), fmt(r.p999_us),
                         fmt(r.p50_us - d.p50_us, signed=True) if added else "", fmt(r.p99_us - d.p99_us, signed=True) if added else "",
                         "" if t in ("direct", "nginx") else (f"{ratio:.2f}x" if ratio is not None else "n/a"),
                         fmt(r.cpu_us_per_request, ".1f"), fmt(r.rss_peak_mb, ".1f")])
    lines += md_table(["target", "asked RPS", "achieved", "errors", "p50 µs", "p99 µs", "p99.9 µs", "added p50", "added p99", "ratio vs nginx", "CPU µs/req", "peak RSS MB"], rows)
    errs = [f"{r.target} @ {f'{r.asked_rps:g} RPS' if r.asked_rps else r.kind}: {r.error_kinds}" for r in res.runs if r.errors and r.kind != "sequential-round"]
    if errs:
        lines += ["Errors: " + "; ".join(errs), ""]

    lines += ["## Memory (RSS)", ""]
    rows = [[t, fmt(mem.idle_mb, ".1f"), fmt(mem.peak_mb, ".1f"), fmt(mem.after_mb, ".1f")] for t, mem in res.memory.items() if t != "direct"]
    lines += md_table(["target", "idle (started, no request yet) MB", "peak during the fixed rates MB", "after the fixed rates MB"], rows)

    lines += ["## One request at a time", "", f"oha `-c 1 -n {s['sequential']}` (closed loop: each request is sent when the previous one has been answered), "
              f"{s['sequential_rounds']} rounds with the targets taking turns; each percentile is the median of the rounds' (the per-round figures are in the JSON).", ""]
    d = res.run("direct", "sequential")
    rows = []
    for t in res.targets:
        r = res.run(t, "sequential")
        if r and d:
            rows.append([t, fmt(r.p50_us), fmt(r.p99_us), fmt(r.p999_us), "" if t == "direct" else fmt(r.p50_us - d.p50_us, signed=True),
                         "" if t == "direct" else fmt(r.p99_us - d.p99_us, signed=True), str(r.errors), fmt(r.cpu_us_per_request, ".1f")])
    lines += md_table(["target", "p50 µs", "p99 µs", "p99.9 µs", "added p50", "added p99", "errors", "CPU µs/req"], rows)

    lines += ["## Capacity", "", f"The highest of {s['capacity_steps']} RPS held for {s['capacity_seconds']} s with p99 ≤ 1 ms, no errors and ≥ 95% of the rate achieved "
              "(stops at the first step that fails, after one retry unless it clearly failed; direct is the ceiling for this criterion on this machine).", ""]
    rows = []
    for t, held in res.capacity.items():
        last = [r for r in res.capacity_runs if r.target == t][-1:]
        failed = f"{last[0].asked_rps:,.0f} RPS: p99 {last[0].p99_us:,.0f} µs, achieved {last[0].achieved_rps:,.0f}, errors {last[0].errors}" if last and not holds(last[0]) else "none (top step held)"
        rows.append([t, f"{held:,}" if held else "below the first step", failed])
    lines += md_table(["target", "held RPS", "first failing step"], rows)

    lines += ["## Streaming: time to first byte", "",
              f"`ferrogate bench --stream` at {s['stream_rate']} RPS for {s['stream_seconds']} s, {s['connections']} connections. First byte = the "
              "first SSE chunk (the role / first token event; the mock sends all chunks without delay). The client measures from the send, "
              "without coordinated-omission correction. Overhead = ferrogate's own `x-ferrogate-overhead-us` header. "
              "CPU µs/req: user+system time of the target's server processes over the run, per streamed request (for direct, the mock's own).", ""]
    ds = res.stream("direct")
    rows = []
    for t in res.targets:
        r = res.stream(t)
        if r and ds:
            rows.append([t, fmt(r.achieved_rps, ",.0f"), str(r.errors), fmt(r.ttfb_p50_us), fmt(r.ttfb_p99_us),
                         "" if t == "direct" else fmt(r.ttfb_p50_us - ds.ttfb_p50_us, signed=True), "" if t == "direct" else fmt(r.ttfb_p99_us - ds.ttfb_p99_us, signed=True),
                         fmt(r.latency_p50_us), fmt(r.latency_p99_us), fmt(r.gateway_overhead_p50_us) + " / " + fmt(r.gateway_overhead_p99_us) if r.gateway_overhead_p50_us is not None else "",
                         fmt(r.cpu_us_per_request, ".1f")])
    lines += md_table(["target", "achieved", "errors", "TTFB p50 µs", "TTFB p99 µs", "added p50", "added p99", "whole stream p50 µs", "whole stream p99 µs", "overhead p50 / p99 µs", "CPU µs/req"], rows)

    lines += ["## DESIGN targets (ferrogate)", ""] + (res.checks or design_checks(res)) + [""]
    if res.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in res.notes), ""]
    lines += ["Plot: `server_load.png` (p50 and p99 against achieved RPS, fixed-rate and capacity runs). Raw figures: `server_load.json`.", ""]
    return "\n".join(lines)


def shortfall(run: LoadRun | None) -> str:
    """A caveat for a check made on a run that did not reach its rate or had errors."""
    if run is None or run.asked_rps is None:
        return ""
    bits = [f"achieved only {run.achieved_rps:,.0f} RPS"] if run.achieved_rps < 0.95 * run.asked_rps else []
    bits += [f"{run.errors} errors"] if run.errors else []
    return f" — {', '.join(bits)}" if bits else ""


def design_checks(res: Results) -> list[str]:
    out = []
    for rate in res.settings["rates"]:  # type: ignore[union-attr]
        added, nginx_added, _ = ratio_vs_nginx(res, "ferrogate", rate)
        if added is None or nginx_added is None:
            continue
        limit = TARGET_ADDED_VS_NGINX * max(nginx_added, 0)
        v = f"met ({added:+,.0f} µs vs 2 × {nginx_added:+,.0f} µs)" if added <= limit else f"**missed by {added - limit:,.0f} µs** ({added:+,.0f} µs vs 2 × {nginx_added:+,.0f} µs)"
        out.append(f"- Added p50 within 2x of nginx's added p50 at {rate:,} RPS: {v}{shortfall(res.run('ferrogate', 'rate', rate))}")
    s, d = res.run("ferrogate", "sequential"), res.run("direct", "sequential")
    if s and d:
        out.append(f"- One at a time, added p50 ≤ {TARGET_SEQ_P50_US} µs: {verdict(s.p50_us - d.p50_us, TARGET_SEQ_P50_US, 'µs')}")
        out.append(f"- One at a time, added p99 ≤ {TARGET_SEQ_P99_US} µs: {verdict(s.p99_us - d.p99_us, TARGET_SEQ_P99_US, 'µs')}")
        n = res.run("nginx", "sequential")
        if n and s.cpu_us_per_request is not None and n.cpu_us_per_request is not None:
            # With one request in flight nothing overlaps a request's own work: its CPU time is
            # most of what a hop adds, so this says where a miss above comes from.
            out.append(f"  - Why: one at a time, each request costs ferrogate {s.cpu_us_per_request:,.0f} µs of CPU (user + system) "
                       f"and nginx {n.cpu_us_per_request:,.0f} µs; added p50 ferrogate {s.p50_us - d.p50_us:+,.0f} µs, nginx {n.p50_us - d.p50_us:+,.0f} µs. "
                       "`make bench-instructions` counts the user-space instructions behind it, with nginx's as the baseline.")
    top = max(res.settings["rates"])  # type: ignore[type-var]
    r = res.run("ferrogate", "rate", top)
    if r:
        out.append(f"- CPU per request ≤ {TARGET_CPU_PER_REQ_US} µs (at {top:,} RPS): {verdict(r.cpu_us_per_request, TARGET_CPU_PER_REQ_US, 'µs')}")
        caveat = "" if top >= 5000 else " (the target is for 5,000 RPS: this run went no higher)"
        out.append(f"- Peak RSS ≤ {TARGET_RSS_LOAD_MB} MB under {top:,} RPS{caveat}: {verdict(r.rss_peak_mb, TARGET_RSS_LOAD_MB, 'MB')}{shortfall(r)}")
    mem = res.memory.get("ferrogate")
    if mem:
        out.append(f"- Idle RSS ≤ {TARGET_RSS_IDLE_MB} MB: {verdict(mem.idle_mb, TARGET_RSS_IDLE_MB, 'MB')} — of the process serving "
                   "(see the layout above: the native executable when the wheel bundles it, else the Python interpreter hosting the server)")
    st, ds = res.stream("ferrogate"), res.stream("direct")
    if st and ds and not st.note:
        out.append(f"- Streaming time to first token, added p99 ≤ {TARGET_TTFT_ADDED_P99_US} µs: {verdict(st.ttfb_p99_us - ds.ttfb_p99_us, TARGET_TTFT_ADDED_P99_US, 'µs')}")
    return out


def plot(res: Results, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed, no plot: {INSTALL_HINT}")
        return False
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for i, t in enumerate(res.targets):
        color = f"C{i}"
        # Lines: the fixed rates, in the order asked. Crosses: the capacity steps.
        fixed = sorted((r for r in res.runs if r.target == t and r.kind == "rate" and r.requests), key=lambda r: r.asked_rps or 0)
        steps = [r for r in res.capacity_runs if r.target == t and r.requests]
        for ax, key in zip(axes, ("p50_us", "p99_us")):
            ax.plot([r.achieved_rps for r in fixed], [getattr(r, key) for r in fixed], marker="o", color=color, label=f"{t} (fixed rates)")
            if steps:
                ax.scatter([r.achieved_rps for r in steps], [getattr(r, key) for r in steps], marker="x", color=color, alpha=0.6, label=f"{t} (capacity steps)")
    for ax, title in zip(axes, ("p50", "p99")):
        ax.set_title(f"latency {title}")
        ax.set_xlabel("achieved requests per second")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].axhline(CAPACITY_P99_US, color="gray", linestyle=":", linewidth=1)
    axes[1].annotate("1 ms (capacity criterion)", (0, CAPACITY_P99_US), xycoords=("axes fraction", "data"), xytext=(4, 3), textcoords="offset points", fontsize=7, color="gray")
    axes[0].set_ylabel("latency (µs, log scale)")
    fig.suptitle(f"Chat completions through one proxy hop, zero-latency upstream ({res.machine['nproc']} shared cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- Main -----------------------------------------------------------------------------------


def machine_info(litellm: Path | None) -> dict[str, str]:
    info = {
        "nproc": str(len(os.sched_getaffinity(0))),
        "kernel": f"{platform.system()} {platform.release()}",
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"),
        "loadavg": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "nginx": first_line([find_tool("nginx"), "-v"]),
        "oha": first_line([find_tool("oha"), "--version"]),
        "ferrogate": first_line([FERROGATE, "--version"]),
        "python": platform.python_version(),
    }
    if litellm:
        info["litellm"] = "litellm " + first_line([str(litellm / "bin/python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"])
    return info


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="500,2500,5000", help="fixed rates in RPS, comma-separated (default 500,2500,5000)")
    ap.add_argument("--duration", type=float, default=15, help="seconds per fixed rate (default 15)")
    ap.add_argument("--connections", type=int, default=256, help="oha connections (default 256)")
    ap.add_argument("--sequential", type=int, default=2000, help="requests sent one at a time per round (default 2000)")
    ap.add_argument("--sequential-rounds", type=int, default=5, help="rounds of one-at-a-time requests, targets taking turns (default 5)")
    ap.add_argument("--capacity-steps", default="250,500,1000,2000,3000,4000,5000,6000,8000,10000", help="rates tried for the capacity search")
    ap.add_argument("--capacity-seconds", type=float, default=5, help="seconds per capacity step (default 5)")
    ap.add_argument("--stream-rate", type=int, default=500, help="RPS of the streaming runs (default 500)")
    ap.add_argument("--stream-seconds", type=float, default=10, help="seconds per streaming run (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 s steps, rates 500,2500, short capacity search")
    ap.add_argument("--litellm", action="store_true", help="add the LiteLLM proxy (installed into --litellm-venv on first use)")
    ap.add_argument("--litellm-venv", type=Path, default=ROOT / "bench-results" / ".litellm-proxy-venv")
    ap.add_argument("--log-store", action="store_true", help="keep ferrogate's request log store (SQLite) on, as the server's default")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results", help="output directory (default bench-results)")
    a = ap.parse_args()
    a.rates = [int(r) for r in a.rates.split(",")]
    a.capacity_steps = [int(r) for r in a.capacity_steps.split(",")]
    if a.quick:
        a.rates = [r for r in a.rates if r <= 2500] or a.rates[:1]
        a.duration, a.sequential, a.capacity_seconds, a.stream_rate, a.stream_seconds = 3, 300, 2, 200, 3
        a.sequential_rounds = 2
        a.capacity_steps = a.capacity_steps[:3]
    return a


def run_benchmark(a: argparse.Namespace, res: Results, tmp: Path, stack: contextlib.ExitStack) -> None:
    warmup = dict(rate=200, seconds=2, connections=16)

    # 1. The upstream, and its ceiling: if the mock itself cannot serve the rates, nothing else
    #    measured here means anything.
    direct = start_mock(stack, tmp)
    oha(direct, "warmup", **warmup)
    res.ceiling = oha(direct, "ceiling", rate=None, seconds=min(a.duration, 5), connections=a.connections)
    print(f"mock ceiling: {res.ceiling.achieved_rps:,.0f} RPS unthrottled (p99 {res.ceiling.p99_us:,.0f} us, errors {res.ceiling.errors})", flush=True)
    if res.ceiling.achieved_rps < 1.5 * max(a.rates):
        msg = f"the mock's ceiling ({res.ceiling.achieved_rps:,.0f} RPS) is not comfortably above the highest rate ({max(a.rates):,} RPS): the top rate measures the machine, not the proxies"
        print("WARNING: " + msg, flush=True)
        res.notes.append(msg)

    # 2. The proxies. Idle RSS is read after start-up, before their first request.
    targets = [direct, start_nginx(stack, tmp, direct), start_ferrogate(stack, tmp, direct, a.log_store)]
    if a.litellm:
        try:
            targets.append(start_litellm(stack, tmp, direct, a.litellm_venv))
        except RuntimeError as e:  # the other targets are still worth measuring
            print(f"WARNING: LiteLLM left out: {e}", flush=True)
            res.notes.append(f"LiteLLM was asked for but did not start: {str(e).splitlines()[0]}")
    res.targets = [t.name for t in targets]
    res.settings["nginx_workers"] = len(targets[1].server.pids())  # type: ignore[union-attr]
    res.settings["listen_backlog"] = {t.name: listen_backlog(t.server.port) for t in targets if t.server}
    time.sleep(1)
    for t in targets[1:]:
        assert t.server
        pids = t.server.pids()
        res.memory[t.name] = Memory(t.name, idle_mb=rss_mb(pids), layout=describe_layout(t.server, pids) if t.name != "nginx" else f"master pid {t.server.proc.pid} ({rss_mb([t.server.proc.pid]):.1f} MB RSS) + {len(pids)} workers")
    for t in targets:  # connection pools, lazy initialisation, page faults
        oha(t, "warmup", **warmup)

    # 3. Fixed rates. Targets alternate within each rate, so background noise hits all alike.
    for rate in a.rates:
        for t in targets:
            r = oha(t, "rate", rate=rate, seconds=a.duration, connections=a.connections)
            res.runs.append(r)
            print(f"{t.name:9} {rate:>6} RPS: achieved {r.achieved_rps:7.0f}  p50 {r.p50_us:7.0f} us  p99 {r.p99_us:8.0f} us  p99.9 {r.p999_us:8.0f} us  errors {r.errors}  CPU/req {fmt(r.cpu_us_per_request, '.1f')} us", flush=True)
            if t.name in res.memory:
                res.memory[t.name].peak_mb = max(res.memory[t.name].peak_mb, r.rss_peak_mb or 0)
    time.sleep(2)
    for t in targets[1:]:
        res.memory[t.name].after_mb = rss_mb(t.server.pids())  # type: ignore[union-attr]

    # 4. One at a time: the per-request cost without queueing. A few microseconds are measured
    #    here, and this machine's background noise drifts over seconds: the targets take turns
    #    in several short rounds and each figure is the median of its rounds.
    rounds: dict[str, list[LoadRun]] = {t.name: [] for t in targets}
    for i in range(a.sequential_rounds):
        for t in targets:
            r = oha(t, "sequential-round", rate=None, seconds=0, connections=1, requests=a.sequential)
            rounds[t.name].append(r)
            print(f"{t.name:9} one at a time, round {i + 1}: p50 {r.p50_us:6.0f} us  p99 {r.p99_us:6.0f} us  errors {r.errors}", flush=True)
    for t in targets:
        r = median_of_rounds(rounds[t.name])
        res.runs += rounds[t.name] + [r]
        print(f"{t.name:9} one at a time (median of {len(rounds[t.name])} rounds): p50 {r.p50_us:6.0f} us  p99 {r.p99_us:6.0f} us  errors {r.errors}", flush=True)

    # 5. Streaming: first byte through each hop.
    for t in targets:
        st = stream_run(t, rate=a.stream_rate, seconds=a.stream_seconds, connections=a.connections, tmp=tmp)
        res.streams.append(st)
        print(f"{t.name:9} stream @ {a.stream_rate} RPS: first byte p50 {st.ttfb_p50_us:6.0f} us  p99 {st.ttfb_p99_us:6.0f} us  errors {st.errors}", flush=True)

    # 6. Capacity (direct first: the ceiling of the criterion on this machine). LiteLLM is left
    #    out: its p99 is far above 1 ms at any rate.
    for t in targets[:3]:
        held, runs = capacity(t, a.capacity_steps, a.capacity_seconds, a.connections)
        res.capacity[t.name] = held
        res.capacity_runs += runs


def write_outputs(res: Results, out: Path) -> None:
    res.checks = design_checks(res)
    md = report(res)
    (out / "server_load.json").write_text(json.dumps(asdict(res), indent=2, ensure_ascii=False))
    (out / "server_load.md").write_text(md)
    plotted = plot(res, out / "server_load.png")
    print("\n" + md)
    print(f"wrote {out / 'server_load.json'}, {out / 'server_load.md'}" + (f", {out / 'server_load.png'}" if plotted else ""))


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    a = parse_args()
    for tool in ("oha", "nginx"):
        find_tool(tool)
    a.out.mkdir(parents=True, exist_ok=True)
    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, through the cleanup below.
    signal.signal(signal.SIGTERM, interrupt)
    settings = {k: getattr(a, k) for k in ("rates", "duration", "connections", "sequential", "sequential_rounds", "capacity_steps", "capacity_seconds", "stream_rate", "stream_seconds", "log_store", "quick")}
    res = Results(command=" ".join(["python benches/server_load.py", *sys.argv[1:]]), machine=machine_info(a.litellm_venv if a.litellm else None), settings=settings)
    if a.litellm:
        ensure_litellm(a.litellm_venv)
        res.machine = machine_info(a.litellm_venv)
    try:
        # The ExitStack stops every server this script started, whatever happens (errors, Ctrl-C).
        with tempfile.TemporaryDirectory(prefix="ferrogate-server-load-") as tmpdir, contextlib.ExitStack() as stack:
            run_benchmark(a, res, Path(tmpdir), stack)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped; no report written", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    res.machine["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    write_outputs(res, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
