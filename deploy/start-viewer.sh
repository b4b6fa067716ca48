#!/usr/bin/env bash
# Start the OHIF Viewer next to Orthanc: deploy/ohif/ohif_proxy.py serves the app and
# forwards /dicom-web to Orthanc on the same origin (no CORS needed).
#
# Usage: deploy/start-viewer.sh [STUDY_INSTANCE_UID]
#   With a study UID, prints the OHIF link that opens that study.
#
# Environment:
#   LUNGSEG_VIEWER_PORT   port of the viewer (default 8043)
#   LUNGSEG_VIEWER_HOST   interface to bind (default 127.0.0.1; 0.0.0.0 for remote browsers)
#   LUNGSEG_HTTP_PORT     Orthanc's HTTP port (default 8042)
#   LUNGSEG_ORTHANC_HOST  Orthanc's host (default 127.0.0.1)
#   LUNGSEG_DATA_DIR      folder for viewer.log and viewer.pid (default var/orthanc in the checkout, as for Orthanc)
#   LUNGSEG_OHIF_DIR      installed OHIF app (default deploy/ohif/app; see install-ohif.sh)
#   LUNGSEG_FOREGROUND=1  stay in the foreground
#   LUNGSEG_USER, LUNGSEG_PASSWORD  when set, the study's SEG and SR are looked up (QIDO-RS)
#                         and links that open them are printed too
# Orthanc keeps checking credentials: the browser asks for the Orthanc user and password.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
port="${LUNGSEG_VIEWER_PORT:-8043}"
bind="${LUNGSEG_VIEWER_HOST:-127.0.0.1}"
orthanc="http://${LUNGSEG_ORTHANC_HOST:-127.0.0.1}:${LUNGSEG_HTTP_PORT:-8042}"
data_dir="${LUNGSEG_DATA_DIR:-$root/var/orthanc}"
app_dir="${LUNGSEG_OHIF_DIR:-$here/ohif/app}"
study="${1:-}"

if [[ ! -f "$app_dir/index.html" ]]; then
    echo "error: OHIF is not installed in $app_dir; run deploy/ohif/install-ohif.sh" >&2
    exit 1
fi
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)"

link_host="$bind"
[[ "$link_host" == "0.0.0.0" ]] && link_host="$(hostname -f 2>/dev/null || echo localhost)"
base="http://$link_host:$port"

# SeriesInstanceUIDs of the study's SEG and SR (QIDO-RS; needs LUNGSEG_USER/LUNGSEG_PASSWORD).
result_series() {
    [[ -n "$study" && -n "${LUNGSEG_PASSWORD:-}" ]] || return 0
    LUNGSEG_USER="${LUNGSEG_USER:-lungseg}" "$python" - "$orthanc" "$study" <<'PY' 2>/dev/null || true
import base64, json, os, sys, urllib.request
url, study = sys.argv[1], sys.argv[2]
token = base64.b64encode(f"{os.environ['LUNGSEG_USER']}:{os.environ['LUNGSEG_PASSWORD']}".encode())
req = urllib.request.Request(f"{url}/dicom-web/studies/{study}/series",
                             headers={"Authorization": "Basic " + token.decode()})
for item in json.load(urllib.request.urlopen(req, timeout=10)):
    modality = item.get("00080060", {}).get("Value", [""])[0]
    if modality in ("SEG", "SR"):
        print(modality, item["0020000E"]["Value"][0])
PY
}

print_links() {
    echo "OHIF viewer:   $base/  (DICOMweb of $orthanc via $base/dicom-web)"
    [[ -n "$study" ]] || return 0
    echo "Open study:    $base/viewer?StudyInstanceUIDs=$study"
    while read -r modality series; do
        [[ -n "$series" ]] || continue
        echo "  with its $modality: $base/viewer?StudyInstanceUIDs=$study&initialSeriesInstanceUID=$series"
    done < <(result_series)
}

args=(--host "$bind" --port "$port" --orthanc "$orthanc" --app-dir "$app_dir"
      --config "$here/ohif/app-config.js")
if [[ "${LUNGSEG_FOREGROUND:-0}" == "1" ]]; then
    print_links
    exec "$python" "$here/ohif/ohif_proxy.py" "${args[@]}"
fi

mkdir -p "$data_dir"
pid_file="$data_dir/viewer.pid"
if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "Viewer already running (pid $(cat "$pid_file"))"
    print_links
    exit 0
fi
nohup "$python" "$here/ohif/ohif_proxy.py" "${args[@]}" >"$data_dir/viewer.log" 2>&1 &
echo $! >"$pid_file"
# ohif_proxy.py prints its "OHIF viewer on" line only once its port is bound.
pid="$(cat "$pid_file")"
for _ in $(seq 1 100); do
    if grep -q "^OHIF viewer on" "$data_dir/viewer.log" 2>/dev/null; then
        echo "Viewer started (pid $pid, log $data_dir/viewer.log)"
        print_links
        exit 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$pid_file"
echo "error: the viewer did not come up on port $port; see $data_dir/viewer.log:" >&2
tail -n 5 "$data_dir/viewer.log" >&2 || true
exit 1
