"""What a hostile model file or a stuck inference thread does to the window: nothing it cannot
explain, and it always closes (pytest-qt, offscreen, the whole app)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.conversations.conversation_store import ConversationStore
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.profile.app_paths import AppPaths
from app.core.profile.settings import Settings, save_settings
from tests.gguf_mutations import declare_huge_tensor
from tests.ui.app_driver import WAIT_MS, close, load, open_app, type_and_send

TERABYTE = 1024**4


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def _answer_next_question(button: QMessageBox.StandardButton) -> None:
    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QMessageBox):
            QTimer.singleShot(10, answer)
            return
        dialog.button(button).click()

    QTimer.singleShot(0, answer)


def test_the_first_use_check_of_a_model_is_shown_and_happens_once(qtbot, paths, tiny_model) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    statuses: list[str] = []
    window._engine_bridge.sig_model_checking.connect(lambda _event: statuses.append(window.model_status.text()))
    window._engine_bridge.sig_model_loading.connect(lambda _event: statuses.append(window.model_status.text()))
    load(qtbot, app, tiny_model)
    assert statuses[0] == "Checking tiny-thinking.gguf (first use)…"
    assert statuses[-1] == "Loading tiny-thinking.gguf…"  # checked, then loaded in the app
    assert window.model_status.text() == "tiny-thinking"

    statuses.clear()
    load(qtbot, app, tiny_model)  # known now: loaded without a check
    assert not [status for status in statuses if status.startswith("Checking")]
    close(app)


def test_a_hostile_model_file_is_refused_with_its_reason_and_the_loaded_model_stays(qtbot, paths, tiny_model, tmp_path) -> None:
    hostile = write_tiny_qwen35_gguf(tmp_path / "hostile.gguf", overrides={"qwen35.full_attention_interval": 0})
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    window.load_model(hostile)
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    text = window.error_banner.label.text()
    assert "“hostile.gguf” cannot be used: qwen35.full_attention_interval is 0" in text
    assert "Still using tiny-thinking." in text
    assert window.composer.send_button.isEnabled()
    assert hostile not in [model.path for model in window._models.local_models()]
    close(app)


def test_a_model_too_large_for_the_free_memory_loads_only_after_a_confirmed_warning(qtbot, paths, tiny_model, tmp_path) -> None:
    huge = declare_huge_tensor(write_tiny_qwen35_gguf(tmp_path / "huge.gguf"), TERABYTE)
    app = open_app(qtbot, paths)
    window = app.window
    load(qtbot, app, tiny_model)
    window.load_model(huge)
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert "does not fit in the memory free now. Needs 1024.0 GB, but only" in window.error_banner.label.text()
    load_anyway = window.error_banner.action_buttons[-1]
    assert load_anyway.text() == "Load anyway…"

    _answer_next_question(QMessageBox.StandardButton.Cancel)
    load_anyway.click()
    assert window._loading_source is None  # cancelled: nothing was started

    _answer_next_question(QMessageBox.StandardButton.Yes)
    load_anyway.click()
    assert window._loading_source == huge
    qtbot.waitUntil(lambda: window._loading_source is None, timeout=WAIT_MS)
    # Allowed past the memory check, the file still meets llama.cpp's own: refused, not loaded.
    assert "has wrong shape" in window.error_banner.label.text()
    assert window.model_status.text() == "tiny-thinking"
    close(app)


@pytest.fixture
def stuck_engine(qtbot, paths, tiny_model):
    """The app with a model loaded and its inference thread busy until the returned event is set
    (set at the end in any case), as a native call that does not return would keep it."""
    app = open_app(qtbot, paths)
    load(qtbot, app, tiny_model)
    release = threading.Event()
    app.core.engine.call(lambda engine: release.wait())
    yield app, release
    release.set()


def test_a_stop_the_engine_does_not_answer_is_explained(qtbot, stuck_engine) -> None:
    app, release = stuck_engine
    window = app.window
    type_and_send(qtbot, app, "Hello")
    assert window.is_generating
    window.stop_action.trigger()
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert window.error_banner.label.text().startswith("The model has not stopped yet")
    assert window.is_generating
    release.set()
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
    close(app)


def test_closing_while_the_engine_is_stuck_saves_the_conversation_and_does_not_wait_for_it(qtbot, paths, stuck_engine) -> None:
    app, release = stuck_engine
    window = app.window
    type_and_send(qtbot, app, "Are you there?")
    qtbot.waitUntil(lambda: window.conversation_id is not None, timeout=WAIT_MS)
    conversation_id = window.conversation_id
    window.close()
    assert not window.isVisible()
    assert not app.core.store.thread.is_alive()  # flushed and closed
    assert app.core.engine.thread.is_alive()  # left behind: main() then exits without it
    with ConversationStore(paths.database) as store:
        assert store.messages(conversation_id)[0].content == "Are you there?"
    release.set()
    app.core.engine.thread.join(WAIT_MS / 1000)
    assert not app.core.engine.thread.is_alive()


def test_remembered_model_files_that_became_a_pipe_or_hostile_never_hold_up_the_start(qtbot, paths, tmp_path) -> None:
    pipe = tmp_path / "was-a-model.gguf"
    os.mkfifo(pipe)  # opening it for reading would block until someone writes
    hostile = write_tiny_qwen35_gguf(tmp_path / "changed.gguf", overrides={"qwen35.block_count": 2_000_000_000})
    settings = Settings()
    for path in (hostile, pipe):  # the pipe last: it is the "last model" the start would open
        settings.remember_model(path)
        settings.remember_import(path)
    save_settings(settings, paths.settings_file)

    app = open_app(qtbot, paths)  # would never become ready if the start opened the pipe
    window = app.window
    assert window.last_model_if_present() is None  # a pipe is no model file: the start skips it
    window.load_model(hostile)  # what the start does with a last model that changed
    qtbot.waitUntil(lambda: window.error_banner.isVisible(), timeout=WAIT_MS)
    assert "block_count is 2000000000" in window.error_banner.label.text()
    assert pipe not in [model.path for model in window._models.local_models()]
    close(app)
