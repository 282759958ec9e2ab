"""Pictures on screen: decoded with Qt's QImageReader at the size they are shown, never larger;
thumbnails of stored images decoded off the GUI thread; a dialog that shows one picture large.

Every image the app keeps went through ``image_intake`` (at most 2,048 pixels a side), but the
files on disk can be replaced or damaged behind the app's back, so nothing here trusts them: the
header is read first, a picture of more pixels than intake accepts is not decoded at all, and a
file that cannot be read shows as a placeholder.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QRect, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QImage, QImageReader, QKeyEvent, QPainter, QPainterPath, QPixmap
from PySide6.QtWidgets import QDialog, QLabel, QLayout, QLayoutItem, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.core.images.image_intake import MAX_SOURCE_PIXELS
from app.ui.icons import themed_icon

# Decoded thumbnails kept for conversations opened again (a 160-pixel-high one is ~100 KB).
THUMBNAIL_CACHE_SIZE = 64


def _reader(source: Path | bytes) -> tuple[QImageReader, QBuffer | None]:
    """A reader of ``source``, and the buffer it reads bytes from: the reader does not own its
    device, so the caller keeps the buffer as long as it reads."""
    if isinstance(source, Path):
        return QImageReader(str(source)), None
    buffer = QBuffer()
    buffer.setData(QByteArray(source))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    return QImageReader(buffer), buffer


def image_size(source: Path | bytes) -> QSize:
    """The picture's size from its header alone (invalid when it has none that Qt reads)."""
    reader, _buffer = _reader(source)
    return reader.size()


def read_image(source: Path | bytes, box: QSize, *, crop: bool = False) -> QImage:
    """The picture in ``source`` (a file or encoded bytes) scaled down to fit ``box`` (never up),
    or with ``crop`` to fill it, cut to the middle; decoded at that size where the format can.
    A null image when the picture is missing, damaged, or has more pixels than intake accepts."""
    reader, _buffer = _reader(source)
    size = reader.size()
    if not size.isValid() or size.isEmpty() or size.width() * size.height() > MAX_SOURCE_PIXELS:
        return QImage()
    mode = Qt.AspectRatioMode.KeepAspectRatioByExpanding if crop else Qt.AspectRatioMode.KeepAspectRatio
    scaled = size.scaled(box, mode) if crop or size.width() > box.width() or size.height() > box.height() else size
    if scaled != size:
        reader.setScaledSize(scaled)
    if crop and (scaled.width() > box.width() or scaled.height() > box.height()):
        clip = QRect(0, 0, min(box.width(), scaled.width()), min(box.height(), scaled.height()))
        clip.moveCenter(QRect(0, 0, scaled.width(), scaled.height()).center())
        reader.setScaledClipRect(clip)
    return reader.read()  # a null image when decoding fails


def rounded(image: QImage, radius: float) -> QImage:
    """``image`` with its corners rounded off (transparent), as the app's frames are."""
    result = QImage(image.size(), QImage.Format.Format_ARGB32_Premultiplied)
    result.fill(Qt.GlobalColor.transparent)
    painter = QPainter(result)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    path = QPainterPath()
    path.addRoundedRect(0, 0, image.width(), image.height(), radius, radius)
    painter.setClipPath(path)
    painter.drawImage(0, 0, image)
    painter.end()
    result.setDevicePixelRatio(image.devicePixelRatio())
    return result


class _LoadResults(QObject):
    """Carries a finished decode from the pool's thread to the GUI thread. It has no parent, and
    each job holds it, so a job that ends after its loader was deleted emits into the void."""

    sig_done = Signal(str, object)
    """A thumbnail is decoded: (cache key, the ``QImage``, null when the file could not be read)."""


class ThumbnailLoader(QObject):
    """Decodes thumbnails of stored images on Qt's thread pool: the GUI thread never waits on a
    file or a decoder, however many pictures a conversation shows."""

    sig_loaded = Signal(str, object)
    """A thumbnail is ready: (its key from :meth:`request`, the ``QImage``; null: no picture)."""

    def __init__(self, image_path: Callable[[str], Path] | None, parent: QObject | None = None) -> None:
        """``image_path(sha256)`` is where the stored image with that hash is (it raises
        ``ValueError`` for a name that is no hash); None: no stored images can be shown."""
        super().__init__(parent)
        self._image_path = image_path
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._loading: set[str] = set()
        self._results = _LoadResults()
        self._results.sig_done.connect(self._on_done)

    def path_of(self, sha256: str) -> Path | None:
        """The stored file of the image ``sha256``, None when there can be none."""
        if self._image_path is None:
            return None
        try:
            return self._image_path(sha256)
        except ValueError:  # a damaged row names no hash: it must not name another file
            return None

    def request(self, sha256: str, box: QSize) -> tuple[str, QImage | None]:
        """The thumbnail of the image ``sha256`` fitting ``box`` (device pixels) if it was decoded
        before; else None, and decoding starts. The key is the one :attr:`sig_loaded` carries."""
        key = f"{sha256}@{box.width()}x{box.height()}"
        if key in self._cache:
            self._cache.move_to_end(key)
            return key, self._cache[key]
        if key not in self._loading:
            self._loading.add(key)
            path, results = self.path_of(sha256), self._results
            QThreadPool.globalInstance().start(
                lambda: results.sig_done.emit(key, read_image(path, box) if path is not None else QImage())
            )
        return key, None

    def _on_done(self, key: str, image: QImage) -> None:
        self._loading.discard(key)
        if not image.isNull():  # a missing file may come back (an import): not remembered
            self._cache[key] = image
            while len(self._cache) > THUMBNAIL_CACHE_SIZE:
                self._cache.popitem(last=False)
        self.sig_loaded.emit(key, image)


class FlowLayout(QLayout):
    """Lays its items out in rows, left to right, starting a new row where the width ends."""

    def __init__(self, spacing: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setContentsMargins(0, 0, 0, 0)
        self.setSpacing(spacing)
        self._items: list[QLayoutItem] = []

    def addItem(self, item: QLayoutItem) -> None:  # noqa: N802 (Qt API)
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 (Qt API)
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:  # noqa: N802 (Qt API)
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:  # noqa: N802 (Qt API)
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt API)
        return True

    def heightForWidth(self, width: int) -> int:  # noqa: N802 (Qt API)
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802 (Qt API)
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt API)
        return self.minimumSize()

    def minimumSize(self) -> QSize:  # noqa: N802 (Qt API)
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        """Places the items in ``rect`` (with ``move``), and returns the height they take."""
        x, y, row_height, spacing = rect.x(), rect.y(), 0, self.spacing()
        for item in self._items:
            hint = item.sizeHint()
            if x > rect.x() and x + hint.width() > rect.right() + 1:
                x, y, row_height = rect.x(), y + row_height + spacing, 0
            if move:
                item.setGeometry(QRect(x, y, hint.width(), hint.height()))
            x += hint.width() + spacing
            row_height = max(row_height, hint.height())
        return y + row_height - rect.y()


class ImageThumbnail(QToolButton):
    """A stored picture in a message, at a fixed height; a click shows it large. A picture whose
    file is missing or damaged shows as a placeholder, and a click does nothing."""

    def __init__(self, loader: ThumbnailLoader, sha256: str, height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageThumbnail")
        self._loader = loader
        self._path = loader.path_of(sha256)
        header = image_size(self._path) if self._path is not None and self._path.is_file() else QSize()
        self.readable = header.isValid() and not header.isEmpty()
        self.setAutoRaise(True)
        self.setIconSize(self._tile_size(header, height))
        self.setFixedSize(self.iconSize())
        self._key = ""
        if self.readable:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.setToolTip(self.tr("%1 × %2 pixels: click to see it large").replace("%1", str(header.width())).replace("%2", str(header.height())))
            self.setAccessibleName(self.tr("Image, %1 × %2 pixels").replace("%1", str(header.width())).replace("%2", str(header.height())))
            ratio = self.devicePixelRatioF()
            box = QSize(round(self.iconSize().width() * ratio), round(self.iconSize().height() * ratio))
            self._key, image = loader.request(sha256, box)
            if image is None:
                loader.sig_loaded.connect(self._on_loaded)
            else:
                self._show(image)
            self.clicked.connect(self.show_large)
        else:
            self._show_placeholder()

    @staticmethod
    def _tile_size(header: QSize, height: int) -> QSize:
        """``height`` high and as wide as the picture's proportions (within reason), square when
        its size is not known."""
        if not header.isValid() or header.isEmpty():
            return QSize(height, height)
        width = round(height * header.width() / header.height())
        return QSize(max(height // 2, min(width, height * 2)), height)

    @property
    def is_loaded(self) -> bool:
        """The picture itself is on screen (not the placeholder, not still decoding)."""
        return not self.icon().isNull() and self.readable

    def _on_loaded(self, key: str, image: QImage) -> None:
        if key != self._key:
            return
        self._loader.sig_loaded.disconnect(self._on_loaded)
        if image.isNull():
            self.readable = False
            self._show_placeholder()
        else:
            self._show(image)

    def _show(self, image: QImage) -> None:
        ratio = self.devicePixelRatioF()
        image = rounded(image, 8 * ratio)
        image.setDevicePixelRatio(ratio)
        self.setIcon(QPixmap.fromImage(image))

    def _show_placeholder(self) -> None:
        self.setProperty("missing", True)
        self.style().unpolish(self)
        self.style().polish(self)
        muted = themed_icon("image-off", self.palette()).pixmap(QSize(32, 32), self.devicePixelRatioF(), QIcon.Mode.Disabled)
        self.setIcon(QIcon(muted))
        self.setIconSize(QSize(32, 32))
        self.setCursor(Qt.CursorShape.ArrowCursor)
        self.setToolTip(self.tr("This image cannot be shown: its file is missing or damaged."))
        self.setAccessibleName(self.tr("Image that cannot be shown"))

    def show_large(self) -> None:
        if self.readable and self._path is not None:
            ImageViewer(self._path, self.window()).open()


class ImageViewer(QDialog):
    """One picture, as large as fits the screen (never enlarged); Esc or a click closes it."""

    def __init__(self, source: Path | bytes, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        screen = (parent or self).screen().availableGeometry()
        ratio = self.devicePixelRatioF()
        fits = QSize(round(screen.width() * 0.9 * ratio), round(screen.height() * 0.85 * ratio))
        header = image_size(source)
        image = read_image(source, fits)
        self.picture = QLabel()
        self.picture.setObjectName("viewerImage")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        if image.isNull():
            self.picture.setText(self.tr("This image cannot be shown: its file is missing or damaged."))
            self.setWindowTitle(self.tr("Image"))
        else:
            image.setDevicePixelRatio(ratio)
            self.picture.setPixmap(QPixmap.fromImage(image))
            self.setWindowTitle(
                self.tr("Image · %1 × %2 pixels").replace("%1", str(header.width())).replace("%2", str(header.height()))
            )
        self.picture.setAccessibleName(self.windowTitle())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.picture)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetFixedSize)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.accept()  # as Esc does (QDialog): the keyboard closes what a click opened
            return
        super().keyPressEvent(event)
