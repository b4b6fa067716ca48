#!/usr/bin/env bash
# Start nginx in front of Orthanc: it serves the OHIF Viewer's files and forwards /dicom-web,
# /wado and Orthanc's REST API (under /orthanc/) to Orthanc on the same origin, with TLS from
# the configured certificate. Orthanc keeps checking the credentials (the browser asks for the
# Orthanc user and password). nginx runs with its own configuration, pid and logs under
# LUNGSEG_DATA_DIR; no system-wide nginx configuration is read or changed.
#
# Usage: deploy/start-viewer.sh [STUDY_INSTANCE_UID]
#   With a study UID, prints the OHIF link that opens that study.
#
# Environment:
#   LUNGSEG_TLS_CERT, LUNGSEG_TLS_KEY  certificate (PEM, with its chain) and private key: HTTPS.
#                         Without them the viewer speaks plain HTTP, on the loopback interface only
#   LUNGSEG_VIEWER_PORT   port of the viewer (default 8043)
#   LUNGSEG_VIEWER_HOST   interface to bind (default 127.0.0.1; 0.0.0.0 for remote browsers,
#                         which needs the certificate, or LUNGSEG_VIEWER_INSECURE=1)
#   LUNGSEG_HTTP_PORT     Orthanc's HTTP port (default 8042)
#   LUNGSEG_ORTHANC_HOST  Orthanc's host (default 127.0.0.1)
#   LUNGSEG_DATA_DIR      folder for nginx/ (rendered config), viewer.pid, viewer.log (errors) and
#                         viewer-access.log (default var/orthanc in the checkout, as for Orthanc)
#   LUNGSEG_OHIF_DIR      installed OHIF app (default deploy/ohif/app; see install-ohif.sh)
#   LUNGSEG_NGINX         nginx executable (default /usr/sbin/nginx; Debian package nginx)
#   LUNGSEG_FOREGROUND=1  stay in the foreground (systemd)
#   LUNGSEG_USER, LUNGSEG_PASSWORD  when set, the study's SEG and SR are looked up (QIDO-RS)
#                         and links that open them are printed too
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
port="${LUNGSEG_VIEWER_PORT:-8043}"
bind="${LUNGSEG_VIEWER_HOST:-127.0.0.1}"
orthanc_hostport="${LUNGSEG_ORTHANC_HOST:-127.0.0.1}:${LUNGSEG_HTTP_PORT:-8042}"
orthanc="http://$orthanc_hostport"
data_dir="${LUNGSEG_DATA_DIR:-$root/var/orthanc}"
app_dir="${LUNGSEG_OHIF_DIR:-$here/ohif/app}"
nginx="${LUNGSEG_NGINX:-/usr/sbin/nginx}"
cert="${LUNGSEG_TLS_CERT:-}"
key="${LUNGSEG_TLS_KEY:-}"
study="${1:-}"

die() { echo "error: $*" >&2; exit 1; }

[[ "$port" =~ ^[0-9]+$ ]] || die "LUNGSEG_VIEWER_PORT must be a whole number, got '$port'"
[[ -f "$app_dir/index.html" ]] || die "OHIF is not installed in $app_dir; run deploy/ohif/install-ohif.sh"
[[ -x "$nginx" ]] || die "$nginx not found: run deploy/install.sh (apt package nginx) or set LUNGSEG_NGINX"
if [[ -n "$cert" || -n "$key" ]]; then
    [[ -n "$cert" && -n "$key" ]] || die "set both LUNGSEG_TLS_CERT and LUNGSEG_TLS_KEY"
    [[ -r "$cert" ]] || die "LUNGSEG_TLS_CERT: cannot read $cert"
    [[ -r "$key" ]] || die "LUNGSEG_TLS_KEY: cannot read $key"
    cert="$(cd "$(dirname "$cert")" && pwd)/$(basename "$cert")"
    key="$(cd "$(dirname "$key")" && pwd)/$(basename "$key")"
    scheme=https
else
    scheme=http
    if [[ "$bind" != "127.0.0.1" && "$bind" != "localhost" && "${LUNGSEG_VIEWER_INSECURE:-0}" != "1" ]]; then
        die "LUNGSEG_VIEWER_HOST=$bind without TLS would send passwords in clear text: set LUNGSEG_TLS_CERT and LUNGSEG_TLS_KEY (or LUNGSEG_VIEWER_INSECURE=1)"
    fi
fi
python="$root/.venv/bin/python"
[[ -x "$python" ]] || python="$(command -v python3)"

link_host="$bind"
[[ "$link_host" == "0.0.0.0" ]] && link_host="$(hostname -f 2>/dev/null || echo localhost)"
base="$scheme://$link_host:$port"

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
    echo "OHIF viewer:   $base/  (DICOMweb of $orthanc via $base/dicom-web, REST API via $base/orthanc/)"
    [[ -n "$study" ]] || return 0
    echo "Open study:    $base/viewer?StudyInstanceUIDs=$study"
    while read -r modality series; do
        [[ -n "$series" ]] || continue
        echo "  with its $modality: $base/viewer?StudyInstanceUIDs=$study&initialSeriesInstanceUID=$series"
    done < <(result_series)
}

mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
app_dir="$(cd "$app_dir" && pwd)"
pid_file="$data_dir/viewer.pid"
if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "Viewer already running (pid $(cat "$pid_file"))"
    print_links
    exit 0
fi

conf_dir="$data_dir/nginx"
mkdir -p "$conf_dir/tmp"
if [[ "$scheme" == https ]]; then
    listen="$bind:$port ssl"
    tls="        ssl_certificate \"$cert\";
        ssl_certificate_key \"$key\";
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:lungseg_tls:1m;"
else
    listen="$bind:$port"
    tls=""
fi
conf="$(<"$here/nginx/lungseg.conf.template")"
conf="${conf//@PID_FILE@/$pid_file}"
conf="${conf//@ERROR_LOG@/$data_dir/viewer.log}"
conf="${conf//@ACCESS_LOG@/$data_dir/viewer-access.log}"
conf="${conf//@MIME_TYPES@//etc/nginx/mime.types}"
conf="${conf//@TEMP_DIR@/$conf_dir/tmp}"
conf="${conf//@ORTHANC@/$orthanc_hostport}"
conf="${conf//@LISTEN@/$listen}"
conf="${conf//@TLS@/$tls}"
conf="${conf//@APP_DIR@/$app_dir}"
conf="${conf//@APP_CONFIG@/$here/ohif/app-config.js}"
printf '%s\n' "$conf" >"$conf_dir/nginx.conf"

nginx_args=(-p "$conf_dir" -c "$conf_dir/nginx.conf" -e "$data_dir/viewer.log")
if ! check="$("$nginx" "${nginx_args[@]}" -t -q 2>&1)"; then
    die "nginx refused the configuration $conf_dir/nginx.conf: $check"
fi
if [[ "${LUNGSEG_FOREGROUND:-0}" == "1" ]]; then
    print_links
    exec "$nginx" "${nginx_args[@]}" -g "daemon off;"
fi
# nginx forks; its master writes viewer.pid once the port is bound.
if ! out="$("$nginx" "${nginx_args[@]}" 2>&1)"; then
    die "nginx did not start: $out (log $data_dir/viewer.log)"
fi
for _ in $(seq 1 50); do
    [[ -s "$pid_file" ]] && break
    sleep 0.1
done
[[ -s "$pid_file" ]] || die "nginx did not write $pid_file; see $data_dir/viewer.log"
echo "Viewer started (nginx pid $(cat "$pid_file"), $scheme on $bind:$port, log $data_dir/viewer.log)"
print_links
