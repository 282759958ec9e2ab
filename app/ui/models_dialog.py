"""The Models window: what fits this computer, downloads, and the models already here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolButton,
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
COLUMN_MODEL, COLUMN_SIZE, COLUMN_FIT, COLUMN_STATUS, COLUMN_IMAGES, COLUMN_ACTIONS = range(6)
_IN_QUEUE = (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING, DownloadState.PAUSED)
_RUNNING = (DownloadState.DOWNLOADING, DownloadState.VERIFYING)


class ModelsDialog(QDialog):
    sig_use_model = Signal(object)
    """The user chose a model file to chat with: its ``Path``."""
    sig_open_settings = Signal()
    """The user asked for the model settings (folder, Hub token, offline mode)."""

    def __init__(self, controller: ModelsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Models"))
        self.setObjectName("modelsDialog")
        self.resize(1180, 700)  # wide enough for every column, the model names whole
        self._controller = controller
        self._catalog_rows: dict[str, tuple[CatalogEntry, QTreeWidgetItem]] = {}
        self._rows_of_projector: dict[str, list[str]] = {}  # a projector's download → its models' rows
        self._with_images: dict[str, bool] = {}  # a row's "Image support" choice, by its model's download

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

        self.local_tree = self._make_tree([self.tr("On this computer"), self.tr("Size"), self.tr("Fits?"), self.tr("Source"), self.tr("Images"), ""])
        self.catalog_tree = self._make_tree([self.tr("Download Qwen3.5"), self.tr("Download size"), self.tr("Fits?"), self.tr("Status"), self.tr("Images"), ""])

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
        for column in (COLUMN_SIZE, COLUMN_FIT, COLUMN_STATUS, COLUMN_IMAGES, COLUMN_ACTIONS):
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
            tree.setItemWidget(item, COLUMN_IMAGES, self._local_images(model))
            tree.setItemWidget(item, COLUMN_ACTIONS, self._local_actions(model))

    def _local_images(self, model: LocalModel) -> QWidget:
        """Which projector the model loads with, and a menu to choose another or none."""
        controller = self._controller
        support = controller.image_support_of(model.path)
        chosen = controller.is_paired(model.path)
        if support is None:
            text, tooltip = self.tr("…"), self.tr("Looking for its image support")
        elif support.projector is not None:
            text = self.tr("Reads images: %1").replace("%1", support.projector.name)
            tooltip = str(support.projector) + ("\n" + self.tr("Chosen by you") if chosen else "")
        else:
            text = self.tr("Text only")
            tooltip = self.tr("You chose to load it without image support") if chosen else self.tr(
                "No image support file (mmproj) for this model was found beside it"
            )
        label = QLabel(text)
        label.setObjectName("imageSupport")
        label.setToolTip(tooltip)
        change = QToolButton()
        change.setText(self.tr("Change"))
        change.setAccessibleName(self.tr("Change the image support of %1").replace("%1", model.name))
        change.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(change)
        menu.addAction(self.tr("Choose image support file…"), lambda: self._choose_projector(model))
        entry = controller.catalog_entry_of(model)
        if entry is not None and entry.projector is not None and controller.installed_projector(entry) is None:
            menu.addAction(self._add_images_text(entry), lambda: controller.download_projector(entry))
        text_only = menu.addAction(self.tr("Text only"), lambda: controller.use_no_projector(model.path))
        text_only.setEnabled(support is None or support.projector is not None or not chosen)
        automatic = menu.addAction(self.tr("Find it automatically"), lambda: controller.forget_pairing(model.path))
        automatic.setEnabled(chosen)
        change.setMenu(menu)
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(label)
        layout.addWidget(change)
        return row

    def _choose_projector(self, model: LocalModel) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Image support for %1").replace("%1", model.name), str(model.path.parent),
            self.tr("Vision projectors (mmproj*.gguf);;GGUF files (*.gguf)"),
        )
        if path and (problem := self._controller.pair_projector(model.path, Path(path))):
            self.message_label.setText(problem)
            self.message_label.show()

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
        self._rows_of_projector.clear()
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
                key = self._controller.request_for(entry).key
                self._catalog_rows[key] = (entry, item)
                if (projector := self._controller.projector_request_for(entry)) is not None:
                    self._rows_of_projector.setdefault(projector.key, []).append(key)
                self._show_entry_fit(entry, item)
                self._show_entry_state(entry, item)

    def _entry_with_images(self, entry: CatalogEntry) -> bool:
        """Whether the row's model is (or is to be) loaded with its image support."""
        if entry.projector is None:
            return False
        if self._controller.installed_path(entry) is not None:
            return self._controller.installed_projector(entry) is not None
        return self._with_images.get(self._controller.request_for(entry).key, True)

    def _show_entry_fit(self, entry: CatalogEntry, item: QTreeWidgetItem) -> None:
        assessment = self._controller.assess_entry(entry, with_images=self._entry_with_images(entry))
        if assessment is not None:
            self.catalog_tree.setItemWidget(item, COLUMN_FIT, FitBadge(assessment))

    def _add_images_text(self, entry: CatalogEntry) -> str:
        """"Add image support (672 MB)": the download that lets an installed model read images."""
        return self.tr("Add image support (%1)").replace("%1", self._projector_size_text(entry))

    def _projector_size_text(self, entry: CatalogEntry) -> str:
        size = self._controller.projector_download_size(entry)
        if size is None:
            return ""
        byte_count, estimated = size
        return ("≈ " if estimated else "") + format_bytes(byte_count)

    def _show_entry_state(self, entry: CatalogEntry, item: QTreeWidgetItem, reported: DownloadProgress | None = None) -> None:
        """The row of a catalog model: installed, or its download and its image support's.
        ``reported`` is the report that changed it (a cancel's is the last one of its download)."""
        controller = self._controller
        model = controller.progress_of(entry)
        projector = controller.projector_progress_of(entry)
        if reported is not None and reported.state in (DownloadState.CANCELLED, DownloadState.FAILED, DownloadState.COMPLETE):
            if reported.request.key == controller.request_for(entry).key:
                model = reported if model is None else model
            else:
                projector = reported if projector is None else projector
        model, projector = (controller.latest_progress(p) if p is not None else None for p in (model, projector))
        installed = controller.installed_path(entry)
        if installed is not None:
            self._show_installed_entry(entry, item, installed, projector)
            return
        in_queue = [progress for progress in (model, projector) if progress is not None and progress.state in _IN_QUEUE]
        failed = next((p for p in (model, projector) if p is not None and p.state == DownloadState.FAILED), None)
        self._show_error(item, self._error_text(entry, failed))
        self.catalog_tree.setItemWidget(item, COLUMN_IMAGES, self._images_choice(entry, enabled=not in_queue))
        if in_queue:
            shown = next((progress for progress in in_queue if progress.state in _RUNNING), in_queue[0])
            self._show_progress(entry, item, shown, extra=[])
            return
        state = model.state if model is not None else None
        status = {DownloadState.FAILED: self.tr("Failed"), DownloadState.CANCELLED: self.tr("Cancelled")}.get(state, "")
        label = _cell_label(status)
        label.setObjectName("downloadError" if state == DownloadState.FAILED else "")
        self.catalog_tree.setItemWidget(item, COLUMN_STATUS, label)
        download = QPushButton(self.tr("Retry") if state == DownloadState.FAILED else self.tr("Download"))
        download.clicked.connect(lambda: controller.download(entry, with_images=self._entry_with_images(entry)))
        self.catalog_tree.setItemWidget(item, COLUMN_ACTIONS, _button_row([download]))

    def _show_installed_entry(
        self, entry: CatalogEntry, item: QTreeWidgetItem, installed: Path, projector: DownloadProgress | None
    ) -> None:
        """An installed model: Use, and its image support (there, downloading, or to add)."""
        controller = self._controller
        tree = self.catalog_tree
        use = QPushButton(self.tr("Use"))
        use.clicked.connect(lambda: self._use(installed))
        adding = projector is not None and projector.state in _IN_QUEUE
        self._show_error(item, self._error_text(entry, projector if projector and projector.state == DownloadState.FAILED else None))
        if adding:
            self._show_progress(entry, item, projector, extra=[use])
            tree.setItemWidget(item, COLUMN_IMAGES, _cell_label(self.tr("Adding…")))
            return
        tree.setItemWidget(item, COLUMN_STATUS, _cell_label(self.tr("Installed")))
        tree.setItemWidget(item, COLUMN_ACTIONS, _button_row([use]))
        if controller.installed_projector(entry) is not None:
            tree.setItemWidget(item, COLUMN_IMAGES, _cell_label(self.tr("Reads images")))
        elif entry.projector is not None:
            add = QPushButton(self._add_images_text(entry))
            add.setToolTip(self.tr("Download its image support file (%1), so it can read pictures").replace("%1", entry.projector.filename))
            add.clicked.connect(lambda: controller.download_projector(entry))
            tree.setItemWidget(item, COLUMN_IMAGES, _button_row([add]))
        else:
            tree.setItemWidget(item, COLUMN_IMAGES, _cell_label(self.tr("Text only")))

    def _images_choice(self, entry: CatalogEntry, *, enabled: bool) -> QWidget:
        """"Image support (672 MB)", ticked unless the user said otherwise: downloaded with the model."""
        if entry.projector is None:
            return _cell_label(self.tr("Text only"))
        if self._controller.installed_projector(entry) is not None:  # another quantization brought it
            return _cell_label(self.tr("Image support downloaded"))
        key = self._controller.request_for(entry).key
        box = QCheckBox(self.tr("Image support (%1)").replace("%1", self._projector_size_text(entry)))
        box.setObjectName("imageSupportChoice")
        box.setToolTip(self.tr(
            "Also download the vision projector (%1), so this model can read pictures. It is counted in "
            "“Fits?”; you can add it later too."
        ).replace("%1", entry.projector.filename))
        box.setChecked(self._with_images.get(key, True))
        box.setEnabled(enabled)
        box.toggled.connect(lambda checked: self._choose_images(entry, checked))
        return _button_row([box])

    def _choose_images(self, entry: CatalogEntry, checked: bool) -> None:
        key = self._controller.request_for(entry).key
        self._with_images[key] = checked
        self._show_entry_fit(entry, self._catalog_rows[key][1])

    def _show_progress(self, entry: CatalogEntry, item: QTreeWidgetItem, progress: DownloadProgress, *, extra: list[QPushButton]) -> None:
        """A download's bar (the image support's says so) with Pause or Resume, and Cancel."""
        tree = self.catalog_tree
        label = self.tr("Image support") if progress.request.key != self._controller.request_for(entry).key else ""
        tree.setItemWidget(item, COLUMN_STATUS, _progress_widget(progress, label))
        buttons = []
        if progress.state == DownloadState.PAUSED:
            resume = QPushButton(self.tr("Resume"))
            resume.clicked.connect(lambda: self._controller.resume(entry))
            buttons.append(resume)
        elif progress.state != DownloadState.VERIFYING:
            pause = QPushButton(self.tr("Pause"))
            pause.clicked.connect(lambda: self._controller.pause(entry))
            buttons.append(pause)
        cancel = QPushButton(self.tr("Cancel"))
        cancel.clicked.connect(lambda: self._controller.cancel(entry))
        buttons.append(cancel)
        tree.setItemWidget(item, COLUMN_ACTIONS, _button_row(buttons + extra))

    def _error_text(self, entry: CatalogEntry, failed: DownloadProgress | None) -> str | None:
        if failed is None:
            return None
        if failed.request.key == self._controller.request_for(entry).key:
            return failed.error
        return self.tr("Image support: %1").replace("%1", failed.error or "")

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
        key = progress.request.key
        for model_key in ([key] if key in self._catalog_rows else self._rows_of_projector.get(key, [])):
            self._show_entry_state(*self._catalog_rows[model_key], progress)

    def _on_hardware_changed(self) -> None:
        """New fit advice in the rows that are there (a download's row keeps its progress)."""
        self._show_hardware()
        self._fill_local()
        for entry, item in self._catalog_rows.values():
            self._show_entry_fit(entry, item)

    def _on_local_models_changed(self) -> None:
        """Rows stay where they are (and keep focus and scroll position); only their state changes."""
        self._show_hardware()
        self._fill_local()
        for entry, item in self._catalog_rows.values():
            self._show_entry_fit(entry, item)
            self._show_entry_state(entry, item)

    def _use(self, path: Path) -> None:
        self.sig_use_model.emit(path)
        self.close()

    def _remove(self, model: LocalModel) -> None:
        if model.source == ModelSource.DOWNLOADED:
            question = self.tr("Delete “%1” (%2)?").replace("%1", model.name).replace("%2", format_bytes(model.size))
            projector = self._controller.projector_deleted_with(model)
            if projector is not None:
                question += " " + self.tr("Its image support (%1, %2) goes with it: no other model uses it.").replace(
                    "%1", projector.name
                ).replace("%2", format_bytes(projector.stat().st_size))
            answer = QMessageBox.question(
                self,
                self.tr("Delete model"),
                question + " " + self.tr("Your conversations with it are kept."),
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


def _cell_label(text: str) -> QLabel:
    """A cell's text, a little apart from the next column's."""
    label = QLabel(text)
    label.setContentsMargins(2, 0, 6, 0)
    return label


def _button_row(widgets: list[QWidget]) -> QWidget:
    """A cell's widgets side by side, a little apart from the next column's."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(2, 0, 6, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return row


def _progress_widget(progress: DownloadProgress, label: str = "") -> QWidget:
    """Progress bar with bytes, speed and time left (or that the transfer stalled), after
    ``label`` (what downloads, when it is not the row's model)."""
    bar = QProgressBar()
    bar.setMinimumWidth(240)
    done = fraction_done(progress)
    # A busy indicator only while bytes arrive for a file of unknown size; a queued download
    # waits with an empty bar.
    bar.setRange(0, 0 if progress.state == DownloadState.DOWNLOADING and done is None else 1000)
    bar.setValue(round(1000 * (done or 0)))
    text = describe_download(progress)
    if label:
        text = f"{label} · {text}"
    bar.setFormat(text)
    if progress.stalled:
        bar.setToolTip(bar.tr("No data has come from the server for a while. The download goes on by itself when it does; Pause and Resume starts a new connection."))
    bar.setTextVisible(True)
    bar.setAccessibleName(text)
    return bar
