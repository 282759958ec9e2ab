"""A fresh app process that reports its start-up and memory: run by the benchmark, not by hand.

``python -m bench.startup_probe PROFILE [--model PATH]`` starts the app as ``app.main.main``
does (QApplication, theme, ``build_main_window``, ``show``) and prints one JSON line per event to
stdout: ``shown`` when the window has been painted for the first time (the parent process times
this line from the moment it started the process, so interpreter start and imports count),
``idle`` with the memory after the window has been idle for a moment, and with ``--model``
``loaded`` with the memory once the model is loaded and ready.
"""

from __future__ import annotations

import json
import sys
import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import psutil  # noqa: E402

# First, as the app's entry point imports it: app.main decides what is imported before PySide6.
from app.main import THEMES, build_main_window  # noqa: E402, I001

from PySide6.QtCore import QEvent, QObject  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.profile.app_paths import APP_NAME, AppPaths  # noqa: E402
from app.ui.theme import apply_theme  # noqa: E402
from bench.gui_checks import run_until, settle  # noqa: E402

IDLE_SETTLE_S = 2.0


def _report(event: str) -> None:
    values = {
        "event": event,
        "seconds": time.perf_counter() - _STARTED,
        "rss_bytes": psutil.Process().memory_info().rss,
        "anonymous_bytes": _anonymous_bytes(),
    }
    print(json.dumps(values), flush=True)


def _anonymous_bytes() -> int | None:
    """Resident memory not backed by a file (Linux): what the system cannot just drop and reread.
    The rest of the RSS is mapped files, such as the parts of the model llama.cpp reads in place."""
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class _FirstPaint(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.painted = False

    def eventFilter(self, _watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Paint:
            self.painted = True
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args(argv)

    # What app.main.main does before its event loop (it also parses arguments, sets up logging).
    app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setDesktopFileName("qwen-local-chat")
    apply_theme(app, THEMES["system"])
    window = build_main_window(AppPaths.under(args.profile))
    first_paint = _FirstPaint()
    window.installEventFilter(first_paint)
    window.show()
    run_until(lambda: first_paint.painted)
    _report("shown")

    settle(IDLE_SETTLE_S)
    _report("idle")

    if args.model is not None:
        window.load_model(args.model)
        run_until(lambda: window.composer.send_button.isEnabled())
        settle(IDLE_SETTLE_S)
        _report("loaded")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
