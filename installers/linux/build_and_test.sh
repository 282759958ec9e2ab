#!/usr/bin/env bash
# The whole Linux release path in one command, on a Debian 12 machine, as root:
#
#   sudo installers/linux/build_and_test.sh [VARIANT]          (default: linux-cpu)
#
# 1. the variant's portable llama-cpp-python wheel (build_llama_wheel.py; reused when
#    build/installers/wheels/VARIANT already holds one: delete it to rebuild, ~20 min on 2 cores);
# 2. a virtual environment with that wheel, the app and PyInstaller (build/installers/venv-VARIANT);
# 3. the bundle, and its smoke test (build_bundle.py --variant VARIANT --smoke-test);
# 4. the .deb (build_deb.sh);
# 5. the .deb installed, smoke-tested offscreen and under Xvfb, and removed on a clean Debian 12
#    root (test_deb_in_chroot.sh).
# PYTHON picks the interpreter (default python3, 3.11 or newer); PyInstaller needs one built with
# a shared libpython (Debian's, pyenv's with --enable-shared, python-build-standalone).
set -euo pipefail

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

if ! compgen -G "$wheels/llama_cpp_python-*.whl" >/dev/null; then
    timed "portable llama.cpp wheel" "$python" "$root/installers/build_llama_wheel.py" "$variant" --wheel-dir "$wheels"
fi
make_venv() {
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "$wheels"/llama_cpp_python-*.whl
    "$venv/bin/python" -m pip install --quiet "$root" "pyinstaller>=6.10"
}
timed "virtual environment" make_venv
timed "bundle and its smoke test" "$venv/bin/python" "$root/installers/build_bundle.py" --variant "$variant" --smoke-test --out "$out"
timed ".deb" env QLC_OUT="$out" "$here/build_deb.sh" "$out/dist/qwen-local-chat"
deb=$(ls -t "$out"/qwen-local-chat*_amd64.deb | head -1)
timed "clean Debian 12 install test" env QLC_OUT="$out" "$here/test_deb_in_chroot.sh" "$deb"

printf '\n=== Done: %s\n' "$deb"
printf '%s\n' "${timings[@]}"
