"""Pictures in chats, driven like a user: attached with the button's file dialog, pasted, dropped,
taken off again, refused with the reason, sent to the real tiny model with its real projector,
shown in the transcript (also after the app is opened again) and large on a click; the image
detail in Settings (pytest-qt, offscreen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QLinearGradient, QPainter
from PySide6.QtWidgets import QApplication

from app.core.domain.conversations import ImagePart, MessageState
from app.core.domain.generation import IMAGE_DETAIL_TOKENS, NO_PROJECTOR_MESSAGE
from app.core.engines.llama.self_test_model import THINKING_ANSWER
from app.core.profile.app_paths import AppPaths
from app.main import DesktopApp
from app.ui.attachments import MAX_IMAGES_PER_MESSAGE
from app.ui.image_display import ImageViewer
from app.ui.settings_dialog import SettingsDialog
from tests.ui.app_driver import WAIT_MS, close, in_settings, load, open_app, stored_messages, type_and_send, wait_until_idle


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    return AppPaths.under(tmp_path / "profile")


def picture(width: int = 640, height: int = 480, hue: int = 20) -> QImage:
    """A picture with some structure (a gradient and a disc), drawn by Qt."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    gradient = QLinearGradient(0, 0, width, height)
    gradient.setColorAt(0, QColor.fromHsv(hue, 180, 240))
    gradient.setColorAt(1, QColor.fromHsv((hue + 180) % 360, 200, 120))
    painter.fillRect(image.rect(), gradient)
    painter.setBrush(QColor("#ffd54f"))
    painter.drawEllipse(QRect(width // 4, height // 4, width // 3, height // 3))
    painter.end()
    return image


def picture_file(folder: Path, name: str, width: int = 640, height: int = 480, hue: int = 20) -> Path:
    path = folder / name
    assert picture(width, height, hue).save(str(path))
    return path


def open_with_vision(qtbot, paths: AppPaths, model: Path, projector: Path) -> DesktopApp:
    app = open_app(qtbot, paths)
    load(qtbot, app, model, projector=projector)
    return app


def ready_tiles(app: DesktopApp) -> list:
    return [tile for tile in app.window.composer.attachment_strip.tiles() if tile.attachment is not None]


def wait_for_tiles(qtbot, app: DesktopApp, count: int) -> list:
    strip = app.window.composer.attachment_strip
    qtbot.waitUntil(lambda: strip.count() == count and not strip.preparing(), timeout=WAIT_MS)
    return ready_tiles(app)


def drop_on(qtbot, widget, mime: QMimeData) -> QDropEvent:
    position = QPointF(widget.rect().center())
    enter = QDragEnterEvent(position.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(position, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop


def file_urls(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def question_pictures(app: DesktopApp):
    """The thumbnails of the first question on screen, once decoded."""
    return app.window.transcript.message_widgets()[0].pictures


def test_a_picture_attached_with_the_button_is_sent_shown_and_shown_again_after_reopening(
    qtbot, paths, tiny_model, tiny_projector, tmp_path
) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    window = app.window
    composer = window.composer
    assert "Attach images" in composer.attach_button.toolTip()
    composer.attach_files([picture_file(tmp_path, "sunset.png")])  # what the file dialog returns
    (tile,) = wait_for_tiles(qtbot, app, 1)
    assert composer.attachment_strip.isVisible()
    assert "sunset.png" in tile.picture.toolTip() and "640 × 480 pixels" in tile.picture.toolTip()

    activity: list[str] = []
    window.chat.sig_activity.connect(activity.append)
    type_and_send(qtbot, app, "What is in this image?")
    assert not composer.attachment_strip.isVisible() and not composer.attachment_strip.count()
    wait_until_idle(qtbot, app)
    assert "Reading image… 0 %" in activity and "Reading image… 100 %" in activity
    assert activity.index("Reading image… 100 %") < activity.index("Generating…", activity.index("Reading image… 0 %"))

    question, reply = stored_messages(app)
    (part,) = question.parts
    assert isinstance(part, ImagePart) and part.media_type == "image/png"
    assert question.content == "What is in this image?" and reply.content == THINKING_ANSWER
    (thumbnail,) = question_pictures(app)
    qtbot.waitUntil(lambda: thumbnail.is_loaded, timeout=WAIT_MS)
    assert thumbnail.height() == 200 and thumbnail.width() == round(200 * 640 / 480)
    conversation_id = window.conversation_id
    window.new_conversation()
    qtbot.waitUntil(lambda: window.conversation_id is None, timeout=WAIT_MS)
    window.chat.open(conversation_id)
    qtbot.waitUntil(lambda: window.conversation_id == conversation_id, timeout=WAIT_MS)
    assert question_pictures(app)[0].is_loaded  # decoded before: on screen at once
    close(app)

    reopened = open_app(qtbot, paths)
    qtbot.waitUntil(lambda: reopened.window.conversation_id == conversation_id, timeout=WAIT_MS)
    (thumbnail,) = question_pictures(reopened)
    qtbot.waitUntil(lambda: thumbnail.is_loaded, timeout=WAIT_MS)
    assert reopened.window.transcript.message_widgets()[0].answer == "What is in this image?"

    qtbot.mouseClick(thumbnail, Qt.MouseButton.LeftButton)
    viewer = reopened.window.findChild(ImageViewer)
    assert viewer is not None and viewer.isVisible()
    assert viewer.picture.pixmap().size().toTuple() == (640, 480)  # small enough: its own size
    assert "640 × 480" in viewer.windowTitle()
    qtbot.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.isVisible()
    close(reopened)


def test_stop_while_the_model_reads_a_picture_ends_the_reply(qtbot, paths, tiny_model_quiet, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model_quiet, tiny_projector)  # it would write forever
    window = app.window
    window.composer.attach_files([picture_file(tmp_path, "map.png", 1024, 768)])
    wait_for_tiles(qtbot, app, 1)
    reading: list[str] = []

    def stop_while_reading(event) -> None:
        if not reading:
            reading.append(window.speed_status.text())
            qtbot.mouseClick(window.composer.send_button, Qt.MouseButton.LeftButton)  # Stop

    window._session_bridge.sig_image_reading.connect(stop_while_reading)
    type_and_send(qtbot, app, "Where is the harbour?")
    wait_until_idle(qtbot, app)
    assert reading == ["Reading image… 0 %"]
    question, reply = stored_messages(app)
    assert reply.state == MessageState.STOPPED and len(question.parts) == 1
    assert "Stopped" in window.transcript.message_widgets()[-1]._footer.text()
    close(app)


def test_a_pasted_picture_is_attached_and_pasted_text_is_still_text(qtbot, paths, tiny_model, tiny_projector) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    composer = app.window.composer
    composer.edit.setFocus()
    QGuiApplication.clipboard().setImage(picture(800, 600))
    qtbot.keyClick(composer.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    (tile,) = wait_for_tiles(qtbot, app, 1)
    assert tile.name == "Pasted image" and "800 × 600 pixels" in tile.picture.toolTip()
    assert composer.edit.toPlainText() == ""

    QGuiApplication.clipboard().setText("and some words")
    qtbot.keyClick(composer.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert composer.edit.toPlainText() == "and some words" and composer.attachment_strip.count() == 1

    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    wait_until_idle(qtbot, app)
    question = stored_messages(app)[0]
    assert question.content == "and some words" and len(question.parts) == 1
    close(app)


def test_dropped_pictures_are_attached_and_the_x_takes_one_off(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    window = app.window
    first, second = picture_file(tmp_path, "first.png", hue=20), picture_file(tmp_path, "second.jpg", hue=200)
    drop_on(qtbot, window.composer.edit, file_urls(first, second))  # on the text box
    third = picture_file(tmp_path, "third.png", hue=100)
    drop = drop_on(qtbot, window, file_urls(third))  # anywhere else on the window
    assert drop.isAccepted() and not window.error_banner.isVisible()
    tiles = wait_for_tiles(qtbot, app, 3)
    assert [tile.name for tile in tiles] == ["first.png", "second.jpg", "third.png"]
    assert window.composer.edit.toPlainText() == ""  # no file names typed into the message

    qtbot.mouseClick(tiles[0].remove_button, Qt.MouseButton.LeftButton)
    assert [tile.name for tile in window.composer.attachment_strip.tiles()] == ["second.jpg", "third.png"]

    qtbot.keyClick(window.composer.edit, Qt.Key.Key_Return)  # pictures alone, no text
    wait_until_idle(qtbot, app)
    question = stored_messages(app)[0]
    assert question.content == "" and [part.media_type for part in question.parts] == ["image/jpeg", "image/png"]
    widget = window.transcript.message_widgets()[0]
    assert len(widget.pictures) == 2 and all(thumbnail.height() == 120 for thumbnail in widget.pictures)
    assert window.sidebar.model.conversations()[0].title == "2 images"
    close(app)


def test_a_file_that_is_no_picture_it_can_read_is_refused_with_the_reason(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    composer = app.window.composer
    damaged = tmp_path / "holiday.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 20)
    heic = tmp_path / "phone.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    good = picture_file(tmp_path, "fine.png")
    composer.attach_files([damaged, good, heic])
    (tile,) = wait_for_tiles(qtbot, app, 1)
    assert tile.name == "fine.png"
    qtbot.waitUntil(lambda: composer.attach_note.text().count("\n") == 1, timeout=WAIT_MS)
    note = composer.attach_note.text()
    assert composer.attach_note.isVisible()
    assert "“holiday.png” was not attached: This is not an image the app can read (PNG, JPEG, WebP, GIF or BMP)." in note
    assert "“phone.heic” was not attached" in note

    composer.attach_files([tmp_path / "gone.png"])
    qtbot.waitUntil(lambda: "“gone.png” was not attached: The file could not be read" in composer.attach_note.text(), timeout=WAIT_MS)
    assert composer.attachment_strip.count() == 1  # what was attached stays
    close(app)


def test_a_message_takes_at_most_eight_pictures(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    composer = app.window.composer
    files = [picture_file(tmp_path, f"p{number}.png", 64, 48, hue=number * 30) for number in range(MAX_IMAGES_PER_MESSAGE + 2)]
    composer.attach_files(files[:5])
    composer.attach_files(files[5:])
    wait_for_tiles(qtbot, app, MAX_IMAGES_PER_MESSAGE)
    assert composer.attach_note.text() == "A message holds at most 8 images: 2 were not attached."
    close(app)


def test_without_a_projector_the_attach_button_says_what_is_missing(qtbot, paths, tiny_model, tmp_path) -> None:
    app = open_app(qtbot, paths)
    window = app.window
    composer = window.composer
    assert composer.attach_button.isVisible() and "Open a model that reads images" in composer.attach_button.toolTip()
    load(qtbot, app, tiny_model)
    tip = "This model cannot read images: add its image support file (mmproj) in Models."
    assert composer.attach_button.toolTip() == tip

    qtbot.mouseClick(composer.attach_button, Qt.MouseButton.LeftButton)
    assert composer.attach_note.isVisible() and composer.attach_note.text() == tip
    qtbot.waitUntil(lambda: window._models_dialog is not None and window._models_dialog.isVisible(), timeout=WAIT_MS)
    window._models_dialog.hide()

    drop_on(qtbot, window, file_urls(picture_file(tmp_path, "cat.png")))
    QGuiApplication.clipboard().setImage(picture())
    composer.edit.setFocus()
    qtbot.keyClick(composer.edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert composer.attach_note.text() == tip and not composer.attachment_strip.count()
    assert not window.error_banner.isVisible()
    close(app)


def test_a_refused_turn_gives_the_pictures_and_the_text_back(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    window = app.window
    window.composer.attach_files([picture_file(tmp_path, "chart.png")])
    wait_for_tiles(qtbot, app, 1)
    window.load_model(tiny_model)  # the same model without its projector: it reads no pictures now
    qtbot.waitUntil(lambda: "cannot read images" in window.composer.attach_button.toolTip(), timeout=WAIT_MS)
    qtbot.waitUntil(window.composer.send_button.isEnabled, timeout=WAIT_MS)

    type_and_send(qtbot, app, "Read the chart")
    qtbot.waitUntil(window.error_banner.isVisible, timeout=WAIT_MS)
    assert window.error_banner.label.text() == NO_PROJECTOR_MESSAGE
    assert window.composer.edit.toPlainText() == "Read the chart"
    (tile,) = ready_tiles(app)
    assert tile.name == "chart.png" and not window.is_generating
    close(app)


def test_an_edited_question_keeps_its_pictures(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    window = app.window
    composer = window.composer
    composer.attach_files([picture_file(tmp_path, "plan.png")])
    wait_for_tiles(qtbot, app, 1)
    type_and_send(qtbot, app, "Describe the plan")
    wait_until_idle(qtbot, app)
    composer.attach_files([picture_file(tmp_path, "draft.png", hue=90)])  # for the next message
    wait_for_tiles(qtbot, app, 1)

    question = window.transcript.message_widgets()[0]
    qtbot.mouseClick(question.action_buttons["edit"], Qt.MouseButton.LeftButton)
    assert not composer.attachment_strip.isVisible()  # the draft's picture is put aside
    composer.attach_files([picture_file(tmp_path, "other.png", hue=300)])
    assert "keeps the images it had" in composer.attach_note.text()
    composer.edit.setPlainText("Describe the plan briefly")
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    wait_until_idle(qtbot, app)
    edited, _reply = stored_messages(app)
    assert edited.content == "Describe the plan briefly"
    assert edited.parts == stored_messages(app)[0].parts and len(edited.parts) == 1
    (tile,) = ready_tiles(app)
    assert tile.name == "draft.png" and composer.attachment_strip.isVisible()
    close(app)


def test_a_missing_or_damaged_picture_file_shows_a_placeholder(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    window = app.window
    window.composer.attach_files([picture_file(tmp_path, "a.png", hue=10), picture_file(tmp_path, "b.png", hue=250)])
    wait_for_tiles(qtbot, app, 2)
    type_and_send(qtbot, app, "Compare them")
    wait_until_idle(qtbot, app)
    first, second = stored_messages(app)[0].parts
    conversation_id = window.conversation_id
    close(app)
    app.core.image_path(first.sha256).unlink()
    app.core.image_path(second.sha256).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))  # a damaged file

    reopened = open_app(qtbot, paths)
    qtbot.waitUntil(lambda: reopened.window.conversation_id == conversation_id, timeout=WAIT_MS)
    missing, damaged = question_pictures(reopened)
    qtbot.waitUntil(lambda: not missing.readable and not damaged.readable, timeout=WAIT_MS)
    for thumbnail in (missing, damaged):
        assert "cannot be shown" in thumbnail.toolTip()
        qtbot.mouseClick(thumbnail, Qt.MouseButton.LeftButton)
    assert reopened.window.findChild(ImageViewer) is None
    assert reopened.window.transcript.message_widgets()[0].answer == "Compare them"
    close(reopened)


def _choose_detail(app: DesktopApp, detail: str) -> None:
    def choose(dialog: SettingsDialog) -> None:
        dialog.image_detail.setCurrentIndex(dialog.image_detail.findData(detail))
        dialog.accept()

    in_settings(app, choose)


def _prompt_tokens_of_a_picture_chat(qtbot, app: DesktopApp, path: Path) -> int:
    app.window.new_conversation()
    app.window.composer.attach_files([path])
    wait_for_tiles(qtbot, app, 1)
    type_and_send(qtbot, app, "What is this?")
    wait_until_idle(qtbot, app)
    return stored_messages(app)[-1].stats.prompt_tokens


def test_the_image_detail_setting_is_saved_and_used_for_the_next_picture(qtbot, paths, tiny_model, tiny_projector, tmp_path) -> None:
    app = open_with_vision(qtbot, paths, tiny_model, tiny_projector)
    square = picture_file(tmp_path, "square.png", 1024, 1024)  # 32 × 32 pixels a token: 1,024 tokens at most
    standard = _prompt_tokens_of_a_picture_chat(qtbot, app, square)
    _choose_detail(app, "low")
    assert json.loads(paths.settings_file.read_text())["image_detail"] == "low"
    low = _prompt_tokens_of_a_picture_chat(qtbot, app, square)
    assert standard - low == IMAGE_DETAIL_TOKENS["standard"] - IMAGE_DETAIL_TOKENS["low"]

    shown: list[str] = []
    in_settings(app, lambda dialog: shown.append(dialog.image_detail.currentText()))
    assert shown == ["Low (fastest)"]
    close(app)

    reopened = open_with_vision(qtbot, paths, tiny_model, tiny_projector)  # applied at start-up too
    assert _prompt_tokens_of_a_picture_chat(qtbot, reopened, square) == low
    close(reopened)
