"""Builds the app's one-folder bundle with PyInstaller (qwen-local-chat.spec) and smoke-tests it.

    python installers/build_bundle.py [--variant VARIANT] [--smoke-test] [--out DIR]

The bundle carries the app and the llama-cpp-python installed in the Python that runs this
script: for a release, install the variant's portable wheel (build_llama_wheel.py) first. With
``--variant`` the bundle records the variant's backend and CPU baseline, and its smoke test fails
unless the llama.cpp it carries matches them; without it, it is a development bundle that reports
whichever llama.cpp it carries. ``--smoke-test`` then runs the bundled executable's
``--smoke-test`` headless. Output goes to ``DIR/dist/qwen-local-chat/`` (on macOS also
``DIR/dist/Qwen Local Chat.app``); ``DIR`` defaults to build/installers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from make_icons import make_icons
from variants import BUILD_DIR, INSTALLERS_DIR, host_platform, load_variant

NAME = "qwen-local-chat"


def bundled_executable(dist: Path) -> Path:
    """The executable to run: inside the .app on macOS, the one that is signed and shipped."""
    if sys.platform == "darwin":
        return dist / "Qwen Local Chat.app" / "Contents" / "MacOS" / NAME
    return dist / NAME / (f"{NAME}.exe" if sys.platform == "win32" else NAME)


def build(out: Path, variant_name: str | None) -> Path:
    """Builds the bundle under ``out`` and returns its executable."""
    make_icons(out / "icons")
    env = dict(os.environ, QLC_ICONS_DIR=str(out / "icons"))
    if variant_name:
        variant = load_variant(variant_name)
        if variant.platform != host_platform():
            raise SystemExit(f"{variant.name} is bundled on {variant.platform}, not {host_platform()}")
        info = out / "build_info.json"
        info.write_text(json.dumps(variant.build_info(), indent=2) + "\n", encoding="utf-8")
        env["QLC_BUILD_INFO"] = str(info)
    subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
            "--distpath", str(out / "dist"), "--workpath", str(out / "pyinstaller"),
            str(INSTALLERS_DIR / f"{NAME}.spec"),
        ],
        env=env,
        check=True,
    )
    return bundled_executable(out / "dist")


def smoke_test(executable: Path, *extra: str) -> int:
    """Runs ``executable --smoke-test`` headless on a throwaway profile; returns its exit status."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.txt"
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        command = [str(executable), "--smoke-test", "--profile", str(Path(folder) / "profile"), "--report", str(report), *extra]
        # The report file, not standard output: a windowed Windows executable has none.
        result = subprocess.run(command, check=False, env=env, stdout=subprocess.DEVNULL, timeout=600)
        print(report.read_text(encoding="utf-8") if report.exists() else "(no report written)", end="")
    return result.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", help="a release variant of variants.toml (default: a development bundle)")
    parser.add_argument("--smoke-test", action="store_true", help="run the bundled app's smoke test afterwards")
    parser.add_argument("--out", type=Path, default=BUILD_DIR, help="output folder (default: build/installers)")
    args = parser.parse_args()
    executable = build(args.out.resolve(), args.variant)
    print(f"Bundle: {executable}", flush=True)
    if args.smoke_test:
        status = smoke_test(executable)
        print("Smoke test passed" if status == 0 else f"Smoke test FAILED (exit status {status})")
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
