#!/usr/bin/env bash
# Stop the Orthanc started by deploy/start-orthanc.sh (same LUNGSEG_DATA_DIR).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${LUNGSEG_DATA_DIR:-$REPO/var/orthanc}"
PID_FILE="$DATA_DIR/orthanc.pid"
if [[ ! -f "$PID_FILE" ]]; then
  echo "stop-orthanc: no pid file in $DATA_DIR: nothing to stop"
  exit 0
fi
PID="$(cat "$PID_FILE")"
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID"
  for ((i = 0; i < 120; i++)); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$PID" 2>/dev/null; then
    echo "stop-orthanc: Orthanc (pid $PID) did not stop in 30 s; killing it" >&2
    kill -KILL "$PID" 2>/dev/null || true
  fi
  echo "stop-orthanc: stopped (pid $PID)"
else
  echo "stop-orthanc: pid $PID was not running"
fi
rm -f "$PID_FILE"
