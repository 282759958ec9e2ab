"""Qt list model of the stored conversations for the sidebar (GUI thread only)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, Qt

from app.core.conversation_store import Conversation, ConversationStore

CONVERSATION_ID_ROLE = Qt.ItemDataRole.UserRole + 1


class ConversationListModel(QAbstractListModel):
    """Conversations newest first; editing a title renames it in the store."""

    def __init__(self, store: ConversationStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._conversations: list[Conversation] = []
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._conversations = self._store.list_conversations()
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self._conversations)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        conversation = self._conversations[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conversation.title or self.tr("New chat")
        if role == Qt.ItemDataRole.ToolTipRole:
            return conversation.title or None
        if role == CONVERSATION_ID_ROLE:
            return conversation.id
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        title = str(value).strip()
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not title:
            return False
        conversation_id = self._conversations[index.row()].id
        self._store.rename_conversation(conversation_id, title)
        self._conversations[index.row()] = self._store.get_conversation(conversation_id)
        self.dataChanged.emit(index, index)
        return True

    def row_of(self, conversation_id: int) -> int:
        for row, conversation in enumerate(self._conversations):
            if conversation.id == conversation_id:
                return row
        return -1
