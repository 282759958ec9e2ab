"""First-run screen: recommends the best model for this computer, downloadable in one click."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.core.models.model_downloads import DownloadProgress, DownloadState
from app.ui.download_status import describe_download
from app.ui.formatting import format_bytes
from app.ui.models_controller import ModelsController
from app.ui.reading_column import MAX_READING_WIDTH


class WelcomePanel(QFrame):
    sig_use_model = Signal(object)
    """The recommended model finished downloading and can be used: its ``Path``."""
    sig_show_models = Signal()
    """The user wants to pick another model."""
    sig_open_file = Signal()
    """The user already has a GGUF file and wants to open it."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePanel")
        self._controller = controller
        self._entry = None
        self._started_here = False  # the user clicked Download here (not in the Models window)

        title = QLabel(self.tr("Welcome to Qwen Local Chat"))
        title.setObjectName("welcomeTitle")
        title.setWordWrap(True)  # a small window wraps it rather than grows
        intro = QLabel(self.tr("Chat with a Qwen3.5 model that runs entirely on this computer. Nothing you type leaves it."))
        intro.setWordWrap(True)
        self.reason_label = QLabel()
        self.reason_label.setWordWrap(True)
        self.reason_label.setObjectName("welcomeReason")
        self.download_button = QPushButton()
        self.download_button.setObjectName("welcomeDownload")
        self.download_button.clicked.connect(self._download)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.error_label = QLabel()
        self.error_label.setObjectName("welcomeError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()

        others = QPushButton(self.tr("Other models…"))
        others.clicked.connect(self.sig_show_models)
        open_file = QPushButton(self.tr("Open a .gguf file…"))
        open_file.setToolTip(self.tr("Already have a GGUF model file? Open it here."))
        open_file.clicked.connect(self.sig_open_file)
        secondary = QHBoxLayout()
        secondary.addStretch(1)
        secondary.addWidget(others)
        secondary.addWidget(open_file)
        secondary.addStretch(1)

        content = QWidget()
        content.setMaximumWidth(MAX_READING_WIDTH)  # centred, at a width that reads well
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(content)
        column = QVBoxLayout(content)
        column.addStretch(1)
        for widget in (title, intro, self.reason_label):
            widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
            column.addWidget(widget)
        column.addSpacing(12)
        column.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.progress)
        column.addWidget(self.error_label)
        column.addLayout(secondary)
        column.addStretch(2)
        column.setContentsMargins(24, 24, 24, 24)

        self.refresh_recommendation()
        controller.sig_hardware_changed.connect(self.refresh_recommendation)
        controller.sig_download_progress.connect(self._on_progress)
        if self._entry is not None:
            current = controller.progress_of(self._entry)
            if current is not None:
                self._on_progress(current)

    def refresh_recommendation(self) -> None:
        """Recommends again (this computer's measured speed may have changed the advice), unless
        the recommended download has already begun."""
        if self._entry is not None and self._controller.progress_of(self._entry) is not None:
            return
        self._entry, recommendation = self._controller.recommendation()
        if self._entry is None:
            self.reason_label.setText(self.tr("None of the Qwen3.5 models fits in the memory free right now. Close other programs, or choose a model yourself."))
            self.download_button.hide()
            return
        self.reason_label.setText(
            self.tr("Recommended for this computer: <b>%1</b>. %2").replace("%1", self._entry.display_name).replace("%2", recommendation.reason)
        )
        name = f"Qwen3.5 {self._entry.size_label}"
        images = self._controller.projector_download_size(self._entry)
        total = self._entry.model.size + (images[0] if images is not None else 0)
        size = format_bytes(total) if self._entry.model.size else ""
        self.download_button.setText(self.tr("Download %1 (%2)").replace("%1", name).replace("%2", size))
        # One click gets image support too; the size counts it, the tooltip says so (a longer
        # label would widen the window's minimum).
        self.download_button.setToolTip(
            self.tr("%1, with image support").replace("%1", self._entry.display_name) if images is not None
            else self._entry.display_name
        )
        self.download_button.show()

    def _download(self) -> None:
        self.error_label.hide()
        self._started_here = True
        current = self._controller.progress_of(self._entry)
        if current is not None and current.state == DownloadState.PAUSED:
            self._controller.resume(self._entry)
        else:
            self._controller.download(self._entry)

    def _on_progress(self, progress: DownloadProgress) -> None:
        if self._entry is None:
            return
        projector = self._controller.projector_request_for(self._entry)
        if projector is not None and progress.request.key == projector.key:
            self._show_projector_progress(progress)
            return
        if progress.request.key != self._controller.request_for(self._entry).key:
            return
        state = progress.state
        self.download_button.setEnabled(state in (DownloadState.FAILED, DownloadState.CANCELLED, DownloadState.PAUSED))
        self.progress.setVisible(state in (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING, DownloadState.PAUSED))
        if progress.total_bytes:
            self.progress.setValue(round(1000 * progress.downloaded_bytes / progress.total_bytes))
        self.progress.setFormat(describe_download(progress))
        if state == DownloadState.PAUSED:
            self.download_button.setText(self.tr("Resume download"))
        if state == DownloadState.FAILED:
            self.error_label.setText(progress.error or self.tr("The download failed."))
            self.error_label.show()
            self.download_button.setText(self.tr("Try again"))
        if state == DownloadState.COMPLETE and progress.path is not None and self._started_here:
            # One click here means "get me started": the model is used as soon as it is ready. A
            # download started elsewhere (the Models window) is offered with a Load button.
            self.sig_use_model.emit(Path(progress.path))

    def _show_projector_progress(self, progress: DownloadProgress) -> None:
        """The image support downloads first: its bar, while it runs. How it ends is the Models
        window's to show; the model downloads after it either way."""
        if progress.state not in (DownloadState.DOWNLOADING, DownloadState.VERIFYING):
            return
        self.progress.show()
        if progress.total_bytes:
            self.progress.setValue(round(1000 * progress.downloaded_bytes / progress.total_bytes))
        self.progress.setFormat(self.tr("Image support · %1").replace("%1", describe_download(progress)))
