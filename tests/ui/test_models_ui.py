"""The Models window and first-run screen, driven like a user, against a local Hub on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QProgressBar, QPushButton

from app.core.conversations.conversation_store import ConversationStore
from app.core.profile.app_paths import AppPaths
from app.core.models.model_catalog import SIZES, filename_of, repository_of
from app.main import build_main_window
from app.ui.main_window import MainWindow
from tests.hub_server import HubServer

WAIT_MS = 30_000
SMALLEST = ("0.8B", "Q4_K_M")


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


@pytest.fixture
def hub_with_models(hub_server: HubServer, tiny_model: Path) -> HubServer:
    """Every catalog repository, serving the tiny model under each Q4_K_M file name."""
    for size_label in SIZES:
        hub_server.add_file(repository_of(size_label), filename_of(size_label, "Q4_K_M"), tiny_model)
    return hub_server


def _open_window(qtbot, paths: AppPaths, *, endpoint: str | None = None, offline: bool = False) -> MainWindow:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(json.dumps({"hub_endpoint": endpoint or "", "offline_mode": offline}))
    window = build_main_window(paths)
    qtbot.addWidget(window)
    window.show()
    return window


def _close(window: MainWindow) -> None:
    if window._models_dialog is not None:
        window._models_dialog.close()
    window.close()


def _catalog_row(window: MainWindow, size_label: str, quantization: str):
    dialog = window._models_dialog
    for entry, item in dialog._catalog_rows.values():
        if (entry.size_label, entry.quantization) == (size_label, quantization):
            return entry, item
    raise AssertionError("row not found")


def _button(widget, text: str) -> QPushButton:
    return next(button for button in widget.findChildren(QPushButton) if button.text() == text)


def test_first_run_recommends_a_model_with_a_reason(qtbot, paths) -> None:
    window = _open_window(qtbot, paths)
    panel = window.welcome_panel
    assert panel is not None and panel.isVisible()
    assert "Recommended for this computer" in panel.reason_label.text()
    assert "context" in panel.reason_label.text()
    assert panel.download_button.text().startswith("Download Qwen3.5")
    assert not window.transcript.isVisible()
    _close(window)


def test_the_models_window_shows_a_fit_badge_for_every_download(qtbot, paths) -> None:
    window = _open_window(qtbot, paths)
    window.show_models()
    dialog = window._models_dialog
    tree = dialog.catalog_tree
    badges = [tree.itemWidget(item, 2) for _, item in dialog._catalog_rows.values()]
    assert len(badges) == 16 and all(badge is not None and badge.toolTip() for badge in badges)
    assert "GB" in dialog.hardware_label.text()
    assert "Recommended" in dialog.recommendation_label.text()
    _close(window)


def test_download_shows_progress_then_the_model_is_installed_and_chats(qtbot, paths, hub_with_models, tiny_model) -> None:
    repo_id, filename = repository_of(SMALLEST[0]), filename_of(*SMALLEST)
    stall = hub_with_models.stall(repo_id, filename, at=tiny_model.stat().st_size // 2)
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    entry, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, 4), "Download"), Qt.MouseButton.LeftButton)

    # Halfway through (the server holds the rest back), the row shows a progress bar.
    def progress_shown() -> bool:
        bar = dialog.catalog_tree.itemWidget(item, 3)
        return isinstance(bar, QProgressBar) and 0 < bar.value() < bar.maximum()

    qtbot.waitUntil(progress_shown, timeout=WAIT_MS)
    assert "MB" in dialog.catalog_tree.itemWidget(item, 3).format()
    stall.release()

    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dialog.local_tree.topLevelItemCount() == 1 and dialog.local_tree.topLevelItem(0).text(0) == Path(filename).stem, timeout=WAIT_MS)
    use = _button(dialog.catalog_tree.itemWidget(item, 4), "Use")
    qtbot.mouseClick(use, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window.model_picker.currentText() == Path(filename).stem

    window.composer.edit.setPlainText("Hello")
    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not window.is_generating, timeout=WAIT_MS)
    assert window.transcript.message_widgets()[-1].answer  # the downloaded model answered
    _close(window)


def test_refreshing_the_catalog_pins_sizes_and_hashes_from_the_hub(qtbot, paths, hub_with_models, tiny_model) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.refresh_button.isEnabled(), timeout=WAIT_MS)
    entry = window._models.catalog.entry(*SMALLEST)
    assert entry.model.is_pinned and entry.model.size == tiny_model.stat().st_size
    assert dialog.catalog_tree.findItems("1.09 MB", Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive, 1)
    _close(window)


def test_offline_mode_makes_no_request(qtbot, paths, hub_with_models) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint, offline=True)
    window.show_models()
    dialog = window._models_dialog
    _, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, 4), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "offline" in dialog.catalog_tree.itemWidget(item, 3).text().lower(), timeout=WAIT_MS)
    qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.message_label.isVisible(), timeout=WAIT_MS)
    assert "offline" in dialog.message_label.text().lower()
    assert hub_with_models.requests == []
    _close(window)


def test_a_failed_download_explains_itself_and_can_be_retried(qtbot, paths, hub_with_models) -> None:
    repo_id, filename = repository_of(SMALLEST[0]), filename_of(*SMALLEST)
    hub_with_models.fail(repo_id, filename, 500, times=None)
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, 4), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.catalog_tree.itemWidget(item, 3).text().startswith("Failed"), timeout=WAIT_MS)
    assert _button(dialog.catalog_tree.itemWidget(item, 4), "Retry").isEnabled()
    assert dialog.local_tree.topLevelItem(0).flags() == Qt.ItemFlag.NoItemFlags  # nothing installed
    _close(window)


def test_deleting_a_downloaded_model_asks_first_and_keeps_the_chats(qtbot, paths, hub_with_models, monkeypatch) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Kept", model=Path(filename_of(*SMALLEST)).stem)
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    entry, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, 4), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    path = window._models.installed_path(entry)
    qtbot.waitUntil(lambda: dialog.local_tree.topLevelItemCount() == 1 and dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), 4) is not None)

    questions: list[str] = []

    def answer(parent, title, text, *args):
        questions.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)  # the user's click on "Yes"
    row_buttons = dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), 4)
    qtbot.mouseClick(_button(row_buttons, "Delete…"), Qt.MouseButton.LeftButton)

    assert "1.09 MB" in questions[0] and "conversations with it are kept" in questions[0]
    assert not path.exists()
    assert window._models.local_models() == []
    _close(window)
    with ConversationStore(paths.database) as store:
        assert store.get_conversation(conversation.id).title == "Kept"


def test_an_imported_model_is_listed_and_removing_it_keeps_the_file(qtbot, paths, tiny_model, tmp_path) -> None:
    mine = tmp_path / "my-model.gguf"
    mine.write_bytes(tiny_model.read_bytes())
    window = _open_window(qtbot, paths)
    window._models.import_model(mine)
    assert window.model_picker.findText("my-model") >= 0
    window.show_models()
    dialog = window._models_dialog
    row_buttons = dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), 4)
    qtbot.mouseClick(_button(row_buttons, "Remove"), Qt.MouseButton.LeftButton)
    assert mine.exists() and window._models.local_models() == []
    _close(window)
