#!/bin/bash
# A/B of the no-op call's server CPU between two checkouts of Stepgate (each with its dependencies
# installed), for differences smaller than the noise between two bench runs: both replicas serve at
# once on core 0, h2load on core 1 alternates between them in short windows, and each window's
# server CPU per call is read from /proc.
#   bench/scripts/ab-noop.sh DIR_A DIR_B [rounds, default 8] [seconds per window, default 3]
# Needs PostgreSQL at $DATABASE_ADMIN_URL (default postgresql://postgres@127.0.0.1:5432/postgres),
# Redis at $REDIS_URL (default redis://127.0.0.1:6379) and h2load (Debian nghttp2-client).
set -euo pipefail
a=$(realpath "$1") b=$(realpath "$2") rounds=${3:-8} window=${4:-3}
admin=${DATABASE_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
redis=${REDIS_URL:-redis://127.0.0.1:6379}
db="stepgate_ab_$$"
key="k1:$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('base64'))")"
psql "$admin" -qc "create database $db"
database="${admin%/*}/$db"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin" -qc "drop database if exists $db with (force)"
  redis-cli -u "$redis" --scan --pattern "stepgate-ab-$$-*" | xargs -r redis-cli -u "$redis" del >/dev/null
}
trap cleanup EXIT
(cd "$a" && DATABASE_URL=$database node services/stepgate/src/migrate.ts >/dev/null)
port=50110
declare -A pid_of port_of
for side in A B; do
  dir=$a; [ "$side" = B ] && dir=$b
  port=$((port + 1))
  (cd "$dir" && exec env -i PATH="$PATH" MALLOC_ARENA_MAX=2 DATABASE_URL="$database" REDIS_URL="$redis" \
    REDIS_PREFIX="stepgate-ab-$$-$side:" STEPGATE_POLICY_FILE=services/stepgate/policy/example.yaml \
    STEPGATE_ENCRYPTION_KEYS="$key" STEPGATE_INSECURE_DEV=1 STEPGATE_BENCH=1 STEPGATE_HOST=127.0.0.1 \
    STEPGATE_PORT=$port STEPGATE_LOG_LEVEL=warn STEPGATE_REPLICA_ID="ab-$side" \
    taskset -c 0 node --max-semi-space-size=4 --heap-growing-percent=50 services/stepgate/src/main.ts) \
    >"/tmp/stepgate-ab-$$-$side.log" 2>&1 &
  pids+=($!)
  pid_of[$side]=$!
  port_of[$side]=$port
done
sleep 6
# NoopRequest{payload: 32 bytes}, gRPC-framed.
body=$(mktemp)
printf '\x00\x00\x00\x00\x22\x0a\x20%s' "$(printf 'x%.0s' $(seq 32))" >"$body"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "round side calls server-us/call"
for round in $(seq "$rounds"); do
  for side in A B; do
    before=$(ticks "${pid_of[$side]}")
    calls=$(taskset -c 1 h2load -D "$window" -c 4 -m 32 -d "$body" -H 'content-type: application/grpc' \
      -H 'te: trailers' -H 'stepgate-caller: bench' \
      "http://127.0.0.1:${port_of[$side]}/stepgate.bench.v1.BenchService/Noop" | awk '/^requests:/ {print $8}')
    after=$(ticks "${pid_of[$side]}")
    hz=$(getconf CLK_TCK)
    echo "$round $side $calls $(awk -v d=$((after - before)) -v n="$calls" -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}')"
  done
done
rm -f "$body"
