#!/usr/bin/env bash
# Proves a .deb on a clean Debian 12: install, smoke test offscreen and under Xvfb, uninstall, and
# nothing of it left behind.
#
#   sudo installers/linux/test_deb_in_chroot.sh PATH.deb
#
# 1. mmdebstrap makes a minimal Debian 12 (bookworm) root (variant minbase); the pristine root is
#    kept as build/installers/debian12-minbase.tar and unpacked anew for every run (delete the tar
#    to start from the mirror again). MIRROR chooses the Debian mirror (default: mmdebstrap's).
# 2. Records every file of the root, then installs the package with apt, which fetches exactly
#    what its Depends names (no Recommends), and as a normal user runs
#    `qwen-local-chat --smoke-test` on Qt's offscreen platform: Depends alone must be enough.
# 3. Installs Xvfb (a test tool, not a dependency) and runs the smoke test again on X11 (xcb)
#    with a screenshot of the screen, saved as build/installers/chroot-xvfb-screenshot.png.
# 4. Purges the package, Xvfb and every dependency they brought, and compares the root's files
#    with the record: any file added or missing (the user's home and caches aside) fails.
# Needs root (chroot, mounts), mmdebstrap and network access to the Debian mirror.
set -euo pipefail

deb=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${QLC_OUT:-$root/build/installers}
tarball=$out/debian12-minbase.tar
target=$out/debian12-root
package=$(dpkg-deb --field "$deb" Package)

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }
in_root() { chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
as_user() { in_root runuser -u tester -- env HOME=/home/tester XDG_RUNTIME_DIR=/tmp/runtime-tester "$@"; }
unmount() { for mount in dev/pts dev/shm sys proc; do umount "$target/$mount" 2>/dev/null || true; done; }
trap unmount EXIT

if [ ! -f "$tarball" ]; then
    step "Making a clean Debian 12 root with mmdebstrap"
    mkdir -p "$out"
    mmdebstrap --variant=minbase bookworm "$tarball" ${MIRROR:+"$MIRROR"}
fi
step "Unpacking the clean root"
unmount
rm -rf "$target"
mkdir -p "$target"
tar -xf "$tarball" -C "$target"
cp /etc/resolv.conf "$target/etc/resolv.conf"
mount -t proc proc "$target/proc"
mount -t sysfs sysfs "$target/sys"
mount -t tmpfs tmpfs "$target/dev/shm"
mount -t devpts devpts "$target/dev/pts"
in_root useradd --create-home tester
in_root apt-get update -qq

# Every file of the root except those that change by themselves or belong to the user (ldconfig's
# cache is rewritten whenever any library comes or goes).
snapshot() {
    (cd "$target" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
        -o -path ./home/tester -o -path ./root -o -path ./var/log -o -path ./var/cache/apt -o -path ./var/lib/apt/lists \
        -o -path ./var/cache/debconf -o -path ./var/cache/ldconfig \) -prune -o -print | sort)
}
snapshot > "$out/chroot-files-before.txt"

step "Installing $(basename "$deb") with apt"
cp "$deb" "$target/tmp/package.deb"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/package.deb >/dev/null
in_root dpkg -s "$package" | grep -E '^(Version|Depends):'
for file in /usr/bin/qwen-local-chat /opt/qwen-local-chat/qwen-local-chat /usr/share/applications/qwen-local-chat.desktop \
    /usr/share/icons/hicolor/256x256/apps/qwen-local-chat.png /usr/share/icons/hicolor/scalable/apps/qwen-local-chat.svg; do
    [ -e "$target$file" ] || { echo "missing after install: $file" >&2; exit 1; }
done
in_root mkdir -p -m 700 /tmp/runtime-tester
in_root chown tester: /tmp/runtime-tester

step "Smoke test on Qt's offscreen platform"
as_user env QT_QPA_PLATFORM=offscreen qwen-local-chat --smoke-test

step "Installing Xvfb to test on"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xvfb xauth >/dev/null

step "Smoke test on X11 (xcb) under Xvfb, with a screenshot"
as_user xvfb-run --auto-servernum --server-args="-screen 0 1280x800x24" \
    env QT_QPA_PLATFORM=xcb qwen-local-chat --smoke-test --screenshot /tmp/xvfb-screenshot.png
cp "$target/tmp/xvfb-screenshot.png" "$out/chroot-xvfb-screenshot.png"
echo "Screenshot: $out/chroot-xvfb-screenshot.png"

step "Purging $package, Xvfb and the dependencies they brought"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$package" xvfb xauth >/dev/null
in_root env DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null
snapshot > "$out/chroot-files-after.txt"
if ! diff -u "$out/chroot-files-before.txt" "$out/chroot-files-after.txt"; then
    echo "FAIL: the root's files differ from before the install (above: + added, - removed)" >&2
    exit 1
fi
step "Passed: installed, smoke-tested offscreen and under Xvfb, and removed without a trace"
