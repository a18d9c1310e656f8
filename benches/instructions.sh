#!/usr/bin/env bash
# Instructions per request: `ferrogate serve` (one worker thread) runs under valgrind's callgrind
# while oha sends REQUESTS chat completions one at a time, plain and streamed, through it to the
# zero-latency mock upstream. Counts user-space instructions only (the kernel's share of sockets
# and wake-ups is not in them), and the count is the same from run to run whatever else the
# machine is doing: the measure to compare two builds with on a shared, noisy machine, where
# wall-clock figures move by more than a small change does.
#
# Usage: benches/instructions.sh [BINARY...]   (default: the `dist` build, target/dist/ferrogate)
# With several binaries, each is measured in turn and compared with the first.
# One nginx `proxy_pass` hop (one worker) is measured the same way, as the baseline for what an
# HTTP proxy hop costs (NGINX=0 leaves it out; it is left out when nginx is not installed).
# REQUESTS (default 2000) requests are counted after 300 unmeasured ones.
# MESSAGE (default "Say hello in one short sentence.", plain text without quotes, backslashes or
# percent signs) is the user message, and MAX_TOKENS (default 16) the request's `max_tokens`: the
# mock answers "You said: <message>" cut to that many words, one chunk per word when streamed. A
# long message measures the per-byte cost of a request; with MAX_TOKENS above its word count, of
# the answer too.
# Writes bench-results/instructions.json; `callgrind_annotate` reads the profiles it keeps there.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-2000}
MESSAGE=${MESSAGE:-Say hello in one short sentence.}
MAX_TOKENS=${MAX_TOKENS:-16}
WARMUP=300
OUT=${OUT:-bench-results}
PORT_MOCK=${PORT_MOCK:-19501}; PORT_GW=${PORT_GW:-19500}
export PATH="$PATH:$HOME/.cargo/bin"
if [ $# -eq 0 ]; then set -- "${CARGO_TARGET_DIR:-target}/dist/ferrogate"; fi
for tool in valgrind callgrind_control callgrind_annotate oha curl; do
    command -v "$tool" >/dev/null || { echo "instructions: $tool is missing (make bench-instructions installs it)" >&2; exit 1; }
done
for bin in "$@"; do [ -x "$bin" ] || { echo "instructions: no executable at $bin" >&2; exit 1; }; done
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_up() { # wait_up PORT [PATH]: any HTTP answer on PATH (default /health) will do
    for _ in $(seq 600); do curl -s -o /dev/null "http://127.0.0.1:$1${2:-/health}" && return 0; sleep 0.1; done
    echo "instructions: port $1 did not come up" >&2; exit 1
}

"$1" mock-upstream --port "$PORT_MOCK" 2>/dev/null & pids+=($!); disown
wait_up "$PORT_MOCK"
cat > "$work/config.json" <<JSON
{"providers": {"openai": {"base_url": "http://127.0.0.1:$PORT_MOCK/v1", "api_key": "sk-bench"}},
 "logging": {"level": "warn"}, "telemetry": {"log_store": {"enabled": false}}}
JSON

body() { printf '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"%s"}],"max_tokens":%s,"stream":%s}' "$MESSAGE" "$MAX_TOKENS" "$1"; }
send() { # send N STREAM [PORT]
    local report
    report=$(oha --no-tui -m POST -T application/json -d "$(body "$2")" -n "$1" -c 1 \
        "http://127.0.0.1:${3:-$PORT_GW}/v1/chat/completions")
    grep -q "Success rate:.*100.00%" <<<"$report" \
        || { echo "instructions: requests through the gateway failed:" >&2; echo "$report" >&2; exit 1; }
}
# Instructions recorded since the last zeroing: dumps the profile and reads its total.
dump_total() { # dump_total PID NAME
    callgrind_control -d "$1" >/dev/null 2>&1
    local f; f=$(ls -t "$work"/callgrind.out.*.* 2>/dev/null | head -1)
    for _ in $(seq 50); do [ -n "$f" ] && break; sleep 0.1; f=$(ls -t "$work"/callgrind.out.*.* 2>/dev/null | head -1); done
    cp "$f" "$OUT/callgrind.$2"
    rm -f "$f"
    callgrind_annotate "$OUT/callgrind.$2" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}'
}

# measure NAME COMMAND...: runs COMMAND (a proxy listening on PORT_GW) under callgrind and sets
# `counts` to its instructions per request, plain and streamed, after the unmeasured warm-up. (Not
# called in a subshell: the exit trap must know the process to stop if a step fails.)
measure() {
    local name=$1 vg plain streamed; shift
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" "$@" >"$work/$name.log" 2>&1 &
    vg=$!; pids+=($vg)
    wait_up "$PORT_GW" /v1/models
    send "$WARMUP" false; send "$WARMUP" true
    callgrind_control -z "$vg" >/dev/null 2>&1
    send "$REQUESTS" false
    plain=$(dump_total "$vg" "$name.plain")
    callgrind_control -z "$vg" >/dev/null 2>&1
    send "$REQUESTS" true
    streamed=$(dump_total "$vg" "$name.stream")
    kill -9 "$vg" 2>/dev/null || true
    wait "$vg" 2>/dev/null || true
    counts="$((plain / REQUESTS)) $((streamed / REQUESTS))"
}

results=()
for bin in "$@"; do
    name=$(basename "$(dirname "$bin")")-$(basename "$bin")
    measure "$name" "$bin" serve --config "$work/config.json" --port "$PORT_GW" --threads 1
    results+=("$bin $counts")
done

# The baseline: the same requests through one nginx proxy_pass hop to the same mock (one worker,
# in the foreground, so callgrind follows the process that does the proxying).
nginx_row=""
if [ "${NGINX:-1}" != 0 ] && command -v nginx >/dev/null; then
    mkdir -p "$work/nginx/logs"
    cat > "$work/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    upstream mock { server 127.0.0.1:$PORT_MOCK; keepalive 64; }
    server {
        listen 127.0.0.1:$PORT_GW;
        location / {
            proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF
    measure nginx nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
    nginx_row="nginx $counts"
fi

python3 - "$OUT/instructions.json" "$REQUESTS" "$nginx_row" "${results[@]}" <<'PY'
import json, sys
out, requests, nginx = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [r.rsplit(" ", 2) for r in sys.argv[4:]]
base_plain, base_stream = int(rows[0][1]), int(rows[0][2])
ngx = tuple(int(x) for x in nginx.split()[1:]) if nginx else None
report = []
print(f"user-space instructions per request (callgrind, one worker thread, {requests} requests one at a time)")
print(f"{'binary':<48} {'chat':>10} {'ratio':>6} {'streamed':>10} {'ratio':>6}" + ("   x nginx (chat / streamed)" if ngx else ""))
for path, plain, stream in rows:
    plain, stream = int(plain), int(stream)
    row = {"binary": path, "chat": plain, "chat_streamed": stream,
           "ratio_chat": plain / base_plain, "ratio_streamed": stream / base_stream}
    vs = ""
    if ngx:
        row |= {"vs_nginx_chat": plain / ngx[0], "vs_nginx_streamed": stream / ngx[1]}
        vs = f"   {plain / ngx[0]:.1f}x / {stream / ngx[1]:.1f}x"
    report.append(row)
    print(f"{path:<48} {plain:>10,} {plain / base_plain:>6.3f} {stream:>10,} {stream / base_stream:>6.3f}{vs}")
if ngx:
    print(f"{'nginx proxy_pass (one hop, the baseline)':<48} {ngx[0]:>10,} {'':>6} {ngx[1]:>10,}")
json.dump({"requests": requests, "results": report,
           "nginx": {"chat": ngx[0], "chat_streamed": ngx[1]} if ngx else None}, open(out, "w"), indent=2)
PY
