"""Settings for every chat: appearance, how models run (context, threads, GPU), speed (reading a
message while it is typed, the chat states kept on disk), how finely pictures are read, the models
folder and Hub (token, address, proxy, offline mode), model servers on other computers
(``model_servers_page``), the local API server (port, key, who may reach it) and tools
(``tool_settings_page``). Per-chat settings are in the chat's panel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.core.api.api_server import ApiServerConfig, base_url
from app.core.api.local_api_service import LocalApiState, api_config, network_addresses, new_api_key
from app.core.domain.generation import IMAGE_DETAIL_TOKENS
from app.core.engines.remote.model_servers import ModelServers
from app.core.models.fit_estimate import GIB
from app.core.models.hub_access import HubSettings, hub_endpoint
from app.core.profile.secret_store import SecretStore
from app.core.profile.settings import Settings
from app.core.tools.tool_service import ToolService
from app.ui.event_bridges import ModelServersBridge, ToolsBridge
from app.ui.formatting import format_binary_bytes
from app.ui.model_servers_page import ModelServersPage
from app.ui.models_controller import ModelsController
from app.ui.tool_settings_page import ToolSettingsPage


class SavedStates(Protocol):
    """The folder of model states kept for the chats left (``CoreServices.saved_states``); both
    methods only look at or remove its few files, so the GUI thread may call them."""

    def total_bytes(self) -> int: ...

    def clear(self) -> None: ...


class SettingsDialog(QDialog):
    sig_request_log_requested = Signal()
    """The user wants to see the local API's request log."""

    def __init__(
        self,
        controller: ModelsController,
        app_settings: Settings,
        api_key: SecretStore,
        api_state: LocalApiState,
        parent: QWidget | None = None,
        *,
        tools: ToolService,
        tools_bridge: ToolsBridge,
        model_servers: ModelServers,
        model_servers_bridge: ModelServersBridge,
        saved_states: SavedStates,
    ) -> None:
        """Edits ``app_settings`` in place when saved, and keeps the API key in ``api_key`` (the
        window then applies and stores them); ``api_state`` is the API's now. The Tools sections
        change ``tools`` at once, and follow its changes through ``tools_bridge``; the Model
        servers section does the same with ``model_servers`` and ``model_servers_bridge``. The
        Speed section shows the size of ``saved_states`` and empties it at once with Clear."""
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self._controller = controller
        self._settings = app_settings
        self._api_key = api_key
        self._api_state = api_state
        self._saved_states = saved_states
        self._network_addresses = network_addresses()
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
        self.image_detail = QComboBox()
        self.image_detail.setAccessibleName(self.tr("Image detail"))
        for name, text in (("low", self.tr("Low (fastest)")), ("standard", self.tr("Standard")), ("high", self.tr("High"))):
            self.image_detail.addItem(text, name)
            self.image_detail.setItemData(
                self.image_detail.count() - 1,
                self.tr("Up to %1 tokens an image").replace("%1", f"{IMAGE_DETAIL_TOKENS[name]:,}"),
                Qt.ItemDataRole.ToolTipRole,
            )
        self.image_detail.setCurrentIndex(max(0, self.image_detail.findData(app_settings.image_detail)))
        self.image_detail_note = QLabel(self.tr(
            "More detail sees small print better but takes longer to read: on a laptop CPU, a 640 × 480 "
            "photo is about 300 tokens, several seconds before the reply starts."
        ))
        self.image_detail_note.setObjectName("secondaryText")
        self.image_detail_note.setWordWrap(True)
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
        speed = self._build_speed_section()
        api = self._build_api_section()

        appearance = QFormLayout()
        appearance.addRow(self.tr("Colours:"), self.theme_combo)
        appearance.addRow(self.tr("Text size:"), self.font_size)
        performance = QFormLayout()
        performance.addRow(self.tr("Context size:"), self.context_size)
        performance.addRow(self.tr("Threads:"), self.threads)
        performance.addRow(self.tr("GPU layers:"), self.gpu_layers)
        performance.addRow(self.tr("GPU:"), self.gpu_device)
        performance.addRow("", self.performance_note)
        pictures = QFormLayout()
        pictures.addRow(self.tr("Image detail:"), self.image_detail)
        pictures.addRow("", self.image_detail_note)
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
        sections = QWidget()
        sections_layout = QVBoxLayout(sections)
        sections_layout.setContentsMargins(0, 0, 0, 0)

        def add_section(title: str, form: QFormLayout) -> QGroupBox:
            box = QGroupBox(title)
            box.setLayout(form)
            sections_layout.addWidget(box)
            return box

        add_section(self.tr("Appearance"), appearance)
        add_section(self.tr("Running models"), performance)
        self.speed_section = add_section(self.tr("Speed"), speed)
        add_section(self.tr("Images"), pictures)
        add_section(self.tr("Models and the Hub"), hub)
        self.model_servers = ModelServersPage(model_servers, model_servers_bridge)
        sections_layout.addWidget(self.model_servers)
        self.api_section = add_section(self.tr("Local API server"), api)
        self.tool_settings = ToolSettingsPage(tools, tools_bridge)
        sections_layout.addWidget(self.tool_settings)
        # Scrolled, so that the dialog fits a small laptop screen too.
        self._scroll = QScrollArea()
        self._scroll.setWidget(sections)
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        layout = QVBoxLayout(self)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(buttons)
        margins = layout.contentsMargins()
        whole = sections.sizeHint().height() + layout.spacing() + buttons.sizeHint().height() + margins.top() + margins.bottom()
        screen = (parent or self).screen().availableGeometry()
        self.resize(640, min(whole, round(screen.height() * 0.9)))

    def show_api_section(self) -> None:
        """Scrolls to the local API server's settings."""
        self._scroll.ensureWidgetVisible(self.api_section, 0, 0)

    def _build_speed_section(self) -> QFormLayout:
        self.read_while_typing = QCheckBox(self.tr("Read my message while I type"))
        self.read_while_typing.setChecked(self._settings.read_while_typing)
        self.read_while_typing.setToolTip(self.tr(
            "When you pause while typing, the model reads what you have written so far, so that "
            "after Send only the last words are left to read."
        ))
        self.read_while_typing_on_battery = QCheckBox(self.tr("Also when running on battery"))
        self.read_while_typing_on_battery.setChecked(self._settings.read_while_typing_on_battery)
        self.read_while_typing_on_battery.setToolTip(self.tr(
            "Words read before you change them are read again: on battery, that work costs charge."
        ))
        self.read_while_typing_on_battery.setEnabled(self.read_while_typing.isChecked())
        self.read_while_typing.toggled.connect(self.read_while_typing_on_battery.setEnabled)
        # Under the boxes, not in their text: a check box's text does not wrap, and this would widen the dialog.
        self.read_while_typing_note = QLabel(self.tr(
            "Answers start sooner. On battery, your message is read once you send it, unless allowed above."
        ))
        self.read_while_typing_note.setObjectName("secondaryText")
        self.read_while_typing_note.setWordWrap(True)
        self.saved_states_use = QLabel()
        self.saved_states_use.setAccessibleName(self.tr("Space the saved chat states use"))
        self.clear_saved_states = QPushButton(self.tr("Clear…"))
        self.clear_saved_states.setToolTip(self.tr("Remove every saved chat state now"))
        self.clear_saved_states.clicked.connect(self._clear_saved_states)
        use_row = QHBoxLayout()
        use_row.addWidget(self.saved_states_use, 1)
        use_row.addWidget(self.clear_saved_states)
        self.saved_states_budget = QDoubleSpinBox()
        self.saved_states_budget.setRange(0.5, 64)
        self.saved_states_budget.setSingleStep(0.5)
        self.saved_states_budget.setDecimals(1)
        self.saved_states_budget.setSuffix(" GB")
        self.saved_states_budget.setValue(self._settings.saved_states_budget_bytes / GIB)
        self.saved_states_budget.setAccessibleName(self.tr("Space for saved chat states"))
        self.saved_states_budget.setToolTip(self.tr("When the saved states outgrow this, the least recently used are removed."))
        self.saved_states_budget.valueChanged.connect(self._show_saved_states_use)
        self.saved_states_note = QLabel(self.tr(
            "States of chats you left, kept so that reopening them — also after a restart — answers "
            "at once. Least recently used go first."
        ))
        self.saved_states_note.setObjectName("secondaryText")
        self.saved_states_note.setWordWrap(True)
        self._saved_states_bytes = self._saved_states.total_bytes()
        self._show_saved_states_use()

        form = QFormLayout()
        form.addRow("", self.read_while_typing)
        # Indented under the box it depends on, level with that box's text.
        on_battery_row = QHBoxLayout()
        indent = self.style().pixelMetric(QStyle.PixelMetric.PM_IndicatorWidth) + self.style().pixelMetric(
            QStyle.PixelMetric.PM_CheckBoxLabelSpacing
        )
        on_battery_row.setContentsMargins(indent, 0, 0, 0)
        on_battery_row.addWidget(self.read_while_typing_on_battery)
        form.addRow("", on_battery_row)
        form.addRow("", self.read_while_typing_note)
        form.addRow(self.tr("Saved chat states:"), use_row)
        form.addRow(self.tr("Space for them:"), self.saved_states_budget)
        form.addRow("", self.saved_states_note)
        return form

    def _typed_saved_states_budget(self) -> int:
        return round(self.saved_states_budget.value() * GIB)

    def _show_saved_states_use(self) -> None:
        budget = format_binary_bytes(self._typed_saved_states_budget())
        used = self._saved_states_bytes
        self.saved_states_use.setText(
            self.tr("Using %1 of %2").replace("%1", format_binary_bytes(used)).replace("%2", budget) if used
            else self.tr("None saved now (room for %1)").replace("%1", budget)
        )
        self.clear_saved_states.setEnabled(bool(used))

    def _clear_saved_states(self) -> None:
        answer = QMessageBox.question(
            self,
            self.tr("Saved chat states"),
            self.tr(
                "Remove the saved states of the chats you left (%1)?\n\nThe chats stay as they are; "
                "the first answer in each one you reopen takes longer, as the model reads it again."
            ).replace("%1", format_binary_bytes(self._saved_states_bytes)),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self._saved_states.clear()
        self._saved_states_bytes = self._saved_states.total_bytes()  # one being written may have landed since
        self._show_saved_states_use()

    def _build_api_section(self) -> QFormLayout:
        settings = self._settings
        self.api_enabled = QCheckBox(self.tr("Let other programs use the loaded model (OpenAI-compatible API)"))
        self.api_enabled.setChecked(settings.api_server_enabled)
        self.api_port = QSpinBox()
        self.api_port.setRange(1, 65535)
        self.api_port.setValue(settings.api_server_port)
        self.api_port.setAccessibleName(self.tr("API port"))
        self.api_key_edit = QLineEdit(self._api_key.token() or "")
        self.api_key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key_edit.setPlaceholderText(self.tr("Optional on this computer"))
        self.api_key_edit.setAccessibleName(self.tr("API key"))
        self.api_key_shown = QPushButton(self.tr("Show"))
        self.api_key_shown.setCheckable(True)
        self.api_key_shown.setAccessibleName(self.tr("Show the API key"))
        self.api_key_shown.toggled.connect(self._show_api_key)
        self.api_generate_key = QPushButton(self.tr("Generate"))
        self.api_generate_key.setToolTip(self.tr("Make a new key that nobody can guess"))
        self.api_generate_key.clicked.connect(self._generate_api_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self.api_key_edit, 1)
        key_row.addWidget(self.api_key_shown)
        key_row.addWidget(self.api_generate_key)
        self.api_key_note = QLabel(
            self._api_key.keyring_problem
            or self.tr("Programs send it as “Authorization: Bearer <key>”. It is kept in the system keyring, never in a file.")
        )
        self.api_key_note.setObjectName("secondaryText")
        self.api_key_note.setWordWrap(True)
        self.api_allow_network = QCheckBox(self.tr("Allow other computers on my network (needs a key)"))
        self.api_allow_network.setChecked(settings.api_allow_network)
        self.api_allow_network.toggled.connect(self._on_allow_network_toggled)
        self.api_origins_edit = QLineEdit(", ".join(settings.api_allowed_origins))
        self.api_origins_edit.setPlaceholderText(self.tr("Optional, e.g. https://example.org, http://localhost:3000"))
        self.api_origins_edit.setAccessibleName(self.tr("Allowed web pages (origins)"))
        self.api_origins_edit.setToolTip(self.tr("Web pages allowed to call the API from a browser; requests from any other page are refused."))
        self.api_address = QLabel()
        self.api_address.setAccessibleName(self.tr("API address"))
        self.api_address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.api_copy_address = QPushButton(self.tr("Copy"))
        self.api_copy_address.setToolTip(self.tr("Copy the address for a program's “base URL” setting"))
        self.api_copy_address.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.api_address.text()))
        self.api_request_log = QPushButton(self.tr("Request log…"))
        self.api_request_log.clicked.connect(self.sig_request_log_requested)
        address_row = QHBoxLayout()
        address_row.addWidget(self.api_address, 1)
        address_row.addWidget(self.api_copy_address)
        address_row.addWidget(self.api_request_log)
        self.api_address_note = QLabel()
        self.api_address_note.setObjectName("secondaryText")
        self.api_address_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.api_address_note.setWordWrap(True)
        self.api_problem = QLabel()
        self.api_problem.setObjectName("warningText")
        self.api_problem.setWordWrap(True)
        for changed in (
            self.api_enabled.toggled, self.api_port.valueChanged, self.api_key_edit.textChanged,
            self.api_allow_network.toggled, self.api_origins_edit.textChanged,
        ):
            changed.connect(self._show_api_settings)
        self._show_api_settings()

        form = QFormLayout()
        form.addRow("", self.api_enabled)
        form.addRow(self.tr("Port:"), self.api_port)
        form.addRow(self.tr("Address:"), address_row)
        form.addRow(self.tr("API key:"), key_row)
        form.addRow("", self.api_key_note)
        form.addRow("", self.api_allow_network)
        form.addRow("", self.api_address_note)
        form.addRow(self.tr("Allowed web pages:"), self.api_origins_edit)
        form.addRow("", self.api_problem)
        return form

    def _typed_origins(self) -> list[str]:
        return [origin.strip() for origin in self.api_origins_edit.text().split(",") if origin.strip()]

    def _typed_api_config(self) -> ApiServerConfig | None:
        return api_config(
            enabled=self.api_enabled.isChecked(),
            port=self.api_port.value(),
            allow_network=self.api_allow_network.isChecked(),
            api_key=self.api_key_edit.text().strip(),
            allowed_origins=self._typed_origins(),
        )

    def _typed_api_problem(self) -> str | None:
        config = self._typed_api_config()
        return config.problem() if config is not None else None

    def _show_api_settings(self) -> None:
        enabled = self.api_enabled.isChecked()
        for widget in (
            self.api_port, self.api_key_edit, self.api_key_shown, self.api_generate_key,
            self.api_allow_network, self.api_origins_edit, self.api_copy_address,
        ):
            widget.setEnabled(enabled)
        self.api_address.setText(base_url("127.0.0.1", self.api_port.value()))
        self.api_address_note.setVisible(self.api_allow_network.isChecked())
        if self.api_allow_network.isChecked():
            addresses = [base_url(address, self.api_port.value()) for address in self._network_addresses]
            self.api_address_note.setText(
                self.tr("Other computers use %1.").replace("%1", self.tr(" or ").join(addresses)) if addresses
                else self.tr("This computer has no network address other computers could reach it at right now.")
            )
        problem = self._typed_api_problem()
        if problem is None and self._api_state.problem:
            problem = self.tr("Not running: %1").replace("%1", self._api_state.problem)
        self.api_problem.setText(problem or "")
        self.api_problem.setVisible(bool(problem))

    def _show_api_key(self, shown: bool) -> None:
        self.api_key_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.api_key_shown.setText(self.tr("Hide") if shown else self.tr("Show"))

    def _generate_api_key(self) -> None:
        self.api_key_edit.setText(new_api_key())
        self.api_key_shown.setChecked(True)  # a new key is to be copied into the programs

    def _on_allow_network_toggled(self, allowed: bool) -> None:
        if allowed and not self.api_key_edit.text().strip():
            self._generate_api_key()

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
        if self._typed_api_problem() is not None:
            # The reason is already shown under the API settings; nothing is saved. A missing
            # key or a mistyped web page is all they can lack.
            (self.api_origins_edit if self.api_key_edit.text().strip() else self.api_key_edit).setFocus()
            return
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
        settings.image_detail = self.image_detail.currentData()
        settings.read_while_typing = self.read_while_typing.isChecked()
        settings.read_while_typing_on_battery = self.read_while_typing_on_battery.isChecked()
        settings.saved_states_budget_bytes = self._typed_saved_states_budget()
        if self.forget_token.isChecked():
            controller.secrets.set_token(None)
        elif self.token_edit.text().strip():
            controller.secrets.set_token(self.token_edit.text().strip())
        controller.apply_hub_settings(self.endpoint_edit.text().strip(), self.proxy_edit.text().strip(), self.offline_check.isChecked())
        settings.api_server_enabled = self.api_enabled.isChecked()
        settings.api_server_port = self.api_port.value()
        settings.api_allow_network = self.api_allow_network.isChecked()
        settings.api_allowed_origins = self._typed_origins()
        api_key = self.api_key_edit.text().strip()
        if api_key != (self._api_key.token() or ""):
            self._api_key.set_token(api_key)
        super().accept()
