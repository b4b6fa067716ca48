#!/usr/bin/env bash
# Install lungseg on Debian 12 (run as root; idempotent, safe to re-run).
#
#   1. apt: orthanc, orthanc-python, orthanc-dicomweb, dicom3tools, dcmtk, nginx (apt-get update once).
#   2. a venv made with Debian's /usr/bin/python3 (the Python that Orthanc's plugin embeds).
#   3. the project into it: pip install -e ".[$LUNGSEG_EXTRAS]".
#
# Environment:
#   LUNGSEG_VENV    venv folder (default <checkout>/.venv, git-ignored)
#   LUNGSEG_EXTRAS  comma-separated extras (default empty: runtime only, ONNX Runtime, no torch);
#                   e.g. "train,test". With "train", torch==2.13.0 (CPU wheel) comes first.
#   LUNGSEG_SKIP_APT=1  skip the apt step (packages installed otherwise)
#   LUNGSEG_CONSTRAINTS pip constraints file (default deploy/constraints.txt: the tested
#                   versions); "none" installs the newest versions the specifiers allow.
#   Hook: every executable deploy/install.d/*.sh runs last, in name order, with the same
#   environment (e.g. 50-viewer.sh: OHIF + browser-test tools with the test extra or
#   LUNGSEG_WITH_VIEWER=1).
# Only the package registries (apt, pip, npm) are contacted.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LUNGSEG_VENV:-$REPO/.venv}"
EXTRAS="${LUNGSEG_EXTRAS:-}"
APT_PACKAGES=(orthanc orthanc-python orthanc-dicomweb dicom3tools curl nginx)
# dcmtk: dcmcjpeg makes the JPEG Lossless test series (pydicom has no encoder for it)
APT_PACKAGES+=(dcmtk)
TORCH_VERSION="2.13.0"
CONSTRAINTS="${LUNGSEG_CONSTRAINTS:-$REPO/deploy/constraints.txt}"

log() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

[[ "$EXTRAS" =~ ^[a-z,]*$ ]] || die "LUNGSEG_EXTRAS must be comma-separated extra names, got '$EXTRAS'"
[[ "$CONSTRAINTS" == "none" || -f "$CONSTRAINTS" ]] \
  || die "constraints file $CONSTRAINTS not found (LUNGSEG_CONSTRAINTS=none installs without pins)"

install_apt() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "apt packages present: ${APT_PACKAGES[*]}"
    return
  fi
  [[ "$(id -u)" == 0 ]] || die "apt packages missing (${missing[*]}): run as root"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # the Debian packages would start a system-wide Orthanc on 8042/4242 and nginx on 80; we start
  # our own (deploy/start-orthanc.sh, deploy/start-viewer.sh)
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then
    log "note: the Debian orthanc service is running and may hold ports 8042/4242"
  fi
  if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
    log "note: the Debian nginx service is running on port 80 (lungseg's viewer does not use it)"
  fi
}

install_venv() {
  [[ -x /usr/bin/python3 ]] || die "/usr/bin/python3 missing (Debian package python3)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    /usr/bin/python3 -m venv "$VENV" 2>/dev/null || {
      [[ "$(id -u)" == 0 ]] || die "python3-venv missing: run as root"
      apt-get install -y -q python3-venv && /usr/bin/python3 -m venv "$VENV"
    }
    log "venv created at $VENV"
  fi
  local pip=("$VENV/bin/python" -m pip install -q)
  if [[ "$CONSTRAINTS" != "none" ]]; then
    pip+=(-c "$CONSTRAINTS")
    log "package versions pinned by $CONSTRAINTS"
  fi
  if [[ ",$EXTRAS," == *",train,"* ]]; then
    "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null \
      || "${pip[@]}" "torch==$TORCH_VERSION"
  fi
  local target="$REPO"
  [[ -z "$EXTRAS" ]] || target="$REPO[$EXTRAS]"
  log "pip install -e $target"
  "${pip[@]}" -e "$target"
}

if [[ "${LUNGSEG_SKIP_APT:-0}" == "1" ]]; then log "apt step skipped"; else install_apt; fi
install_venv
if compgen -G "$REPO/deploy/install.d/*.sh" >/dev/null; then
  for hook in "$REPO"/deploy/install.d/*.sh; do
    if [[ -x "$hook" ]]; then log "running hook $hook"; "$hook"; fi
  done
fi
log "done: venv $VENV; start with deploy/start-orthanc.sh"
