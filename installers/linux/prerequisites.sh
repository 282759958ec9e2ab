#!/usr/bin/env bash
# What the Linux release build needs, checked before anything long starts (sourced by
# build_and_test.sh). On Debian as root the missing packages are installed; elsewhere the one
# command that would install them is printed, and the build stops.
#
#   check_prerequisites PYTHON [--no-chroot-test]
#
# The build compiles llama.cpp (a C/C++ compiler, cmake), makes a virtual environment (an
# interpreter of 3.11 or newer, with a shared libpython for PyInstaller, and its venv module),
# packages the bundle (dpkg-dev, binutils' objdump, desktop-file-utils) and lets dpkg-shlibdeps
# name the packages of every system library the bundle leaves to the system, so those packages
# must be installed here. The clean-root test needs mmdebstrap (Xvfb is installed inside the root,
# not here).

# The packages of the system libraries the bundle's Qt and Python modules link against, on
# Debian 12: dpkg-shlibdeps looks each library up on the build machine.
BUNDLE_LIBRARY_PACKAGES=(
    libegl1 libgl1 libglib2.0-0 libdbus-1-3 libfontconfig1 libfreetype6
    libx11-6 libx11-xcb1 libxcb1 libxcb-cursor0 libxcb-glx0 libxcb-icccm4 libxcb-image0
    libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-shm0
    libxcb-sync1 libxcb-util1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0
    libwayland-client0 libwayland-cursor0 libwayland-egl1 libxrender1 libxext6 libzstd1 zlib1g
)
BUILD_PACKAGES=(build-essential cmake dpkg-dev binutils desktop-file-utils)

_missing_packages() {
    local package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || echo "$package"
    done
}

_python_problem() {
    local python=$1
    command -v "$python" >/dev/null || { echo "no Python interpreter \"$python\" (set PYTHON)"; return; }
    "$python" - <<'PYTHON'
import sys, sysconfig
if sys.version_info < (3, 11):
    print(f"Python {sys.version.split()[0]} is too old: 3.11 or newer is needed (set PYTHON)")
elif not sysconfig.get_config_var("Py_ENABLE_SHARED") and not sysconfig.get_config_var("LDLIBRARY", "").endswith(".so"):
    print(f"{sys.executable} has no shared libpython, which PyInstaller needs: use Debian's python3, "
          "pyenv's with PYTHON_CONFIGURE_OPTS=--enable-shared, or python-build-standalone (set PYTHON)")
else:
    try:
        import ensurepip, venv  # noqa: F401  (Debian splits them into python3-venv)
    except ImportError:
        print(f"{sys.executable} cannot make virtual environments: install python3-venv")
PYTHON
}

# Installs ``packages`` that are missing (Debian, as root), or says how and fails.
ensure_packages() {
    mapfile -t missing < <(_missing_packages "$@")
    [ ${#missing[@]} -gt 0 ] || return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && grep -q '^ID=debian' /etc/os-release 2>/dev/null; then
        echo "Installing what the build needs: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "The build needs these packages first:" >&2
        echo "    sudo apt-get install --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
}

check_prerequisites() {
    local python=$1 chroot_test=${2:-}
    local needed=("${BUILD_PACKAGES[@]}" "${BUNDLE_LIBRARY_PACKAGES[@]}")
    [ "$chroot_test" = --no-chroot-test ] || needed+=(mmdebstrap)
    if [ "$python" = python3 ]; then
        # Debian's interpreter: its venv module and its shared libpython are packages of their own.
        command -v python3 >/dev/null || needed+=(python3)
        [ "$(command -v python3 || echo /usr/bin/python3)" != /usr/bin/python3 ] || needed+=(python3-venv libpython3.11)
    fi
    ensure_packages "${needed[@]}"
    local problem
    problem=$(_python_problem "$python")
    if [ -n "$problem" ]; then
        echo "$problem" >&2
        return 1
    fi
}
