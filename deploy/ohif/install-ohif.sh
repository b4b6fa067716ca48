#!/usr/bin/env bash
# Install the pinned, prebuilt OHIF Viewer (@ohif/app) from the npm registry.
#
# The npm package already contains the complete built web app in dist/; nothing is
# compiled here. The tarball is checked against the registry's pinned sha512
# integrity, unpacked, pruned (ONNX runtime, microscopy viewer, source maps: not
# needed to view CT, SEG and SR) and placed in LUNGSEG_OHIF_DIR.
#
# Environment:
#   LUNGSEG_OHIF_DIR  target folder (default: deploy/ohif/app in this checkout, git-ignored)
#   NPM               npm executable (default: npm)
# Idempotent: does nothing when the pinned version is already installed there.
set -euo pipefail

OHIF_VERSION="3.13.2"
OHIF_INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="${LUNGSEG_OHIF_DIR:-$here/app}"
npm_bin="${NPM:-npm}"
stamp="$target/.lungseg-ohif-version"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$OHIF_VERSION" && -f "$target/index.html" ]]; then
    echo "OHIF $OHIF_VERSION already installed in $target"
    exit 0
fi
command -v "$npm_bin" >/dev/null || { echo "error: npm not found (install nodejs and npm)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "Downloading @ohif/app@$OHIF_VERSION from the npm registry..."
(cd "$work" && "$npm_bin" pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null)
tarball="$work/ohif-app-$OHIF_VERSION.tgz"
[[ -f "$tarball" ]] || { echo "error: npm pack did not produce $tarball" >&2; exit 1; }

actual="$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
if [[ "$actual" != "$OHIF_INTEGRITY" ]]; then
    echo "error: integrity mismatch for @ohif/app@$OHIF_VERSION" >&2
    echo "  expected $OHIF_INTEGRITY" >&2
    echo "  got      $actual" >&2
    exit 1
fi

tar -xzf "$tarball" -C "$work"
dist="$work/package/dist"
[[ -f "$dist/index.html" ]] || { echo "error: package has no dist/index.html" >&2; exit 1; }
rm -rf "$dist/ort" "$dist/dicom-microscopy-viewer"
find "$dist" -name '*.map' -type f -delete
cp "$work/package/LICENSE" "$dist/LICENSE-OHIF"
echo "$OHIF_VERSION" > "$dist/.lungseg-ohif-version"

rm -rf "$target.new"
mkdir -p "$(dirname "$target")"
mv "$dist" "$target.new"
rm -rf "$target"
mv "$target.new" "$target"
echo "OHIF $OHIF_VERSION installed in $target ($(du -sh "$target" | cut -f1))"
