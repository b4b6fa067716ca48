#!/usr/bin/env bash
# Install the OHIF viewer and what the browser test needs (Debian 12; idempotent).
#
#   1. apt: chromium (headless browser of the test), nodejs + npm when node is missing.
#   2. OHIF: deploy/ohif/install-ohif.sh (pinned @ohif/app from the npm registry).
#   3. playwright-core, pinned in tests/browser/package-lock.json, into tests/browser/node_modules.
#
# Environment:
#   LUNGSEG_SKIP_APT=1        skip the apt step
#   LUNGSEG_SKIP_BROWSER=1    only install OHIF (no chromium, no playwright-core)
# Only the package registries (apt, npm) are contacted.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "install-viewer: $*"; }
die() { echo "install-viewer: $*" >&2; exit 1; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  [[ "$(id -u)" == 0 ]] || die "apt packages missing (${missing[*]}): run as root"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}

if [[ "${LUNGSEG_SKIP_APT:-0}" != "1" ]]; then
  packages=()
  [[ "${LUNGSEG_SKIP_BROWSER:-0}" == "1" ]] || packages+=(chromium)
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
  [[ ${#packages[@]} -eq 0 ]] || apt_install "${packages[@]}"
fi
command -v npm >/dev/null || die "npm not found (apt package npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
if [[ "${LUNGSEG_SKIP_BROWSER:-0}" != "1" && "$major" -lt 20 ]]; then
  die "playwright-core (browser test) needs node >= 20, found $(node --version); LUNGSEG_SKIP_BROWSER=1 installs only OHIF"
fi

"$REPO/deploy/ohif/install-ohif.sh"

if [[ "${LUNGSEG_SKIP_BROWSER:-0}" != "1" ]]; then
  [[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium missing (apt package chromium)"
  log "npm ci in tests/browser (playwright-core, no browser download)"
  (cd "$REPO/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi
log "done: start the viewer with deploy/start-viewer.sh"
