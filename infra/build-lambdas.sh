#!/usr/bin/env bash
# `make build-lambdas`: the deployable builds of the four functions, exactly as `sam deploy` will
# upload them: `sam build` runs `cargo lambda build --release --arm64 --bin <name>` for each
# function of template.yaml (BuildMethod rust-cargolambda; Zig, from the virtualenv's ziglang,
# links for arm64 Linux), then copies target/lambda/<name>/bootstrap to .aws-sam/build/.
# The release profile uses LTO and one codegen unit: expect tens of minutes on 2 cores.
# No AWS account or network access to AWS is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VENV_BIN=$(cd "$VENV/bin" && pwd)
export PATH="$VENV_BIN:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=${AWS_REGION:-us-east-1} AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}

if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

start=$SECONDS
nice -n "${NICE:-10}" sam build
elapsed=$((SECONDS - start))

status=0
printf '\n%-10s %-14s %s\n' function bytes bootstrap
for fn in api:ApiFunction planner:PlannerFunction worker:WorkerFunction finalizer:FinalizerFunction; do
  bin=${fn%%:*}
  for f in "target/lambda/$bin/bootstrap" ".aws-sam/build/${fn#*:}/bootstrap"; do
    if [[ -f $f ]]; then
      printf '%-10s %-14s %s\n' "$bin" "$(stat -c %s "$f")" "$f"
    else
      echo "build-lambdas: $f is missing" >&2
      status=1
    fi
  done
done
if command -v file >/dev/null; then
  file -b target/lambda/api/bootstrap
fi
echo "build-lambdas: sam build took ${elapsed}s"
exit $status
