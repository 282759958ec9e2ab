"""`python -m app --smoke-test`, the check every installer test runs, run here from the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKS = ["llama.cpp", "model", "vision", "data folder", "local API", "tools", "keyring", "Qt"]


def _smoke_test(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "--smoke-test", *args],
        check=False,
        cwd=REPO_ROOT,
        env=dict(os.environ, QT_QPA_PLATFORM="offscreen"),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_smoke_test_passes_every_check_and_leaves_the_profile_as_it_found_it(tmp_path: Path) -> None:
    profile, report, screenshot = tmp_path / "profile", tmp_path / "report.txt", tmp_path / "screen.png"

    result = _smoke_test("--profile", str(profile), "--report", str(report), "--screenshot", str(screenshot))

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [f"ok   {check}" for check in CHECKS]
    assert lines[-1] == "Qwen Local Chat smoke test passed"
    assert "source build: CPU backend" in lines[0]
    assert "generated 6 tokens" in lines[1]  # "Why</think>Ok": W, h, y, </think>, O, k
    assert report.read_text(encoding="utf-8") == result.stdout
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    # The folders it had to create for the data folder, and its test database, are gone again.
    assert not profile.exists()


def test_smoke_test_fails_with_the_reason_when_the_data_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "profile"
    blocker.write_text("a file where the profile folder should be", encoding="utf-8")

    result = _smoke_test("--profile", str(blocker))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ok   llama.cpp", "ok   model", "ok   vision", "FAIL data folder"]
    assert str(blocker) in lines[-1]
