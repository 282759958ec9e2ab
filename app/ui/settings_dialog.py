"""Settings for models and the Hub: models folder, Hub token, endpoint, proxy, offline mode."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.models_controller import ModelsController


class SettingsDialog(QDialog):
    def __init__(self, controller: ModelsController, theme: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self._controller = controller
        self.theme_combo = QComboBox()
        self.theme_combo.setAccessibleName(self.tr("Appearance"))
        for name, text in (("system", self.tr("Follow the system")), ("light", self.tr("Light")), ("dark", self.tr("Dark"))):
            self.theme_combo.addItem(text, name)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(theme)))
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
        self.proxy_edit = QLineEdit(settings.proxy or "")
        self.proxy_edit.setPlaceholderText(self.tr("e.g. http://proxy.example:3128 (empty: system settings)"))
        self.proxy_edit.setAccessibleName(self.tr("Proxy"))
        self.offline_check = QCheckBox(self.tr("Offline mode: never connect to the network"))
        self.offline_check.setChecked(settings.offline)

        form = QFormLayout()
        form.addRow(self.tr("Appearance:"), self.theme_combo)
        form.addRow(self.tr("Models folder:"), folder_row)
        form.addRow(self.tr("Hugging Face token:"), self.token_edit)
        form.addRow("", self.forget_token)
        form.addRow("", self.keyring_note)
        form.addRow(self.tr("Hub address:"), self.endpoint_edit)
        form.addRow(self.tr("Proxy:"), self.proxy_edit)
        form.addRow("", self.offline_check)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(620, self.sizeHint().height())

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Models folder"), self.models_dir_edit.text())
        if folder:
            self.models_dir_edit.setText(folder)

    @property
    def theme(self) -> str:
        return self.theme_combo.currentData()

    def accept(self) -> None:
        controller = self._controller
        if self.forget_token.isChecked():
            controller.secrets.set_token(None)
        elif self.token_edit.text().strip():
            controller.secrets.set_token(self.token_edit.text().strip())
        controller.apply_hub_settings(self.endpoint_edit.text().strip(), self.proxy_edit.text().strip(), self.offline_check.isChecked())
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
                return
            controller.change_models_dir(new_folder, move_files=answer == QMessageBox.StandardButton.Yes)
        super().accept()
