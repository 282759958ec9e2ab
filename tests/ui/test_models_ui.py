"""The Models window and first-run screen, driven like a user, against a local Hub on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QFileDialog, QLabel, QMessageBox, QProgressBar, QPushButton, QToolButton

from app.core.conversations.conversation_store import ConversationStore
from app.core.profile.app_paths import AppPaths
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.model_catalog import PROJECTOR_FILENAME, SIZES, filename_of, repository_of
from app.core.models.fit_estimate import FitVerdict
from app.main import build_main_window
from app.ui import models_controller
from app.ui.main_window import MainWindow
from app.ui.models_dialog import COLUMN_ACTIONS, COLUMN_FIT, COLUMN_IMAGES, COLUMN_STATUS
from tests.hub_server import HubServer

WAIT_MS = 30_000
SMALLEST = ("0.8B", "Q4_K_M")


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


@pytest.fixture(autouse=True)
def quitting_never_waits_on_a_question(monkeypatch) -> None:
    """Windows left with a download running (a test that failed halfway) are closed by the
    test harness: the question asked then is answered "Yes" rather than waiting forever.
    Tests about the question set their own answers."""
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)


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


def _refresh_catalog(qtbot, dialog) -> None:
    """Refresh catalog: the catalog then holds the local Hub's figures for the tiny model."""
    qtbot.mouseClick(dialog.refresh_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.refresh_button.isEnabled(), timeout=WAIT_MS)


def _error_line(dialog, item) -> str:
    """The failed download's message, shown whole on a line under its row."""
    if not item.childCount():
        return ""
    return dialog.catalog_tree.itemWidget(item.child(0), 0).text()


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


def test_the_first_run_download_is_used_as_soon_as_it_is_ready(qtbot, paths, hub_with_models) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    _refresh_catalog(qtbot, window._models_dialog)  # sizes from the Hub, as at a real first start
    window._models_dialog.close()
    panel = window.welcome_panel
    panel.refresh_recommendation()
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert not window.info_banner.isVisible()  # nothing to offer: it was asked for in one click
    assert window.model_status.text() == window.model_picker.currentText()
    _close(window)


def test_the_models_window_shows_a_fit_badge_for_every_download(qtbot, paths) -> None:
    window = _open_window(qtbot, paths)
    window.show_models()
    dialog = window._models_dialog
    tree = dialog.catalog_tree
    badges = [tree.itemWidget(item, COLUMN_FIT) for _, item in dialog._catalog_rows.values()]
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
    _refresh_catalog(qtbot, dialog)
    entry, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)

    # Halfway through (the server holds the rest back), the row shows a progress bar.
    def progress_shown() -> bool:
        bar = dialog.catalog_tree.itemWidget(item, COLUMN_STATUS)
        return isinstance(bar, QProgressBar) and 0 < bar.value() < bar.maximum()

    qtbot.waitUntil(progress_shown, timeout=WAIT_MS)
    assert "MB" in dialog.catalog_tree.itemWidget(item, COLUMN_STATUS).format()
    stall.release()

    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dialog.local_tree.topLevelItemCount() == 1 and dialog.local_tree.topLevelItem(0).text(0) == Path(filename).stem, timeout=WAIT_MS)
    use = _button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Use")
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
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "offline" in _error_line(dialog, item).lower(), timeout=WAIT_MS)
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
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.catalog_tree.itemWidget(item, COLUMN_STATUS).text() == "Failed", timeout=WAIT_MS)
    assert "server error (500)" in _error_line(dialog, item)
    assert _button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Retry").isEnabled()
    assert dialog.local_tree.topLevelItem(0).flags() == Qt.ItemFlag.NoItemFlags  # nothing installed
    _close(window)


def test_deleting_a_downloaded_model_asks_first_and_keeps_the_chats(qtbot, paths, hub_with_models, monkeypatch) -> None:
    with ConversationStore(paths.database) as store:
        conversation = store.create_conversation(title="Kept", model=Path(filename_of(*SMALLEST)).stem)
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _refresh_catalog(qtbot, dialog)
    entry, item = _catalog_row(window, *SMALLEST)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    path = window._models.installed_path(entry)
    qtbot.waitUntil(lambda: dialog.local_tree.topLevelItemCount() == 1 and dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), COLUMN_ACTIONS) is not None)

    questions: list[str] = []

    def answer(parent, title, text, *args):
        questions.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)  # the user's click on "Yes"
    row_buttons = dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), COLUMN_ACTIONS)
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
    row_buttons = dialog.local_tree.itemWidget(dialog.local_tree.topLevelItem(0), COLUMN_ACTIONS)
    qtbot.mouseClick(_button(row_buttons, "Remove"), Qt.MouseButton.LeftButton)
    assert mine.exists() and window._models.local_models() == []
    _close(window)


# ------------------------------------------------------------------------ the everyday path


def _start_download(qtbot, window: MainWindow, size=SMALLEST):
    dialog = window._models_dialog
    entry, item = _catalog_row(window, *size)
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    return entry, item


def test_a_finished_download_is_in_the_picker_at_once_and_offered_to_load(qtbot, paths, hub_with_models, tiny_model) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    assert window.welcome_panel.isVisible()
    window.show_models()
    _refresh_catalog(qtbot, window._models_dialog)
    size = SMALLEST[0]  # recommended here or not: started in the Models window, it is offered
    entry, _ = _start_download(qtbot, window)
    window._models_dialog.close()  # the user goes back to the main window while it downloads
    qtbot.waitUntil(lambda: window.model_picker.count() == 1 and window.info_banner.isVisible(), timeout=WAIT_MS)
    assert window.model_picker.itemText(0) == Path(filename_of(size, "Q4_K_M")).stem
    assert window.model_picker.placeholderText() == "Choose a model to load"  # not "No model yet"
    assert not window.welcome_panel.isVisible()  # the first-run screen moved on
    banner = window.info_banner
    assert f"Qwen3.5 {size} · Q4_K_M is downloaded and checked" in banner.label.text()
    assert banner.action_button.text() == "Load"
    banner.action_button.click()
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window.model_status.text() == window.model_picker.currentText()
    _close(window)


def test_downloads_show_in_the_status_bar_and_quitting_during_one_asks_first(qtbot, paths, hub_with_models, tiny_model, monkeypatch) -> None:
    repo_id, filename = repository_of(SMALLEST[0]), filename_of(*SMALLEST)
    stall = hub_with_models.stall(repo_id, filename, at=tiny_model.stat().st_size // 2)
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    indicator = window.downloads_indicator
    assert not indicator.isVisible()
    window.show_models()
    _refresh_catalog(qtbot, window._models_dialog)
    _start_download(qtbot, window)
    qtbot.waitUntil(lambda: indicator.isVisible() and indicator.bar.value() > 0, timeout=WAIT_MS)  # halfway, held there
    assert indicator.button.text().startswith("⬇ Qwen3.5 0.8B · Q4_K_M:") and "/ 1.09 MB" in indicator.button.text()
    assert indicator.bar.value() < indicator.bar.maximum()

    questions: list[str] = []
    answers = iter([QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "question", lambda _parent, _title, text, *args: questions.append(text) or next(answers))
    window._models_dialog.close()
    window.close()
    assert window.isVisible()  # Cancel: still running, still downloading
    assert "Qwen3.5 0.8B · Q4_K_M is still downloading" in questions[0] and "continues where it stopped" in questions[0]
    stall.release()
    window.close()
    assert not window.isVisible() and len(questions) == 2


def test_pause_and_cancel_show_at_once_and_a_stalled_transfer_says_so(qtbot, paths, hub_with_models, tiny_model, monkeypatch) -> None:
    monkeypatch.setattr(models_controller, "STALL_SECONDS", 0.0)  # the stall shows at the next tick
    window, stall = _window_with_a_hanging_download(qtbot, paths, hub_with_models, tiny_model)
    dialog = window._models_dialog
    _, item = _catalog_row(window, *SMALLEST)

    def status() -> str:
        widget = dialog.catalog_tree.itemWidget(item, COLUMN_STATUS)
        return widget.format() if isinstance(widget, QProgressBar) else widget.text()

    qtbot.waitUntil(lambda: status().endswith(" · stalled"), timeout=WAIT_MS)
    assert "/s" not in status()  # no frozen speed or time left
    assert "stalled" in window.downloads_indicator.button.text()
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Pause"), Qt.MouseButton.LeftButton)
    assert status().endswith("· paused")  # at once, while the connection still hangs
    assert _button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Resume").isEnabled()
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Cancel"), Qt.MouseButton.LeftButton)
    assert dialog.catalog_tree.itemWidget(item, COLUMN_STATUS).text() == "Cancelled"  # at once too
    assert not window.downloads_indicator.isVisible()
    stall.release()
    _close(window)


def test_a_download_whose_size_differs_from_the_catalog_stops_and_says_why(qtbot, paths, hub_with_models) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_models.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _, item = _start_download(qtbot, window)  # the shipped catalog says 533 MB; the server has 1 MB
    qtbot.waitUntil(lambda: dialog.catalog_tree.itemWidget(item, COLUMN_STATUS).text() == "Failed", timeout=WAIT_MS)
    error = _error_line(dialog, item)
    assert f"{hub_with_models.endpoint} offers {repository_of(SMALLEST[0])}/{filename_of(*SMALLEST)} with" in error
    assert "the model list says 533MB" in error
    assert dialog.local_tree.topLevelItem(0).flags() == Qt.ItemFlag.NoItemFlags  # nothing was installed
    assert not [request for request in hub_with_models.requests if request.origin == "cdn"]  # nor downloaded
    _close(window)


def test_refreshing_the_catalog_reports_each_repository_that_failed(qtbot, paths, hub_server, tiny_model) -> None:
    for size_label in ("0.8B", "2B", "4B"):  # the 9B repository is missing on this mirror
        hub_server.add_file(repository_of(size_label), filename_of(size_label, "Q4_K_M"), tiny_model)
    window = _open_window(qtbot, paths, endpoint=hub_server.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _refresh_catalog(qtbot, dialog)
    message = dialog.message_label.text()
    assert dialog.message_label.isVisible() and message.startswith("Read 3 of 4 repositories")
    assert f"{repository_of('9B')} was not found on {hub_server.endpoint}." in message
    assert window._models.catalog.entry("2B", "Q4_K_M").model.is_pinned  # the others were read
    _close(window)


def test_every_row_shows_the_expected_speed_and_a_verdict_from_memory_and_speed(qtbot, paths) -> None:
    window = _open_window(qtbot, paths)
    # This computer as its replies measured it (the project's 2-core machine), with memory to spare.
    window._models.hardware = replace(
        window._models.hardware, available_ram_bytes=20 * 1024**3, gpus=(), decode_bytes_per_second=15.5e9,
        decode_speed_source="your replies",
    )
    window.show_models()
    dialog = window._models_dialog
    badges = {(entry.size_label, entry.quantization): dialog.catalog_tree.itemWidget(item, COLUMN_FIT) for entry, item in dialog._catalog_rows.values()}
    assert all(badge.speed_label.text().endswith("tok/s") and " / " in badge.memory_label.text() for badge in badges.values())
    assert badges[("2B", "Q4_K_M")].verdict is FitVerdict.RUNS_WELL
    assert badges[("9B", "Q8_0")].verdict is FitVerdict.SLOW
    slow_pill = next(label for label in badges[("9B", "Q8_0")].findChildren(QLabel) if label.objectName() == "fitPill")
    assert slow_pill.text() == "Fits · slow"
    assert "slower than you read" in badges[("9B", "Q8_0")].toolTip()
    assert "Qwen3.5 2B" in dialog.recommendation_label.text()  # the largest that is not slow
    _close(window)


def test_importing_a_file_that_is_no_model_says_so_and_lists_nothing(qtbot, paths, tmp_path, monkeypatch) -> None:
    junk = tmp_path / "notes.gguf"
    junk.write_text("shopping list")
    window = _open_window(qtbot, paths)
    window.show_models()
    dialog = window._models_dialog
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(junk), ""))
    _button(dialog, "Import GGUF file…").click()
    assert dialog.message_label.isVisible() and "“notes.gguf” is not a GGUF model file." in dialog.message_label.text()
    assert window._models.local_models() == [] and window.model_picker.count() == 0
    _close(window)


def _window_with_a_hanging_download(qtbot, paths, hub: HubServer, tiny_model: Path):
    """The window, with the smallest model's download running and its connection hanging
    halfway; the stall, to release."""
    stall = hub.stall(repository_of(SMALLEST[0]), filename_of(*SMALLEST), at=tiny_model.stat().st_size // 2)
    window = _open_window(qtbot, paths, endpoint=hub.endpoint)
    window.show_models()
    _refresh_catalog(qtbot, window._models_dialog)
    _start_download(qtbot, window)
    qtbot.waitUntil(window.downloads_indicator.isVisible, timeout=WAIT_MS)
    return window, stall


def test_a_window_closed_twice_asks_about_downloads_only_once(qtbot, paths, hub_with_models, tiny_model, monkeypatch) -> None:
    window, stall = _window_with_a_hanging_download(qtbot, paths, hub_with_models, tiny_model)
    questions: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda _parent, _title, text, *args: questions.append(text) or QMessageBox.StandardButton.Yes)
    window._models_dialog.close()
    window.close()
    window.close()  # as Qt and test harnesses do at exit
    assert len(questions) == 1
    stall.release()


def test_a_download_resumed_at_start_is_offered_when_it_finishes(qtbot, paths, hub_with_models, tiny_model, monkeypatch) -> None:
    window, stall = _window_with_a_hanging_download(qtbot, paths, hub_with_models, tiny_model)
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.Yes)
    window._models_dialog.close()
    window.close()  # quit mid-download
    stall.release()

    again = build_main_window(paths)  # the next start: the download goes on by itself
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: again.model_picker.count() == 1 and again.info_banner.isVisible(), timeout=WAIT_MS)
    assert again.info_banner.action_button.text() == "Load"
    assert not again.welcome_panel or not again.welcome_panel.isVisible()
    again.info_banner.action_button.click()
    qtbot.waitUntil(lambda: again.composer.send_button.isEnabled(), timeout=WAIT_MS)
    _close(again)


def test_the_memory_speed_test_runs_off_the_start_and_is_remembered(qtbot, paths, monkeypatch) -> None:
    threads: list[str] = []
    real_probe = models_controller.probe_decode_bandwidth
    monkeypatch.setattr(
        models_controller, "probe_decode_bandwidth", lambda cores: threads.append(threading.current_thread().name) or real_probe(cores)
    )
    window = _open_window(qtbot, paths)
    models = window._models
    qtbot.waitUntil(lambda: models.hardware.decode_speed_source == "a quick memory test", timeout=WAIT_MS)
    assert threads == ["memory-speed-test"]  # never on the GUI thread, never in the way of the start
    assert window._settings.decode_bytes_per_second == models.hardware.decode_bytes_per_second > 1e9
    window.show_models()
    badge = window._models_dialog.catalog_tree.itemWidget(_catalog_row(window, *SMALLEST)[1], COLUMN_FIT)
    assert "(measured from a quick memory test)" in badge.toolTip()
    _close(window)

    again = build_main_window(paths)  # the next start knows it already, and tests nothing
    qtbot.addWidget(again)
    assert again._models.hardware.decode_speed_source == "a quick memory test" and threads == ["memory-speed-test"]
    again.close()


# --------------------------------------------------------------------------- image support


@pytest.fixture
def hub_with_vision(hub_with_models: HubServer, tiny_projector: Path) -> HubServer:
    """Every catalog repository with its projector too (the tiny one, made for the tiny model)."""
    for size_label in SIZES:
        hub_with_models.add_file(repository_of(size_label), PROJECTOR_FILENAME, tiny_projector)
    return hub_with_models


def _local_row(dialog, name: str):
    tree = dialog.local_tree
    return next(tree.topLevelItem(index) for index in range(tree.topLevelItemCount()) if tree.topLevelItem(index).text(0) == name)


def _image_support_text(dialog, name: str) -> str:
    """What a local model's "Images" cell says ("Reads images: …", "Text only"); "" before it is listed."""
    try:
        cell = dialog.local_tree.itemWidget(_local_row(dialog, name), COLUMN_IMAGES)
    except StopIteration:
        return ""
    return cell.findChild(QLabel).text() if cell is not None else ""


def _image_support_action(dialog, name: str, text: str):
    """An entry of the local model's "Change" menu."""
    cell = dialog.local_tree.itemWidget(_local_row(dialog, name), COLUMN_IMAGES)
    return next(action for action in cell.findChild(QToolButton).menu().actions() if action.text() == text)


def test_one_click_downloads_a_model_with_its_image_support_and_it_reads_images(qtbot, paths, hub_with_vision) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_vision.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _refresh_catalog(qtbot, dialog)
    entry, item = _catalog_row(window, *SMALLEST)
    choice = dialog.catalog_tree.itemWidget(item, COLUMN_IMAGES).findChild(QCheckBox)
    assert choice.isChecked() and choice.text().startswith("Image support (") and "KB)" in choice.text()
    assert "Image support takes" in dialog.catalog_tree.itemWidget(item, COLUMN_FIT).toolTip()  # counted in "Fits?"

    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    projector = window._models.installed_projector(entry)
    assert projector == window._models.installed_path(entry).parent / PROJECTOR_FILENAME  # beside its model
    name = Path(filename_of(*SMALLEST)).stem
    qtbot.waitUntil(lambda: _image_support_text(dialog, name) == f"Reads images: {PROJECTOR_FILENAME}", timeout=WAIT_MS)
    assert dialog.catalog_tree.itemWidget(item, COLUMN_IMAGES).text() == "Reads images"
    # Only the model is offered: its image support is no model to load.
    assert window.info_banner.isVisible() and "Qwen3.5 0.8B · Q4_K_M is downloaded" in window.info_banner.label.text()

    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Use"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window._facts.reads_images and window._facts.projector == projector
    _close(window)


def test_image_support_left_out_of_a_download_can_be_added_later(qtbot, paths, hub_with_vision) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_vision.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _refresh_catalog(qtbot, dialog)
    entry, item = _catalog_row(window, *SMALLEST)
    dialog.catalog_tree.itemWidget(item, COLUMN_IMAGES).findChild(QCheckBox).setChecked(False)
    assert "Image support" not in dialog.catalog_tree.itemWidget(item, COLUMN_FIT).toolTip()
    qtbot.mouseClick(_button(dialog.catalog_tree.itemWidget(item, COLUMN_ACTIONS), "Download"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    assert not hub_with_vision.requests_for(PROJECTOR_FILENAME)
    name = Path(filename_of(*SMALLEST)).stem
    qtbot.waitUntil(lambda: _image_support_text(dialog, name) == "Text only", timeout=WAIT_MS)

    add = _button(dialog.catalog_tree.itemWidget(item, COLUMN_IMAGES), dialog._add_images_text(entry))
    assert add.text().startswith("Add image support (")
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _image_support_text(dialog, name) == f"Reads images: {PROJECTOR_FILENAME}", timeout=WAIT_MS)
    assert window._models.installed_projector(entry) is not None
    assert "Image support takes" in dialog.catalog_tree.itemWidget(item, COLUMN_FIT).toolTip()
    _close(window)


def test_deleting_a_model_deletes_its_image_support_with_it(qtbot, paths, hub_with_vision, monkeypatch) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_vision.endpoint)
    window.show_models()
    dialog = window._models_dialog
    _refresh_catalog(qtbot, dialog)
    entry, _ = _start_download(qtbot, window)
    qtbot.waitUntil(lambda: window._models.installed_path(entry) is not None, timeout=WAIT_MS)
    model, projector = window._models.installed_path(entry), window._models.installed_projector(entry)
    name = model.stem
    qtbot.waitUntil(lambda: _image_support_text(dialog, name).startswith("Reads images"), timeout=WAIT_MS)

    questions: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda _parent, _title, text, *args: questions.append(text) or QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(_button(dialog.local_tree.itemWidget(_local_row(dialog, name), COLUMN_ACTIONS), "Delete…"), Qt.MouseButton.LeftButton)
    assert f"Its image support ({PROJECTOR_FILENAME}, " in questions[0] and "no other model uses it" in questions[0]
    assert not model.exists() and not projector.exists()
    assert window._models.installed_projector(entry) is None
    _close(window)


def test_an_imported_models_image_support_is_chosen_refused_when_it_does_not_fit_or_turned_off(
    qtbot, paths, tiny_model, tiny_projector, tmp_path, monkeypatch
) -> None:
    mine = tmp_path / "mine" / "my-model.gguf"
    mine.parent.mkdir()
    mine.write_bytes(tiny_model.read_bytes())
    wide = write_tiny_qwen35_projector(tmp_path / "mmproj-wide.gguf", overrides={"clip.vision.projection_dim": 128})
    window = _open_window(qtbot, paths)
    window._models.import_model(mine)
    window.show_models()
    dialog = window._models_dialog
    qtbot.waitUntil(lambda: _image_support_text(dialog, "my-model") == "Text only", timeout=WAIT_MS)

    chosen = iter([wide, tiny_projector])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(next(chosen)), ""))
    _image_support_action(dialog, "my-model", "Choose image support file…").trigger()
    assert dialog.message_label.isVisible() and "is made for a model 128 wide" in dialog.message_label.text()
    assert window._settings.projector_pairings == {}  # refused: nothing changed
    _image_support_action(dialog, "my-model", "Choose image support file…").trigger()
    qtbot.waitUntil(lambda: _image_support_text(dialog, "my-model") == f"Reads images: {tiny_projector.name}", timeout=WAIT_MS)
    assert window._settings.projector_pairings == {str(mine): str(tiny_projector)}

    window.load_model(mine)  # every load from the window carries the model's projector
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window._facts.projector == tiny_projector

    _image_support_action(dialog, "my-model", "Text only").trigger()
    qtbot.waitUntil(lambda: _image_support_text(dialog, "my-model") == "Text only", timeout=WAIT_MS)
    assert window._models.projector_for(mine) is None
    _image_support_action(dialog, "my-model", "Find it automatically").trigger()
    assert window._settings.projector_pairings == {}
    _close(window)


def test_the_first_run_download_brings_image_support_and_the_model_reads_images(qtbot, paths, hub_with_vision) -> None:
    window = _open_window(qtbot, paths, endpoint=hub_with_vision.endpoint)
    window.show_models()
    _refresh_catalog(qtbot, window._models_dialog)
    window._models_dialog.close()
    panel = window.welcome_panel
    panel.refresh_recommendation()
    assert panel.download_button.toolTip().endswith(", with image support")
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.composer.send_button.isEnabled(), timeout=WAIT_MS)
    assert window._facts.reads_images and window._facts.projector.name == PROJECTOR_FILENAME
    _close(window)
