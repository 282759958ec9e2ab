"""Pictures attached to the message being written: offered by a file dialog, a paste or a drop,
checked and prepared by ``image_intake`` on Qt's thread pool (a big photo takes ~100 ms, and
reading a file can take longer), and shown as removable thumbnails above the composer's text
box until the message is sent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMimeData, QObject, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QToolButton, QWidget

from app.core.images.image_intake import MAX_IMAGE_BYTES, ImageRejected, PreparedImage, prepare_image
from app.ui.icons import themed_icon
from app.ui.image_display import ImageViewer, read_image, rounded

# The most pictures one message takes: at the "standard" image detail each is up to 1,024
# tokens, so eight fill the default 8,192-token context on their own.
MAX_IMAGES_PER_MESSAGE = 8

# Encoded images a paste or drop may carry, in the order they are preferred.
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")
# Files taken as pictures: the kinds intake reads, and other picture kinds, so that a dropped
# HEIC or TIFF photo is refused with the kinds that work rather than taken for something else.
PICTURE_SUFFIXES = frozenset({
    ".png", ".jpg", ".jpeg", ".jpe", ".webp", ".gif", ".bmp",
    ".heic", ".heif", ".avif", ".tif", ".tiff", ".svg", ".ico", ".jxl",
})
THUMBNAIL_SIZE = 56  # the composer's thumbnails are squares of this many pixels


@dataclass(frozen=True)
class ImageOffer:
    """A picture offered for attaching, not checked yet: a file, or what a paste or drop
    carries, encoded (``data``) or as pixels (``pixels``)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    pixels: QImage | None = None


@dataclass(frozen=True)
class Attachment:
    """A checked picture waiting in the composer: what the model gets, and its thumbnail."""

    name: str
    image: PreparedImage
    thumbnail: QImage
    offered_bytes: int  # the size of the file (or paste) it was made from


def _local_files(mime: QMimeData) -> list[Path]:
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def _has_text(mime: QMimeData) -> bool:
    return mime.hasText() and bool(mime.text().strip())


def carries_images(mime: QMimeData) -> bool:
    """Whether a paste or drop is pictures rather than text; reads no data, so that it is cheap
    enough for every mouse move of a drag."""
    files = _local_files(mime)
    if files:
        return any(path.suffix.lower() in PICTURE_SUFFIXES for path in files)
    if _has_text(mime):
        return False  # text comes first: a spreadsheet's cells come with a picture of them
    return mime.hasImage() or any(mime.hasFormat(media_type) for media_type in IMAGE_MEDIA_TYPES)


def image_offers(mime: QMimeData, pasted_name: str) -> list[ImageOffer]:
    """The pictures a paste or drop carries (see :func:`carries_images`): all its local files
    when any is a picture (each is checked, so a file of another kind is refused with the
    reason), else the encoded image or its pixels, named ``pasted_name``."""
    if not carries_images(mime):
        return []
    files = _local_files(mime)
    if files:
        return [ImageOffer(path.name, path=path) for path in files]
    for media_type in IMAGE_MEDIA_TYPES:
        if mime.hasFormat(media_type):
            return [ImageOffer(pasted_name, data=bytes(mime.data(media_type)))]
    return [ImageOffer(pasted_name, pixels=QImage(mime.imageData()))]


def _offered_bytes(offer: ImageOffer) -> bytes:
    """The offer's encoded bytes; raises ImageRejected when a file is too big or unreadable."""
    if offer.path is not None:
        try:
            size = offer.path.stat().st_size
            if size > MAX_IMAGE_BYTES:  # refused unread: a dropped disk image can be gigabytes
                raise ImageRejected(
                    f"The file is {size / 1024 / 1024:,.0f} MB; images up to "
                    f"{MAX_IMAGE_BYTES // 1024 // 1024} MB can be attached."
                )
            return offer.path.read_bytes()
        except OSError as error:
            raise ImageRejected(f"The file could not be read ({error.strerror or error}).") from error
    if offer.data is not None:
        return offer.data
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    offer.pixels.save(buffer, "PNG")
    return bytes(buffer.data())


def prepare_attachment(offer: ImageOffer, thumbnail_box: QSize) -> Attachment:
    """The offer checked and prepared by ``image_intake``, with its thumbnail; raises
    ImageRejected with the reason. Runs on a pool thread."""
    data = _offered_bytes(offer)
    image = prepare_image(data)
    return Attachment(offer.name, image, read_image(image.data, thumbnail_box, crop=True), len(data))


class _IntakeResults(QObject):
    """Carries a finished job to the GUI thread. It has no parent and each job holds it, so a
    job that ends after its intake was deleted emits into the void."""

    sig_done = Signal(int, object)
    """(ticket, the ``Attachment``, or the ``ImageRejected`` message as a str)."""


class ImageIntake(QObject):
    """Prepares offered pictures on Qt's thread pool, one job each, in parallel."""

    sig_prepared = Signal(int, object)
    """An offer is ready to send: (its ticket from :meth:`prepare`, the ``Attachment``)."""
    sig_rejected = Signal(int, str)
    """An offer cannot be attached: (its ticket, why, for the user)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._next_ticket = 0
        self._results = _IntakeResults()
        self._results.sig_done.connect(self._on_done)

    def prepare(self, offer: ImageOffer, thumbnail_box: QSize) -> int:
        """Starts checking and preparing ``offer``; returns the ticket its result will carry."""
        self._next_ticket += 1
        ticket, results = self._next_ticket, self._results

        def job() -> None:
            try:
                outcome: Attachment | str = prepare_attachment(offer, thumbnail_box)
            except ImageRejected as rejection:
                outcome = str(rejection)
            results.sig_done.emit(ticket, outcome)

        QThreadPool.globalInstance().start(job)
        return ticket

    def _on_done(self, ticket: int, outcome: Attachment | str) -> None:
        if isinstance(outcome, str):
            self.sig_rejected.emit(ticket, outcome)
        else:
            self.sig_prepared.emit(ticket, outcome)


def _format_bytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024)):,} KB"


class AttachmentTile(QFrame):
    """One picture in the composer: its thumbnail (a click shows it large) and an × that takes
    it off the message. While it is being prepared it shows an ellipsis."""

    sig_remove = Signal(QWidget)
    """The user takes this picture off the message: the tile."""

    def __init__(self, ticket: int | None, name: str, parent: QWidget | None = None) -> None:
        """``ticket`` is the intake's job preparing the picture (None: it is ready already)."""
        super().__init__(parent)
        self.setObjectName("attachmentTile")
        self.ticket = ticket
        self.name = name
        self.attachment: Attachment | None = None
        self.setFixedSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        self.picture = QToolButton(self)
        self.picture.setObjectName("attachmentImage")
        self.picture.setGeometry(0, 0, THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        self.picture.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.picture.setText("…")
        self.picture.setProperty("preparing", True)
        self.picture.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.picture.setToolTip(self.tr("Preparing %1…").replace("%1", name))
        self.picture.setAccessibleName(self.tr("Image %1, being prepared").replace("%1", name))
        self.picture.clicked.connect(self._show_large)
        self.remove_button = QToolButton(self)
        self.remove_button.setObjectName("attachmentRemove")
        self.remove_button.setIcon(themed_icon("x", self.palette()))
        self.remove_button.setIconSize(QSize(12, 12))
        self.remove_button.setFixedSize(18, 18)
        self.remove_button.move(THUMBNAIL_SIZE - 20, 2)
        self.remove_button.setToolTip(self.tr("Remove %1 from the message").replace("%1", name))
        self.remove_button.setAccessibleName(self.remove_button.toolTip())
        self.remove_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.remove_button.clicked.connect(lambda: self.sig_remove.emit(self))

    def show_attachment(self, attachment: Attachment) -> None:
        self.attachment = attachment
        ratio = self.devicePixelRatioF()
        image = rounded(attachment.thumbnail, 6 * ratio)
        image.setDevicePixelRatio(ratio)
        self.picture.setText("")
        self.picture.setProperty("preparing", False)
        self.picture.style().unpolish(self.picture)
        self.picture.style().polish(self.picture)
        self.picture.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.picture.setIcon(QPixmap.fromImage(image))
        self.picture.setCursor(Qt.CursorShape.PointingHandCursor)
        prepared = attachment.image
        description = (
            self.tr("%1 × %2 pixels · %3").replace("%1", str(prepared.width)).replace("%2", str(prepared.height))
            .replace("%3", _format_bytes(attachment.offered_bytes))
        )
        self.picture.setToolTip(f"{attachment.name}\n{description}")
        self.picture.setAccessibleName(self.tr("Image %1, %2").replace("%1", attachment.name).replace("%2", description))

    def _show_large(self) -> None:
        if self.attachment is not None:
            ImageViewer(self.attachment.image.data, self.window()).open()


class AttachmentStrip(QWidget):
    """The pictures attached to the message being written, in the order they were offered;
    hidden while there are none."""

    sig_removed = Signal()
    """The user took a picture off the message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("attachmentStrip")
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 6)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self._tiles: list[AttachmentTile] = []
        self.hide()

    def tiles(self) -> list[AttachmentTile]:
        return list(self._tiles)

    def count(self) -> int:
        """Pictures on the strip, ready or still being prepared."""
        return len(self._tiles)

    def preparing(self) -> int:
        return sum(1 for tile in self._tiles if tile.attachment is None)

    def attachments(self) -> tuple[Attachment, ...]:
        return tuple(tile.attachment for tile in self._tiles if tile.attachment is not None)

    def add_pending(self, ticket: int | None, name: str) -> AttachmentTile:
        """A tile for the picture the intake prepares as ``ticket``."""
        tile = AttachmentTile(ticket, name)
        tile.sig_remove.connect(self._on_remove)
        self._layout.insertWidget(len(self._tiles), tile)
        self._tiles.append(tile)
        self.show()
        return tile

    def fill(self, ticket: int, attachment: Attachment) -> None:
        """The picture ``ticket`` is ready (nothing happens when it was removed meanwhile)."""
        tile = self._tile(ticket)
        if tile is not None:
            tile.show_attachment(attachment)

    def add_ready(self, attachments: tuple[Attachment, ...]) -> None:
        """Puts prepared pictures back (a message that was not sent)."""
        for attachment in attachments:
            self.add_pending(None, attachment.name).show_attachment(attachment)

    def remove(self, ticket: int) -> None:
        """Takes the picture ``ticket`` off the strip (one the intake refused)."""
        tile = self._tile(ticket)
        if tile is not None:
            self._take_off(tile)

    def clear(self) -> None:
        for tile in self.tiles():
            self._take_off(tile)

    def _tile(self, ticket: int) -> AttachmentTile | None:
        return next((tile for tile in self._tiles if tile.ticket == ticket), None)

    def _take_off(self, tile: AttachmentTile) -> None:
        self._tiles.remove(tile)
        self._layout.removeWidget(tile)
        tile.hide()  # now: deleting it waits for the event loop
        tile.deleteLater()
        self.setVisible(bool(self._tiles))

    def _on_remove(self, tile: AttachmentTile) -> None:
        if tile in self._tiles:
            self._take_off(tile)
            self.sig_removed.emit()
