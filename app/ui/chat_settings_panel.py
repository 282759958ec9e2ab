"""The side panel with the current conversation's settings: system prompt, sampling, reply
length. What applies to every chat (the context size) is shown here but set in Settings."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.chat.chat_settings import AUTOMATIC, BUILT_IN_PRESETS, ChatSettings, SamplingPreset

CUSTOM = ""


class ChatSettingsPanel(QScrollArea):
    """Scrolls instead of growing: opened in a small window it never makes the window larger."""

    sig_changed = Signal(object, str)
    """The user changed the settings: (``ChatSettings``, system prompt)."""
    sig_presets_changed = Signal(object)
    """The user saved, renamed or deleted a preset of their own: the new list of ``SamplingPreset``."""

    def __init__(self, user_presets: list[SamplingPreset], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatSettingsPanel")
        self.setWidgetResizable(True)
        self.setFrameShape(QScrollArea.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows wrap instead
        self.setMinimumWidth(220)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self._user_presets = list(user_presets)
        self._settings = ChatSettings()
        self._thinking = True
        self._loading = False
        self._context_size = 0
        self._context_server = ""  # the model server whose context it is, for a model on one

        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setPlaceholderText(self.tr("For example: You are a concise assistant who answers in English."))
        self.system_prompt.setAccessibleName(self.tr("System prompt"))
        self.system_prompt.setToolTip(self.tr("Instructions the model reads before every message of this chat."))
        self.system_prompt.setFixedHeight(90)
        self.system_prompt.textChanged.connect(self._emit)

        self.preset = QComboBox()
        self.preset.setAccessibleName(self.tr("Sampling preset"))
        self.preset.setToolTip(self.tr("A named set of the values below. Automatic follows the Qwen3.5 model card."))
        self.preset.activated.connect(self._on_preset_chosen)

        def spin(minimum: float, maximum: float, step: float, decimals: int, name: str, tip: str) -> QDoubleSpinBox:
            box = QDoubleSpinBox()
            box.setRange(minimum, maximum)
            box.setSingleStep(step)
            box.setDecimals(decimals)
            box.setAccessibleName(name)
            box.setToolTip(tip)
            box.valueChanged.connect(self._on_value_edited)
            return box

        self.temperature = spin(0.0, 2.0, 0.05, 2, self.tr("Temperature"), self.tr("Randomness: lower is more focused and repeatable, higher more varied."))
        self.top_p = spin(0.0, 1.0, 0.05, 2, self.tr("Top P"), self.tr("Picks only among the likeliest words that together make up this share of the chance."))
        self.min_p = spin(0.0, 1.0, 0.01, 2, self.tr("Min P"), self.tr("Leaves out words less likely than this fraction of the likeliest one."))
        self.presence_penalty = spin(0.0, 2.0, 0.1, 2, self.tr("Presence penalty"), self.tr("Discourages repeating what was already said; too high can garble answers."))
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.top_k.setAccessibleName(self.tr("Top K"))
        self.top_k.setToolTip(self.tr("Picks only among this many likeliest words (0: no limit)."))
        self.top_k.valueChanged.connect(self._on_value_edited)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 262144)
        self.max_tokens.setSingleStep(512)
        self.max_tokens.setAccessibleName(self.tr("Maximum reply length in tokens"))
        self.max_tokens.setToolTip(self.tr("The longest a reply may get, thinking included, before it stops (Continue goes on)."))
        self.max_tokens.valueChanged.connect(self._on_value_edited)
        self.limit_warning = QLabel()
        self.limit_warning.setObjectName("warningText")
        self.limit_warning.setWordWrap(True)
        self.limit_warning.hide()

        save_preset = QPushButton(self.tr("Save as preset…"))
        save_preset.clicked.connect(self._save_preset)
        self.rename_preset_button = QPushButton(self.tr("Rename…"))
        self.rename_preset_button.clicked.connect(self._rename_preset)
        self.delete_preset_button = QPushButton(self.tr("Delete"))
        self.delete_preset_button.clicked.connect(self._delete_preset)
        for button, tip in (
            (self.rename_preset_button, self.tr("Rename this preset of yours")),
            (self.delete_preset_button, self.tr("Delete this preset of yours; chats using it keep its values")),
        ):
            button.setToolTip(tip)
        self.sampling_note = QLabel()
        self.sampling_note.setObjectName("secondaryText")
        self.sampling_note.setWordWrap(True)
        self.context_note = QLabel()
        self.context_note.setObjectName("secondaryText")
        self.context_note.setWordWrap(True)

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # narrow panel: label above field
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow(self.tr("Preset:"), self.preset)
        form.addRow(self.tr("Temperature:"), self.temperature)
        form.addRow(self.tr("Top P:"), self.top_p)
        form.addRow(self.tr("Top K:"), self.top_k)
        form.addRow(self.tr("Min P:"), self.min_p)
        form.addRow(self.tr("Presence penalty:"), self.presence_penalty)
        form.addRow(self.tr("Max reply tokens:"), self.max_tokens)
        preset_buttons = QHBoxLayout()
        preset_buttons.addWidget(save_preset)
        preset_buttons.addStretch(1)
        own_preset_buttons = QHBoxLayout()
        own_preset_buttons.addStretch(1)
        own_preset_buttons.addWidget(self.rename_preset_button)
        own_preset_buttons.addWidget(self.delete_preset_button)
        self.preset.setMinimumContentsLength(8)
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)

        this_chat = QGroupBox(self.tr("This chat"))
        chat_layout = QVBoxLayout(this_chat)
        chat_layout.addWidget(QLabel(self.tr("System prompt:")))
        chat_layout.addWidget(self.system_prompt)
        chat_layout.addLayout(form)
        chat_layout.addWidget(self.limit_warning)
        chat_layout.addWidget(self.sampling_note)
        chat_layout.addLayout(preset_buttons)
        chat_layout.addLayout(own_preset_buttons)
        every_chat = QGroupBox(self.tr("Every chat"))
        QVBoxLayout(every_chat).addWidget(self.context_note)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(this_chat)
        layout.addWidget(every_chat)
        layout.addStretch(1)
        self.setWidget(content)
        self._fill_presets()

    # ------------------------------------------------------------------------------- public

    def show_settings(self, settings: ChatSettings, system_prompt: str, context_size: int, *, thinking: bool) -> None:
        """Shows a conversation's settings (without reporting them back as changes)."""
        self._loading = True
        self._settings, self._thinking = settings, thinking
        self.system_prompt.setPlainText(system_prompt)
        self._show_values(settings, thinking=thinking)
        self._loading = False
        self.set_context_size(context_size, self._context_server)

    def set_context_size(self, context_size: int, server: str = "") -> None:
        """The context every chat runs with (the loaded model's, else the one set in Settings);
        ``server`` names the model server that set it, for a model on one (0: it did not say)."""
        self._context_size, self._context_server = context_size, server
        if not server:
            note = self.tr("Context window: %1 tokens, the same for every chat. Change it in Settings (Ctrl+,).")
        elif context_size:
            note = self.tr("Context window: %1 tokens, as the model server %2 runs the model.")
        else:
            note = self.tr("The model server %2 sets the context window, and did not say how large it is.")
        self.context_note.setText(note.replace("%1", f"{context_size:,}").replace("%2", server))
        self._check_reply_limit()

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
        self._show_preset_buttons()
        self._check_reply_limit()

    def _check_reply_limit(self) -> None:
        too_long = bool(self._context_size) and self.max_tokens.value() > self._context_size
        self.limit_warning.setVisible(too_long)
        if too_long:
            self.limit_warning.setText(
                self.tr("The reply limit is larger than the context window (%1 tokens): a reply ends when the context is full.")
                .replace("%1", f"{self._context_size:,}")
            )

    def _show_preset_buttons(self) -> None:
        mine = self._own_preset_selected() is not None
        self.rename_preset_button.setEnabled(mine)
        self.delete_preset_button.setEnabled(mine)

    def _own_preset_selected(self) -> SamplingPreset | None:
        name = self.preset.currentData()
        return next((preset for preset in self._user_presets if preset.name == name), None)

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
        self._show_preset_buttons()
        self._check_reply_limit()
        self._emit()

    def _ask_name(self, title: str, current: str = "") -> str | None:
        """A new preset name from the user; None if cancelled or not usable (says why)."""
        name, accepted = QInputDialog.getText(self, title, self.tr("Preset name:"), text=current)
        name = name.strip()
        if not accepted or not name or name == current:
            return None
        taken = {preset.name for preset in BUILT_IN_PRESETS} | {AUTOMATIC, CUSTOM}
        if name in taken:
            QMessageBox.information(self, title, self.tr("“%1” is the name of a built-in preset. Choose another name.").replace("%1", name))
            return None
        return name

    def _save_preset(self) -> None:
        name = self._ask_name(self.tr("Save preset"))
        if name is None:
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
        self._settings = self._settings.with_preset(preset)
        self._presets_changed(select=name)

    def _rename_preset(self) -> None:
        preset = self._own_preset_selected()
        name = self._ask_name(self.tr("Rename preset"), preset.name) if preset else None
        if name is None:
            return
        renamed = replace(preset, name=name)
        self._user_presets = [renamed if existing == preset else existing for existing in self._user_presets if existing.name != name]
        self._settings = self._settings.with_preset(renamed)
        self._presets_changed(select=name)

    def _delete_preset(self) -> None:
        preset = self._own_preset_selected()
        if preset is None:
            return
        self._user_presets = [existing for existing in self._user_presets if existing != preset]
        self._settings = replace(self._settings, preset=CUSTOM)  # the chat keeps the values
        self._presets_changed(select=CUSTOM)

    def _presets_changed(self, select: str) -> None:
        self._fill_presets()
        self.preset.setCurrentIndex(self.preset.findData(select))
        self._show_preset_buttons()
        self.sig_presets_changed.emit(list(self._user_presets))
        self._emit()

    def _emit(self) -> None:
        if not self._loading:
            self.sig_changed.emit(self._settings, self.system_prompt.toPlainText())
