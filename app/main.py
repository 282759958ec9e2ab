"""Composition root: builds the core objects, the inference thread and the window, and wires them.

This is the one module that knows both layers; ``app.core`` never learns that Qt exists.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# numpy comes only with llama-cpp-python's high-level API, which the app never calls; one
# OpenBLAS thread instead of one per core saves its per-thread buffers (~5 MB).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The core (and llama.cpp, numpy, Jinja, keyring, gguf with it) is imported before PySide6: once
# PySide6 is imported, shiboken reads the source of every module imported after it, looking for
# "PySide6", and linecache keeps it all: ~15 MB for the rest of the session (bench/README.md).
from app.core.app_paths import APP_NAME, AppPaths  # noqa: I001 (this order on purpose)
from app.core.conversation_store import ConversationStore, StoreError
from app.core.fit_estimate import assess_fit  # noqa: F401 (imported early, see above)
from app.core.inference_engine import InferenceEngine
from app.core.model_downloads import DownloadManager  # noqa: F401 (imported early, see above)
from app.core.secret_store import SecretStore
from app.core.settings import load_settings, save_settings

from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from app.ui.inference_worker import InferenceService
from app.ui.main_window import MainWindow
from app.ui.models_controller import ModelsController
from app.ui.theme import THEMES, apply_theme


def build_main_window(paths: AppPaths) -> MainWindow:
    """Creates the whole app for ``paths`` (a QApplication must exist); the caller shows it.

    Everything it opens is closed when the window closes.
    """
    store = ConversationStore(paths.database)
    settings = load_settings(paths.settings_file)
    inference = InferenceService(InferenceEngine())
    models = ModelsController(paths, settings, SecretStore())
    window = MainWindow(store, settings, inference, models)
    window.sig_settings_changed.connect(lambda: save_settings(settings, paths.settings_file))
    window.destroyed.connect(lambda: store.close())
    return window


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--smoke-test" in argv:  # the installers' self-check: headless, exits when done
        from app.smoke_test import main as smoke_test

        return smoke_test([arg for arg in argv if arg != "--smoke-test"])
    parser = argparse.ArgumentParser(
        prog="qwen-local-chat",
        description="Chat with Qwen3.5 models offline.",
        epilog="qwen-local-chat --smoke-test [--help] checks this installation and exits.",
    )
    parser.add_argument("--profile", type=Path, help="keep data and settings in this folder instead of the default")
    parser.add_argument("--model", type=Path, help="load this GGUF model at start")
    parser.add_argument("--theme", choices=list(THEMES), help="colour scheme (default: as in Settings, normally the system's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setDesktopFileName("qwen-local-chat")
    paths = AppPaths.under(args.profile) if args.profile else AppPaths.default()
    apply_theme(app, THEMES[args.theme or load_settings(paths.settings_file).theme])
    try:
        window = build_main_window(paths)
    except StoreError as error:
        QMessageBox.critical(None, APP_NAME, str(error))
        return 1
    window.show()
    model = args.model or window.last_model_if_present()
    if model is not None:
        window.load_model(model)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
