#!/usr/bin/env bash
# Benchmark of the three services, run locally over the PostgreSQL and
# RabbitMQ on 127.0.0.1 (scripts/ci/services.sh starts them). Prints figures
# and asserts no time:
#   - GET /api/movies through the gateway (100 movies) with wrk: req/s,
#     p50/p99 latency, non-2xx answers;
#   - POST /api/billing end to end, from the POST to the row committed:
#     orders/s, and whether any confirmed order is missing;
#   - each service's resident memory, idle and at its peak under load;
#   - each service's CPU, idle and under each load: millicores (1000 = one
#     core busy) and CPU time per request (what the manifests' CPU requests
#     are sized from).
# Settings: DURATION (seconds per load, 15), CONNECTIONS (64).
set -euo pipefail

duration=${DURATION:-15}
connections=${CONNECTIONS:-64}
run=bench_$$
inventory_port=18080 billing_port=18081 gateway_port=13000
gateway=http://127.0.0.1:$gateway_port

say() { echo "bench: $*"; }
psql_admin() { psql -h 127.0.0.1 -U postgres -qAt "$@"; }

for port in 5432 5672; do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
    say "nothing answers on 127.0.0.1:$port: start PostgreSQL and RabbitMQ first (scripts/ci/services.sh)" >&2
    exit 1
  }
done
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

say "release build"
cargo build --release --locked -q -p inventory-app -p billing-app -p api-gateway
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release

scratch=$(mktemp -d)
pids=()
cleanup() {
  ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null
  psql_admin -d postgres -c "DROP DATABASE IF EXISTS ${run}_movies WITH (FORCE)" \
    -c "DROP DATABASE IF EXISTS ${run}_orders WITH (FORCE)" || true
  rabbitmqctl -q delete_queue "${run}_queue" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT

psql_admin -d postgres -c "CREATE DATABASE ${run}_movies" -c "CREATE DATABASE ${run}_orders"
export INVENTORY_DB_HOST=127.0.0.1 INVENTORY_DB_USER=postgres INVENTORY_DB_PASSWORD=unused INVENTORY_DB_NAME=${run}_movies
export BILLING_DB_HOST=127.0.0.1 BILLING_DB_USER=postgres BILLING_DB_PASSWORD=unused BILLING_DB_NAME=${run}_orders
export RABBITMQ_HOST=127.0.0.1 RABBITMQ_USER=guest RABBITMQ_PASSWORD=guest RABBITMQ_QUEUE=${run}_queue
export INVENTORY_APP_HOST=127.0.0.1 INVENTORY_APP_PORT=$inventory_port
export BILLING_APP_HOST=127.0.0.1 BILLING_APP_PORT=$billing_port APIGATEWAY_PORT=$gateway_port
export RUST_LOG=warn

declare -A pid_of
for app in inventory-app billing-app api-gateway; do
  "$bin/$app" >"$scratch/$app.log" 2>&1 &
  pids+=($!)
  pid_of[$app]=$!
done
for port in $inventory_port $billing_port $gateway_port; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done
sleep 2

# memory KIND: VmRSS (now) or VmHWM (peak) of each service, in MB
memory() {
  for app in inventory-app billing-app api-gateway; do
    awk -v app="$app" -v kind="$1:" '$1 == kind { printf "  %-14s %6.1f MB\n", app, $2 / 1024 }' "/proc/${pid_of[$app]}/status"
  done
}
idle=$(memory VmRSS)

# CPU time used so far by process PID, in ms (utime + stime of /proc/PID/stat).
clock_ticks=$(getconf CLK_TCK)
cpu_ms() { awk -v hz="$clock_ticks" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
declare -A cpu_at
cpu_mark() {
  for app in inventory-app billing-app api-gateway; do cpu_at[$app]=$(cpu_ms "${pid_of[$app]}"); done
  cpu_since=$(date +%s.%N)
}
# cpu_report [REQUESTS]: each service's millicores since cpu_mark (and ms per request)
cpu_report() {
  local now app used
  now=$(date +%s.%N)
  for app in inventory-app billing-app api-gateway; do
    used=$(awk -v a="${cpu_at[$app]}" -v b="$(cpu_ms "${pid_of[$app]}")" 'BEGIN { print b - a }')
    awk -v app="$app" -v used="$used" -v s="$cpu_since" -v e="$now" -v n="${1:-0}" 'BEGIN {
      printf "  %-14s %5.0f millicores", app, used / (e - s)
      if (n > 0) printf ", %.3f ms CPU per request", used / n
      printf "\n" }'
  done
}
cpu_mark
sleep 10
say "CPU, idle (10 s)"
cpu_report

for i in $(seq 100); do
  curl -fs -o /dev/null -H 'content-type: application/json' \
    -d "{\"title\": \"Movie $i\", \"description\": \"Benchmark movie number $i\"}" "$gateway/api/movies"
done

say "GET /api/movies (100 movies) through the gateway: $connections connections, ${duration}s"
cpu_mark
wrk -t2 -c"$connections" -d"${duration}s" --latency "$gateway/api/movies" >"$scratch/movies.txt"
cpu_report "$(awk '/requests in/ { print $1 }' "$scratch/movies.txt")"
awk '/Requests\/sec/ { print "  req/s        " $2 }
     $1 == "50%" { print "  p50 latency  " $2 }
     $1 == "99%" { print "  p99 latency  " $2 }
     /Non-2xx/ { non2xx = $NF } END { print "  non-2xx      " (non2xx ? non2xx : 0) }
     /Socket errors/ { print "  " $0 }' "$scratch/movies.txt"

cat >"$scratch/order.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/api/billing", nil,
    '{"user_id": ' .. counter .. ', "number_of_items": "2", "total_amount": 19.99}')
end
LUA
say "POST /api/billing to the row committed: $connections connections, ${duration}s"
start=$(date +%s.%N)
cpu_mark
wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$scratch/order.lua" "$gateway" >"$scratch/orders.txt"
requests=$(awk '/requests in/ { print $1 }' "$scratch/orders.txt")
cpu_report "$requests"
refused=$(awk '/Non-2xx/ { print $NF }' "$scratch/orders.txt")
confirmed=$((requests - ${refused:-0}))
rows() { psql_admin -d "${run}_orders" -c 'SELECT count(*) FROM orders'; }
# Requests cut off when wrk stops may still be queued and stored: rows can
# exceed the confirmed count, never fall short of it.
for _ in $(seq 600); do
  (($(rows) >= confirmed)) && break
  sleep 0.1
done
end=$(date +%s.%N)
stored=$(rows)
awk -v n="$confirmed" -v s="$start" -v e="$end" 'BEGIN { printf "  orders/s     %.0f (%d confirmed in %.1fs, POST to commit)\n", n / (e - s), n, e - s }'
awk '$1 == "50%" { print "  POST p50     " $2 } $1 == "99%" { print "  POST p99     " $2 }' "$scratch/orders.txt"
echo "  refused      ${refused:-0}"
echo "  stored       $stored rows; missing $((stored >= confirmed ? 0 : confirmed - stored))"

say "resident memory, idle"
echo "$idle"
say "resident memory, peak under load"
memory VmHWM
