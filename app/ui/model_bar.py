"""The bar above the chat: which model (with its fit verdict), Models…, and Chat settings."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QWidget

from app.ui.fit_badge import verdict_icon, verdict_text
from app.ui.models_controller import ModelsController


class ModelBar(QWidget):
    sig_model_chosen = Signal(object)
    """The user picked another model in the list: its ``Path``."""

    def __init__(self, models: ModelsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatHeader")
        self._models = models
        self.picker = QComboBox()
        self.picker.setObjectName("modelPicker")
        self.picker.setAccessibleName(self.tr("Model"))
        self.picker.setMinimumContentsLength(12)
        self.picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.picker.setPlaceholderText(self.tr("No model yet"))  # short: Qt sizes the box to fit it
        self.picker.setToolTip(self.tr("The model to chat with. Models… downloads one; File › Open Model File… opens a .gguf file."))
        self.picker.activated.connect(self._on_picked)
        self.models_button = QPushButton(self.tr("Models…"))
        self.models_button.setObjectName("modelsButton")
        self.models_button.setToolTip(self.tr("Download models, see what fits this computer"))
        self.chat_settings_button = QPushButton(self.tr("Chat settings"))
        self.chat_settings_button.setCheckable(True)
        self.chat_settings_button.setToolTip(self.tr("System prompt, sampling presets, reply length, context size"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 8, 16, 8)
        layout.addWidget(QLabel(self.tr("Model:")))
        layout.addWidget(self.picker, 1)
        layout.addWidget(self.models_button)
        layout.addWidget(self.chat_settings_button)
        self._current: Path | None = None

    def show_models(self, recent: list[Path], current: Path | None) -> None:
        """Lists the models on this computer, the ``recent`` ones first, each with its fit
        verdict, and selects ``current`` (the loaded model, or the one used last)."""
        picker = self.picker
        picker.blockSignals(True)
        picker.clear()
        models = {model.path: model for model in self._models.local_models()}
        ordered = recent + sorted(set(models) - set(recent))
        for path in ordered:
            model = models.get(path)
            assessment = self._models.assess_local(model) if model else None
            tooltip = str(path)
            if assessment is not None:
                picker.addItem(verdict_icon(assessment.verdict), path.stem, str(path))
                tooltip += "\n" + verdict_text(assessment.verdict) + ": " + assessment.explanation
            else:
                picker.addItem(path.stem, str(path))
            picker.setItemData(picker.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)
        self._current = current
        picker.setCurrentIndex(picker.findData(str(current)) if current else -1)
        # Shown while no model is chosen: whether there is one to choose.
        picker.setPlaceholderText(self.tr("Choose a model to load") if picker.count() else self.tr("No model yet"))
        picker.blockSignals(False)

    def _on_picked(self, index: int) -> None:
        path = self.picker.itemData(index)
        if path and Path(path) != self._current:
            self.sig_model_chosen.emit(Path(path))
