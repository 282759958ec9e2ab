"""The Models window: what fits this computer, downloads, and the models already here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.core.models.fit_estimate import format_gb
from app.core.models.local_models import LocalModel, ModelSource
from app.core.models.model_catalog import SIZES, CatalogEntry
from app.core.models.model_downloads import DownloadProgress, DownloadState
from app.ui.fit_badge import FitBadge
from app.ui.download_status import describe_download, fraction_done
from app.ui.formatting import format_bytes
from app.ui.models_controller import ModelsController

SIZE_DESCRIPTIONS = {
    "0.8B": "Fastest; for quick answers on any laptop",
    "2B": "Fast, noticeably smarter",
    "4B": "Balanced: thoughtful answers on a typical laptop",
    "9B": "Most capable; needs plenty of memory",
}
COLUMN_MODEL, COLUMN_SIZE, COLUMN_FIT, COLUMN_STATUS, COLUMN_ACTIONS = range(5)


class ModelsDialog(QDialog):
    sig_use_model = Signal(object)
    """The user chose a model file to chat with: its ``Path``."""
    sig_open_settings = Signal()
    """The user asked for the model settings (folder, Hub token, offline mode)."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Models"))
        self.setObjectName("modelsDialog")
        self.resize(980, 640)
        self._controller = controller
        self._catalog_rows: dict[str, tuple[CatalogEntry, QTreeWidgetItem]] = {}

        self.hardware_label = QLabel()
        self.hardware_label.setObjectName("hardwareSummary")
        self.hardware_label.setWordWrap(True)
        self.recommendation_label = QLabel()
        self.recommendation_label.setObjectName("recommendation")
        self.recommendation_label.setWordWrap(True)
        self.message_label = QLabel()
        self.message_label.setObjectName("modelsMessage")
        self.message_label.setWordWrap(True)
        self.message_label.hide()

        self.local_tree = self._make_tree([self.tr("On this computer"), self.tr("Size"), self.tr("Fits?"), self.tr("Source"), ""])
        self.catalog_tree = self._make_tree([self.tr("Download Qwen3.5"), self.tr("Download size"), self.tr("Fits?"), self.tr("Status"), ""])

        self.refresh_button = QPushButton(self.tr("Refresh catalog"))
        self.refresh_button.setToolTip(self.tr("Read the latest file list, sizes and checksums from the Hugging Face Hub"))
        self.refresh_button.clicked.connect(self._refresh_catalog)
        import_button = QPushButton(self.tr("Import GGUF file…"))
        import_button.clicked.connect(self._import_file)
        settings_button = QPushButton(self.tr("Settings…"))
        settings_button.clicked.connect(self.sig_open_settings)
        close_button = QPushButton(self.tr("Close"))
        close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(import_button)
        buttons.addWidget(settings_button)
        buttons.addStretch(1)
        buttons.addWidget(close_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.hardware_label)
        layout.addWidget(self.recommendation_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.local_tree, 2)
        layout.addWidget(self.catalog_tree, 5)
        layout.addLayout(buttons)

        controller.sig_download_progress.connect(self._on_progress)
        controller.sig_local_models_changed.connect(self._on_local_models_changed)
        controller.sig_hardware_changed.connect(self._on_hardware_changed)
        controller.sig_model_headers_read.connect(self._fill_local)
        controller.sig_catalog_refreshed.connect(self._on_catalog_refreshed)
        controller.sig_catalog_refresh_failed.connect(self._on_catalog_refresh_failed)
        self.reload()

    def _make_tree(self, headers: list[str]) -> QTreeWidget:
        tree = QTreeWidget()
        tree.setHeaderLabels(headers)
        tree.setRootIsDecorated(False)
        tree.setUniformRowHeights(False)  # error lines wrap to several lines
        tree.setItemsExpandable(False)
        tree.setSelectionMode(QTreeWidget.SelectionMode.NoSelection)
        tree.setAccessibleName(headers[0])
        header = tree.header()
        header.setSectionResizeMode(COLUMN_MODEL, QHeaderView.ResizeMode.Stretch)
        for column in (COLUMN_SIZE, COLUMN_FIT, COLUMN_STATUS, COLUMN_ACTIONS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(False)
        return tree

    # ------------------------------------------------------------------------------ content

    def reload(self) -> None:
        self._show_hardware()
        self._fill_local()
        self._fill_catalog()

    def _show_hardware(self) -> None:
        hardware = self._controller.hardware
        parts = [
            self.tr("%1 of memory (%2 free now)").replace("%1", format_gb(hardware.total_ram_bytes)).replace("%2", format_gb(hardware.available_ram_bytes)),
            self.tr("%1 CPU cores").replace("%1", str(hardware.physical_cores)),
            self.tr("llama.cpp backend: %1").replace("%1", hardware.backend),
        ]
        for gpu in hardware.gpus:
            parts.append(self.tr("%1 (%2 free)").replace("%1", gpu.description or gpu.name).replace("%2", format_gb(gpu.free_bytes)))
        if hardware.models_dir_free_bytes is not None:
            parts.append(self.tr("%1 free for models").replace("%1", format_bytes(hardware.models_dir_free_bytes)))
        self.hardware_label.setText(self.tr("This computer: ") + " · ".join(parts))
        entry, recommendation = self._controller.recommendation()
        if entry is None:
            self.recommendation_label.setText(self.tr("None of the Qwen3.5 models fits in the memory free right now."))
        else:
            self.recommendation_label.setText(self.tr("<b>Recommended: %1.</b> %2").replace("%1", entry.display_name).replace("%2", recommendation.reason))

    def _fill_local(self) -> None:
        tree = self.local_tree
        tree.clear()
        models = self._controller.local_models()
        if not models:
            item = QTreeWidgetItem([self.tr("No models yet: download one below, or import a GGUF file.")])
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            tree.addTopLevelItem(item)
            return
        sources = {
            ModelSource.DOWNLOADED: self.tr("Downloaded"),
            ModelSource.IMPORTED: self.tr("Imported"),
            ModelSource.HUGGING_FACE_CACHE: self.tr("Hugging Face cache"),
        }
        for model in models:
            item = QTreeWidgetItem([model.name, format_bytes(model.size), "", sources[model.source]])
            item.setToolTip(COLUMN_MODEL, str(model.path))
            tree.addTopLevelItem(item)
            assessment = self._controller.assess_local(model)
            if assessment is not None:
                tree.setItemWidget(item, COLUMN_FIT, FitBadge(assessment))
            tree.setItemWidget(item, COLUMN_ACTIONS, self._local_actions(model))

    def _local_actions(self, model: LocalModel) -> QWidget:
        use = QPushButton(self.tr("Use"))
        use.clicked.connect(lambda: self._use(model.path))
        buttons = [use]
        if model.source != ModelSource.HUGGING_FACE_CACHE:
            remove = QPushButton(self.tr("Delete…") if model.source == ModelSource.DOWNLOADED else self.tr("Remove"))
            remove.setToolTip(
                self.tr("Delete the downloaded file") if model.source == ModelSource.DOWNLOADED
                else self.tr("Remove from this list; your file is kept")
            )
            remove.clicked.connect(lambda: self._remove(model))
            buttons.append(remove)
        return _button_row(buttons)

    def _fill_catalog(self) -> None:
        tree = self.catalog_tree
        tree.clear()
        self._catalog_rows.clear()
        entries = self._controller.catalog.entries()
        for size_label in SIZES:
            group = QTreeWidgetItem([f"Qwen3.5 {size_label} — {self.tr(SIZE_DESCRIPTIONS[size_label])}"])
            font = group.font(COLUMN_MODEL)
            font.setBold(True)
            group.setFont(COLUMN_MODEL, font)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            tree.addTopLevelItem(group)
            group.setFirstColumnSpanned(True)
            for entry in (entry for entry in entries if entry.size_label == size_label):
                size = format_bytes(entry.model.size) if entry.model.size else self.tr("unknown")
                item = QTreeWidgetItem([f"    {entry.quantization} — {self.tr(entry.quality_hint)}", ("≈ " if entry.model.size_is_estimate else "") + size])
                item.setToolTip(COLUMN_MODEL, f"{entry.display_name}: {self.tr(entry.quality_hint)}\n{entry.model.repo_id}/{entry.model.filename}")
                tree.addTopLevelItem(item)
                self._catalog_rows[self._controller.request_for(entry).key] = (entry, item)
                assessment = self._controller.assess_entry(entry)
                if assessment is not None:
                    tree.setItemWidget(item, COLUMN_FIT, FitBadge(assessment))
                self._show_entry_state(entry, item, self._controller.progress_of(entry))

    def _show_entry_state(self, entry: CatalogEntry, item: QTreeWidgetItem, progress: DownloadProgress | None) -> None:
        tree = self.catalog_tree
        installed = self._controller.installed_path(entry)
        state = progress.state if progress else None
        if installed is not None:
            tree.setItemWidget(item, COLUMN_STATUS, QLabel(self.tr("Installed")))
            use = QPushButton(self.tr("Use"))
            use.clicked.connect(lambda: self._use(installed))
            tree.setItemWidget(item, COLUMN_ACTIONS, _button_row([use]))
            return
        self._show_error(item, progress.error if state == DownloadState.FAILED else None)
        if state in (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING, DownloadState.PAUSED):
            tree.setItemWidget(item, COLUMN_STATUS, _progress_widget(progress))
            buttons = []
            if state == DownloadState.PAUSED:
                resume = QPushButton(self.tr("Resume"))
                resume.clicked.connect(lambda: self._controller.resume(entry))
                buttons.append(resume)
            elif state != DownloadState.VERIFYING:
                pause = QPushButton(self.tr("Pause"))
                pause.clicked.connect(lambda: self._controller.pause(entry))
                buttons.append(pause)
            cancel = QPushButton(self.tr("Cancel"))
            cancel.clicked.connect(lambda: self._controller.cancel(entry))
            buttons.append(cancel)
            tree.setItemWidget(item, COLUMN_ACTIONS, _button_row(buttons))
            return
        status = {DownloadState.FAILED: self.tr("Failed"), DownloadState.CANCELLED: self.tr("Cancelled")}.get(state, "")
        label = QLabel(status)
        label.setObjectName("downloadError" if state == DownloadState.FAILED else "")
        tree.setItemWidget(item, COLUMN_STATUS, label)
        download = QPushButton(self.tr("Retry") if state == DownloadState.FAILED else self.tr("Download"))
        download.clicked.connect(lambda: self._controller.download(entry))
        tree.setItemWidget(item, COLUMN_ACTIONS, _button_row([download]))

    def _show_error(self, item: QTreeWidgetItem, error: str | None) -> None:
        """A failed download's whole message, on a line of its own under its row, so no column
        width ever cuts it."""
        if item.childCount():
            item.removeChild(item.child(0))
        if not error:
            return
        line = QTreeWidgetItem()
        line.setFlags(Qt.ItemFlag.ItemIsEnabled)
        item.addChild(line)
        line.setFirstColumnSpanned(True)
        label = QLabel(error)
        label.setObjectName("downloadError")
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setContentsMargins(24, 2, 8, 6)
        self.catalog_tree.setItemWidget(line, COLUMN_MODEL, label)
        item.setExpanded(True)

    # ------------------------------------------------------------------------------ actions

    def _on_progress(self, progress: DownloadProgress) -> None:
        row = self._catalog_rows.get(progress.request.key)
        if row is not None:
            self._show_entry_state(*row, progress)

    def _on_hardware_changed(self) -> None:
        """New fit advice in the rows that are there (a download's row keeps its progress)."""
        self._show_hardware()
        self._fill_local()
        for entry, item in self._catalog_rows.values():
            assessment = self._controller.assess_entry(entry)
            if assessment is not None:
                self.catalog_tree.setItemWidget(item, COLUMN_FIT, FitBadge(assessment))

    def _on_local_models_changed(self) -> None:
        """Rows stay where they are (and keep focus and scroll position); only their state changes."""
        self._show_hardware()
        self._fill_local()
        for entry, item in self._catalog_rows.values():
            self._show_entry_state(entry, item, self._controller.progress_of(entry))

    def _use(self, path: Path) -> None:
        self.sig_use_model.emit(path)
        self.close()

    def _remove(self, model: LocalModel) -> None:
        if model.source == ModelSource.DOWNLOADED:
            answer = QMessageBox.question(
                self,
                self.tr("Delete model"),
                self.tr("Delete “%1” (%2)? Your conversations with it are kept.").replace("%1", model.name).replace("%2", format_bytes(model.size)),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self._controller.remove_model(model)

    def _import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Import a GGUF model"), "", self.tr("GGUF models (*.gguf)"))
        if path and (problem := self._controller.import_model(Path(path))):
            self.message_label.setText(problem)
            self.message_label.show()

    def _refresh_catalog(self) -> None:
        self.refresh_button.setEnabled(False)
        self.refresh_button.setText(self.tr("Refreshing…"))
        self._controller.refresh_catalog()

    def _on_catalog_refreshed(self, failures: dict[str, str]) -> None:
        self._restore_refresh_button()
        if failures:
            read = len(SIZES) - len(failures)
            lines = [self.tr("Read %1 of %2 repositories; the others keep their earlier figures:").replace("%1", str(read)).replace("%2", str(len(SIZES)))]
            lines += [f"• {message}" for message in failures.values()]
            self.message_label.setText("\n".join(lines))
            self.message_label.show()
        else:
            self.message_label.hide()
        self._fill_catalog()
        self._show_hardware()

    def _on_catalog_refresh_failed(self, message: str) -> None:
        self._restore_refresh_button()
        self.message_label.setText(message)
        self.message_label.show()

    def _restore_refresh_button(self) -> None:
        self.refresh_button.setEnabled(True)
        self.refresh_button.setText(self.tr("Refresh catalog"))


def _button_row(buttons: list[QPushButton]) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(2, 0, 2, 0)
    for button in buttons:
        layout.addWidget(button)
    return row


def _progress_widget(progress: DownloadProgress) -> QWidget:
    """Progress bar with bytes, speed and time left (or that the transfer stalled)."""
    bar = QProgressBar()
    bar.setMinimumWidth(240)
    done = fraction_done(progress)
    # A busy indicator only while bytes arrive for a file of unknown size; a queued download
    # waits with an empty bar.
    bar.setRange(0, 0 if progress.state == DownloadState.DOWNLOADING and done is None else 1000)
    bar.setValue(round(1000 * (done or 0)))
    text = describe_download(progress)
    bar.setFormat(text)
    if progress.stalled:
        bar.setToolTip(bar.tr("No data has come from the server for a while. The download goes on by itself when it does; Pause and Resume starts a new connection."))
    bar.setTextVisible(True)
    bar.setAccessibleName(text)
    return bar
