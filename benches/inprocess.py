"""In-process benchmark: `ferrogate.completion` against the official `openai` SDK calling the
upstream directly (the baseline) and against `litellm.completion`, all against the same
zero-latency `ferrogate mock-upstream` started here on a free port.

Measured for each contender, each in a fresh subprocess of its own interpreter:
  - sequential calls: p50 / p99 / mean, added latency over the SDK, CPU time per call;
  - concurrent async calls (`acompletion`, `AsyncOpenAI`): calls/s, p50 / p99, errors;
  - `import X`: time (fresh interpreter, minus a bare interpreter) and RSS added.

LiteLLM lives in its own virtualenv (default bench-results/.litellm-venv, created with
`pip install litellm` on first use) so it never touches .venv; `--no-litellm` skips it.
The load, the contenders and the mock share this machine: figures are only comparable within
one run.

    python benches/inprocess.py [--calls 2000] [--concurrency 200] [--concurrent-calls 10000]
                                [--quick] [--no-litellm] [--out bench-results]

This file is also the worker (`--worker ...`): it imports only the standard library at the top so
that any interpreter (.venv's, LiteLLM's venv's) can run it, and imports the contender lazily.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from bench_common import free_port, wait_up

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
DEFAULT_LITELLM_VENV = ROOT / "bench-results" / ".litellm-venv"

PROMPT = "a short prompt of a few words"
MESSAGES = [{"role": "user", "content": PROMPT}]
EXPECTED_CONTENT = f"You said: {PROMPT}"  # what the mock answers; checked once per worker
API_KEY = "sk-bench"

# The DESIGN targets this run checks.
IMPORT_MS_TARGET = 100.0
IMPORT_RSS_MB_TARGET = 40.0
ADDED_P50_US_TARGET = 60.0  # the server's sequential targets, applied in-process too
ADDED_P99_US_TARGET = 150.0

# Keeps LiteLLM off the network (there is none here): local cost map, no telemetry, quiet logs.
LITELLM_ENV = {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}


# --------------------------------------------------------------------------------------------
# Contenders


@dataclass(frozen=True)
class Contender:
    key: str  # id on the worker command line and in the JSON
    sync_label: str  # the call as its user writes it
    async_label: str
    venv: str  # "main" (.venv) or "litellm" (LiteLLM's own venv)
    baseline: bool = False


CONTENDERS = (
    Contender(
        "openai_sdk",
        "openai SDK direct: `openai.OpenAI().chat.completions.create` (baseline)",
        "openai SDK direct: `openai.AsyncOpenAI().chat.completions.create` (baseline)",
        "main",
        baseline=True,
    ),
    Contender("ferrogate", "`ferrogate.completion`", "`ferrogate.acompletion`", "main"),
    Contender(
        "ferrogate_client",
        "`ferrogate.OpenAI().chat.completions.create`",
        "`ferrogate.AsyncOpenAI().chat.completions.create`",
        "main",
    ),
    Contender("litellm", "`litellm.completion`", "`litellm.acompletion`", "litellm"),
)
BY_KEY = {c.key: c for c in CONTENDERS}

# Modules whose import cost is measured, and the venv each is imported from.
IMPORTS = (("ferrogate", "main"), ("openai", "main"), ("litellm", "litellm"))


# --------------------------------------------------------------------------------------------
# Worker side: runs under the contender's interpreter, in a fresh process per measurement.


def _quiet_litellm() -> Any:
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def sync_caller(key: str, api_base: str) -> Callable[[], Any]:
    """One chat completion, written the way a user of that library writes it."""
    if key == "openai_sdk":
        import openai

        client = openai.OpenAI(base_url=api_base, api_key=API_KEY)
        return lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    if key == "ferrogate":
        import ferrogate

        return lambda: ferrogate.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=api_base, api_key=API_KEY
        )
    if key == "ferrogate_client":
        import ferrogate

        fclient = ferrogate.OpenAI(base_url=api_base, api_key=API_KEY)
        return lambda: fclient.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    if key == "litellm":
        litellm = _quiet_litellm()
        return lambda: litellm.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=api_base, api_key=API_KEY
        )
    raise ValueError(key)


def async_caller(key: str, api_base: str) -> Callable[[], Awaitable[Any]]:
    """The async counterpart; built inside the running event loop (AsyncOpenAI binds to it)."""
    if key == "openai_sdk":
        import openai

        client = openai.AsyncOpenAI(base_url=api_base, api_key=API_KEY)
        return lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    if key == "ferrogate":
        import ferrogate

        return lambda: ferrogate.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=api_base, api_key=API_KEY
        )
    if key == "ferrogate_client":
        import ferrogate

        fclient = ferrogate.AsyncOpenAI(base_url=api_base, api_key=API_KEY)
        return lambda: fclient.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    if key == "litellm":
        litellm = _quiet_litellm()
        return lambda: litellm.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=api_base, api_key=API_KEY
        )
    raise ValueError(key)


def check_response(response: Any) -> None:
    """Makes sure we time real answers, not fast errors."""
    content = response.choices[0].message.content
    if content != EXPECTED_CONTENT:
        raise RuntimeError(f"unexpected answer from the mock: {content!r}")


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads (the Rust engine's included)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def latency_summary(latencies_us: list[float]) -> dict[str, float]:
    if not latencies_us:
        return {"p50_us": math.nan, "p99_us": math.nan, "mean_us": math.nan, "max_us": math.nan}
    ordered = sorted(latencies_us)
    return {
        "p50_us": percentile(ordered, 0.50),
        "p99_us": percentile(ordered, 0.99),
        "mean_us": statistics.fmean(ordered),
        "max_us": ordered[-1],
    }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure_sequential(key: str, api_base: str, calls: int, warmup: int) -> dict[str, Any]:
    call = sync_caller(key, api_base)
    check_response(call())
    for _ in range(warmup):
        call()
    latencies: list[float] = []
    errors = 0
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        try:
            call()
        except Exception:  # counted, not fatal: a row with errors says so
            errors += 1
            continue
        latencies.append((time.perf_counter() - t) * 1e6)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {
        "calls": calls,
        "warmup": warmup,
        "errors": errors,
        **latency_summary(latencies),
        "cpu_us_per_call": cpu / calls * 1e6,
        "calls_per_s": calls / wall,
    }


async def _concurrent(key: str, api_base: str, calls: int, warmup: int, concurrency: int) -> dict[str, Any]:
    acall = async_caller(key, api_base)
    check_response(await acall())

    async def batch(total: int) -> tuple[list[float], list[str]]:
        # `concurrency` tasks share one iterator, so exactly `total` calls are made and at most
        # `concurrency` are in flight at any time.
        todo = iter(range(total))
        latencies: list[float] = []
        errors: list[str] = []

        async def runner() -> None:
            for _ in todo:
                t = time.perf_counter()
                try:
                    await acall()
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {str(e)[:200]}")
                    continue
                latencies.append((time.perf_counter() - t) * 1e6)

        await asyncio.gather(*(runner() for _ in range(min(concurrency, total))))
        return latencies, errors

    await batch(warmup)
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    latencies, errors = await batch(calls)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    return {
        "calls": calls,
        "warmup": warmup,
        "concurrency": concurrency,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "calls_per_s": calls / wall,
        "wall_s": wall,
        **latency_summary(latencies),
        "cpu_us_per_call": cpu / calls * 1e6,
    }


def measure_concurrent(key: str, api_base: str, calls: int, warmup: int, concurrency: int) -> dict[str, Any]:
    return asyncio.run(_concurrent(key, api_base, calls, warmup, concurrency))


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("ferrogate", "openai", "litellm", "httpx", "aiohttp", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def worker_main(args: argparse.Namespace) -> None:
    if args.worker == "sequential":
        result = measure_sequential(args.contender, args.api_base, args.calls, args.warmup)
    elif args.worker == "concurrent":
        result = measure_concurrent(args.contender, args.api_base, args.calls, args.warmup, args.concurrency)
    elif args.worker == "versions":
        result = {"python": platform.python_version(), "packages": package_versions()}
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    Path(args.result_file).write_text(json.dumps(result))


# Run as `python -c IMPORT_PROBE MODULE` (MODULE empty: the bare interpreter). Prints the seconds
# spent in the import and VmRSS in kB, without importing anything else, so the bare run and the
# import run differ only by the module.
IMPORT_PROBE = """
import sys, time
t = time.perf_counter()
if sys.argv[1]:
    __import__(sys.argv[1])
dt = time.perf_counter() - t
with open('/proc/self/status') as f:
    rss = next(line.split()[1] for line in f if line.startswith('VmRSS:'))
print(dt, rss)
"""


# --------------------------------------------------------------------------------------------
# Orchestrator side: runs under .venv's interpreter.


@dataclass
class Interpreters:
    main: str  # .venv's python (ferrogate, openai)
    litellm: str | None  # LiteLLM venv's python, or None when unavailable / skipped
    litellm_note: str = ""

    def for_venv(self, venv: str) -> str | None:
        return self.main if venv == "main" else self.litellm


@dataclass
class Settings:
    calls: int
    warmup: int
    concurrency: int
    concurrent_calls: int
    concurrent_warmup: int
    import_repeats: int
    ceiling_seconds: int
    quick: bool


@dataclass
class Run:
    """Everything one run produced; dumped as inprocess.json."""

    settings: Settings
    machine: dict[str, Any] = field(default_factory=dict)
    mock_ceiling: dict[str, Any] = field(default_factory=dict)
    imports: dict[str, Any] = field(default_factory=dict)
    sequential: dict[str, Any] = field(default_factory=dict)
    concurrent: dict[str, Any] = field(default_factory=dict)
    targets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def worker_env() -> dict[str, str]:
    """The environment of every subprocess: no config or keys leaking in from the shell (the
    contenders get api_base / api_key per call), LiteLLM kept offline, and .pyc files written
    (the shell here sets PYTHONDONTWRITEBYTECODE; users' installs have their caches)."""
    drop = {"FERROGATE_CONFIG", "PYTHONDONTWRITEBYTECODE", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(LITELLM_ENV)
    env["FERROGATE_LOG"] = "warn"
    return env


def run_worker(python: str, mode: str, work: Path, timeout: float, **kwargs: Any) -> dict[str, Any]:
    """Runs this file as a worker under `python` and returns its JSON result, or
    {"failed": reason} so one broken contender does not stop the run."""
    result_file = work / f"{mode}-{kwargs.get('contender', '')}-{time.monotonic_ns()}.json"
    cmd = [python, str(HERE), "--worker", mode, "--result-file", str(result_file)]
    for name, value in kwargs.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    try:
        # cwd = the scratch dir: ferrogate's default config writes its SQLite log store to the cwd.
        proc = subprocess.run(cmd, cwd=work, env=worker_env(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"failed": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not result_file.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"failed": f"exit {proc.returncode}: " + " | ".join(tail)}
    return json.loads(result_file.read_text())  # type: ignore[no-any-return]


class MockUpstream:
    """`ferrogate mock-upstream` on a free port, for the duration of a `with` block."""

    def __init__(self, ferrogate_bin: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._cmd = [str(ferrogate_bin), "mock-upstream", "--port", str(self.port)]

    def __enter__(self) -> MockUpstream:
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_up(self.url)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


# ---- LiteLLM's virtualenv


def probe_import(python: str, module: str) -> str | None:
    """None if `module` imports under `python`, else why not."""
    try:
        proc = subprocess.run(
            [python, "-c", f"import {module}"], env=worker_env(), capture_output=True, text=True, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]


def ensure_litellm(venv: Path) -> tuple[str | None, str]:
    """LiteLLM's interpreter, creating the venv and installing LiteLLM on first use. Returns
    (python or None, a note saying what happened)."""
    python = venv / "bin" / "python"
    if python.exists() and probe_import(str(python), "litellm") is None:
        return str(python), f"LiteLLM from {venv} (existing venv)"
    base = getattr(sys, "_base_executable", None) or "python3"
    print(f"[inprocess] creating {venv} and installing litellm (first run only)...", flush=True)
    steps = [[base, "-m", "venv", str(venv)], [str(python), "-m", "pip", "install", "-q", "litellm"]]
    for step in steps:
        try:
            proc = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"LiteLLM unavailable: `{' '.join(step)}` failed: {e}"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"LiteLLM unavailable: `{' '.join(step)}` failed: {last}"
    why = probe_import(str(python), "litellm")
    if why is not None:
        return None, f"LiteLLM unavailable: installed but `import litellm` fails: {why}"
    return str(python), f"LiteLLM installed into {venv}"


# ---- the measurements


def measure_imports(interp: Interpreters, repeats: int, work: Path) -> dict[str, Any]:
    """Import time and RSS of each module, in fresh interpreters, minus the bare interpreter
    measured the same way (each venv's own)."""

    def sample(python: str, module: str) -> dict[str, float]:
        walls, in_proc, rss = [], [], []
        for i in range(repeats + 1):
            t = time.perf_counter()
            proc = subprocess.run(
                [python, "-c", IMPORT_PROBE, module], cwd=work, env=worker_env(), capture_output=True, text=True,
                timeout=300, check=True,
            )
            wall = time.perf_counter() - t
            if i == 0:
                continue  # the first run writes any missing .pyc caches; not timed
            dt, kb = proc.stdout.split()[-2:]
            walls.append(wall * 1e3)
            in_proc.append(float(dt) * 1e3)
            rss.append(int(kb) * 1024 / 1e6)
        return {"wall_ms": statistics.median(walls), "import_ms": statistics.median(in_proc), "rss_mb": statistics.median(rss)}

    out: dict[str, Any] = {}
    bare: dict[str, dict[str, float]] = {}
    for module, venv in IMPORTS:
        python = interp.for_venv(venv)
        if python is None:
            out[module] = {"skipped": interp.litellm_note}
            continue
        if python not in bare:
            bare[python] = sample(python, "")
        b, m = bare[python], sample(python, module)
        out[module] = {
            "time_ms": m["wall_ms"] - b["wall_ms"],  # wall of `python -c "import X"` minus bare
            "time_in_process_ms": m["import_ms"],  # perf_counter around the import statement
            "rss_mb": m["rss_mb"] - b["rss_mb"],
            "raw": m,
            "bare": b,
        }
    return out


def measure_mock_ceiling(ferrogate_bin: Path, mock: str, concurrency: int, seconds: int, work: Path) -> dict[str, Any]:
    """What the mock itself sustains, driven by the Rust load generator (`ferrogate bench`):
    one at a time (the floor of a call's latency) and at the benchmark's concurrency (the
    ceiling of calls/s no in-process contender can pass)."""
    out: dict[str, Any] = {}
    for c in (1, concurrency):
        report = work / f"ceiling-{c}.json"
        cmd = [str(ferrogate_bin), "bench", "--url", mock, "--model", "gpt-4o-mini", "--rate", "0",
               "--concurrency", str(c), "--duration", f"{seconds}s", "--quiet", "--json", str(report)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        if proc.returncode != 0 or not report.exists():
            out[str(c)] = {"failed": proc.stderr.strip()[-300:]}
            continue
        r = json.loads(report.read_text())
        lat = r.get("latency", {})
        out[str(c)] = {"calls_per_s": r.get("achieved_rps"), "p50_us": lat.get("p50_us"), "p99_us": lat.get("p99_us")}
    return out


def busy_compilers() -> list[str]:
    """Names of compiler processes running now (rustc/cargo from a concurrent build skew figures)."""
    names = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name in ("rustc", "cargo", "cc", "ld", "cc1", "maturin"):
                names.append(name)
    return sorted(names)


def machine_info(interp: Interpreters, work: Path) -> dict[str, Any]:
    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "loadavg_start": os.getloadavg(),
        "compilers_running_start": busy_compilers(),
        "main_venv": run_worker(interp.main, "versions", work, 120),
    }
    if interp.litellm:
        info["litellm_venv"] = run_worker(interp.litellm, "versions", work, 120)
    return info


def run_contenders(run: Run, interp: Interpreters, mock: str, work: Path) -> None:
    s = run.settings
    for c in CONTENDERS:
        python = interp.for_venv(c.venv)
        if python is None:
            run.sequential[c.key] = run.concurrent[c.key] = {"skipped": interp.litellm_note}
            continue
        print(f"[inprocess] {c.key}: {s.calls} sequential calls...", flush=True)
        run.sequential[c.key] = run_worker(
            python, "sequential", work, 1800, contender=c.key, api_base=f"{mock}/v1", calls=s.calls, warmup=s.warmup
        )
        print(f"[inprocess] {c.key}: {s.concurrent_calls} calls, {s.concurrency} in flight...", flush=True)
        run.concurrent[c.key] = run_worker(
            python, "concurrent", work, 1800, contender=c.key, api_base=f"{mock}/v1",
            calls=s.concurrent_calls, warmup=s.concurrent_warmup, concurrency=s.concurrency,
        )


# ---- the verdicts


def verdict(value: float, target: float, unit: str) -> tuple[bool, str]:
    """`value` must be at most `target`."""
    if math.isnan(value):
        return False, "not measured"
    if value <= target:
        return True, f"met, by {target - value:,.1f} {unit}"
    return False, f"MISSED by {value - target:,.1f} {unit}"


def check_targets(run: Run) -> None:
    imp = run.imports.get("ferrogate", {})
    if "time_ms" in imp:
        for what, value, target, unit in (
            ("`import ferrogate` time", imp["time_ms"], IMPORT_MS_TARGET, "ms"),
            ("`import ferrogate` RSS", imp["rss_mb"], IMPORT_RSS_MB_TARGET, "MB"),
        ):
            met, text = verdict(value, target, unit)
            run.targets.append(
                {"what": what, "value": value, "unit": unit, "target": f"< {target:g} {unit}", "met": met, "verdict": text}
            )
    base = run.sequential.get("openai_sdk", {})
    if "p50_us" not in base:
        return
    for key in ("ferrogate", "ferrogate_client"):
        r = run.sequential.get(key, {})
        if "p50_us" not in r:
            continue
        label = BY_KEY[key].sync_label
        checks = (
            (f"{label} p50 below the SDK's (DESIGN, in-process)", r["p50_us"] - base["p50_us"], 0.0, "< 0 us"),
            (f"{label} added p50", r["p50_us"] - base["p50_us"], ADDED_P50_US_TARGET, f"<= {ADDED_P50_US_TARGET:g} us"),
            (f"{label} added p99", r["p99_us"] - base["p99_us"], ADDED_P99_US_TARGET, f"<= {ADDED_P99_US_TARGET:g} us"),
        )
        for what, value, target, target_text in checks:
            met, text = verdict(value, target, "us")
            run.targets.append(
                {"what": what, "value": value, "unit": "us", "target": target_text, "met": met, "verdict": text}
            )


# ---- the report


def fmt_us(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:,.0f} us"


def fmt_signed_us(v: float) -> str:
    return f"{v:+,.0f} us"


def row_or_reason(r: dict[str, Any]) -> str | None:
    if "skipped" in r:
        return "skipped (see Notes)"
    if "failed" in r:
        return f"FAILED: {r['failed']}"
    return None


def reason_row(label: str, reason: str, columns: int) -> str:
    """A table row that says why there are no figures."""
    return f"| {label} | {reason} |" + " |" * (columns - 2)


def sequential_table(run: Run) -> list[str]:
    base = run.sequential.get("openai_sdk", {})
    lines = [
        f"### Sequential: one call at a time ({run.settings.calls:,} calls after {run.settings.warmup:,} warm-up)",
        "",
        "| contender | p50 | p99 | mean | added p50 vs SDK | added p99 vs SDK | p50 ratio | CPU / call | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in CONTENDERS:
        r = run.sequential.get(c.key, {})
        reason = row_or_reason(r)
        if reason:
            lines.append(reason_row(c.sync_label, reason, 9))
            continue
        if "p50_us" in base and not c.baseline:
            added = (fmt_signed_us(r["p50_us"] - base["p50_us"]), fmt_signed_us(r["p99_us"] - base["p99_us"]),
                     f"{r['p50_us'] / base['p50_us']:.2f}x")
        else:
            added = ("-", "-", "1.00x" if c.baseline else "-")
        lines.append(
            f"| {c.sync_label} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} | {fmt_us(r['mean_us'])} | "
            f"{added[0]} | {added[1]} | {added[2]} | {fmt_us(r['cpu_us_per_call'])} | {r['errors']} |"
        )
    return lines


def concurrent_table(run: Run) -> list[str]:
    s = run.settings
    base = run.concurrent.get("openai_sdk", {})
    lines = [
        f"### Concurrent: {s.concurrency} async calls in flight ({s.concurrent_calls:,} calls after "
        f"{s.concurrent_warmup:,} warm-up, one event loop)",
        "",
        "| contender | calls/s | vs SDK | p50 | p99 | CPU / call | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CONTENDERS:
        r = run.concurrent.get(c.key, {})
        reason = row_or_reason(r)
        if reason:
            lines.append(reason_row(c.async_label, reason, 7))
            continue
        ratio = f"{r['calls_per_s'] / base['calls_per_s']:.2f}x" if "calls_per_s" in base else "-"
        errors = str(r["errors"]) + (f" ({'; '.join(r['error_samples'])})" if r["errors"] else "")
        lines.append(
            f"| {c.async_label} | {r['calls_per_s']:,.0f} | {ratio} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} | "
            f"{fmt_us(r['cpu_us_per_call'])} | {errors} |"
        )
    return lines


def imports_table(run: Run) -> list[str]:
    lines = [
        f"### Import (fresh interpreter, median of {run.settings.import_repeats}, minus a bare interpreter)",
        "",
        "| module | import time | (in-process timer) | RSS added |",
        "|---|---|---|---|",
    ]
    for module, _ in IMPORTS:
        r = run.imports.get(module, {})
        reason = row_or_reason(r)
        if reason:
            lines.append(reason_row(f"`import {module}`", reason, 4))
            continue
        lines.append(
            f"| `import {module}` | {r['time_ms']:,.0f} ms | {r['time_in_process_ms']:,.0f} ms | {r['rss_mb']:,.1f} MB |"
        )
    return lines


def ceiling_lines(run: Run) -> list[str]:
    lines = ["### The mock's own figures (`ferrogate bench`, Rust client, same machine)", "",
             "| in flight | calls/s | p50 | p99 |", "|---|---|---|---|"]
    for c, r in run.mock_ceiling.items():
        if "failed" in r:
            lines.append(reason_row(c, f"FAILED: {r['failed']}", 4))
        else:
            lines.append(f"| {c} | {r['calls_per_s']:,.0f} | {fmt_us(r['p50_us'])} | {fmt_us(r['p99_us'])} |")
    return lines


def targets_lines(run: Run) -> list[str]:
    lines = ["### DESIGN targets", "", "| target | value | goal | verdict |", "|---|---|---|---|"]
    for t in run.targets:
        lines.append(f"| {t['what']} | {t['value']:+,.1f} {t['unit']} | {t['target']} | {t['verdict']} |")
    return lines


def machine_lines(run: Run) -> list[str]:
    m = run.machine
    main = m.get("main_venv", {})
    lines = [
        "### Machine",
        "",
        f"- {m.get('nproc')} CPUs ({m.get('cpu')}), Linux {m.get('kernel')}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_start', ()))}, at end "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_end', ()))}",
        f"- .venv: Python {main.get('python')}, "
        + ", ".join(f"{k} {v}" for k, v in main.get("packages", {}).items() if v),
    ]
    if "litellm_venv" in m:
        lv = m["litellm_venv"]
        lines.append(f"- LiteLLM venv: Python {lv.get('python')}, "
                     + ", ".join(f"{k} {v}" for k, v in lv.get("packages", {}).items() if v))
    start, end = m.get("compilers_running_start", []), m.get("compilers_running_end", [])
    if start or end:
        lines.append(f"- compilers running during the run (figures are noisier): at start {start or 'none'}, "
                     f"at end {end or 'none'}")
    return lines


def render(run: Run) -> str:
    s = run.settings
    parts = [
        "## In-process: ferrogate vs the openai SDK (direct) vs LiteLLM" + (" (QUICK smoke run)" if s.quick else ""),
        "",
        "Zero-latency `ferrogate mock-upstream` on 127.0.0.1; each measurement in a fresh process. The "
        "contenders, the event loop and the mock share this 2-core machine, so absolute figures are "
        "only comparable within this run. `ferrogate.completion` runs with its default config "
        "(metrics on, SQLite request log store on).",
        "",
        *sequential_table(run), "",
        *concurrent_table(run), "",
        *imports_table(run), "",
        *ceiling_lines(run), "",
        *targets_lines(run), "",
        *machine_lines(run),
    ]
    if run.notes:
        parts += ["", "### Notes", "", *(f"- {n}" for n in run.notes)]
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000, help="sequential calls measured per contender")
    ap.add_argument("--warmup", type=int, default=200, help="sequential warm-up calls")
    ap.add_argument("--concurrency", type=int, default=200, help="async calls in flight")
    ap.add_argument("--concurrent-calls", type=int, default=10000, help="async calls measured per contender")
    ap.add_argument("--import-repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smoke run: few calls")
    ap.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    ap.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results", help="directory for inprocess.{json,md}")
    # Worker mode (internal).
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    ap.add_argument("--contender", help=argparse.SUPPRESS)
    ap.add_argument("--api-base", help=argparse.SUPPRESS)
    return ap.parse_args()


def settings_from(args: argparse.Namespace) -> Settings:
    if args.quick:
        return Settings(calls=200, warmup=50, concurrency=args.concurrency, concurrent_calls=1000,
                        concurrent_warmup=200, import_repeats=3, ceiling_seconds=1, quick=True)
    return Settings(calls=args.calls, warmup=args.warmup, concurrency=args.concurrency,
                    concurrent_calls=args.concurrent_calls,
                    concurrent_warmup=min(2000, max(args.concurrency, args.concurrent_calls // 10)),
                    import_repeats=args.import_repeats, ceiling_seconds=3, quick=False)


def main() -> None:
    args = parse_args()
    if args.worker:
        worker_main(args)
        return
    settings = settings_from(args)
    run = Run(settings)
    ferrogate_bin = Path(sys.executable).parent / "ferrogate"

    if args.no_litellm:
        litellm_python, note = None, "LiteLLM skipped (--no-litellm)"
    else:
        litellm_python, note = ensure_litellm(args.litellm_venv.resolve())
    print(f"[inprocess] {note}", flush=True)
    if litellm_python is None:
        run.notes.append(note)
    interp = Interpreters(main=sys.executable, litellm=litellm_python, litellm_note=note)

    with tempfile.TemporaryDirectory(prefix="ferrogate-inprocess-") as tmp:
        work = Path(tmp)
        run.machine = machine_info(interp, work)
        print("[inprocess] import time and RSS...", flush=True)
        run.imports = measure_imports(interp, settings.import_repeats, work)
        with MockUpstream(ferrogate_bin) as mock:
            print(f"[inprocess] mock upstream on {mock.url}; its own ceiling...", flush=True)
            run.mock_ceiling = measure_mock_ceiling(ferrogate_bin, mock.url, settings.concurrency,
                                                    settings.ceiling_seconds, work)
            run_contenders(run, interp, mock.url, work)
    run.machine["loadavg_end"] = os.getloadavg()
    run.machine["compilers_running_end"] = busy_compilers()
    if run.machine["compilers_running_start"] or run.machine["compilers_running_end"]:
        run.notes.append(
            "A Rust build was running on this 2-core machine during the run: every figure is inflated and "
            "noisy (Python-heavy contenders most); compare rows with each other, not with other runs."
        )
    check_targets(run)

    report = render(run)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inprocess.json").write_text(json.dumps(asdict(run), indent=2))
    (args.out / "inprocess.md").write_text(report)
    print()
    print(report)


if __name__ == "__main__":
    main()
