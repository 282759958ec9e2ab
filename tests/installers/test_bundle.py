"""The PyInstaller bundle builds from the shared spec, carries what PyInstaller cannot see by
itself, and passes its own smoke test.

This is CI's check of the bundling recipe that every installer starts from; the installers made
from the bundle are proven by the scripts and the workflow described in installers/README.md. It
builds a development bundle (the llama.cpp installed here, no release variant): a minute or two.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_bundle_builds_and_passes_its_smoke_test(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "installers" / "build_bundle.py"), "--smoke-test", "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
    )

    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ok   llama.cpp: llama-cpp-python" in result.stdout
    assert "Qwen Local Chat smoke test passed" in result.stdout
    bundled = tmp_path / "dist" / "qwen-local-chat" / "_internal"
    assert list((bundled / "llama_cpp" / "lib").glob("*llama*"))
    assert (bundled / "app" / "resources" / "style.qss").is_file()
    if sys.platform == "linux":
        platforms = bundled / "PySide6" / "Qt" / "plugins" / "platforms"
        assert {"libqxcb.so", "libqwayland.so", "libqoffscreen.so"} <= {path.name for path in platforms.iterdir()}
        # System libraries are the .deb's dependencies, never copies from the build machine.
        assert not list(bundled.glob("libX11.so*")) and not list(bundled.glob("libfontconfig.so*"))
