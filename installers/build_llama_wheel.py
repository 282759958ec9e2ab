"""Builds the portable llama-cpp-python wheel of one release variant, and proves what it contains.

    python installers/build_llama_wheel.py linux-cpu [--wheel-dir DIR]

llama-cpp-python is published as source only, and pip compiles it with llama.cpp's defaults:
``-march=native`` for the build machine. A release needs the variant's fixed CPU baseline
instead (``variants.toml``), so this script compiles it with the variant's CMake options, without
pip's cache (the cached wheel of an ordinary ``pip install`` is neither used nor replaced), into
``build/installers/wheels/VARIANT``. It then loads the new wheel's llama.cpp and checks that the
backend and the instruction sets compiled in are exactly the variant's, so a wrong build stops
here rather than in the bundle's smoke test. It does not install anything.

On two cores the CPU build takes about 15–20 minutes; set CMAKE_BUILD_PARALLEL_LEVEL to use more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from variants import (
    BUILD_DIR,
    REPO_ROOT,
    host_platform,
    llama_cpp_python_requirement,
    load_variant,
)

# What the check below imports besides the wheel: llama-cpp-python's own dependencies, and what
# the app's build_info module needs (build_and_test.sh installs them before building).
CHECK_REQUIREMENTS = ("numpy", "typing-extensions", "diskcache", "jinja2", "psutil")

# Run in a child interpreter with the unpacked wheel first on sys.path, so it loads the new
# llama.cpp rather than an installed one; it prints build_mismatches() as JSON.
_CHECK = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import llama_cpp
assert llama_cpp.__file__.startswith(sys.argv[1]), llama_cpp.__file__
from app.core.engines.llama.build_info import BuildInfo, build_mismatches
print(json.dumps(build_mismatches(BuildInfo(**json.loads(sys.argv[3])))))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant")
    parser.add_argument("--wheel-dir", type=Path, help="default: build/installers/wheels/VARIANT")
    args = parser.parse_args()
    variant = load_variant(args.variant)
    if variant.platform != host_platform():
        raise SystemExit(f"{variant.name} is built on {variant.platform}, not {host_platform()}")
    wheel_dir = (args.wheel_dir or BUILD_DIR / "wheels" / variant.name).resolve()
    shutil.rmtree(wheel_dir, ignore_errors=True)
    wheel_dir.mkdir(parents=True)

    env = dict(os.environ, CMAKE_ARGS=" ".join(variant.cmake_args))
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
    print(f"Building {llama_cpp_python_requirement()} for {variant.name}: CMAKE_ARGS={env['CMAKE_ARGS']}", flush=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps",
            "--no-binary", "llama-cpp-python", "--wheel-dir", str(wheel_dir), llama_cpp_python_requirement(),
        ],
        env=env,
        check=True,
    )
    wheel = next(wheel_dir.glob("llama_cpp_python-*.whl"))

    with tempfile.TemporaryDirectory() as unpacked:
        zipfile.ZipFile(wheel).extractall(unpacked)
        result = subprocess.run(
            [sys.executable, "-c", _CHECK, unpacked, str(REPO_ROOT), json.dumps(variant.build_info())],
            capture_output=True, text=True,
        )
    if result.returncode != 0:
        # Say why: most often this interpreter lacks what llama_cpp and the app's check import.
        raise SystemExit(
            f"The check of {wheel.name} could not run in {sys.executable}:\n{result.stderr.strip()}\n"
            "Run this script with the build's virtual environment, where llama-cpp-python's "
            f"dependencies and psutil are installed (pip install {' '.join(CHECK_REQUIREMENTS)})."
        )
    problems = json.loads(result.stdout.strip().splitlines()[-1])
    if problems:
        raise SystemExit(f"{wheel.name} is not the {variant.name} build: " + "; ".join(problems))
    print(f"{wheel} matches {variant.name}: {variant.backend}, {variant.cpu_baseline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
