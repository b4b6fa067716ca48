#!/usr/bin/env bash
# Start Orthanc with the Python + DICOMweb plugins and the lungseg plugin.
#
# Environment (defaults in brackets):
#   LUNGSEG_HTTP_PORT [8042]  LUNGSEG_DICOM_PORT [4242]  LUNGSEG_AET [ORTHANC] (called AET, checked)
#   LUNGSEG_SENDERS [LUNGSEG@127.0.0.1] the only nodes allowed to C-STORE (and C-ECHO):
#                   comma-separated AET[@IP[:PORT]] (every item with an IP, or none); see
#                   docs/security.md. Empty: no DICOM sender at all.
#   DICOM TLS (docs/security.md), on when LUNGSEG_DICOM_TLS_CERT is set; the DICOM port then
#   speaks TLS only:
#     LUNGSEG_DICOM_TLS_CERT  LUNGSEG_DICOM_TLS_KEY  Orthanc's certificate and private key (PEM)
#     LUNGSEG_DICOM_TLS_TRUSTED   PEM bundle of the senders' certificates (or their CA)
#     LUNGSEG_DICOM_TLS_REQUIRE_CLIENT_CERT [1]  0: senders need no certificate of their own
#   LUNGSEG_DATA_DIR [<checkout>/var/orthanc]  (job store, rendered config, log, pid)
#   LUNGSEG_STORAGE_DIR [$LUNGSEG_DATA_DIR/storage]  Orthanc's DICOM files and index; may sit on
#                             its own volume (a full storage disk then leaves the job store usable)
#   LUNGSEG_USER [lungseg]  LUNGSEG_PASSWORD [generated, printed once]
#   LUNGSEG_STABLE_AGE [10] seconds without new instances before a series is processed
#   LUNGSEG_SEGMENTER [auto]  LUNGSEG_ENGINE [onnx]  LUNGSEG_MODEL [default model]
#   LUNGSEG_MIN_SLICES [10]  LUNGSEG_VENV [<checkout>/.venv]
#   LUNGSEG_MAX_ATTEMPTS [3] attempts of a job that may break off (worker died, Orthanc gone)
#   LUNGSEG_RETRY_DELAY [10] seconds before the second attempt; doubles for each further one
#   LUNGSEG_WORKER_MAX_STARTS [5] failed worker starts in a row (e.g. model missing) before giving up
#   LUNGSEG_WORKER_RESTART_DELAY [2] seconds before starting a failed worker again; doubles, max 60
#   LUNGSEG_WORKER_MEMORY_MB [no limit] address-space cap of the worker process (MiB, >= 256)
#   LUNGSEG_REGISTRY [<data dir>/model-registry] model registry; its active version replaces
#     LUNGSEG_MODEL for the next job (docs/retraining.md)
#   LUNGSEG_FOREGROUND=1      stay in the foreground (systemd); otherwise wait until it answers
#   LUNGSEG_START_TIMEOUT [60] seconds to wait for /system
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HTTP_PORT="${LUNGSEG_HTTP_PORT:-8042}"
DICOM_PORT="${LUNGSEG_DICOM_PORT:-4242}"
DATA_DIR="${LUNGSEG_DATA_DIR:-$REPO/var/orthanc}"
USER_NAME="${LUNGSEG_USER:-lungseg}"
VENV="${LUNGSEG_VENV:-$REPO/.venv}"
STABLE_AGE="${LUNGSEG_STABLE_AGE:-10}"
MIN_SLICES="${LUNGSEG_MIN_SLICES:-10}"
TIMEOUT="${LUNGSEG_START_TIMEOUT:-60}"
MAX_ATTEMPTS="${LUNGSEG_MAX_ATTEMPTS:-3}"
RETRY_DELAY="${LUNGSEG_RETRY_DELAY:-10}"
WORKER_MAX_STARTS="${LUNGSEG_WORKER_MAX_STARTS:-5}"
WORKER_RESTART_DELAY="${LUNGSEG_WORKER_RESTART_DELAY:-2}"
WORKER_MEMORY_MB="${LUNGSEG_WORKER_MEMORY_MB:-}"
ORTHANC_BIN="${LUNGSEG_ORTHANC_BIN:-/usr/sbin/Orthanc}"

die() { echo "start-orthanc: $*" >&2; exit 1; }

for n in HTTP_PORT DICOM_PORT STABLE_AGE MIN_SLICES TIMEOUT MAX_ATTEMPTS RETRY_DELAY \
         WORKER_MAX_STARTS WORKER_RESTART_DELAY; do
  [[ "${!n}" =~ ^[0-9]+$ ]] || die "LUNGSEG_$n must be a whole number, got '${!n}'"
done
[[ -z "$WORKER_MEMORY_MB" || "$WORKER_MEMORY_MB" =~ ^[0-9]+$ ]] \
  || die "LUNGSEG_WORKER_MEMORY_MB must be a whole number of MiB, got '$WORKER_MEMORY_MB'"
[[ -x "$ORTHANC_BIN" ]] || die "$ORTHANC_BIN not found: run deploy/install.sh (apt package orthanc)"
for lib in libOrthancPython.so libOrthancDicomWeb.so; do
  [[ -f "/usr/share/orthanc/plugins/$lib" ]] || die "/usr/share/orthanc/plugins/$lib missing: run deploy/install.sh"
done
[[ -x "$VENV/bin/python" ]] || die "no venv at $VENV: run deploy/install.sh (or set LUNGSEG_VENV)"

mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
STORAGE_DIR="${LUNGSEG_STORAGE_DIR:-$DATA_DIR/storage}"
mkdir -p "$STORAGE_DIR"
STORAGE_DIR="$(cd "$STORAGE_DIR" && pwd)"
PID_FILE="$DATA_DIR/orthanc.pid"
LOG_FILE="$DATA_DIR/orthanc.log"
if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  die "Orthanc already runs from $DATA_DIR (pid $(cat "$PID_FILE")); deploy/stop-orthanc.sh stops it"
fi

PASSWORD="${LUNGSEG_PASSWORD:-}"
if [[ -z "$PASSWORD" ]]; then
  PASSWORD="$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
  echo "start-orthanc: generated password for user '$USER_NAME': $PASSWORD"
  echo "start-orthanc: (shown once; set LUNGSEG_PASSWORD to choose your own)"
fi
WORKER_USER="lungseg-worker"
WORKER_PASSWORD="$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(24))')"
[[ "$USER_NAME" != "$WORKER_USER" ]] || die "LUNGSEG_USER must not be '$WORKER_USER' (internal user)"

js() { /usr/bin/python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }
SENDERS="${LUNGSEG_SENDERS-LUNGSEG@127.0.0.1}"
SENDERS_JSON="$(/usr/bin/python3 "$REPO/deploy/senders.py" "$SENDERS")" || die "invalid LUNGSEG_SENDERS (see above)"
field() { /usr/bin/python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$SENDERS_JSON" "$1"; }
export LUNGSEG_R_DICOM_MODALITIES="$(field modalities)" LUNGSEG_R_CHECK_MODALITY_HOST="$(field check_host)"
TLS_CERT="${LUNGSEG_DICOM_TLS_CERT:-}" TLS_KEY="${LUNGSEG_DICOM_TLS_KEY:-}"
TLS_TRUSTED="${LUNGSEG_DICOM_TLS_TRUSTED:-}" TLS_REQUIRE="${LUNGSEG_DICOM_TLS_REQUIRE_CLIENT_CERT:-1}"
[[ "$TLS_REQUIRE" == 0 || "$TLS_REQUIRE" == 1 ]] || die "LUNGSEG_DICOM_TLS_REQUIRE_CLIENT_CERT must be 0 or 1, got '$TLS_REQUIRE'"
if [[ -n "$TLS_CERT" ]]; then
  for n in TLS_KEY TLS_TRUSTED; do
    [[ -n "${!n}" ]] || die "LUNGSEG_DICOM_$n must be set when LUNGSEG_DICOM_TLS_CERT is (DICOM TLS)"
  done
  for n in TLS_CERT TLS_KEY TLS_TRUSTED; do
    [[ -r "${!n}" ]] || die "LUNGSEG_DICOM_$n: cannot read '${!n}'"
    printf -v "$n" '%s' "$(cd "$(dirname "${!n}")" && pwd)/$(basename "${!n}")"
  done
  export LUNGSEG_R_DICOM_TLS_ENABLED=true
else
  [[ -z "$TLS_KEY$TLS_TRUSTED" ]] || die "LUNGSEG_DICOM_TLS_KEY/TRUSTED are set but LUNGSEG_DICOM_TLS_CERT is not"
  export LUNGSEG_R_DICOM_TLS_ENABLED=false
fi
export LUNGSEG_R_DICOM_TLS_CERTIFICATE="$(js "$TLS_CERT")" LUNGSEG_R_DICOM_TLS_PRIVATE_KEY="$(js "$TLS_KEY")"
export LUNGSEG_R_DICOM_TLS_TRUSTED_CERTIFICATES="$(js "$TLS_TRUSTED")"
export LUNGSEG_R_DICOM_TLS_REMOTE_CERTIFICATE_REQUIRED="$([[ "$TLS_REQUIRE" == 1 ]] && echo true || echo false)"
SITE_PACKAGES="$("$VENV/bin/python" -c 'import json, site; print(json.dumps(site.getsitepackages()))')"
export LUNGSEG_R_STORAGE_DIR="$(js "$STORAGE_DIR")"
export LUNGSEG_R_HTTP_PORT="$HTTP_PORT" LUNGSEG_R_DICOM_PORT="$DICOM_PORT"
export LUNGSEG_R_AET="$(js "${LUNGSEG_AET:-ORTHANC}")"
export LUNGSEG_R_REGISTERED_USERS="$(/usr/bin/python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$USER_NAME" "$PASSWORD" "$WORKER_USER" "$WORKER_PASSWORD")"
export LUNGSEG_R_STABLE_AGE="$STABLE_AGE" LUNGSEG_R_MIN_SLICES="$MIN_SLICES"
export LUNGSEG_R_PLUGIN_SCRIPT="$(js "$REPO/orthanc_plugin/entry.py")"
export LUNGSEG_R_WORKER_PYTHON="$(js "$VENV/bin/python")"
export LUNGSEG_R_SITE_PACKAGES="$SITE_PACKAGES"
export LUNGSEG_R_DATA_DIR="$(js "$DATA_DIR")"
export LUNGSEG_R_INTERNAL_URL="$(js "http://127.0.0.1:$HTTP_PORT")"
export LUNGSEG_R_WORKER_USER="$(js "$WORKER_USER")" LUNGSEG_R_WORKER_PASSWORD="$(js "$WORKER_PASSWORD")"
export LUNGSEG_R_SEGMENTER="$(js "${LUNGSEG_SEGMENTER:-auto}")"
export LUNGSEG_R_ENGINE="$(js "${LUNGSEG_ENGINE:-onnx}")"
if [[ -n "${LUNGSEG_MODEL:-}" ]]; then LUNGSEG_R_MODEL_PATH="$(js "$LUNGSEG_MODEL")"; else LUNGSEG_R_MODEL_PATH=null; fi
export LUNGSEG_R_MODEL_PATH
export LUNGSEG_R_MAX_ATTEMPTS="$MAX_ATTEMPTS" LUNGSEG_R_RETRY_DELAY="$RETRY_DELAY"
export LUNGSEG_R_WORKER_MAX_STARTS="$WORKER_MAX_STARTS"
export LUNGSEG_R_WORKER_RESTART_DELAY="$WORKER_RESTART_DELAY"
export LUNGSEG_R_WORKER_MEMORY_MB="${WORKER_MEMORY_MB:-null}"
if [[ -n "${LUNGSEG_REGISTRY:-}" ]]; then LUNGSEG_R_REGISTRY="$(js "$(realpath -m "$LUNGSEG_REGISTRY")")"; else LUNGSEG_R_REGISTRY=null; fi
export LUNGSEG_R_REGISTRY
CONFIG="$DATA_DIR/orthanc.json"
/usr/bin/python3 "$REPO/deploy/render_config.py" "$REPO/deploy/orthanc.json.template" "$CONFIG"
unset "${!LUNGSEG_R_@}"

print_urls() {
  echo "start-orthanc: Orthanc explorer  http://localhost:$HTTP_PORT/app/explorer.html (user '$USER_NAME')"
  echo "start-orthanc: DICOMweb          http://localhost:$HTTP_PORT/dicom-web/studies"
  echo "start-orthanc: lungseg jobs      http://localhost:$HTTP_PORT/lungseg/jobs"
  echo "start-orthanc: lungseg status    http://localhost:$HTTP_PORT/lungseg/status"
  echo "start-orthanc: DICOM C-STORE     AET ${LUNGSEG_AET:-ORTHANC} on port $DICOM_PORT$([[ -n "$TLS_CERT" ]] && echo " (TLS)"), from: ${SENDERS:-nobody (LUNGSEG_SENDERS is empty)}"
}

export TCP_NODELAY=1
if [[ "${LUNGSEG_FOREGROUND:-0}" == "1" ]]; then
  print_urls
  echo $$ > "$PID_FILE"
  exec "$ORTHANC_BIN" "$CONFIG"
fi

nohup "$ORTHANC_BIN" "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$PID_FILE"
for ((i = 0; i < TIMEOUT * 4; i++)); do
  if ! kill -0 "$PID" 2>/dev/null; then
    tail -n 30 "$LOG_FILE" >&2 || true
    rm -f "$PID_FILE"
    die "Orthanc exited during start-up (log above, full log in $LOG_FILE)"
  fi
  if curl -fsS -o /dev/null -u "$WORKER_USER:$WORKER_PASSWORD" "http://127.0.0.1:$HTTP_PORT/system" 2>/dev/null; then
    print_urls
    echo "start-orthanc: running (pid $PID, data $DATA_DIR, log $LOG_FILE)"
    exit 0
  fi
  sleep 0.25
done
kill "$PID" 2>/dev/null || true
rm -f "$PID_FILE"
tail -n 30 "$LOG_FILE" >&2 || true
die "Orthanc did not answer on http://127.0.0.1:$HTTP_PORT/system within ${TIMEOUT}s (log in $LOG_FILE)"
