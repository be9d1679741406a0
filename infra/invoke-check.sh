#!/usr/bin/env bash
# Invokes each of the four Lambda functions the way AWS does -- a Lambda event through the
# Lambda runtime API -- under `cargo lambda watch`, against a private moto emulator, and checks
# the answers. It starts moto and `cargo lambda watch` on free loopback ports, creates the stack's
# resources on the emulator (infra/local.py stack), seeds objects and a manifest, then runs a
# copy job through all four functions with the sample events of infra/events/ (ids, bucket and
# key substituted where a real one is needed), and stops everything it started, however it ends.
#
# Usage: infra/invoke-check.sh   (or `make invoke-check`; VENV names the virtualenv [.venv])
# Exit status 0 when every check passed. Logs are kept in the printed folder when one failed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=$VENV/bin/python
CARGO_LAMBDA=$VENV/bin/cargo-lambda
CARGO=${CARGO:-cargo}
STACK=batchops-check
SOURCE=batchops-local-source
TARGET=batchops-local-target
# The sample events' job id and message ids (infra/events/*.json).
SAMPLE_JOB=3b5e6f1e-6b39-4c39-9d57-2f1f6d1f6a01
for tool in "$PY" "$CARGO_LAMBDA" infra/emulator.py; do
  [[ -x $tool ]] || { echo "invoke-check: $tool missing; run \`make setup\`" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/batchops-invoke-check.XXXXXX")
GROUPS_STARTED=()
PASSED=0
FAILED=0

stop_all() {
  local g
  for g in "${GROUPS_STARTED[@]}"; do
    kill -- "-$g" 2>/dev/null || true
  done
  for g in "${GROUPS_STARTED[@]}"; do
    for _ in $(seq 1 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$g" 2>/dev/null || true
  done
  GROUPS_STARTED=()
}
finish() {
  local status=$?
  stop_all
  if [[ $status -eq 0 && $FAILED -eq 0 ]]; then
    rm -rf "$WORK"
  else
    echo "invoke-check: logs and events kept in $WORK" >&2
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# Starts "$@" as the leader of a new process group (so the group holds everything it spawns),
# with output to $WORK/$name.log, and remembers the group.
start_group() {
  local name=$1
  shift
  setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  GROUPS_STARTED+=("$!")
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # what, seconds, command...
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "invoke-check: $what did not come up within ${seconds}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

pass() { PASSED=$((PASSED + 1)); printf 'ok    %s\n' "$1"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL  %s\n' "$1"; }

# expect NAME ACTUAL EXPECTED
expect() {
  if [[ $2 == "$3" ]]; then pass "$1: $2"; else fail "$1: got '$2', expected '$3'"; fi
}

# get FILE EXPR: a value of an answer (see infra/local.py get); empty when absent.
get() { "$PY" infra/local.py get "$1" "$2" 2>/dev/null || true; }

# invoke FUNCTION EVENT_FILE NAME: the function's answer goes to $WORK/NAME.out.
invoke() {
  local out=$WORK/$3.out
  if ! "$CARGO_LAMBDA" lambda invoke "$1" --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
    --data-file "$2" >"$out" 2>"$WORK/$3.err"; then
    cat "$WORK/$3.err" >>"$out"
  fi
}

# event TEMPLATE NAME [OLD=NEW ...]: a sample event with substitutions, as $WORK/NAME.json.
event() {
  local template=$1 name=$2
  shift 2
  "$PY" infra/local.py event "$template" "$WORK/$name.json" "$@"
  echo "$WORK/$name.json"
}

# receive QUEUE_VARIABLE NAME: the SQS event Lambda would deliver for the queue's next message.
receive() {
  "$PY" infra/local.py receive --env-file "$ENV_FILE" --queue "$1" --out "$WORK/$2.json"
  echo "$WORK/$2.json"
}

echo "== building the four functions (debug, exactly as cargo lambda watch runs them)"
# One `cargo build --bin` per function: that is what `cargo lambda watch` runs (`cargo run
# --bin <name>`), so its builds are then up to date and no invocation waits for a compile.
for bin in api planner worker finalizer; do
  "$CARGO" build --quiet --bin "$bin"
done

echo "== starting moto and cargo lambda watch"
MOTO_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$MOTO_PORT
# The machine's AWS_CA_BUNDLE is irrelevant on loopback and confuses some tools.
start_group moto env -u AWS_CA_BUNDLE "$VENV/bin/python" infra/emulator.py -H 127.0.0.1 -p "$MOTO_PORT"
wait_for "moto on port $MOTO_PORT" 60 curl -fsS -o /dev/null "$ENDPOINT/moto-api/"

ENV_FILE=$WORK/functions.env
"$PY" infra/local.py stack --endpoint "$ENDPOINT" --stack "$STACK" --env-file "$ENV_FILE"
"$PY" infra/local.py seed --env-file "$ENV_FILE" --source "$SOURCE" --target "$TARGET"

WATCH_PORT=$(free_port)
start_group watch env -u AWS_CA_BUNDLE PATH="$VENV/bin:$PATH" "$CARGO_LAMBDA" lambda watch \
  --ignore-changes --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" --env-file "$ENV_FILE"
wait_for "cargo lambda watch on port $WATCH_PORT" 120 \
  curl -sS -o /dev/null "http://127.0.0.1:$WATCH_PORT/"
echo "moto on $ENDPOINT, cargo lambda watch on 127.0.0.1:$WATCH_PORT, stack $STACK"

echo "== api (API Gateway HTTP API events, payload format 2.0)"
invoke api infra/events/api-bad-request.json bad-request
expect "api-bad-request.json -> status" "$(get "$WORK/bad-request.out" statusCode)" 400
expect "api-bad-request.json -> Code" "$(get "$WORK/bad-request.out" body.Code)" InvalidRequest
message=$(get "$WORK/bad-request.out" body.Message)
if [[ $message == Manifest.Location.ObjectArn:* ]]; then
  pass "api-bad-request.json -> Message names the field: $message"
else
  fail "api-bad-request.json -> Message does not name Manifest.Location.ObjectArn: '$message'"
fi

invoke api infra/events/api-describe-job.json describe-missing
expect "api-describe-job.json (no such job) -> status" "$(get "$WORK/describe-missing.out" statusCode)" 404
expect "api-describe-job.json (no such job) -> Code" "$(get "$WORK/describe-missing.out" body.Code)" NotFoundException

invoke api infra/events/api-create-job.json create
expect "api-create-job.json -> status" "$(get "$WORK/create.out" statusCode)" 200
JOB=$(get "$WORK/create.out" body.JobId)
if [[ $JOB =~ ^[0-9a-f-]{36}$ ]]; then pass "api-create-job.json -> JobId $JOB"; else fail "api-create-job.json -> no JobId: $(cat "$WORK/create.out")"; fi
invoke api infra/events/api-create-job.json create-again
expect "api-create-job.json again (same ClientRequestToken) -> same JobId" "$(get "$WORK/create-again.out" body.JobId)" "$JOB"

describe_job() { # JOB_ID NAME: GET /jobs/JOB_ID into $WORK/NAME.out
  invoke api "$(event infra/events/api-describe-job.json "$2" "$SAMPLE_JOB=$1")" "$2"
}
describe_job "$JOB" describe-new
expect "api-describe-job.json (JobId) -> status" "$(get "$WORK/describe-new.out" statusCode)" 200
expect "api-describe-job.json (JobId) -> Job.JobId" "$(get "$WORK/describe-new.out" body.Job.JobId)" "$JOB"
expect "api-describe-job.json (JobId) -> Job.Status" "$(get "$WORK/describe-new.out" body.Job.Status)" New
expect "api-describe-job.json (JobId) -> Job.Audit.Created: the IAM caller of api-create-job.json" \
  "$(get "$WORK/describe-new.out" body.Job.Audit.Created.By) $(get "$WORK/describe-new.out" body.Job.Audit.Created.Via)" \
  "arn:aws:sts::123456789012:assumed-role/storage-admin/alice API"

# The same job on S3 Control's REST-XML wire, as the AWS CLI sends DescribeJob.
invoke api "$(event infra/events/api-s3control-describe-job.json wire-describe "$SAMPLE_JOB=$JOB")" wire-describe
expect "api-s3control-describe-job.json -> status" "$(get "$WORK/wire-describe.out" statusCode)" 200
expect "api-s3control-describe-job.json -> DescribeJobResult.Job.JobArn" \
  "$(get "$WORK/wire-describe.out" body.DescribeJobResult.Job.JobArn)" "arn:aws:s3:us-east-1:123456789012:job/$JOB"

invoke api infra/events/api-console.json console
expect "api-console.json -> status" "$(get "$WORK/console.out" statusCode)" 200
expect "api-console.json -> content-type" "$(get "$WORK/console.out" headers.content-type)" "text/html; charset=utf-8"
if grep -q '/console/app.js' "$WORK/console.out"; then pass "api-console.json -> the page loads /console/app.js"
else fail "api-console.json -> no /console/app.js in: $(head -c 300 "$WORK/console.out")"; fi

invoke api infra/events/api-list-jobs.json list
expect "api-list-jobs.json -> status" "$(get "$WORK/list.out" statusCode)" 200
expect "api-list-jobs.json -> Jobs.0.JobId" "$(get "$WORK/list.out" body.Jobs.0.JobId)" "$JOB"

echo "== planner (plan queue and intake queue events)"
invoke planner infra/events/plan.json plan-missing
expect "plan.json (no such job) -> batchItemFailures" \
  "$(get "$WORK/plan-missing.out" batchItemFailures.0.itemIdentifier)" 059f36b4-87a3-44ab-83d2-661975830a7d
invoke planner "$(receive BATCHOPS_PLAN_QUEUE_URL plan)" plan
expect "plan queue message of $JOB -> batchItemFailures" "$(get "$WORK/plan.out" batchItemFailures)" "[]"

echo "== worker (work queue events)"
invoke worker infra/events/work.json work-missing
expect "work.json (no such job) -> batchItemFailures" \
  "$(get "$WORK/work-missing.out" batchItemFailures.0.itemIdentifier)" 2e1424d4-f796-459a-8184-9c92662be6da
invoke worker "$(receive BATCHOPS_WORK_QUEUE_URL work)" work
expect "chunk 0 of $JOB -> batchItemFailures" "$(get "$WORK/work.out" batchItemFailures)" "[]"

echo "== finalizer (finalize queue events and the sweep)"
invoke finalizer infra/events/finalize.json finalize-missing
expect "finalize.json (no such job) -> batchItemFailures" \
  "$(get "$WORK/finalize-missing.out" batchItemFailures.0.itemIdentifier)" 7b9a2c1e-0d55-4f0e-a3f4-5d1d2c3b4a51
invoke finalizer "$(receive BATCHOPS_FINALIZE_QUEUE_URL finalize)" finalize
expect "finalize queue message of $JOB -> batchItemFailures" "$(get "$WORK/finalize.out" batchItemFailures)" "[]"

describe_job "$JOB" describe-done
summary="$(get "$WORK/describe-done.out" body.Job.Status) $(get "$WORK/describe-done.out" body.Job.ProgressSummary.TotalNumberOfTasks)"
summary+=" $(get "$WORK/describe-done.out" body.Job.ProgressSummary.NumberOfTasksSucceeded)"
summary+=" $(get "$WORK/describe-done.out" body.Job.ProgressSummary.NumberOfTasksFailed)"
expect "api-describe-job.json (JobId) -> Status, Total, Succeeded, Failed" "$summary" "Complete 6 4 2"

invoke finalizer infra/events/sweep.json sweep
keys=$("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(" ".join(f"{k}={v}" for k, v in sorted(d.items()) if isinstance(v, int)))' "$WORK/sweep.out" 2>/dev/null || true)
expect "sweep.json -> summary" "$keys" "dead_chunks=0 errors=0 events_published=0 events_unpublished=0 examined=0 failed_stuck=0 finalize_queued=0 replanned=0 settled_pauses=0 stalled=0 unparked=0"

echo "== planner (S3 intake)"
KEY=$("$PY" infra/local.py intake --env-file "$ENV_FILE" --source "$SOURCE" --target "$TARGET")
invoke planner "$(event infra/events/intake.json intake batchops-dev-bucket=$STACK-bucket "intake/daily+copy%2B1.csv=$KEY")" intake
expect "intake.json ($KEY) -> batchItemFailures" "$(get "$WORK/intake.out" batchItemFailures)" "[]"
INTAKE_JOB=$("$PY" -c 'import json, sys; print(json.loads(json.load(open(sys.argv[1]))["Records"][0]["body"])["job_id"])' \
  "$(receive BATCHOPS_PLAN_QUEUE_URL intake-plan)" 2>/dev/null || true)
describe_job "$INTAKE_JOB" describe-intake
expect "the intake job $INTAKE_JOB -> Status, Operation" \
  "$(get "$WORK/describe-intake.out" body.Job.Status) $(get "$WORK/describe-intake.out" body.Job.Operation | "$PY" -c 'import json, sys; print(*json.load(sys.stdin))' 2>/dev/null)" \
  "New S3PutObjectTagging"
expect "the intake job $INTAKE_JOB -> Audit.Created: the uploader of intake.json" \
  "$(get "$WORK/describe-intake.out" body.Job.Audit.Created.By) $(get "$WORK/describe-intake.out" body.Job.Audit.Created.Via)" \
  "AWS:AIDAEXAMPLE S3 intake"

echo "invoke-check: $PASSED passed, $FAILED failed"
((FAILED == 0))
