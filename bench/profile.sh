#!/usr/bin/env bash
# Where does a variant's CPU go, and what holds the gateway's core? Starts the
# bench upstream and Vantage with bench/configs/VARIANT.yml (admin pprof
# switched on), drives it with wrk on loopback and saves a CPU profile of the
# gateway taken during the load, or with KIND=trace a Go execution trace,
# which bench/cmd/stalls then summarises (which goroutines held the core, in
# how long slices, and how long requests waited for it), or with KIND=perf a
# perf record of the gateway at 4999 Hz with call graphs (about 50 times
# pprof's samples, for a feature's share of the CPU to a tenth of a point).
#
#   bench/profile.sh VARIANT [seconds] [out]
#   go tool pprof -top -nodecount 40 out.pprof
#   go run ./bench/cmd/attribute -requests N out.pprof   # CPU per package
#   KIND=trace CONNS=5 bench/profile.sh observed 3        # then go tool trace observed.trace
#   KIND=perf THINK=2 WARMUP=25 bench/profile.sh observed 30   # then perf report -i observed.perf --children
#
# CONNS sets wrk's connections (default 16); THINK=MS makes each connection
# wait MS milliseconds after a response (a wrk delay(), as the harness's
# -think), so that the gateway serves a fixed rate and idles between
# requests instead of being saturated; WARMUP=S loads the gateway for S
# seconds before the profile starts (a store or history that fills first). ESTATE=N renders an estate
# variant (bench/configs/estate*.yml) with N routes through bench/cmd/estate
# and spreads wrk's requests over them with its script, as the harness does. VANTAGE=path runs that binary
# instead of building ./cmd/vantage (e.g. an older build). The gateway is
# pinned to CPU 1 and wrk and the upstream to CPU 0, as in the harness
# (PIN=0 turns pinning off). Everything is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: bench/profile.sh VARIANT [seconds] [out]}
secs=${2:-10}
kind=${KIND:-profile}
conns=${CONNS:-16}
case "$kind" in
profile) out=${3:-$variant.pprof} ;;
trace) out=${3:-$variant.trace} ;;
perf) out=${3:-$variant.perf}; command -v perf >/dev/null || { echo "KIND=perf needs perf (apt-get install linux-perf)"; exit 1; } ;;
*) echo "KIND must be profile, trace or perf"; exit 2 ;;
esac
[ -f "bench/configs/$variant.yml" ] || { echo "no bench/configs/$variant.yml"; exit 2; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)"; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

exe=${VANTAGE:-}
if [ -z "$exe" ]; then go build -o "$tmp/vantage" ./cmd/vantage; exe=$tmp/vantage; fi
go build -o "$tmp/upstream" ./bench/cmd/upstream
pick() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
up=127.0.0.1:$(pick); gw=127.0.0.1:$(pick); admin=127.0.0.1:$(pick)
wrkargs=()
if [ -n "${ESTATE:-}" ]; then
  go run ./bench/cmd/estate -n "$ESTATE" -template "bench/configs/$variant.yml" -listen "$gw" -admin "$admin" \
    -upstream "$up" -logfile "$tmp/access.log" -config "$tmp/estate.yml" -script "$tmp/estate.lua"
  grep -v '^  pprof:' "$tmp/estate.yml" | sed -e '/^admin:/a\  pprof: true' > "$tmp/vantage.yml"
  wrkargs=(-s "$tmp/estate.lua")
else
  sed -e "s/{{LISTEN}}/$gw/; s/{{ADMIN}}/$admin/; s/{{UPSTREAM}}/$up/g; s|{{LOGFILE}}|$tmp/access.log|" \
      -e '/^admin:/a\  pprof: true' "bench/configs/$variant.yml" > "$tmp/vantage.yml"
fi

if [ -n "${THINK:-}" ]; then
  [[ "$THINK" =~ ^[1-9][0-9]*$ ]] || { echo "THINK must be a whole number of milliseconds"; exit 2; }
  if [ -n "${ESTATE:-}" ]; then script=$tmp/estate.lua; else script=$tmp/think.lua; : > "$script"; wrkargs=(-s "$script"); fi
  printf '\nfunction delay() return %d end\n' "$THINK" >> "$script"
fi

pin0=""; pin1=""
if [ "${PIN:-1}" != 0 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
$pin0 "$tmp/upstream" -addr "$up" & pids+=($!)
$pin1 "$exe" run --config "$tmp/vantage.yml" --watch=false > "$tmp/vantage.log" 2>&1 & gwpid=$!; pids+=($gwpid)
tries=50; [ -n "${ESTATE:-}" ] && tries=1800
for _ in $(seq "$tries"); do curl -sf "http://$admin/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://$admin/readyz" >/dev/null || { echo "vantage did not become ready:"; cat "$tmp/vantage.log"; exit 1; }

warm=${WARMUP:-0}
$pin0 wrk -t1 -c"$conns" -d"$((secs + warm + 3))s" --latency "${wrkargs[@]}" "http://$gw/" > "$tmp/wrk.txt" & wrkpid=$!
pids+=($wrkpid)
sleep $((warm + 1))
if [ "$kind" = trace ]; then
  curl -sf -o "$out" "http://$admin/debug/pprof/trace?seconds=$secs"
elif [ "$kind" = perf ]; then
  perf record -F 4999 -g -p "$gwpid" -o "$out" -- sleep "$secs" 2>&1 | tail -1
else
  curl -sf -o "$out" "http://$admin/debug/pprof/profile?seconds=$secs"
fi
wait "$wrkpid" || true
grep -E 'Requests/sec|  50%|  99%' "$tmp/wrk.txt"
if [ "$kind" = trace ]; then
  echo "trace: $out (go tool trace $out)"
  go run ./bench/cmd/stalls "$out"
  exit 0
fi
if [ "$kind" = perf ]; then
  echo "perf: $out (perf report -i $out --children --sort sym)"
  exit 0
fi
rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
reqs=$(awk -v r="$rps" -v s="$secs" 'BEGIN {printf "%d", r * s}')
echo "profile: $out (go tool pprof -top $out)"
echo "requests while profiling: about $reqs (go run ./bench/cmd/attribute -requests $reqs $out)"
