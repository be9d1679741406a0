#!/usr/bin/env bash
# `make watch`: serves the four Lambda functions with `cargo lambda watch` (rebuilt and restarted
# when the code changes) against a stack on the running emulator (`make emulator`), with the
# environment template.yaml gives them in AWS. Then, in another terminal:
#
#   cargo lambda invoke api --invoke-address 127.0.0.1 --invoke-port 9100 \
#       --data-file infra/events/api-create-job.json
#
# Environment: EMULATOR_HOST/EMULATOR_PORT [127.0.0.1:5000], WATCH_PORT [9100],
# WATCH_STACK [batchops-watch], VENV [.venv], RUN [.run].
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
RUN=${RUN:-.run}
ENDPOINT=http://${EMULATOR_HOST:-127.0.0.1}:${EMULATOR_PORT:-5000}
WATCH_PORT=${WATCH_PORT:-9100}
STACK=${WATCH_STACK:-batchops-watch}
ENV_FILE=$RUN/$STACK.env
mkdir -p "$RUN"

if ! curl -fsS -o /dev/null "$ENDPOINT/moto-api/"; then
  echo "watch: no emulator at $ENDPOINT; run \`make emulator\` first" >&2
  exit 1
fi
"$VENV/bin/python" infra/local.py stack --endpoint "$ENDPOINT" --stack "$STACK" --env-file "$ENV_FILE"
# The buckets and manifest infra/events/api-create-job.json names.
"$VENV/bin/python" infra/local.py seed --env-file "$ENV_FILE" \
  --source batchops-local-source --target batchops-local-target

cat <<EOF

Functions api, planner, worker, finalizer on 127.0.0.1:$WATCH_PORT (environment: $ENV_FILE).
Invoke one with a sample event, for example:

  $VENV/bin/cargo-lambda lambda invoke api --invoke-address 127.0.0.1 --invoke-port $WATCH_PORT \\
      --data-file infra/events/api-create-job.json

Messages the functions send stay on the emulator's queues: nothing polls them here (that is
what \`batchops dev\` does). \`make invoke-check\` runs a whole job through the functions this way.

EOF
# exec: Ctrl-C stops cargo lambda watch and the functions it started.
exec env -u AWS_CA_BUNDLE PATH="$VENV/bin:$PATH" "$VENV/bin/cargo-lambda" lambda watch \
  --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" --env-file "$ENV_FILE"
