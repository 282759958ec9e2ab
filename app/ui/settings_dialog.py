"""Settings for every chat: appearance, how models run (context, threads, GPU), and the models
folder and Hub (token, address, proxy, offline mode). Per-chat settings are in the chat's panel."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.models.hub_access import HubSettings, hub_endpoint
from app.core.profile.settings import Settings
from app.ui.models_controller import ModelsController


class SettingsDialog(QDialog):
    def __init__(self, controller: ModelsController, app_settings: Settings, parent: QWidget | None = None) -> None:
        """Edits ``app_settings`` in place when saved (the window then applies and stores them)."""
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self._controller = controller
        self._settings = app_settings
        self.theme_combo = QComboBox()
        self.theme_combo.setAccessibleName(self.tr("Appearance"))
        for name, text in (("system", self.tr("Follow the system")), ("light", self.tr("Light")), ("dark", self.tr("Dark"))):
            self.theme_combo.addItem(text, name)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(app_settings.theme)))
        self.font_size = QSpinBox()
        self.font_size.setRange(0, 32)
        self.font_size.setSpecialValueText(self.tr("System size"))
        self.font_size.setSuffix(" pt")
        self.font_size.setValue(app_settings.font_size)
        self.font_size.setAccessibleName(self.tr("Text size"))

        hardware = controller.hardware
        self.context_size = QSpinBox()
        self.context_size.setRange(512, 262144)
        self.context_size.setSingleStep(1024)
        self.context_size.setSuffix(self.tr(" tokens"))
        self.context_size.setValue(app_settings.context_size)
        self.context_size.setAccessibleName(self.tr("Context size in tokens"))
        self.context_size.setToolTip(self.tr("How much of a conversation the model sees at once, for every chat. Larger needs more memory."))
        self.threads = QSpinBox()
        self.threads.setRange(0, max(1, hardware.logical_cores))
        self.threads.setSpecialValueText(self.tr("Automatic (%1)").replace("%1", str(hardware.physical_cores)))
        self.threads.setValue(app_settings.threads)
        self.threads.setAccessibleName(self.tr("Threads"))
        self.threads.setToolTip(self.tr("CPU threads that compute replies. Automatic uses one per performance core, usually the fastest."))
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText(self.tr("All"))
        self.gpu_layers.setValue(app_settings.gpu_layers)
        self.gpu_layers.setAccessibleName(self.tr("GPU layers"))
        self.gpu_device = QComboBox()
        self.gpu_device.setAccessibleName(self.tr("GPU"))
        self.gpu_device.addItem(self.tr("Every GPU"), -1)
        for index, gpu in enumerate(hardware.gpus):
            self.gpu_device.addItem(gpu.description or gpu.name, index)
        self.gpu_device.setCurrentIndex(max(0, self.gpu_device.findData(app_settings.gpu_device)))
        if hardware.gpus:
            self.gpu_layers.setToolTip(self.tr("How many of the model's layers run on the GPU; the rest run on the CPU. 0: CPU only."))
        else:
            why = self.tr("This build of llama.cpp runs on the CPU (%1 backend): no GPU to use.").replace("%1", hardware.backend)
            for widget in (self.gpu_layers, self.gpu_device):
                widget.setEnabled(False)
                widget.setToolTip(why)
        self.performance_note = QLabel(self.tr("These apply to every chat; a loaded model is loaded again to use them."))
        self.performance_note.setObjectName("secondaryText")
        self.performance_note.setWordWrap(True)
        settings = controller.hub_settings

        self.models_dir_edit = QLineEdit(str(controller.models_dir))
        self.models_dir_edit.setAccessibleName(self.tr("Models folder"))
        browse = QPushButton(self.tr("Change…"))
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.models_dir_edit, 1)
        folder_row.addWidget(browse)

        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setAccessibleName(self.tr("Hugging Face token"))
        self.token_edit.setPlaceholderText(
            self.tr("Saved in the system keyring") if controller.secrets.token() else self.tr("Optional: only for gated or private models")
        )
        self.forget_token = QCheckBox(self.tr("Forget the saved token"))
        self.forget_token.setVisible(bool(controller.secrets.token()))
        self.keyring_note = QLabel(controller.secrets.keyring_problem or self.tr("The token is kept in the system keyring, never in a file."))
        self.keyring_note.setObjectName("secondaryText")
        self.keyring_note.setWordWrap(True)

        self.endpoint_edit = QLineEdit(settings.endpoint or "")
        self.endpoint_edit.setPlaceholderText("https://huggingface.co")
        self.endpoint_edit.setAccessibleName(self.tr("Hub address or mirror"))
        self.endpoint_in_use = QLabel()
        self.endpoint_in_use.setObjectName("secondaryText")
        self.endpoint_in_use.setWordWrap(True)
        self.endpoint_edit.textChanged.connect(self._show_endpoint_in_use)
        self._show_endpoint_in_use()
        self.proxy_edit = QLineEdit(settings.proxy or "")
        self.proxy_edit.setPlaceholderText(self.tr("e.g. http://proxy.example:3128 (empty: system settings)"))
        self.proxy_edit.setAccessibleName(self.tr("Proxy"))
        self.offline_check = QCheckBox(self.tr("Offline mode: never connect to the network"))
        self.offline_check.setChecked(settings.offline)

        appearance = QFormLayout()
        appearance.addRow(self.tr("Colours:"), self.theme_combo)
        appearance.addRow(self.tr("Text size:"), self.font_size)
        performance = QFormLayout()
        performance.addRow(self.tr("Context size:"), self.context_size)
        performance.addRow(self.tr("Threads:"), self.threads)
        performance.addRow(self.tr("GPU layers:"), self.gpu_layers)
        performance.addRow(self.tr("GPU:"), self.gpu_device)
        performance.addRow("", self.performance_note)
        hub = QFormLayout()
        hub.addRow(self.tr("Models folder:"), folder_row)
        hub.addRow(self.tr("Hugging Face token:"), self.token_edit)
        hub.addRow("", self.forget_token)
        hub.addRow("", self.keyring_note)
        hub.addRow(self.tr("Hub address:"), self.endpoint_edit)
        hub.addRow("", self.endpoint_in_use)
        hub.addRow(self.tr("Proxy:"), self.proxy_edit)
        hub.addRow("", self.offline_check)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for title, form in ((self.tr("Appearance"), appearance), (self.tr("Running models"), performance), (self.tr("Models and the Hub"), hub)):
            box = QGroupBox(title)
            box.setLayout(form)
            layout.addWidget(box)
        layout.addWidget(buttons)
        self.resize(640, self.sizeHint().height())

    def _show_endpoint_in_use(self) -> None:
        typed = self.endpoint_edit.text().strip()
        if typed:
            self.endpoint_in_use.setText(self.tr("Downloads come from %1.").replace("%1", typed.rstrip("/")))
            return
        in_use = hub_endpoint(HubSettings())
        source = self.tr(" (set by the HF_ENDPOINT environment variable)") if os.environ.get("HF_ENDPOINT") else ""
        self.endpoint_in_use.setText(self.tr("Empty: downloads come from %1%2.").replace("%1", in_use).replace("%2", source))

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Models folder"), self.models_dir_edit.text())
        if folder:
            self.models_dir_edit.setText(folder)

    def accept(self) -> None:
        controller = self._controller
        new_folder = Path(self.models_dir_edit.text().strip()).expanduser()
        if new_folder != controller.models_dir:
            answer = QMessageBox.question(
                self,
                self.tr("Models folder"),
                self.tr("Move the models downloaded so far to the new folder?\n\nYes: move them. No: leave them where they are and use the new folder as it is."),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Yes,
            )
            if answer == QMessageBox.StandardButton.Cancel:
                return  # nothing saved: the dialog stays open as it was
            controller.change_models_dir(new_folder, move_files=answer == QMessageBox.StandardButton.Yes)
        settings = self._settings
        settings.theme = self.theme_combo.currentData()
        settings.font_size = self.font_size.value()
        settings.context_size = self.context_size.value()
        settings.threads = self.threads.value()
        settings.gpu_layers = self.gpu_layers.value()
        settings.gpu_device = self.gpu_device.currentData()
        if self.forget_token.isChecked():
            controller.secrets.set_token(None)
        elif self.token_edit.text().strip():
            controller.secrets.set_token(self.token_edit.text().strip())
        controller.apply_hub_settings(self.endpoint_edit.text().strip(), self.proxy_edit.text().strip(), self.offline_check.isChecked())
        super().accept()
