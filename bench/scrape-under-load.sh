#!/usr/bin/env bash
# Does a Prometheus scrape of a large /metrics page raise request latency?
#
# Starts the bench upstream and Vantage with metrics on and 140 routes, sends
# one request to every route (so /metrics holds about 10,000 series), then
# runs the same wrk load twice: once alone, once while /metrics is scraped
# every INTERVAL seconds (1 by default; Prometheus scrapes every 15-60 s, so
# this is a harsh case; 0 scrapes back to back). Prints wrk's latency lines
# for both and the series count. Everything runs on 127.0.0.1 and is stopped
# by PID. Takes about a minute.
#
#   bench/scrape-under-load.sh [duration-seconds] [interval-seconds]
#
# PIN=0 lets the gateway use both cores instead of pinning it to one.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-10}
interval=${2:-1}
routes=140
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
go build -o "$tmp/vantage" ./cmd/vantage
go build -o "$tmp/upstream" ./bench/cmd/upstream

pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
up=127.0.0.1:$(pick); gw=127.0.0.1:$(pick); admin=127.0.0.1:$(pick)

{
  echo "listeners: [{name: bench, address: \"$gw\"}]"
  echo "admin: {address: \"$admin\"}"
  echo "access_log: {enabled: false}"
  echo "tracing: {enabled: false}"
  echo "metrics: {enabled: true}"
  echo "services: [{name: upstream, upstreams: [{url: \"http://$up\"}]}]"
  echo "routes:"
  for i in $(seq 0 $((routes - 1))); do
    echo "  - {name: r$i, match: {path: /r$i}, service: upstream}"
  done
} > "$tmp/vantage.yml"

pin0=""; pin1=""
if [ "${PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
$pin0 "$tmp/upstream" -addr "$up" & pids+=($!)
$pin1 "$tmp/vantage" run --config "$tmp/vantage.yml" --watch=false > "$tmp/vantage.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf "http://$admin/readyz" >/dev/null && break; sleep 0.1; done

for i in $(seq 0 $((routes - 1))); do curl -s -o /dev/null "http://$gw/r$i"; done
series=$(curl -s "http://$admin/metrics" | grep -vc '^#')
echo "series on /metrics: $series"

run() { $pin0 wrk -t1 -c16 -d"${dur}s" --latency "http://$gw/r0" | grep -E 'Requests/sec|^ +(50|99)%'; }
echo "== load alone"
run
echo "== load while /metrics is scraped every ${interval}s"
( end=$((SECONDS + dur + 1)); n=0; while [ $SECONDS -lt $end ]; do curl -s -o /dev/null "http://$admin/metrics"; n=$((n + 1)); sleep "$interval"; done; echo "scrapes: $n" > "$tmp/scrapes" ) &
scraper=$!
run
wait "$scraper"
cat "$tmp/scrapes"
