#!/usr/bin/env bash
# `make demo`: start moto and `batchops dev` (unless already running), run the demo job
# through the API, print the report, and stop whatever this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST=127.0.0.1
PORT=${DEMO_EMULATOR_PORT:-5000}
API=${DEMO_API_ADDR:-127.0.0.1:9000}
RUN=.run
mkdir -p "$RUN"
export AWS_ENDPOINT_URL="http://$HOST:$PORT"
export BATCHOPS_API_URL="http://$API"

started_emulator=0
dev_pid=""
cleanup() {
  if [[ -n "$dev_pid" ]]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
  if [[ $started_emulator == 1 ]]; then EMULATOR_PORT=$PORT RUN=$RUN infra/emulator.sh stop; fi
}
trap cleanup EXIT

if ! curl -fsS -o /dev/null "http://$HOST:$PORT/moto-api/" 2>/dev/null; then
  EMULATOR_PORT=$PORT RUN=$RUN infra/emulator.sh start
  started_emulator=1
fi

if curl -fsS -o /dev/null "http://$API/jobs/none" 2>/dev/null || curl -s -o /dev/null -w '%{http_code}' "http://$API/jobs/none" | grep -q 404; then
  echo "using the batchops dev already running on $API"
else
  RUST_LOG=${RUST_LOG:-warn} target/debug/batchops dev --api-addr "$API" --stack batchops-demo >"$RUN/dev.log" 2>&1 &
  dev_pid=$!
  for _ in $(seq 1 200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$API/jobs/none" || true)
    [[ $code == 404 ]] && break
    if ! kill -0 "$dev_pid" 2>/dev/null; then echo "batchops dev exited; see $RUN/dev.log" >&2; cat "$RUN/dev.log" >&2; exit 1; fi
    sleep 0.1
  done
  echo "batchops dev up on $API (log: $RUN/dev.log)"
fi

target/debug/batchops demo
