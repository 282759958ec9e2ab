"""Composition root: builds the core services (``app.composition``) and the window, and wires them.

This is the one module that knows both layers; ``app.core`` never learns that Qt exists, and
``app.ui`` never sees the store or the engine, only the services and their events.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

# numpy comes only with llama-cpp-python's high-level API, which the app never calls; one
# OpenBLAS thread instead of one per core saves its per-thread buffers (~5 MB).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The core (and llama.cpp, numpy, Jinja, keyring, gguf with it) is imported before PySide6: once
# PySide6 is imported, shiboken reads the source of every module imported after it, looking for
# "PySide6", and linecache keeps it all: ~15 MB for the rest of the session (bench/README.md).
from app.composition import CoreServices  # noqa: I001 (this order on purpose)
from app.core.api.local_api_service import configured_api
from app.core.conversations.conversation_store import StoreError
from app.core.engines.llama.build_info import build_info
from app.core.engines.llama.llama_runtime import accelerator_report
from app.core.engines.llama.model_probe import CHECK_MODEL_FLAG, run_check
from app.core.models.fit_estimate import assess_fit  # noqa: F401 (imported early, see above)
from app.core.models.hardware_probe import probe_hardware
from app.core.models.model_downloads import DownloadManager  # noqa: F401 (imported early, see above)
from app.core.profile.app_paths import APP_NAME, AppPaths
from app.core.profile.secret_store import API_KEY_USERNAME, SecretStore
from app.core.profile.settings import load_settings, save_settings
from app.smoke_mcp_server import MCP_SERVER_FLAG

from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from app.ui.main_window import MainWindow
from app.ui.models_controller import ModelsController
from app.ui.theme import THEMES, apply_theme, set_font_size


@dataclass(frozen=True)
class DesktopApp:
    """The window and the core services behind it."""

    window: MainWindow
    core: CoreServices


def build_app(paths: AppPaths) -> DesktopApp:
    """Creates the whole app for ``paths`` (a QApplication must exist); the caller shows the
    window. Closing the window shuts the core down. Raises ``StoreError`` when the conversation
    file cannot be used."""
    settings = load_settings(paths.settings_file)
    core = CoreServices.start(paths, settings)
    models = ModelsController(
        paths, settings, SecretStore(),
        lambda folder, speed: probe_hardware(folder, accelerator_report(), speed),
    )
    api_key = SecretStore(API_KEY_USERNAME, "local API key")
    window = MainWindow(
        core.session, core.library, core.engine, settings, models, build_info().describe(), core.api, api_key,
        core.image_path, core.tools, core.model_servers, core.saved_states,
    )
    window.sig_settings_changed.connect(lambda: save_settings(settings, paths.settings_file))
    # Changed settings are saved, the image detail among them: the session follows it (a job of
    # no cost when it is unchanged).
    window.sig_settings_changed.connect(lambda: core.session.set_image_detail(settings.image_detail))
    # And whether it reads the next message while it is typed (the states' budget is read by the
    # state files themselves, at their next write).
    window.sig_settings_changed.connect(
        lambda: core.session.set_read_while_typing(settings.read_while_typing, on_battery=settings.read_while_typing_on_battery)
    )
    # Offline mode too: the tool service stops and keeps off the servers on other computers.
    window.sig_settings_changed.connect(lambda: core.tools.set_offline(settings.offline_mode))
    # And the model servers stop contacting, or contact again, those on other computers.
    window.sig_settings_changed.connect(lambda: core.model_servers.set_offline(settings.offline_mode))
    # A function, not the bound method: Qt holds a bound method of a plain object only weakly, and a
    # caller that keeps just the window would lose the core and never shut it down.
    window.sig_closing.connect(lambda: core.shutdown())
    if settings.api_server_enabled:  # after the window, whose status bar reports how it went
        wanted = configured_api(settings, "")  # the key is read on the service's worker
        core.api.apply_later(lambda: replace(wanted, api_key=api_key.token() or ""))
    return DesktopApp(window, core)


def build_main_window(paths: AppPaths) -> MainWindow:
    """The window of :func:`build_app`."""
    return build_app(paths).window


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHECK_MODEL_FLAG]:  # the bundled app's first-use check of a model file
        return run_check(*argv[1:3])
    if argv[:1] == [MCP_SERVER_FLAG]:  # the smoke test's MCP server (the bundle has no Python)
        from app.smoke_mcp_server import main as serve_mcp

        return serve_mcp()
    if "--smoke-test" in argv:  # the installers' self-check: headless, exits when done
        from app.smoke_test import main as smoke_test

        return smoke_test([arg for arg in argv if arg != "--smoke-test"])
    parser = argparse.ArgumentParser(
        prog="qwen-local-chat",
        description="Chat with Qwen3.5 models offline.",
        epilog="qwen-local-chat serve --help: the local API without a window. "
        "qwen-local-chat --smoke-test [--help] checks this installation and exits.",
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
    settings = load_settings(paths.settings_file)
    apply_theme(app, THEMES[args.theme or settings.theme])
    if settings.font_size:
        set_font_size(app, settings.font_size)
    try:
        desktop = build_app(paths)
    except StoreError as error:
        QMessageBox.critical(None, APP_NAME, str(error))
        return 1
    window = desktop.window
    window.show()
    model = args.model or window.last_model_if_present()
    if model is not None:
        window.load_model(model)
    status = app.exec()
    if desktop.core.engine.thread.is_alive():
        # A native call never returned (closing waited ENGINE_STOP_SECONDS for it). Conversations
        # and settings are saved by now; the interpreter's normal exit could hang on that thread.
        logging.getLogger(__name__).warning("The inference thread did not stop; exiting without it.")
        logging.shutdown()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
