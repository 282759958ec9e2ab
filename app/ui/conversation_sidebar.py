"""The sidebar: New chat, search across all chats, and the conversation list with its menu."""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, QPoint, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.conversations.conversation_events import ConversationsChanged, SearchFinished
from app.core.conversations.conversation_library import ConversationLibrary
from app.ui.conversation_list_model import CONVERSATION_ID_ROLE, ConversationListModel
from app.ui.conversation_list_view import ConversationListView
from app.ui.event_bridges import LibraryBridge

SEARCH_PAUSE_MS = 150  # search when typing pauses, not at every key


class ConversationSidebar(QWidget):
    """Shows the library's conversations; asks the window to open, export or delete them."""

    sig_conversation_chosen = Signal(object)
    """The user picked a conversation: its id, or None for a new chat."""
    sig_search_hit_chosen = Signal(int, int)
    """The user picked a search result: (conversation id, message id)."""
    sig_export_requested = Signal(int, str)
    """Export a conversation: (conversation id, "md" or "json")."""
    sig_delete_requested = Signal(int)
    """Delete a conversation: its id."""

    def __init__(self, library: ConversationLibrary, bridge: LibraryBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self._library = library
        self._current_id: int | None = None

        self.new_chat_button = QPushButton(self.tr("New chat"))
        self.new_chat_button.setObjectName("newChatButton")
        self.new_chat_button.clicked.connect(lambda: self.sig_conversation_chosen.emit(None))
        self.search_edit = QLineEdit()
        self.search_edit.setObjectName("searchEdit")
        self.search_edit.setPlaceholderText(self.tr("Search all chats"))
        self.search_edit.setAccessibleName(self.tr("Search all chats"))
        self.search_edit.setClearButtonEnabled(True)
        self.search_results = QListWidget()
        self.search_results.setObjectName("searchResults")
        self.search_results.setAccessibleName(self.tr("Search results"))
        self.search_results.hide()
        self.search_results.itemActivated.connect(self._open_search_result)
        self.search_results.itemClicked.connect(self._open_search_result)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_PAUSE_MS)
        self._search_timer.timeout.connect(self._run_search)
        self.search_edit.textChanged.connect(lambda: self._search_timer.start())

        self.model = ConversationListModel(library.rename, self)
        self.list_view = ConversationListView()
        self.list_view.setObjectName("conversationList")
        self.list_view.setAccessibleName(self.tr("Conversations"))
        self.list_view.setModel(self.model)
        self.list_view.sig_menu_requested.connect(self._show_menu)
        self.list_view.sig_delete_requested.connect(self.sig_delete_requested)
        self.list_view.selectionModel().currentChanged.connect(self._on_selected)
        self.empty_label = QLabel(
            self.tr("No chats yet.\n\nAsk something below to start one, or import chats with File › Import Chats…")
        )
        self.empty_label.setObjectName("sidebarEmpty")
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.empty_label.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.addWidget(self.new_chat_button)
        layout.addWidget(self.search_edit)
        layout.addWidget(self.search_results, 1)
        layout.addWidget(self.list_view, 1)
        layout.addWidget(self.empty_label, 1)

        bridge.sig_conversations_changed.connect(self._on_conversations_changed)
        bridge.sig_search_finished.connect(self._show_search_results)

    # ------------------------------------------------------------------------------- public

    def set_current(self, conversation_id: int | None) -> None:
        """Highlights the conversation that is open, without reporting it as chosen."""
        self._current_id = conversation_id
        selection = self.list_view.selectionModel()
        selection.blockSignals(True)
        row = self.model.row_of(conversation_id) if conversation_id is not None else -1
        if row >= 0:
            self.list_view.setCurrentIndex(self.model.index(row))
        else:
            selection.clearCurrentIndex()
            self.list_view.clearSelection()
        selection.blockSignals(False)
        self.list_view.viewport().update()

    def focus_search(self) -> None:
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    # ------------------------------------------------------------------------------ helpers

    def _on_conversations_changed(self, event: ConversationsChanged) -> None:
        self.model.set_conversations(event.conversations)
        self.set_current(self._current_id)
        self._show_list_or_empty_state()

    def _show_list_or_empty_state(self) -> None:
        searching = bool(self.search_edit.text().strip())
        empty = not self.model.conversations()
        self.list_view.setVisible(not searching and not empty)
        self.empty_label.setVisible(not searching and empty)

    def _on_selected(self, current, _previous) -> None:
        conversation_id = current.data(CONVERSATION_ID_ROLE) if current.isValid() else None
        if conversation_id is not None and conversation_id != self._current_id:
            self._current_id = conversation_id
            self.sig_conversation_chosen.emit(conversation_id)

    def _show_menu(self, index: QModelIndex, position: QPoint) -> None:
        conversation = self.model.conversation(index.data(CONVERSATION_ID_ROLE))
        menu = QMenu(self)
        menu.setObjectName("conversationMenu")
        menu.addAction(self.tr("Rename"), QKeySequence(Qt.Key.Key_F2), lambda: self.list_view.edit(index))
        menu.addAction(
            self.tr("Unpin") if conversation.pinned else self.tr("Pin"),
            lambda: self._library.set_pinned(conversation.id, not conversation.pinned),
        )
        menu.addAction(self.tr("Export as Markdown…"), lambda: self.sig_export_requested.emit(conversation.id, "md"))
        menu.addAction(self.tr("Export as JSON…"), lambda: self.sig_export_requested.emit(conversation.id, "json"))
        menu.addSeparator()
        menu.addAction(self.tr("Delete"), QKeySequence(Qt.Key.Key_Delete), lambda: self.sig_delete_requested.emit(conversation.id))
        menu.exec(self.list_view.viewport().mapToGlobal(position))

    def _run_search(self) -> None:
        query = self.search_edit.text().strip()
        searching = bool(query)
        self.search_results.setVisible(searching)
        self._show_list_or_empty_state()
        if searching:
            self._library.search(query)
        else:
            self.search_results.clear()

    def _show_search_results(self, event: SearchFinished) -> None:
        if event.query != self.search_edit.text().strip():
            return  # the user has typed on since: a newer search is on its way
        self.search_results.clear()
        if not event.hits:
            item = QListWidgetItem(self.tr("No messages match “%1”.").replace("%1", event.query))
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.search_results.addItem(item)
            return
        palette = self.palette()
        mark = (
            f"background: {palette.color(QPalette.ColorRole.Highlight).name()};"
            f" color: {palette.color(QPalette.ColorRole.HighlightedText).name()}"
        )
        for hit in event.hits:
            snippet = "".join(
                f"<b style='{mark}'>{html.escape(text)}</b>" if is_match else html.escape(text)
                for text, is_match in hit.snippet_parts()
            )
            title = html.escape(hit.conversation_title or self.tr("New chat"))
            label = QLabel(f"<div><b>{title}</b></div><div>{snippet}</div>")
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setWordWrap(True)
            label.setContentsMargins(6, 4, 6, 4)
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, (hit.conversation_id, hit.message_id))
            item.setSizeHint(label.sizeHint().expandedTo(QSize(0, 48)))
            self.search_results.addItem(item)
            self.search_results.setItemWidget(item, label)

    def _open_search_result(self, item: QListWidgetItem) -> None:
        target = item.data(Qt.ItemDataRole.UserRole)
        if target:
            self.sig_search_hit_chosen.emit(*target)
