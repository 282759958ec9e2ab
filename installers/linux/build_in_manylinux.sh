#!/usr/bin/env bash
# Builds a Linux variant's portable wheel and bundle for release, on glibc 2.28.
#
#   docker run --rm -v "$PWD:/src" -w /src quay.io/pypa/manylinux_2_28_x86_64 \
#       installers/linux/build_in_manylinux.sh linux-cpu
#
# A bundle runs only on systems whose glibc is at least as new as the one it was built on. Built
# on Debian 12 it needs glibc 2.35 or newer (build_deb.sh prints the floor); built here, in
# AlmaLinux 8's manylinux_2_28 image, it needs 2.28, the floor PySide6's own wheels set anyway:
# Debian 10+, Ubuntu 18.10+, RHEL 8+. The .deb is then made from it on Debian 12 (build_deb.sh).
# manylinux's interpreters have no shared libpython, which PyInstaller needs; uv installs
# python-build-standalone's CPython, which has one and runs on glibc 2.17 and newer.
set -euo pipefail

variant=${1:?usage: build_in_manylinux.sh VARIANT}
root=$(cd "$(dirname "$0")/../.." && pwd)

# The system libraries Qt loads for the bundle's offscreen smoke test (the bundle leaves them to
# the system).
dnf install -y -q mesa-libEGL mesa-libGL libX11 libxkbcommon fontconfig freetype glib2 dbus-libs zlib libzstd
if [ "$variant" = linux-cuda ]; then
    dnf config-manager --add-repo https://developer.download.nvidia.com/compute/cuda/repos/rhel8/x86_64/cuda-rhel8.repo
    dnf install -y -q cuda-nvcc-12-6 cuda-cudart-devel-12-6 libcublas-devel-12-6
    export PATH=/usr/local/cuda-12.6/bin:$PATH
    # PyInstaller finds the CUDA runtime and cuBLAS libraries here and bundles them.
    export LD_LIBRARY_PATH=/usr/local/cuda-12.6/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

/opt/python/cp311-cp311/bin/python -m pip install --quiet uv
uv=/opt/python/cp311-cp311/bin/uv
"$uv" python install 3.11
"$uv" venv --seed --python 3.11 /tmp/build-venv
python=/tmp/build-venv/bin/python
# What build_llama_wheel.py's check imports (llama-cpp-python's and the app core's dependencies).
"$python" -m pip install --quiet numpy typing-extensions diskcache jinja2 psutil
"$python" "$root/installers/build_llama_wheel.py" "$variant"
"$python" -m pip install --quiet "$root"/build/installers/wheels/"$variant"/llama_cpp_python-*.whl
"$python" -m pip install --quiet "$root" "pyinstaller>=6.10"
"$python" "$root/installers/build_bundle.py" --variant "$variant" --smoke-test
