#!/usr/bin/env bash
# Benchmark of the three services, run locally over the PostgreSQL and
# RabbitMQ on 127.0.0.1 (scripts/ci/services.sh starts them). Prints figures
# and asserts no time:
#   - GET /api/movies through the gateway (100 movies) with wrk: req/s,
#     p50/p99 latency, non-2xx answers;
#   - POST /api/billing end to end, from the POST to the row committed:
#     orders/s, and whether any confirmed order is missing;
#   - each service's resident memory, idle and at its peak under load;
#   - the CPU of each service and of the PostgreSQL backends serving them,
#     idle and under each load: millicores (1000 = one core busy) and CPU
#     time per request (what the manifests' CPU requests are sized from).
# With --callgrind, the services run under valgrind instead and it prints the
# instructions each one executes per GET and per order, over a fixed number of
# requests on one connection: counts that repeat from run to run on a busy
# machine, where timings do not (compare two builds with it).
# Settings: DURATION (seconds per load, 15), CONNECTIONS (64), REQUESTS (per
# load with --callgrind, 300), BENCH_BIN (the services' binaries: default a
# fresh release build).
set -euo pipefail

callgrind=
case ${1:-} in
  --callgrind) callgrind=1 ;;
  "") ;;
  *) echo "usage: $0 [--callgrind]" >&2 && exit 2 ;;
esac
duration=${DURATION:-15}
connections=${CONNECTIONS:-64}
requests=${REQUESTS:-300}
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

if [ -n "$callgrind" ] && ! command -v valgrind >/dev/null; then
  say "installing valgrind"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

if [ -n "${BENCH_BIN:-}" ]; then
  bin=$BENCH_BIN
else
  say "release build"
  cargo build --release --locked -q -p inventory-app -p billing-app -p api-gateway
  bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi

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

# Under callgrind nothing is counted until the load starts (callgrind_control -i on).
runner=()
[ -n "$callgrind" ] && runner=(valgrind -q --tool=callgrind --instr-atstart=no)
declare -A pid_of
for app in inventory-app billing-app api-gateway; do
  "${runner[@]}" ${runner[@]:+"--callgrind-out-file=$scratch/$app.callgrind"} "$bin/$app" >"$scratch/$app.log" 2>&1 &
  pids+=($!)
  pid_of[$app]=$!
done
for port in $inventory_port $billing_port $gateway_port; do
  for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
  done
done
sleep 2

add_movies() {
  for i in $(seq 100); do
    curl -fs -o /dev/null -H 'content-type: application/json' \
      -d "{\"title\": \"Movie $i\", \"description\": \"Benchmark movie number $i\"}" "$gateway/api/movies"
  done
}
rows() { psql_admin -d "${run}_orders" -c 'SELECT count(*) FROM orders'; }
# wait_for_rows N: until the orders table holds N rows (60 s at most)
wait_for_rows() {
  for _ in $(seq 600); do
    (($(rows) >= $1)) && return
    sleep 0.1
  done
}

if [ -n "$callgrind" ]; then
  # sequential COUNT METHOD PATH [BODY]: COUNT requests on one kept-alive connection, each answered 200
  sequential() {
    python3 - "$gateway_port" "$@" <<'PY'
import http.client, sys
port, count, method, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = sys.argv[5] if len(sys.argv) > 5 else None
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request(method, path, body, {"content-type": "application/json"} if body else {})
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 200, (method, path, answer.status)
PY
  }
  # count_from_here ... count_report: the instructions of each service in
  # between, per request (each dump holds what ran since the previous one)
  dumps=0
  count_from_here() {
    for app in inventory-app billing-app api-gateway; do callgrind_control -i on "${pid_of[$app]}" >/dev/null 2>&1; done
  }
  count_report() {
    dumps=$((dumps + 1))
    for app in inventory-app billing-app api-gateway; do
      callgrind_control -d "${pid_of[$app]}" >/dev/null 2>&1
      callgrind_control -i off "${pid_of[$app]}" >/dev/null 2>&1
      awk -v app="$app" -v n="$requests" '/^(summary|totals):/ { ir = $2 } END {
        printf "  %-14s %9.0f instructions per request\n", app, ir / n }' "$scratch/$app.callgrind.$dumps"
    done
  }
  add_movies
  sequential 50 GET /api/movies
  say "callgrind: GET /api/movies (100 movies) through the gateway, $requests requests"
  count_from_here
  sequential "$requests" GET /api/movies
  count_report
  order='{"user_id": 1, "number_of_items": "2", "total_amount": 19.99}'
  sequential 50 POST /api/billing "$order"
  wait_for_rows 50
  say "callgrind: POST /api/billing to the row committed, $requests orders"
  count_from_here
  sequential "$requests" POST /api/billing "$order"
  wait_for_rows $((50 + requests))
  count_report
  exit 0
fi

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
# The PostgreSQL backends serving this run's databases: their CPU is the
# services' too (inventory-app leaves the JSON encoding of its list to them).
backends() {
  psql_admin -d postgres -c "SELECT pid FROM pg_stat_activity WHERE datname LIKE '${run}_%'"
}
declare -A cpu_at
cpu_mark() {
  local pid
  for app in inventory-app billing-app api-gateway; do cpu_at[$app]=$(cpu_ms "${pid_of[$app]}"); done
  for pid in $(backends); do cpu_at[pg$pid]=$(cpu_ms "$pid"); done
  cpu_since=$(date +%s.%N)
}
# cpu_report [REQUESTS]: millicores since cpu_mark (and ms per request) of each
# service, and of the backends (one that connected since counts from zero)
cpu_report() {
  local now app pid
  now=$(date +%s.%N)
  declare -A used_by
  for app in inventory-app billing-app api-gateway; do
    used_by[$app]=$(awk -v a="${cpu_at[$app]}" -v b="$(cpu_ms "${pid_of[$app]}")" 'BEGIN { print b - a }')
  done
  used_by[postgres]=0
  for pid in $(backends); do
    used_by[postgres]=$(awk -v sum="${used_by[postgres]}" -v a="${cpu_at[pg$pid]:-0}" -v b="$(cpu_ms "$pid" 2>/dev/null || echo 0)" \
      'BEGIN { print sum + b - a }')
  done
  for app in inventory-app billing-app api-gateway postgres; do
    awk -v app="$app" -v used="${used_by[$app]}" -v s="$cpu_since" -v e="$now" -v n="${1:-0}" 'BEGIN {
      printf "  %-14s %5.0f millicores", app, used / (e - s)
      if (n > 0) printf ", %.3f ms CPU per request", used / n
      printf "\n" }'
  done
}
cpu_mark
sleep 10
say "CPU, idle (10 s)"
cpu_report

add_movies

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
# Requests cut off when wrk stops may still be queued and stored: rows can
# exceed the confirmed count, never fall short of it.
wait_for_rows "$confirmed"
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
