"""Settings › Tools: whether new chats offer tools and their limits, the built-in tools, the MCP
servers (their status, starting them, allowing their commands, their tools) and the tools that
run without asking.

Everything here is the tool service's state, shown as it is now and changed at once through its
methods (a server starting is no setting to save or cancel); the page reads the service again
whenever it reports a change.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QTextOption
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.tools.mcp_config import McpConfigError, ServerConfig
from app.core.tools.mcp_servers import ServerState
from app.core.tools.server_secrets import PLACEHOLDER
from app.core.tools.tool_catalog import ToolDefinition
from app.core.tools.tool_service import MAX_STEP_LIMIT, ServerView, ToolsChanged, ToolService
from app.ui.event_bridges import ToolsBridge

MAX_TIMEOUT_S = 3600  # an hour: longer than any tool should take, short of "never"
SHOWN_DESCRIPTION_CHARACTERS = 240  # of a server's tool description in its row; the tooltip has it all

CONFIG_EXAMPLE = """{
  "mcpServers": {
    "files": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"]
    },
    "notes": {"url": "http://127.0.0.1:8765/mcp"}
  }
}"""


def monospace_font() -> QFont:
    """The code blocks' typefaces (``#codeBody`` in the style sheet) at the app's text size: a
    command or JSON reads as typed, every character as wide as the next."""
    font = QFont(QGuiApplication.font())
    font.setFamilies(["DejaVu Sans Mono", "Menlo", "Consolas", QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()])
    font.setStyleHint(QFont.StyleHint.TypeWriter)
    return font


class LaunchApprovalDialog(QDialog):
    """Asks whether a server's command may run (or its address be reached), showing exactly what."""

    def __init__(self, config: ServerConfig, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Allow “%1”?").replace("%1", config.name))
        if config.transport == "stdio":
            question = self.tr("Allow this server to run on your computer? It can do whatever this program can.")
            what = self.tr("The server “%1” starts this command:").replace("%1", config.name)
        else:
            question = self.tr("Let the model use this server? What its tools are asked is sent to it.")
            what = self.tr("The server “%1” is reached at this address:").replace("%1", config.name)
        self.question = QLabel(question)
        self.question.setWordWrap(True)
        font = self.question.font()
        font.setBold(True)
        self.question.setFont(font)
        what_label = QLabel(what)
        what_label.setWordWrap(True)
        self.launch = QPlainTextEdit(config.launch)
        self.launch.setReadOnly(True)
        self.launch.setFont(monospace_font())
        self.launch.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.launch.setWordWrapMode(QTextOption.WrapMode.WrapAnywhere)  # a path has no spaces to wrap at
        self.launch.setAccessibleName(self.tr("What runs"))
        lines = max(2, min(6, len(config.launch) // 60 + 1))
        self.launch.setFixedHeight(self.launch.fontMetrics().lineSpacing() * lines + 16)
        note = QLabel(self.tr("Not now: it stays set up but does not start; its row in Settings › Tools has “Allow…”."))
        note.setObjectName("secondaryText")
        note.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.allow_button = buttons.addButton(self.tr("Allow"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.not_now_button = buttons.addButton(self.tr("Not now"), QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.question)
        layout.addWidget(what_label)
        layout.addWidget(self.launch)
        layout.addWidget(note)
        layout.addWidget(buttons)
        # Enter must not allow a program by accident (set once in the dialog: a default button
        # belongs to its dialog).
        self.not_now_button.setDefault(True)
        self.resize(560, self.sizeHint().height())


def ask_to_allow_launch(tools: ToolService, name: str, parent: QWidget) -> None:
    """Shows the server's command and lets it run if the person allows it."""
    view = tools.server(name)
    if view is None:
        return
    if LaunchApprovalDialog(view.config, parent).exec() == QDialog.DialogCode.Accepted:
        tools.approve_launch(name, view.config.launch_fingerprint)  # what was shown, nothing since


class ServerConfigDialog(QDialog):
    """The servers as ``mcpServers`` JSON, saved only when the service can use it."""

    def __init__(self, tools: ToolService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("MCP servers"))
        self._tools = tools
        self.servers_to_allow: tuple[str, ...] = ()  # once saved: the servers whose command was never allowed
        explanation = QLabel(self.tr(
            "The servers, in the “mcpServers” format of Claude Desktop, Cursor and LM Studio’s mcp.json: "
            "paste theirs as it is. A server has a “command” (a program started on this computer) or a "
            "“url” (a server to reach); \"disabled\": true keeps one set up but unused."
        ))
        explanation.setWordWrap(True)
        self.secrets_note = QLabel(tools.secrets_problem or self.tr(
            "Values in “env” and “headers” (keys, tokens) are kept in the system keyring, never in the file: "
            "here they read %1. Leave that to keep a value, or type a new one."
        ).replace("%1", PLACEHOLDER))
        self.secrets_note.setObjectName("secondaryText")
        self.secrets_note.setWordWrap(True)
        self.editor = QPlainTextEdit(tools.config_text())
        self.editor.setFont(monospace_font())
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setTabChangesFocus(True)  # Tab leaves the editor: JSON is indented with spaces
        self.editor.setAccessibleName(self.tr("Servers as JSON"))
        self.problem = QLabel()
        self.problem.setObjectName("warningText")
        self.problem.setWordWrap(True)
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.hide()
        self.editor.textChanged.connect(self.problem.hide)
        example_title = QLabel(self.tr("For example:"))
        example_title.setObjectName("secondaryText")
        self.example = QLabel(CONFIG_EXAMPLE)
        self.example.setObjectName("secondaryText")
        self.example.setFont(monospace_font())
        self.example.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(explanation)
        layout.addWidget(self.secrets_note)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.problem)
        layout.addWidget(example_title)
        layout.addWidget(self.example)
        layout.addWidget(buttons)
        self.resize(680, 600)

    def accept(self) -> None:
        try:
            self.servers_to_allow = self._tools.set_config_text(self.editor.toPlainText())
        except McpConfigError as error:
            # Nothing was saved: the text stays as typed, with what to fix.
            self.problem.setText(str(error))
            self.problem.show()
            self.editor.setFocus()
            return
        super().accept()


class ServerDetailsDialog(QDialog):
    """Why a server failed: the service's message and the end of what it wrote to standard error."""

    def __init__(self, view: ServerView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("“%1” failed").replace("%1", view.config.name))
        self.message = QLabel(view.status.message)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        launch = QLabel(view.config.launch)
        launch.setObjectName("secondaryText")
        launch.setFont(monospace_font())
        launch.setWordWrap(True)
        launch.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        errors_title = QLabel(self.tr("What it wrote to its error output (the end):"))
        self.errors = QPlainTextEdit(view.status.stderr or self.tr("(nothing)"))
        self.errors.setReadOnly(True)
        self.errors.setFont(monospace_font())
        self.errors.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.errors.setAccessibleName(self.tr("The server's error output"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(launch)
        layout.addWidget(errors_title)
        layout.addWidget(self.errors, 1)
        layout.addWidget(buttons)
        self.resize(640, 420)


class ServerRow(QFrame):
    """One server: switched on or off, what it runs, its status, what can be done now, its tools."""

    def __init__(self, tools: ToolService, view: ServerView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolServer")
        self._tools = tools
        self._view = view
        self.name = view.config.name
        self.enabled_check = QCheckBox(self.name)
        font = self.enabled_check.font()
        font.setBold(True)
        self.enabled_check.setFont(font)
        self.enabled_check.setAccessibleName(self.tr("Use the server %1").replace("%1", self.name))
        self.enabled_check.clicked.connect(lambda on: tools.set_server_enabled(self.name, on))
        self.transport = QLabel()
        self.transport.setObjectName("secondaryText")
        # The command or address: read-only, one line that scrolls, so a long path neither
        # widens the dialog nor loses its end.
        self.launch = QLineEdit()
        self.launch.setObjectName("serverLaunch")
        self.launch.setReadOnly(True)
        self.launch.setFrame(False)
        self.launch.setFont(monospace_font())
        self.launch.setAccessibleName(self.tr("What the server %1 runs").replace("%1", self.name))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName(self.tr("Status of %1").replace("%1", self.name))
        self.allow_button = QPushButton(self.tr("Allow…"))
        self.allow_button.setToolTip(self.tr("See what it runs, and let it run"))
        self.allow_button.clicked.connect(lambda: ask_to_allow_launch(tools, self.name, self))
        self.start_button = QPushButton()
        self.start_button.clicked.connect(self._start)
        self.details_button = QPushButton(self.tr("Details…"))
        self.details_button.setToolTip(self.tr("Why it failed, and what it wrote to its error output"))
        self.details_button.clicked.connect(lambda: ServerDetailsDialog(self._view, self).exec())
        self.tool_checks: dict[str, QCheckBox] = {}
        self._tools_grid = QGridLayout()
        self._tools_grid.setContentsMargins(24, 0, 0, 0)
        self._tools_grid.setColumnStretch(1, 1)
        self._shown_tool_keys: tuple[str, ...] = ()

        top = QHBoxLayout()
        top.addWidget(self.enabled_check)
        top.addWidget(self.transport)
        top.addWidget(self.launch, 1)
        actions = QHBoxLayout()
        actions.setContentsMargins(24, 0, 0, 0)
        actions.addWidget(self.status, 1)
        for button in (self.allow_button, self.start_button, self.details_button):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(top)
        layout.addLayout(actions)
        layout.addLayout(self._tools_grid)
        self.show_view(view)

    def show_view(self, view: ServerView) -> None:
        self._view = view
        config, state = view.config, view.status.state
        self.enabled_check.setChecked(config.enabled)
        self.transport.setText(self.tr("Command:") if config.transport == "stdio" else self.tr("Address:"))
        if self.launch.text() != config.launch:
            self.launch.setText(config.launch)
            self.launch.setCursorPosition(0)
        self.launch.setToolTip(config.launch)
        self.status.setText(view.summary)
        trouble = config.enabled and (view.blocked_offline or view.needs_approval or state is ServerState.FAILED)
        self.status.setObjectName("warningText" if trouble else "secondaryText")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        may_run = config.enabled and not view.needs_approval and not view.blocked_offline
        self.allow_button.setVisible(config.enabled and view.needs_approval and not view.blocked_offline)
        self.start_button.setVisible(may_run and state is not ServerState.STARTING)
        self.start_button.setText(self.tr("Start") if state is ServerState.STOPPED else self.tr("Restart"))
        self.start_button.setToolTip(
            self.tr("Start it now") if state is ServerState.STOPPED
            else self.tr("Stop it and start it afresh (for a server whose tools have changed)")
        )
        self.details_button.setVisible(state is ServerState.FAILED)
        self._show_tools(view.status.tools)

    def _start(self) -> None:
        if self._view.status.state is ServerState.STOPPED:
            self._tools.start_server(self.name)
        else:
            self._tools.restart_server(self.name)

    def _show_tools(self, server_tools: tuple[ToolDefinition, ...]) -> None:
        keys = tuple(tool.key for tool in server_tools)
        if keys != self._shown_tool_keys:
            self._shown_tool_keys = keys
            while self._tools_grid.count():
                self._tools_grid.takeAt(0).widget().deleteLater()
            self.tool_checks = {}
            for row, tool in enumerate(server_tools):
                check, description = tool_switch(self._tools, tool, self)
                self._tools_grid.addWidget(check, row, 0, Qt.AlignmentFlag.AlignTop)
                self._tools_grid.addWidget(description, row, 1, Qt.AlignmentFlag.AlignTop)
                self.tool_checks[tool.name] = check
        for tool in server_tools:
            self.tool_checks[tool.name].setChecked(self._tools.is_switched_on(tool.key))


def tool_switch(tools: ToolService, tool: ToolDefinition, parent: QWidget) -> tuple[QCheckBox, QLabel]:
    """A tool's checkbox (offered to the model or not) and its description."""
    check = QCheckBox(tool.name, parent)
    check.setAccessibleName(parent.tr("Offer the tool %1").replace("%1", tool.key))
    check.setToolTip(tool.description)
    check.setChecked(tools.is_switched_on(tool.key))
    check.clicked.connect(lambda on: tools.set_switched_on(tool.key, on))
    shown = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
    if len(shown) > SHOWN_DESCRIPTION_CHARACTERS:
        shown = shown[: SHOWN_DESCRIPTION_CHARACTERS - 1].rstrip() + "…"
    description = QLabel(shown, parent)
    description.setObjectName("secondaryText")
    description.setWordWrap(True)
    description.setToolTip(tool.description)
    return check, description


class ToolSettingsPage(QWidget):
    """The Tools sections of Settings, on ``tools``; they follow its changes, which ``bridge``
    (started) brings to the GUI thread."""

    def __init__(self, tools: ToolService, bridge: ToolsBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tools = tools
        # Queued even when the change was made on this thread (a click here): the page is read
        # again after the click's handler returns, never while the clicked widget is in use.
        bridge.sig_tools_changed.connect(self._refresh_soon, Qt.ConnectionType.QueuedConnection)
        self._refresh_pending = False
        self.server_rows: dict[str, ServerRow] = {}
        self.revoke_buttons: dict[str, QPushButton] = {}
        self._shown_always_allowed: list[str] | None = None

        self.config_problem = QLabel()
        self.config_problem.setObjectName("warningText")
        self.config_problem.setWordWrap(True)

        preferences = tools.preferences
        self.offer_in_new_chats = QCheckBox(self.tr("Offer tools in new chats"))
        self.offer_in_new_chats.setToolTip(self.tr("Each chat can still switch tools on or off with its Tools button."))
        self.offer_in_new_chats.clicked.connect(tools.set_offer_in_new_chats)
        self.step_limit = QSpinBox()
        self.step_limit.setRange(1, MAX_STEP_LIMIT)
        self.step_limit.setAccessibleName(self.tr("Tool calls per turn"))
        self.step_limit.setToolTip(self.tr("A reply that calls more tools than this stops and says so."))
        self.step_limit.setValue(preferences.step_limit)
        self.step_limit.valueChanged.connect(lambda value: tools.set_limits(step_limit=value))
        self.timeout = QSpinBox()
        self.timeout.setRange(1, MAX_TIMEOUT_S)
        self.timeout.setSuffix(self.tr(" s"))
        self.timeout.setAccessibleName(self.tr("Time a tool may take, in seconds"))
        self.timeout.setToolTip(self.tr("A call that takes longer is stopped, and the model told so."))
        self.timeout.setValue(preferences.timeout_s)
        self.timeout.valueChanged.connect(lambda value: tools.set_limits(timeout_s=value))
        approval_note = QLabel(self.tr(
            "The model may call tools while it answers. Every call asks for your approval first, "
            "unless you chose to always allow that tool. Changes to tools apply at once."
        ))
        approval_note.setObjectName("secondaryText")
        approval_note.setWordWrap(True)
        general = QFormLayout()
        general.addRow("", self.offer_in_new_chats)
        general.addRow(self.tr("Tool calls per turn:"), self.step_limit)
        general.addRow(self.tr("Time a tool may take:"), self.timeout)
        general.addRow("", approval_note)

        built_in = QGridLayout()
        built_in.setColumnStretch(1, 1)
        self.built_in_checks: dict[str, QCheckBox] = {}
        for row, tool in enumerate(tools.built_in_tools()):
            check, description = tool_switch(tools, tool, self)
            built_in.addWidget(check, row, 0, Qt.AlignmentFlag.AlignTop)
            built_in.addWidget(description, row, 1, Qt.AlignmentFlag.AlignTop)
            self.built_in_checks[tool.name] = check

        servers_note = QLabel(self.tr(
            "MCP servers give the model more tools: programs on this computer, or servers it reaches. "
            "A server runs only after you have seen its command and allowed it."
        ))
        servers_note.setObjectName("secondaryText")
        servers_note.setWordWrap(True)
        self.no_servers = QLabel(self.tr("No servers set up yet."))
        self.no_servers.setObjectName("secondaryText")
        self._server_list = QVBoxLayout()
        self._server_list.setSpacing(2)
        self.edit_servers = QPushButton(self.tr("Edit servers…"))
        self.edit_servers.setToolTip(self.tr("Add, change or remove servers as mcp.json text"))
        self.edit_servers.clicked.connect(self.edit_server_config)
        edit_row = QHBoxLayout()
        edit_row.addStretch(1)
        edit_row.addWidget(self.edit_servers)
        servers = QVBoxLayout()
        servers.addWidget(servers_note)
        servers.addWidget(self.no_servers)
        servers.addLayout(self._server_list)
        servers.addLayout(edit_row)

        self.nothing_always_allowed = QLabel(self.tr("No tool runs without asking."))
        self.nothing_always_allowed.setObjectName("secondaryText")
        self._always_allowed_list = QGridLayout()
        self._always_allowed_list.setColumnStretch(0, 1)
        always_allowed = QVBoxLayout()
        always_allowed.addWidget(self.nothing_always_allowed)
        always_allowed.addLayout(self._always_allowed_list)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.config_problem)
        for title, section in (
            (self.tr("Tools"), general), (self.tr("Built-in tools"), built_in),
            (self.tr("MCP servers"), servers), (self.tr("Always allowed"), always_allowed),
        ):
            box = QGroupBox(title)
            box.setLayout(section)
            layout.addWidget(box)
        self.refresh()

    def edit_server_config(self) -> None:
        """The servers' JSON in an editor; once saved, each new command is shown to be allowed."""
        editor = ServerConfigDialog(self._tools, self)
        if editor.exec() == QDialog.DialogCode.Accepted:
            for name in editor.servers_to_allow:
                ask_to_allow_launch(self._tools, name, self)

    def _refresh_soon(self, _event: ToolsChanged) -> None:
        # A starting server reports several changes at once: the page is read once for them.
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self.refresh)

    def refresh(self) -> None:
        """Shows the service's state as it is now."""
        self._refresh_pending = False
        tools = self._tools
        preferences = tools.preferences
        self.config_problem.setText(tools.config_problem)
        self.config_problem.setVisible(bool(tools.config_problem))
        self.offer_in_new_chats.setChecked(preferences.offer_in_new_chats)
        for spin, value in ((self.step_limit, preferences.step_limit), (self.timeout, preferences.timeout_s)):
            spin.blockSignals(True)  # the value comes from the service: nothing to store again
            spin.setValue(value)
            spin.blockSignals(False)
        for tool in tools.built_in_tools():
            self.built_in_checks[tool.name].setChecked(tools.is_switched_on(tool.key))
        self._show_servers(tools.servers())
        self._show_always_allowed(preferences.always_allowed)

    def _show_servers(self, views: tuple[ServerView, ...]) -> None:
        names = [view.config.name for view in views]
        if names != list(self.server_rows):
            for row in self.server_rows.values():
                row.deleteLater()
            self.server_rows = {}
            for view in views:
                row = ServerRow(self._tools, view)
                self._server_list.addWidget(row)
                self.server_rows[view.config.name] = row
        else:
            for view in views:
                self.server_rows[view.config.name].show_view(view)
        self.no_servers.setVisible(not views)

    def _show_always_allowed(self, keys: list[str]) -> None:
        if keys == self._shown_always_allowed:
            return
        self._shown_always_allowed = list(keys)
        while self._always_allowed_list.count():
            self._always_allowed_list.takeAt(0).widget().deleteLater()
        self.revoke_buttons = {}
        for row, key in enumerate(keys):
            label = QLabel(key)
            label.setFont(monospace_font())
            revoke = QPushButton(self.tr("Revoke"))
            revoke.setAccessibleName(self.tr("Ask again before %1 runs").replace("%1", key))
            revoke.clicked.connect(lambda _checked=False, key=key: self._tools.revoke(key))
            self._always_allowed_list.addWidget(label, row, 0)
            self._always_allowed_list.addWidget(revoke, row, 1)
            self.revoke_buttons[key] = revoke
        self.nothing_always_allowed.setVisible(not keys)
