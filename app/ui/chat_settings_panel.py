"""The side panel with the current conversation's system prompt and sampling settings."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.chat_settings import AUTOMATIC, BUILT_IN_PRESETS, ChatSettings, SamplingPreset

CUSTOM = ""


class ChatSettingsPanel(QWidget):
    sig_changed = Signal(object, str)
    """The user changed the settings: (``ChatSettings``, system prompt)."""
    sig_preset_saved = Signal(object)
    """The user saved the current values as a named preset: its ``SamplingPreset``."""
    sig_context_size_changed = Signal(int)
    """The user asked for another context size (applies when the model is loaded again)."""

    def __init__(self, user_presets: list[SamplingPreset], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatSettingsPanel")
        self._user_presets = list(user_presets)
        self._settings = ChatSettings()
        self._thinking = True
        self._loading = False

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText(self.tr("For example: You are a concise assistant who answers in English."))
        self.system_prompt.setAccessibleName(self.tr("System prompt"))
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.textChanged.connect(self._emit)

        self.preset = QComboBox()
        self.preset.setAccessibleName(self.tr("Sampling preset"))
        self.preset.activated.connect(self._on_preset_chosen)

        def spin(minimum: float, maximum: float, step: float, decimals: int, name: str) -> QDoubleSpinBox:
            box = QDoubleSpinBox()
            box.setRange(minimum, maximum)
            box.setSingleStep(step)
            box.setDecimals(decimals)
            box.setAccessibleName(name)
            box.valueChanged.connect(self._on_value_edited)
            return box

        self.temperature = spin(0.0, 2.0, 0.05, 2, self.tr("Temperature"))
        self.top_p = spin(0.0, 1.0, 0.05, 2, self.tr("Top P"))
        self.min_p = spin(0.0, 1.0, 0.01, 2, self.tr("Min P"))
        self.presence_penalty = spin(0.0, 2.0, 0.1, 2, self.tr("Presence penalty"))
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.top_k.setAccessibleName(self.tr("Top K"))
        self.top_k.valueChanged.connect(self._on_value_edited)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 262144)
        self.max_tokens.setSingleStep(512)
        self.max_tokens.setAccessibleName(self.tr("Maximum reply length in tokens"))
        self.max_tokens.valueChanged.connect(self._on_value_edited)
        self.context_size = QSpinBox()
        self.context_size.setRange(512, 262144)
        self.context_size.setSingleStep(1024)
        self.context_size.setAccessibleName(self.tr("Context size in tokens"))
        self.context_size.setToolTip(self.tr("How much of the conversation the model can see. Applies when the model is loaded again."))
        self.context_size.editingFinished.connect(lambda: self.sig_context_size_changed.emit(self.context_size.value()))

        save_preset = QPushButton(self.tr("Save as preset…"))
        save_preset.clicked.connect(self._save_preset)
        self.sampling_note = QLabel()
        self.sampling_note.setObjectName("secondaryText")
        self.sampling_note.setWordWrap(True)

        form = QFormLayout()
        form.addRow(self.tr("Preset:"), self.preset)
        form.addRow(self.tr("Temperature:"), self.temperature)
        form.addRow(self.tr("Top P:"), self.top_p)
        form.addRow(self.tr("Top K:"), self.top_k)
        form.addRow(self.tr("Min P:"), self.min_p)
        form.addRow(self.tr("Presence penalty:"), self.presence_penalty)
        form.addRow(self.tr("Max reply tokens:"), self.max_tokens)
        form.addRow(self.tr("Context size:"), self.context_size)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(save_preset)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(self.tr("System prompt:")))
        layout.addWidget(self.system_prompt)
        layout.addLayout(form)
        layout.addWidget(self.sampling_note)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self._fill_presets()

    # ------------------------------------------------------------------------------- public

    def show_settings(self, settings: ChatSettings, system_prompt: str, context_size: int, *, thinking: bool) -> None:
        """Shows a conversation's settings (without reporting them back as changes)."""
        self._loading = True
        self._settings, self._thinking = settings, thinking
        self.system_prompt.setPlainText(system_prompt)
        self.context_size.setValue(context_size)
        self._show_values(settings, thinking=thinking)
        self._loading = False

    def set_thinking(self, thinking: bool) -> None:
        """The thinking mode changed: automatic sampling values change with it."""
        self._thinking = thinking
        self._show_values(self._settings, thinking=thinking)

    def settings(self) -> ChatSettings:
        return self._settings

    # ------------------------------------------------------------------------------ helpers

    def _fill_presets(self) -> None:
        self.preset.clear()
        self.preset.addItem(self.tr("Automatic (model card)"), AUTOMATIC)
        for preset in (*BUILT_IN_PRESETS, *self._user_presets):
            self.preset.addItem(preset.name, preset.name)
        self.preset.addItem(self.tr("Custom"), CUSTOM)

    def _show_values(self, settings: ChatSettings, *, thinking: bool) -> None:
        shown = settings.sampling(thinking=thinking)
        for box, value in (
            (self.temperature, shown.temperature),
            (self.top_p, shown.top_p),
            (self.top_k, shown.top_k),
            (self.min_p, shown.min_p),
            (self.presence_penalty, shown.presence_penalty),
            (self.max_tokens, settings.max_tokens),
        ):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        index = self.preset.findData(settings.preset)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.findData(CUSTOM))
        self.sampling_note.setText(
            self.tr("Automatic uses the Qwen3.5 model card's values for the current thinking mode.")
            if settings.preset == AUTOMATIC
            else ""
        )

    def _presets(self) -> dict[str, SamplingPreset]:
        return {preset.name: preset for preset in (*BUILT_IN_PRESETS, *self._user_presets)}

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name == AUTOMATIC:
            self._settings = replace(self._settings, preset=AUTOMATIC)
        elif name in self._presets():
            self._settings = self._settings.with_preset(self._presets()[name])
        self._show_values(self._settings, thinking=self._thinking)
        self._emit()

    def _on_value_edited(self) -> None:
        if self._loading:
            return
        self._settings = replace(
            self._settings,
            preset=CUSTOM,
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            min_p=self.min_p.value(),
            presence_penalty=self.presence_penalty.value(),
            max_tokens=self.max_tokens.value(),
        )
        self.preset.setCurrentIndex(self.preset.findData(CUSTOM))
        self.sampling_note.clear()
        self._emit()

    def _save_preset(self) -> None:
        name, accepted = QInputDialog.getText(self, self.tr("Save preset"), self.tr("Preset name:"))
        name = name.strip()
        if not accepted or not name or name in (AUTOMATIC, CUSTOM):
            return
        preset = SamplingPreset(
            name,
            self.temperature.value(),
            self.top_p.value(),
            self.top_k.value(),
            self.min_p.value(),
            self.presence_penalty.value(),
        )
        self._user_presets = [existing for existing in self._user_presets if existing.name != name] + [preset]
        self._fill_presets()
        self._settings = self._settings.with_preset(preset)
        self.preset.setCurrentIndex(self.preset.findData(name))
        self.sig_preset_saved.emit(preset)
        self._emit()

    def _emit(self) -> None:
        if not self._loading:
            self.sig_changed.emit(self._settings, self.system_prompt.toPlainText())
