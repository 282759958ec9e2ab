#!/usr/bin/env bash
# Packages a Linux bundle (build_bundle.py) as a .deb and states its glibc floor.
#
#   installers/linux/build_deb.sh [BUNDLE_DIR]      (default: build/installers/dist/qwen-local-chat)
#
# Run it on Debian 12 (or in a debian:12 container), the oldest system the package is for: the
# package names in Depends are that system's, and newer Debian and Ubuntu releases still provide
# them.
#
# Layout: the bundle in /opt/qwen-local-chat, a launcher in /usr/bin, a .desktop file and the icon
# in the hicolor theme. Depends is computed by dpkg-shlibdeps from every ELF file of the bundle,
# so it names exactly the system libraries the bundle leaves to the system (the spec drops them
# from the bundle), e.g. libegl1 and libxcb-cursor0. Needs dpkg-dev, and the packages of those
# libraries installed on the build machine (dpkg-shlibdeps looks them up there).
# A release variant's bundle names its package: qwen-local-chat (CPU) or qwen-local-chat-cuda.
# Output: build/installers/PACKAGE_VERSION_amd64.deb (or $QLC_OUT/…).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${QLC_OUT:-$root/build/installers}
bundle=$(realpath "${1:-$out/dist/qwen-local-chat}")
[ -x "$bundle/qwen-local-chat" ] && [ -d "$out/icons/png" ] || { echo "No bundle in $bundle or icons in $out/icons: run installers/build_bundle.py first" >&2; exit 1; }

version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")
variant=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["variant"])' "$bundle/_internal/app/build_info.json" 2>/dev/null || echo source)
package=qwen-local-chat
conflicts=""
if [ "$variant" = linux-cuda ]; then
    # Both variants install the same files, so one replaces the other.
    package=qwen-local-chat-cuda
    conflicts=$'\nProvides: qwen-local-chat\nConflicts: qwen-local-chat\nReplaces: qwen-local-chat'
fi

stage=$out/deb-root
rm -rf "$stage"
install -d "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" "$stage/usr/share/doc/$package"
cp -a "$bundle" "$stage/opt/qwen-local-chat"
install -m 755 "$here/qwen-local-chat.sh" "$stage/usr/bin/qwen-local-chat"
install -m 644 "$here/qwen-local-chat.desktop" "$stage/usr/share/applications/qwen-local-chat.desktop"
if command -v desktop-file-validate >/dev/null; then desktop-file-validate "$stage/usr/share/applications/qwen-local-chat.desktop"; fi
# The PNG icons build_bundle.py rendered beside the bundle (so this needs no Qt of its own).
for size in 16 24 32 48 64 128 256 512; do
    install -D -m 644 "$out/icons/png/$size.png" "$stage/usr/share/icons/hicolor/${size}x${size}/apps/qwen-local-chat.png"
done
install -D -m 644 "$root/resources/icons/app.svg" "$stage/usr/share/icons/hicolor/scalable/apps/qwen-local-chat.svg"
install -m 644 "$here/copyright" "$stage/usr/share/doc/$package/copyright"
install -m 755 "$here/postrm" "$stage/DEBIAN/postrm"

# Every ELF file of the bundle, and every folder holding a library of its own (dpkg-shlibdeps
# treats libraries found there as private, and asks for packages only for the others).
mapfile -t elf_files < <(find "$stage/opt" -type f -exec sh -c 'head -c 4 "$1" | grep -q "^.ELF" && echo "$1"' _ {} \;)
mapfile -t private_dirs < <(printf '%s\n' "${elf_files[@]}" | xargs -n1 dirname | sort -u)
shlibs_dir=$(mktemp -d)
trap 'rm -rf "$shlibs_dir"' EXIT
mkdir "$shlibs_dir/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: amd64\n' "$package" "$package" > "$shlibs_dir/debian/control"
if ! (cd "$shlibs_dir" && dpkg-shlibdeps -O --ignore-missing-info "${private_dirs[@]/#/-l}" "${elf_files[@]}" \
        >"$shlibs_dir/substvars" 2>"$shlibs_dir/log"); then
    grep "error:" "$shlibs_dir/log" | sed 's/ (ELF format.*//' | sort -u >&2
    echo "Install the packages of the libraries named above on this machine, then run this again." >&2
    exit 1
fi
depends=$(sed -n 's/^shlibs:Depends=//p' "$shlibs_dir/substvars")

# The glibc floor: the newest GLIBC_x.y symbol version any file of the bundle needs.
glibc_floor=$(for file in "${elf_files[@]}"; do objdump -T "$file" 2>/dev/null; done \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V | tail -1)

cat > "$stage/DEBIAN/control" <<CONTROL
Package: $package
Version: $version
Architecture: amd64
Maintainer: Qwen Local Chat maintainers <maintainers@qwen-local-chat.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Section: utils
Priority: optional$conflicts
Description: chat with Qwen3.5 language models offline
 A desktop app that runs Qwen3.5 GGUF models on your own computer with
 llama.cpp: nothing you type leaves it. Conversations are kept in a local
 database; replies stream as they are written, with the model's thinking
 shown apart.
CONTROL

deb="$out/${package}_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "Package: $deb ($(du -h "$deb" | cut -f1))"
echo "Depends: $depends"
echo "glibc floor: $glibc_floor (newest GLIBC_ symbol version the bundle needs)"
