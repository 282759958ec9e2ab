"""The composer's "Tools" button: whether this chat's replies may call tools, and which.

Clicking it switches tools on or off for the chat; its arrow (or Alt+Down) opens a menu of the
tools known now, grouped by where they come from, each with a check box (unchecked: this chat
leaves it out), and what offering them costs: the tokens their descriptions take in every
prompt. It shows the chat's choice and reports the person's changes; the chat session keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from app.core.tools.tool_catalog import BUILT_IN, ToolDefinition
from app.core.tools.tool_service import ServerView
from app.ui.icons import themed_icon


class StayOpenMenu(QMenu):
    """A menu that stays open when a check box in it is clicked, so several can be changed at once."""

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        action = self.actionAt(event.position().toPoint())
        if action is not None and action.isCheckable() and action.isEnabled():
            action.trigger()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        action = self.activeAction()
        toggles = event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space)
        if toggles and action is not None and action.isCheckable() and action.isEnabled():
            action.trigger()
            return
        super().keyPressEvent(event)


class ChatToolsButton(QToolButton):
    sig_choice_changed = Signal(bool, object)
    """The person changed this chat's tools: (tools on, tuple of the keys ("server/tool") it
    leaves out)."""
    sig_settings_requested = Signal()
    """The person asks for the tool settings (servers, what is always allowed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("toolsButton")
        self.setText(self.tr("Tools"))
        self.setCheckable(True)
        self.setAutoRaise(True)
        self.setIconSize(QSize(18, 18))
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.setAccessibleName(self.tr("Tools in this chat"))
        self.setIcon(themed_icon("wrench", self.palette()))
        self.menu_of_tools = StayOpenMenu(self)
        self.menu_of_tools.setToolTipsVisible(True)
        self.setMenu(self.menu_of_tools)
        self.clicked.connect(self._on_clicked)
        self._tools: tuple[ToolDefinition, ...] = ()
        self._servers: tuple[ServerView, ...] = ()
        self._switched_off: tuple[str, ...] = ()
        self._measure = ""
        self.tool_actions: dict[str, QAction] = {}  # by tool key
        self.use_tools_action = QAction(self.tr("Use tools in this chat"), self)
        self.use_tools_action.setCheckable(True)
        self.use_tools_action.triggered.connect(self._on_use_tools_triggered)
        self._measure_action = QAction(self)
        self._measure_action.setEnabled(False)  # information, not a command
        self._approval_note = QAction(self.tr("Every call asks for your approval first"), self)
        self._approval_note.setEnabled(False)
        self._settings_action = QAction(self.tr("Tool settings…"), self)
        self._settings_action.triggered.connect(self.sig_settings_requested)
        self._rebuild_menu()

    # ------------------------------------------------------------------------------- public

    @property
    def switched_off(self) -> tuple[str, ...]:
        return self._switched_off

    @property
    def measure_text(self) -> str:
        """What offering the tools costs, as the menu says it."""
        return self._measure

    def show_tools(self, tools: Sequence[ToolDefinition], servers: Sequence[ServerView]) -> None:
        """The tools there are now (the built-ins and those of servers that have started), and
        the configured servers, for those whose tools are not known yet."""
        self._tools, self._servers = tuple(tools), tuple(servers)
        self._rebuild_menu()

    def show_choice(self, enabled: bool, switched_off: Sequence[str]) -> None:
        """The chat's own choice (without reporting it back as a change)."""
        self._switched_off = tuple(switched_off)
        self.setChecked(enabled)
        self.use_tools_action.setChecked(enabled)
        for key, action in self.tool_actions.items():
            action.setChecked(key not in self._switched_off)
            action.setEnabled(enabled)
        self._show_tip()

    def show_measure(self, count: int, tokens: int) -> None:
        """``count`` tools are offered, taking ``tokens`` of every prompt (0: not counted)."""
        if not self.isChecked():
            text = self.tr("Tools are off in this chat")
        elif count == 0:
            text = self.tr("No tools to offer: every tool is switched off")
        else:
            tools = self.tr("1 tool") if count == 1 else self.tr("%1 tools").replace("%1", str(count))
            if tokens:
                text = self.tr("%1 · ~%2 tokens of every prompt").replace("%1", tools).replace("%2", f"{tokens:,}")
            else:
                text = self.tr("%1 (their cost in tokens is counted once a model is loaded)").replace("%1", tools)
        self._measure = text
        self._measure_action.setText(text)
        self._show_tip()

    # ------------------------------------------------------------------------------ helpers

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        opens_menu = event.key() == Qt.Key.Key_Menu or (
            event.key() == Qt.Key.Key_Down and event.modifiers() & Qt.KeyboardModifier.AltModifier
        )
        if opens_menu:
            self.showMenu()
            return
        super().keyPressEvent(event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.setIcon(themed_icon("wrench", self.palette()))  # the theme changed: its colours

    def _on_clicked(self, checked: bool) -> None:
        self.use_tools_action.setChecked(checked)
        self._report()

    def _on_use_tools_triggered(self, checked: bool) -> None:
        self.setChecked(checked)
        self._report()

    def _on_tool_triggered(self, key: str, on: bool) -> None:
        off = [item for item in self._switched_off if item != key]
        self._switched_off = tuple(off if on else off + [key])
        self._report()

    def _report(self) -> None:
        enabled = self.isChecked()
        for action in self.tool_actions.values():
            action.setEnabled(enabled)
        self._show_tip()
        self.sig_choice_changed.emit(enabled, self._switched_off)

    def _rebuild_menu(self) -> None:
        menu = self.menu_of_tools
        menu.clear()
        self.tool_actions = {}
        menu.addAction(self.use_tools_action)
        menu.addAction(self._measure_action)
        homes = [BUILT_IN] + [view.config.name for view in self._servers if view.config.enabled]
        for home in homes:
            tools = [tool for tool in self._tools if tool.server == home]
            menu.addSection(self.tr("Built-in") if home == BUILT_IN else home)
            for tool in tools:
                action = QAction(tool.name, menu)  # the menu's own: clear() deletes it
                action.setCheckable(True)
                action.setChecked(tool.key not in self._switched_off)
                action.setEnabled(self.isChecked())
                action.setToolTip(tool.description)
                action.triggered.connect(lambda on, key=tool.key: self._on_tool_triggered(key, on))
                menu.addAction(action)
                self.tool_actions[tool.key] = action
            if not tools:
                view = next((view for view in self._servers if view.config.name == home), None)
                waiting = QAction(view.summary if view is not None else self.tr("No tools"), menu)
                waiting.setEnabled(False)
                menu.addAction(waiting)
        menu.addSeparator()
        menu.addAction(self._approval_note)
        menu.addAction(self._settings_action)

    def _show_tip(self) -> None:
        state = self.tr("On: replies may call tools.") if self.isChecked() else self.tr("Off: replies call no tools.")
        self.setToolTip(
            self.tr(
                "Tools in this chat. %1 Every call asks for your approval first, unless you chose "
                "“Always allow” for that tool. The arrow lists the tools (Alt+Down).\n%2"
            ).replace("%1", state).replace("%2", self._measure)
        )
