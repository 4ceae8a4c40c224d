#!/usr/bin/env bash
# What an estate of N routes costs in memory and in /metrics, with every
# signal on (bench/configs/estatefull.yml: metrics, tracing at 1% into a
# 1MiB trace store, the access log to a file, the history).
#
# For each N: starts the bench upstream and Vantage on 127.0.0.1, waits for
# readiness, and prints
#   - RSS idle (VmRSS 5 s after ready, before any request);
#   - /metrics lines (all, and vantage_* samples), bytes and scrape time,
#     idle and after the load;
#   - RSS under load: the peak VmRSS seen while wrk -c20 sends DURATION
#     seconds of requests cycling through the N routes in order (so that
#     every route is used once the gateway has served N requests, whatever
#     the machine's speed), and VmHWM at the end; "active" is the number of
#     routes with a vantage_requests_total series after the load;
#   - an in-use heap profile after the load (admin pprof, after a forced
#     collection so that it is current), saved
#     beside the other outputs in OUT.
# HISTORY=false turns the in-process history off, to count its memory apart.
# Everything is stopped by PID. Takes about (DURATION + 20) s per N.
#
#   bench/estate-memory.sh [duration-seconds] [N ...]     (default: 15 10 10000)
#
# OUT=dir keeps the configs, logs and profiles (a temporary directory
# otherwise). VANTAGE=path runs that gateway binary instead of building
# this tree's (to compare two builds). EXTRA='yaml' appends top-level
# config (for instance "runtime: {memory_limit: 100MiB}", or
# "runtime: {auto_memory_limit: false}" for the collector without the
# automatic memory limit). PIN=0 lets the
# gateway use both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-15}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 10000)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
if [ -n "${VANTAGE:-}" ]; then cp "$VANTAGE" "$out/vantage"; else go build -o "$out/vantage" ./cmd/vantage; fi
go build -o "$out/upstream" ./bench/cmd/upstream
go build -o "$out/estate" ./bench/cmd/estate

pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
scrape() { # prints: lines vantage-samples bytes seconds
  local t0 t1
  t0=$(date +%s.%N)
  curl -s "http://$admin/metrics" > "$out/metrics.txt"
  t1=$(date +%s.%N)
  echo "$(wc -l < "$out/metrics.txt") $(grep -c '^vantage_' "$out/metrics.txt" || true) $(wc -c < "$out/metrics.txt") $(echo "$t1 - $t0" | bc)"
}

pin0=""; pin1=""
if [ "${PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
up=127.0.0.1:$(pick)
$pin0 "$out/upstream" -addr "$up" & pids+=($!)

printf '%-7s %9s %13s %11s %9s %7s %22s %15s\n' routes idle_MB metrics_idle load_peak_MB hwm_MB active metrics_after scrape_s
for n in "${sizes[@]}"; do
  gw=127.0.0.1:$(pick); admin=127.0.0.1:$(pick)
  "$out/estate" -n "$n" -template bench/configs/estatefull.yml -listen "$gw" -admin "$admin" -upstream "$up" \
    -logfile "$out/access-$n.log" -config "$out/vantage-$n.yml" -script "$out/estate-$n.lua"
  if [ "${HISTORY:-true}" = false ]; then printf 'history:\n  enabled: false\n' >> "$out/vantage-$n.yml"; fi
  if [ -n "${EXTRA:-}" ]; then printf '%s\n' "$EXTRA" >> "$out/vantage-$n.yml"; fi
  $pin1 "$out/vantage" run --config "$out/vantage-$n.yml" --watch=false > "$out/vantage-$n.log" 2>&1 & gwpid=$!; pids+=($gwpid)
  for _ in $(seq 600); do curl -sf "http://$admin/readyz" >/dev/null && break; sleep 0.1; done
  sleep 5
  idle=$(rss $gwpid)
  read -r l0 v0 b0 s0 < <(scrape)
  cat > "$out/cycle-$n.lua" <<LUA
local n, i = $n, 0
request = function()
  i = (i + 1) % n
  return wrk.format(nil, "/svc" .. i .. "/items/" .. (i * 7919 % 1000000))
end
LUA
  $pin0 wrk -t1 -c20 -d"${dur}s" -s "$out/cycle-$n.lua" "http://$gw/" > "$out/wrk-$n.txt" & wrkpid=$!
  peak=0
  while kill -0 $wrkpid 2>/dev/null; do r=$(rss $gwpid); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.5; done
  wait $wrkpid || true
  read -r l1 v1 b1 s1 < <(scrape)
  curl -s "http://$admin/debug/pprof/heap?gc=1" > "$out/heap-$n.pb.gz"
  active=$(grep '^vantage_requests_total{' "$out/metrics.txt" | grep -o 'route="[^"]*"' | sort -u | wc -l)
  printf '%-7s %9s %13s %11s %9s %7s %22s %15s\n' "$n" "$idle" "$v0/${l0}L" "$peak" "$(hwm $gwpid)" "$active" "$v1/${l1}L/$((b1 / 1024))KiB" "$s0/$s1"
  grep -E 'Requests/sec' "$out/wrk-$n.txt" | sed "s/^/  $n: /"
  kill $gwpid; t=0; while kill -0 $gwpid 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
  kill -0 $gwpid 2>/dev/null && { echo "  $n: still running 10 s after SIGTERM; killing"; kill -9 $gwpid; }
  wait $gwpid 2>/dev/null || true
done
echo "outputs in $out (go tool pprof -top -sample_index=inuse_space $out/vantage $out/heap-N.pb.gz)"
