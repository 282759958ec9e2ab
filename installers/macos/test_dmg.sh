#!/usr/bin/env bash
# Installs the app from its .dmg the way a user does (copies it out of the mounted image), and
# runs its smoke test headless and on the macOS desktop (cocoa). Uninstalling a macOS app is
# deleting it, which the clean-up does; its data folder stays, as for every app.
#
#   installers/macos/test_dmg.sh PATH.dmg
set -euo pipefail

dmg=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d)
mount=$work/volume
applications=$work/Applications  # stands in for /Applications
cleanup() { hdiutil detach "$mount" -quiet 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

hdiutil attach "$dmg" -nobrowse -readonly -mountpoint "$mount" -quiet
mkdir "$applications"
cp -R "$mount/Qwen Local Chat.app" "$applications/"
hdiutil detach "$mount" -quiet
executable="$applications/Qwen Local Chat.app/Contents/MacOS/qwen-local-chat"

echo "== Smoke test, offscreen"
QT_QPA_PLATFORM=offscreen "$executable" --smoke-test --profile "$work/profile"
echo "== Smoke test on the desktop (cocoa)"
QT_QPA_PLATFORM=cocoa "$executable" --smoke-test --profile "$work/profile"

echo "== Passed: installed from the disk image and smoke-tested"
