#!/usr/bin/env bash
# Starts or stops a moto server for local development: `emulator.sh start|stop`.
# Idempotent: `start` does nothing when the emulator already answers.
set -euo pipefail
HOST=${EMULATOR_HOST:-127.0.0.1}
PORT=${EMULATOR_PORT:-5000}
VENV=${VENV:-.venv}
RUN=${RUN:-.run}
PIDFILE="$RUN/moto-$PORT.pid"
mkdir -p "$RUN"

up() { curl -fsS -o /dev/null "http://$HOST:$PORT/moto-api/" 2>/dev/null; }

case "${1:-}" in
  start)
    if up; then echo "emulator already running on $HOST:$PORT"; exit 0; fi
    # The machine's AWS_CA_BUNDLE is irrelevant on loopback and confuses some tools.
    env -u AWS_CA_BUNDLE nohup "$VENV/bin/python" "$(dirname "$0")/emulator.py" -H "$HOST" -p "$PORT" >"$RUN/moto-$PORT.log" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
      if up; then echo "emulator up on $HOST:$PORT (pid $(cat "$PIDFILE"))"; exit 0; fi
      sleep 0.1
    done
    echo "emulator did not start; see $RUN/moto-$PORT.log" >&2
    exit 1
    ;;
  stop)
    if [[ -f "$PIDFILE" ]]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
      echo "emulator on port $PORT stopped"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
