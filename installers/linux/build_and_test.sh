#!/usr/bin/env bash
# The whole Linux release path in one command, on a Debian 12 machine, as root:
#
#   sudo installers/linux/build_and_test.sh [--clean-root] [VARIANT]      (default: linux-cpu)
#
# 0. every prerequisite, checked first (prerequisites.sh): on Debian as root the missing packages
#    are installed, elsewhere the command that would install them is printed;
# 1. a virtual environment (build/installers/venv-VARIANT) with what the wheel's check imports;
# 2. the variant's portable llama-cpp-python wheel, built and checked with that environment's
#    interpreter (build_llama_wheel.py; reused when build/installers/wheels/VARIANT already holds
#    one: delete it to rebuild, ~20 min on 2 cores);
# 3. the wheel, the app and PyInstaller in the environment, then the bundle and its smoke test
#    (build_bundle.py --variant VARIANT --smoke-test);
# 4. the .deb (build_deb.sh);
# 5. the .deb installed, smoke-tested offscreen and under Xvfb, and removed on a clean Debian 12
#    root (test_deb_in_chroot.sh).
#
# --clean-root (the release workflow's mode) runs steps 0-4 inside a fresh Debian 12 root made
# with mmdebstrap, from the source tree alone (the files git tracks, nothing built), so a step
# that only works because of something on the build machine fails there; step 5 then tests that
# root's .deb. Its output: build/installers/clean-root/.
# PYTHON picks the interpreter (default python3, 3.11 or newer); PyInstaller needs one built with
# a shared libpython (Debian's, pyenv's with --enable-shared, python-build-standalone).
set -euo pipefail

clean_root=""
if [ "${1:-}" = --clean-root ]; then
    clean_root=yes
    shift
fi
variant=${1:-linux-cpu}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${QLC_OUT:-$root/build/installers}
python=${PYTHON:-python3}
venv=$out/venv-$variant
wheels=$out/wheels/$variant
timings=()
timed() {
    local name=$1 start=$SECONDS
    shift
    printf '\n=== %s\n' "$name"
    "$@"
    timings+=("$(printf '%-34s %4ss' "$name" $((SECONDS - start)))")
}
report() {
    printf '\n=== Done: %s\n' "$1"
    printf '%s\n' "${timings[@]}"
}

# shellcheck source=prerequisites.sh
source "$here/prerequisites.sh"

# Steps 0-4 on this machine (or, with --clean-root, run by that mode inside the root).
build() {
    timed "prerequisites" check_prerequisites "$python" ${QLC_NO_CHROOT_TEST:+--no-chroot-test}
    make_check_venv() {
        rm -rf "$venv"
        "$python" -m venv "$venv"
        # What build_llama_wheel.py's check imports (llama_cpp's own dependencies, psutil).
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -c 'import sys; sys.path.insert(0, sys.argv[1]); from build_llama_wheel import CHECK_REQUIREMENTS; print(*CHECK_REQUIREMENTS)' "$root/installers" \
            | xargs "$venv/bin/python" -m pip install --quiet
    }
    timed "virtual environment" make_check_venv
    if ! compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null; then
        timed "portable llama.cpp wheel" "$venv/bin/python" "$root/installers/build_llama_wheel.py" "$variant" --wheel-dir "$wheels"
    fi
    install_app() {
        "$venv/bin/python" -m pip install --quiet "$wheels"/llama_cpp_python-*.whl
        "$venv/bin/python" -m pip install --quiet "$root" "pyinstaller>=6.10"
    }
    timed "the wheel, the app and PyInstaller" install_app
    timed "bundle and its smoke test" "$venv/bin/python" "$root/installers/build_bundle.py" --variant "$variant" --smoke-test --out "$out"
    timed ".deb" env QLC_OUT="$out" "$here/build_deb.sh" "$out/dist/qwen-local-chat"
}

if [ -n "${QLC_BUILD_ONLY:-}" ]; then  # inside the clean root: steps 0-4, the root's own
    build
    report "$(ls -t "$out"/qwen-local-chat*_amd64.deb | head -1)"
elif [ -z "$clean_root" ]; then
    build
    deb=$(ls -t "$out"/qwen-local-chat*_amd64.deb | head -1)
    timed "clean Debian 12 install test" env QLC_OUT="$out" "$here/test_deb_in_chroot.sh" "$deb"
    report "$deb"
else
    ensure_packages mmdebstrap
    build_root=$out/clean-root/debian12
    unmount() { for mount in dev/pts dev/shm sys proc; do umount "$build_root/$mount" 2>/dev/null || true; done; }
    trap unmount EXIT
    make_root() {
        unmount
        rm -rf "$build_root"
        mkdir -p "$build_root"
        # minbase, and the certificates that fetching from PyPI needs; the build script itself
        # must install everything else.
        mmdebstrap --variant=minbase --include=ca-certificates bookworm "$build_root" ${MIRROR:+"$MIRROR"}
        # This machine's network settings go in, nothing else: its resolver, and the certificates
        # it trusts (a network that inspects TLS signs PyPI's with a certificate of its own).
        cp /etc/resolv.conf "$build_root/etc/resolv.conf"
        cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$build_root/etc/ssl/certs/build-machine-ca.crt"
        mount -t proc proc "$build_root/proc"
        mount -t sysfs sysfs "$build_root/sys"
        mount -t tmpfs tmpfs "$build_root/dev/shm"
        mount -t devpts devpts "$build_root/dev/pts"
        # The source tree alone: the files git tracks, as they are in this working tree.
        mkdir "$build_root/src"
        (cd "$root" && git ls-files -z | xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$build_root/src"
    }
    timed "clean Debian 12 root with the source tree" make_root
    network=(PIP_CERT=/etc/ssl/certs/build-machine-ca.crt)
    for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        [ -z "${!name:-}" ] || network+=("$name=${!name}")
    done
    timed "the whole build inside that root" chroot "$build_root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 QLC_BUILD_ONLY=1 QLC_NO_CHROOT_TEST=1 "${network[@]}" \
        ${CMAKE_BUILD_PARALLEL_LEVEL:+CMAKE_BUILD_PARALLEL_LEVEL=$CMAKE_BUILD_PARALLEL_LEVEL} \
        bash /src/installers/linux/build_and_test.sh "$variant"
    deb=$(ls -t "$build_root"/src/build/installers/qwen-local-chat*_amd64.deb | head -1)
    mkdir -p "$out/clean-root"
    cp "$deb" "$out/clean-root/"
    deb=$out/clean-root/$(basename "$deb")
    timed "clean Debian 12 install test" env QLC_OUT="$out/clean-root" "$here/test_deb_in_chroot.sh" "$deb"
    report "$deb"
fi
