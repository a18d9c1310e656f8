#!/usr/bin/env bash
# Failover benchmark: two deployments behind one model at a fixed rate; one is killed (SIGKILL)
# a third of the way in and restarted at two thirds. Reports errors, latency and how traffic
# shifted, second by second. Usage: benches/failover.sh [RATE] [DURATION_SECONDS]
# The load generator, the gateway and both mock upstreams share this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
DURATION=${2:-30}
FERROGATE=${FERROGATE:-.venv/bin/ferrogate}
OUT=${OUT:-bench-results}
PORT_A=${PORT_A:-19401}; PORT_B=${PORT_B:-19402}; PORT_GW=${PORT_GW:-19400}
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_up() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/health" >/dev/null && return 0; sleep 0.05; done; echo "port $1 did not come up" >&2; exit 1; }

"$FERROGATE" mock-upstream --port "$PORT_A" 2>/dev/null & pids+=($!)
"$FERROGATE" mock-upstream --port "$PORT_B" 2>/dev/null & pid_b=$!; pids+=($pid_b)
cat > "$work/config.yaml" <<YAML
providers:
  a: {api: openai, base_url: "http://127.0.0.1:$PORT_A/v1"}
  b: {api: openai, base_url: "http://127.0.0.1:$PORT_B/v1"}
models:
  ha:
    deployments: [{model: a/gpt-4o-mini}, {model: b/gpt-4o-mini}]
routing:
  circuit_breaker: {failures: 3, cooldown: 1s, max_cooldown: 4s}
  backoff: {initial: 5ms, max: 50ms}
logging: {level: warn}
YAML
"$FERROGATE" serve --config "$work/config.yaml" --port "$PORT_GW" 2>/dev/null & pids+=($!)
wait_up "$PORT_A"; wait_up "$PORT_B"; wait_up "$PORT_GW"

kill_at=$((DURATION / 3)); restart_at=$((2 * DURATION / 3))
(
  sleep "$kill_at"; kill -9 "$pid_b"; echo "[$(date +%T)] killed deployment b at ${kill_at}s" >&2
  sleep $((restart_at - kill_at))
  "$FERROGATE" mock-upstream --port "$PORT_B" 2>/dev/null & echo $! > "$work/b2.pid"
  echo "[$(date +%T)] restarted deployment b at ${restart_at}s" >&2
) &
chaos=$!

"$FERROGATE" bench --url "http://127.0.0.1:$PORT_GW" --model ha --rate "$RATE" --duration "${DURATION}s" \
  --track-header x-ferrogate-deployment --json "$OUT/failover.json" --quiet | tee "$OUT/failover.txt"
wait "$chaos" || true
[ -f "$work/b2.pid" ] && pids+=($(cat "$work/b2.pid"))
echo "deployment b killed at ${kill_at}s, restarted at ${restart_at}s; report in $OUT/failover.{txt,json}" | tee -a "$OUT/failover.txt"
