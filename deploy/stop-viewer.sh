#!/usr/bin/env bash
# Stop the viewer's nginx started by deploy/start-viewer.sh (same LUNGSEG_DATA_DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pid_file="${LUNGSEG_DATA_DIR:-$root/var/orthanc}/viewer.pid"
if [[ ! -f "$pid_file" ]]; then
    echo "stop-viewer: no $pid_file: nothing to stop"
    exit 0
fi
pid="$(cat "$pid_file")"
if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stop-viewer: stopped (pid $pid)"
else
    echo "stop-viewer: pid $pid was not running"
fi
rm -f "$pid_file"
