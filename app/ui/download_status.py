"""How a download is described everywhere it shows (Models window, welcome screen, status bar),
and the main window's indicator of the downloads in progress."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QToolButton, QWidget

from app.core.models.model_downloads import DownloadProgress, DownloadState
from app.ui.formatting import format_bytes, format_duration
from app.ui.models_controller import ModelsController


def _tr(text: str) -> str:
    return QCoreApplication.translate("DownloadStatus", text)


def describe_download(progress: DownloadProgress) -> str:
    """E.g. "120 MB / 533 MB · 4.1 MB/s · 1 min 42 s left", "120 MB / 533 MB · stalled" (no
    data for a while: it goes on by itself when data comes), "120 MB / 533 MB · paused"."""
    state = progress.state
    if state == DownloadState.QUEUED:
        return _tr("Waiting…")
    if state == DownloadState.VERIFYING:
        return _tr("Checking the file…")
    total = progress.total_bytes or 0
    text = f"{format_bytes(progress.downloaded_bytes)} / {format_bytes(total)}" if total else format_bytes(progress.downloaded_bytes)
    if state == DownloadState.PAUSED:
        return text + " · " + _tr("paused")
    if state == DownloadState.DOWNLOADING:
        if progress.stalled:
            return text + " · " + _tr("stalled")
        if progress.bytes_per_second:
            text += f" · {format_bytes(progress.bytes_per_second)}/s"
            if progress.eta_seconds is not None:
                text += " · " + _tr("%1 left").replace("%1", format_duration(progress.eta_seconds))
    return text


def fraction_done(progress: DownloadProgress) -> float | None:
    """0.0 … 1.0, None when the size is not known yet."""
    total = progress.total_bytes
    return min(1.0, progress.downloaded_bytes / total) if total else None


class DownloadsIndicator(QWidget):
    """Status-bar item while downloads are queued, running or checked: what and how far, with
    a bar; hidden otherwise. Clicking it opens the Models window."""

    sig_clicked = Signal()
    """The user wants to see the downloads (the Models window)."""

    def __init__(self, models: ModelsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._models = models
        self.button = QToolButton()
        self.button.setObjectName("downloadsIndicator")
        self.button.setAutoRaise(True)
        self.button.clicked.connect(self.sig_clicked)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedSize(90, 8)
        self.bar.setAccessibleName(self.tr("Download progress"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.bar)
        models.sig_download_progress.connect(self._on_progress)  # a method: Qt disconnects it with us
        self.refresh()

    def _on_progress(self, _progress) -> None:
        self.refresh()

    def refresh(self) -> None:
        active = self._models.active_downloads()
        self.setVisible(bool(active))
        if not active:
            return
        running = next((progress for progress in active if progress.state != DownloadState.QUEUED), active[0])
        latest = self._models.latest_progress(running)
        name = self._models.display_name_of(latest)
        detail = describe_download(latest)
        more = len(active) - 1
        text = f"⬇ {name}: {detail}"
        if more:
            text += " " + self.tr("(+%1 waiting)").replace("%1", str(more))
        self.button.setText(text)
        self.button.setToolTip(self.tr("Downloads: open the Models window"))
        done = fraction_done(latest)
        self.bar.setRange(0, 0 if done is None and latest.state == DownloadState.DOWNLOADING else 1000)
        self.bar.setValue(round(1000 * (done or 0)))
