#!/usr/bin/env bash
# Demo: start Orthanc with the lungseg plugin, send demo/LIDC-IDRI-0001 by C-STORE, wait for the
# DICOM-SEG and SR, print where to see them and the lesion table. Run deploy/install.sh first
# (`make demo` does). Stop with `make stop`. Same environment variables as start-orthanc.sh.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LUNGSEG_VENV:-$REPO/.venv}"
export LUNGSEG_HTTP_PORT="${LUNGSEG_HTTP_PORT:-8042}"
export LUNGSEG_DICOM_PORT="${LUNGSEG_DICOM_PORT:-4242}"
export LUNGSEG_DATA_DIR="${LUNGSEG_DATA_DIR:-$REPO/var/orthanc}"
export LUNGSEG_USER="${LUNGSEG_USER:-lungseg}"
export LUNGSEG_STABLE_AGE="${LUNGSEG_STABLE_AGE:-3}"
SERIES_DIR="${LUNGSEG_DEMO_SERIES:-$REPO/demo/LIDC-IDRI-0001}"
URL="http://localhost:$LUNGSEG_HTTP_PORT"

if [[ -z "${LUNGSEG_PASSWORD:-}" ]]; then
  LUNGSEG_PASSWORD="$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
  echo "demo: password for user '$LUNGSEG_USER': $LUNGSEG_PASSWORD"
fi
export LUNGSEG_PASSWORD

if [[ -f "$LUNGSEG_DATA_DIR/orthanc.pid" ]] && kill -0 "$(cat "$LUNGSEG_DATA_DIR/orthanc.pid")" 2>/dev/null; then
  echo "demo: restarting the Orthanc that runs from $LUNGSEG_DATA_DIR (new password)"
  "$REPO/deploy/stop-orthanc.sh"
fi
"$REPO/deploy/start-orthanc.sh"

"$VENV/bin/lungseg" send "$SERIES_DIR" --host 127.0.0.1 --port "$LUNGSEG_DICOM_PORT"
UIDS="$("$VENV/bin/python" - "$SERIES_DIR" <<'PY'
import sys, pathlib, pydicom
ds = pydicom.dcmread(sorted(pathlib.Path(sys.argv[1]).glob("*.dcm"))[0], stop_before_pixels=True)
print(ds.StudyInstanceUID, ds.SeriesInstanceUID)
PY
)"
read -r STUDY_UID SERIES_UID <<<"$UIDS"
# A series already processed by an earlier model keeps that result when sent again; the
# results command then asks the plugin to run it with the shipped model.
MODEL_VERSION="$("$VENV/bin/python" -c 'import json, engines
print(json.loads(engines.default_model_path().with_suffix(".json").read_text())["version"])')"
echo "demo: waiting for the SEG and SR (StableAge ${LUNGSEG_STABLE_AGE} s + processing)..."
# The password reaches the results command through LUNGSEG_PASSWORD (exported above), not
# its argv: not visible in `ps`, and one starting with "-" is not taken for an option.
"$VENV/bin/python" -m orthanc_plugin.results --url "$URL" --user "$LUNGSEG_USER" \
  --series-uid "$SERIES_UID" --wait "${LUNGSEG_DEMO_TIMEOUT:-600}" --model-version "$MODEL_VERSION"
cat <<TXT

Orthanc explorer : $URL/app/explorer.html   (user '$LUNGSEG_USER', password above)
DICOMweb (QIDO)  : $URL/dicom-web/studies/$STUDY_UID/series
lungseg jobs     : $URL/lungseg/jobs
Stop             : make stop
TXT
if "$REPO/deploy/ohif/install-ohif.sh" >/dev/null; then
  "$REPO/deploy/start-viewer.sh" "$STUDY_UID"
else
  echo "demo: OHIF not installed (needs npm): see docs/viewer.md"
fi
