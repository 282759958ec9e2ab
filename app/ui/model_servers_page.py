"""Settings › Model servers: the servers (on other computers, or this one) whose models the
model list offers, how each stands, and adding, changing or removing one, with a test of the
connection before it is saved.

Like Settings › Tools, the page shows the service's state and changes it at once: a server is
saved when its own dialog is, not when Settings is, and the page reads the service again
whenever it reports a change. Keys go to the system keyring through the service.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engines.remote.model_servers import ModelServer, ModelServers, ServerListing
from app.core.engines.remote.server_connection import ServerProblem
from app.ui.event_bridges import ModelServersBridge
from app.ui.model_server_texts import models_summary, server_status

ADDRESS_EXAMPLE = "http://192.168.1.20:8080/v1"
DIALOG_WIDTH = 600
# The command's name with hyphens that do not break, so that a wrapped line never splits it.
SERVE_COMMAND = "qwen\u2011local\u2011chat serve"


def _note(text: str = "", object_name: str = "secondaryText") -> QLabel:
    label = QLabel(text)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    # At the top of the room it gets: a wrapped label is given room for more lines than it
    # needs at the dialog's width, and centred text would drift away from its field.
    label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return label


def _stacked(*parts: QWidget | QLayout) -> QVBoxLayout:
    """A field with what explains it right under it (a form's own row spacing would set the
    explanation apart from its field)."""
    stack = QVBoxLayout()
    stack.setContentsMargins(0, 0, 0, 0)
    stack.setSpacing(4)
    for part in parts:
        if isinstance(part, QLayout):
            stack.addLayout(part)
        else:
            stack.addWidget(part)
    return stack


def _set_tone(label: QLabel, tone: str) -> None:
    """Colours a result line: "good", "problem", or "" (secondary text)."""
    label.setProperty("tone", tone)
    label.style().unpolish(label)
    label.style().polish(label)


class ModelServerDialog(QDialog):
    """Adds a model server, or changes ``editing``: the form, Test connection (the server as
    typed, saved or not), and Save, which keeps the dialog open with the reason when the
    service refuses the form. ``saved`` is the server as stored once it is accepted."""

    def __init__(
        self,
        servers: ModelServers,
        bridge: ModelServersBridge,
        editing: ModelServer | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._servers = servers
        self._bridge = bridge
        self._editing = editing
        self._test_number: int | None = None  # the test whose answer is awaited
        self.saved: ModelServer | None = None
        has_key = editing is not None and servers.has_key(editing.name)
        self.setWindowTitle(self.tr("Edit “%1”").replace("%1", editing.name) if editing else self.tr("Add a model server"))

        intro = _note(self.tr(
            "Chat with a model that runs on another computer. Any server with the OpenAI-compatible API works: "
            "llama-server, vLLM, Ollama, LM Studio, or %1 on that computer."
        ).replace("%1", SERVE_COMMAND), "")
        self.name_edit = QLineEdit(editing.name if editing else "")
        self.name_edit.setPlaceholderText(self.tr("e.g. Desktop or GPU box"))
        self.name_edit.setAccessibleName(self.tr("Server name"))
        self.url_edit = QLineEdit(editing.url if editing else "")
        self.url_edit.setPlaceholderText(ADDRESS_EXAMPLE)
        self.url_edit.setAccessibleName(self.tr("Server address"))
        url_note = _note(self.tr(
            "The server's address and port, usually ending in /v1 (llama-server, vLLM, LM Studio, "
            "%1). Ollama: http://host:11434/v1."
        ).replace("%1", SERVE_COMMAND))

        self.key_edit = QLineEdit()
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.key_edit.setAccessibleName(self.tr("Key"))
        self.key_edit.setPlaceholderText(
            self.tr("Saved: leave empty to keep it") if has_key else self.tr("Optional: only if the server asks for one")
        )
        self.key_shown = QPushButton(self.tr("Show"))
        self.key_shown.setCheckable(True)
        self.key_shown.setAccessibleName(self.tr("Show the key"))
        self.key_shown.toggled.connect(self._show_key)
        key_row = QHBoxLayout()
        key_row.addWidget(self.key_edit, 1)
        key_row.addWidget(self.key_shown)
        self.remove_key = QCheckBox(self.tr("Remove the saved key"))
        self.remove_key.setVisible(has_key)
        self.remove_key.toggled.connect(self._on_remove_key_toggled)
        # Every server's key goes to the same keyring: any name tells whether it can keep one.
        keyring_problem = servers.keyring_problem(editing.name if editing else "")
        self.key_note = _note(
            keyring_problem
            or self.tr("Sent to the server as “Authorization: Bearer <key>”. Kept in the system keyring, never in a file."),
            "warningText" if keyring_problem else "secondaryText",
        )

        self.ca_edit = QLineEdit(editing.ca_file if editing else "")
        self.ca_edit.setPlaceholderText(self.tr("Optional: only for https with your own certificate authority"))
        self.ca_edit.setAccessibleName(self.tr("CA file"))
        choose_ca = QPushButton(self.tr("Choose…"))
        choose_ca.setToolTip(self.tr("Choose the certificate authority's file (PEM)"))
        choose_ca.clicked.connect(self._choose_ca_file)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_edit, 1)
        ca_row.addWidget(choose_ca)
        ca_note = _note(self.tr(
            "For a server whose certificate your own certificate authority signed. Certificates are always "
            "verified: against the usual authorities, and this one too when it is set."
        ))

        self.test_button = QPushButton(self.tr("Test connection"))
        self.test_button.setToolTip(self.tr("Ask the server, as set up here, for its models; nothing is saved"))
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = _note()
        self.test_result.setObjectName("testResult")
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.test_result.setAccessibleName(self.tr("Connection test result"))
        self.test_result.hide()
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)

        self.problem = _note("", "warningText")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.setVerticalSpacing(10)
        form.addRow(self.tr("Name:"), self.name_edit)
        form.addRow(self.tr("Address:"), _stacked(self.url_edit, url_note))
        form.addRow(self.tr("Key:"), _stacked(key_row, self.remove_key, self.key_note))
        form.addRow(self.tr("CA file:"), _stacked(ca_row, ca_note))
        form.addRow("", _stacked(test_row, self.test_result))
        layout = QVBoxLayout(self)
        layout.setSpacing(12)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addStretch(1)
        layout.addWidget(buttons)

        # Queued: a form that cannot be tried is answered while ``test`` runs, before its number is known.
        bridge.sig_tested.connect(self._on_tested, Qt.ConnectionType.QueuedConnection)
        for edit in (self.name_edit, self.url_edit, self.key_edit, self.ca_edit):
            edit.textChanged.connect(self._on_form_changed)
        self.resize(DIALOG_WIDTH, self.sizeHint().height())

    # ---------------------------------------------------------------------------- the form

    def _typed_server(self) -> ModelServer:
        return ModelServer(self.name_edit.text(), self.url_edit.text(), self.ca_edit.text())

    def _typed_key(self) -> str | None:
        """The key to use: the one typed, none (removing the saved one), or None: the saved one."""
        if self.remove_key.isChecked():
            return ""
        return self.key_edit.text().strip() or None

    def _show_key(self, shown: bool) -> None:
        self.key_edit.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.key_shown.setText(self.tr("Hide") if shown else self.tr("Show"))

    def _on_remove_key_toggled(self, removing: bool) -> None:
        self.key_edit.setEnabled(not removing)
        self.key_shown.setEnabled(not removing)
        if removing:
            self.key_edit.clear()
        self._on_form_changed()

    def _choose_ca_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("The certificate authority's file"), self.ca_edit.text(),
            self.tr("Certificates (*.pem *.crt *.cer);;All files (*)"),
        )
        if path:
            self.ca_edit.setText(path)

    def _on_form_changed(self) -> None:
        """What was tested or refused is no longer what is typed: its answer no longer applies."""
        self.problem.hide()
        if self._test_number is not None or self.test_result.isVisible():
            self._test_number = None
            self.test_result.hide()
            self._show_testing(False)

    # ---------------------------------------------------------------------------- testing

    def test_connection(self) -> None:
        """Asks the server as typed for its models; the answer shows under the button."""
        server, key = self._typed_server(), self._typed_key()
        self._show_testing(True)
        self.test_result.setText(self.tr("Asking the server for its models…"))
        _set_tone(self.test_result, "")
        self.test_result.show()
        # The saved key is kept under the name it was saved with, whatever is typed now.
        saved_key_of = self._editing.name if self._editing is not None else None
        self._test_number = self._bridge.test(server, key, saved_key_of=saved_key_of)

    def _show_testing(self, testing: bool) -> None:
        self.test_button.setEnabled(not testing)
        self.test_button.setText(self.tr("Testing…") if testing else self.tr("Test connection"))

    def _on_tested(self, number: int, listing: ServerListing) -> None:
        if number != self._test_number:
            return  # an earlier test, or one of a form changed since
        self._test_number = None
        self._show_testing(False)
        if listing.problem:
            self.test_result.setText(listing.problem)
            _set_tone(self.test_result, "problem")
        elif listing.models:
            self.test_result.setText(self.tr("Connected. %1").replace("%1", models_summary(listing.models)))
            self.test_result.setToolTip("\n".join(model.id for model in listing.models))
            _set_tone(self.test_result, "good")
        else:
            self.test_result.setText(self.tr("Connected, but it %1").replace("%1", models_summary(()).lower()))
            _set_tone(self.test_result, "problem")
        self.test_result.show()

    # ----------------------------------------------------------------------------- saving

    def accept(self) -> None:
        try:
            self.saved = self._servers.save(
                self._typed_server(), key=self._typed_key(), replacing=self._editing.name if self._editing else None,
            )
        except ServerProblem as problem:
            # Nothing was saved: the form stays as typed, with what to fix.
            self.problem.setText(str(problem))
            self.problem.show()
            return
        super().accept()


class ModelServerRow(QFrame):
    """One server: its name and address, how it stands, Edit… and Remove."""

    def __init__(self, server: ModelServer, has_key: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelServer")
        self.server = server
        self.name = QLabel(server.name)
        font = self.name.font()
        font.setBold(True)
        self.name.setFont(font)
        # Read-only and one line that scrolls, so a long address neither widens the dialog nor
        # loses its end.
        self.address = QLineEdit(server.url)
        self.address.setObjectName("serverLaunch")
        self.address.setReadOnly(True)
        self.address.setFrame(False)
        self.address.setCursorPosition(0)
        self.address.setToolTip(server.url)
        self.address.setAccessibleName(self.tr("Address of %1").replace("%1", server.name))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName(self.tr("Status of %1").replace("%1", server.name))
        details = []
        if server.on_this_computer:
            details.append(self.tr("on this computer"))
        if has_key:
            details.append(self.tr("key in the keyring"))
        if server.ca_file:
            details.append(self.tr("own certificate authority"))
        self.details = QLabel(" · ".join(details))
        self.details.setObjectName("secondaryText")
        if server.ca_file:
            self.details.setToolTip(self.tr("CA file: %1").replace("%1", server.ca_file))
        self.edit_button = QPushButton(self.tr("Edit…"))
        self.edit_button.setAccessibleName(self.tr("Edit %1").replace("%1", server.name))
        self.remove_button = QPushButton(self.tr("Remove"))
        self.remove_button.setAccessibleName(self.tr("Remove %1").replace("%1", server.name))
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.setHorizontalSpacing(8)
        layout.setVerticalSpacing(2)
        layout.addWidget(self.name, 0, 0)
        layout.addWidget(self.address, 0, 1)
        layout.addWidget(self.edit_button, 0, 2)
        layout.addWidget(self.remove_button, 0, 3)
        layout.addWidget(self.status, 1, 0, 1, 2)
        layout.addWidget(self.details, 1, 2, 1, 2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        layout.setColumnStretch(1, 1)

    def show_status(self, text: str, trouble: bool) -> None:
        self.status.setText(text)
        self.status.setObjectName("warningText" if trouble else "secondaryText")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)


class ModelServersPage(QGroupBox):
    """The Model servers section of Settings, on ``servers``; it follows their changes, which
    ``bridge`` (started) brings to the GUI thread."""

    def __init__(self, servers: ModelServers, bridge: ModelServersBridge, parent: QWidget | None = None) -> None:
        super().__init__(self.tr("Model servers"), parent)
        self._servers = servers
        self._bridge = bridge
        self.rows: dict[str, ModelServerRow] = {}
        self._refresh_pending = False
        # Queued even when the change was made here (a Save in this page's dialog): the page is
        # read again once the dialog's handler has returned.
        bridge.sig_servers_changed.connect(self._refresh_soon, Qt.ConnectionType.QueuedConnection)
        bridge.sig_server_listed.connect(self._show_statuses, Qt.ConnectionType.QueuedConnection)

        intro = _note(self.tr(
            "Chat with models that run on another computer: llama-server, vLLM, Ollama, LM Studio or "
            "%1 there. Their models join the model list; what you write in chats with them is sent to "
            "that computer. Changes here apply at once."
        ).replace("%1", SERVE_COMMAND))
        self.offline_note = _note(self.tr(
            "Offline mode is on: servers on other computers are not contacted until it is off."
        ), "warningText")
        self.no_servers = _note(self.tr("No servers added yet."))
        self._list = QVBoxLayout()
        self._list.setSpacing(6)
        self.check_again = QPushButton(self.tr("Check again"))
        self.check_again.setToolTip(self.tr("Ask every server for its models again"))
        self.check_again.clicked.connect(lambda: servers.refresh())
        self.add_button = QPushButton(self.tr("Add server…"))
        self.add_button.clicked.connect(self.add_server)
        buttons = QHBoxLayout()
        buttons.addWidget(self.check_again)
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.offline_note)
        layout.addWidget(self.no_servers)
        layout.addLayout(self._list)
        layout.addLayout(buttons)
        self.refresh()

    def add_server(self) -> None:
        self._open_dialog(None)

    def edit_server(self, name: str) -> None:
        server = self._servers.server(name)
        if server is not None:
            self._open_dialog(server)

    def _open_dialog(self, editing: ModelServer | None) -> None:
        dialog = ModelServerDialog(self._servers, self._bridge, editing, self)
        if dialog.exec() == QDialog.DialogCode.Accepted and dialog.saved is not None:
            self._servers.refresh([dialog.saved.name])

    def remove_server(self, name: str) -> None:
        """Removes the server ``name`` and its key, once the person confirms."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            self.tr("Remove “%1”?").replace("%1", name),
            self.tr("Remove the model server “%1”? Its key is deleted from the system keyring; chats that used "
                    "its models stay as they are.").replace("%1", name),
            QMessageBox.StandardButton.Cancel,
            self,
        )
        remove = box.addButton(self.tr("Remove"), QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is remove:
            self._servers.remove(name)

    def _refresh_soon(self, _event: object) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self.refresh)

    def refresh(self) -> None:
        """Shows the servers as they are now."""
        self._refresh_pending = False
        servers = self._servers.servers
        for row in self.rows.values():
            self._list.removeWidget(row)
            row.deleteLater()
        self.rows = {}
        for server in servers:
            row = ModelServerRow(server, self._servers.has_key(server.name))
            row.edit_button.clicked.connect(lambda _checked=False, name=server.name: self.edit_server(name))
            row.remove_button.clicked.connect(lambda _checked=False, name=server.name: self.remove_server(name))
            self._list.addWidget(row)
            self.rows[server.name] = row
        self.no_servers.setVisible(not servers)
        self.check_again.setEnabled(bool(servers))
        self.offline_note.setVisible(any(self._servers.blocked_offline(server) for server in servers))
        self._show_statuses()

    def _show_statuses(self, _event: object = None) -> None:
        for row in self.rows.values():
            row.show_status(*server_status(self._servers, row.server))
