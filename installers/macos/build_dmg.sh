#!/usr/bin/env bash
# Packs the macOS app bundle into a .dmg, and signs, notarizes and staples it when the secrets
# are present.
#
#   installers/macos/build_dmg.sh [APP]      (default: build/installers/dist/Qwen Local Chat.app)
#
# Signing happens earlier, in build_bundle.py: with MACOS_SIGNING_IDENTITY set ("Developer ID
# Application: NAME (TEAMID)", its certificate in the keychain) PyInstaller signs every binary
# and the .app with the hardened runtime and entitlements.plist. Here, with that variable set,
# the signature is verified and the .dmg signed; with APPLE_ID, APPLE_TEAM_ID and
# APPLE_APP_PASSWORD (an app-specific password) set too, the .dmg is notarized by Apple and the
# ticket stapled to it, so Gatekeeper opens it offline. Without them the .dmg is unsigned
# (the app ad-hoc signed, as PyInstaller leaves it): fine for testing, not for users.
# Output: build/installers/qwen-local-chat-VERSION-macos-arm64.dmg (or $QLC_OUT/…).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${QLC_OUT:-$root/build/installers}
app=${1:-$out/dist/Qwen Local Chat.app}
version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")
dmg=$out/qwen-local-chat-$version-macos-arm64.dmg
identity=${MACOS_SIGNING_IDENTITY:-}

if [ -n "$identity" ]; then
    codesign --verify --deep --strict --verbose=2 "$app"
    codesign --display --verbose=2 "$app" 2>&1 | grep -q "^Authority=Developer ID Application" \
        || { echo "$app is not signed with a Developer ID" >&2; exit 1; }
fi

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp -R "$app" "$staging/"
ln -s /Applications "$staging/Applications"  # drag the app onto it to install
rm -f "$dmg"
hdiutil create -volname "Qwen Local Chat" -srcfolder "$staging" -fs HFS+ -format UDZO "$dmg"

if [ -n "$identity" ]; then
    codesign --force --timestamp --sign "$identity" "$dmg"
    if [ -n "${APPLE_ID:-}" ] && [ -n "${APPLE_TEAM_ID:-}" ] && [ -n "${APPLE_APP_PASSWORD:-}" ]; then
        xcrun notarytool submit "$dmg" --apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" \
            --password "$APPLE_APP_PASSWORD" --wait
        xcrun stapler staple "$dmg"
        xcrun stapler validate "$dmg"
        spctl --assess --type open --context context:primary-signature --verbose=2 "$dmg"
    fi
fi
echo "Disk image: $dmg"
