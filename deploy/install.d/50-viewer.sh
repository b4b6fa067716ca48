#!/usr/bin/env bash
# deploy/install.sh hook: install the OHIF viewer and the browser-test tools
# (deploy/install-viewer.sh) when the test extra is installed (CI) or LUNGSEG_WITH_VIEWER=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ ",${LUNGSEG_EXTRAS:-}," == *",test,"* || "${LUNGSEG_WITH_VIEWER:-0}" == "1" ]]; then
  "$here/../install-viewer.sh"
else
  echo "install: viewer skipped (set LUNGSEG_WITH_VIEWER=1 or run deploy/install-viewer.sh)"
fi
