"""Qt list model of the stored conversations for the sidebar (GUI thread only).

Conversations are grouped under headers (Pinned, Today, Yesterday, Previous 7 days, Previous 30
days, Older); headers are rows that cannot be selected or edited. The rows come from the
library's ``ConversationsChanged`` events; editing a title asks the library to rename.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from PySide6.QtCore import QAbstractListModel, QModelIndex, QObject, Qt
from PySide6.QtGui import QFont

from app.core.domain.conversations import Conversation

CONVERSATION_ID_ROLE = Qt.ItemDataRole.UserRole + 1
IS_HEADER_ROLE = Qt.ItemDataRole.UserRole + 2


def date_group(updated_at: float, today: date) -> str:
    try:
        day = datetime.fromtimestamp(updated_at).date()
    except (OverflowError, OSError, ValueError):  # a damaged time must never stop the list
        return "Older"
    if day >= today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if day > today - timedelta(days=7):
        return "Previous 7 days"
    if day > today - timedelta(days=30):
        return "Previous 30 days"
    return "Older"


class ConversationListModel(QAbstractListModel):
    """Pinned conversations first, then the rest newest first, under date headers."""

    def __init__(self, rename: Callable[[int, str], None], parent: QObject | None = None) -> None:
        """``rename(conversation_id, title)`` stores a title the user typed."""
        super().__init__(parent)
        self._rename = rename
        self._rows: list[Conversation | str] = []  # a str is a group header

    def set_conversations(self, conversations: Sequence[Conversation]) -> None:
        self.beginResetModel()
        self._rows = []
        today = date.today()
        current_group = None
        for conversation in conversations:
            group = "Pinned" if conversation.pinned else date_group(conversation.updated_at, today)
            if group != current_group:
                self._rows.append(group)
                current_group = group
            self._rows.append(conversation)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self._rows)

    def conversations(self) -> list[Conversation]:
        return [row for row in self._rows if isinstance(row, Conversation)]

    def conversation(self, conversation_id: int) -> Conversation | None:
        return next((row for row in self.conversations() if row.id == conversation_id), None)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        if isinstance(row, str):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.tr(row)
            if role == IS_HEADER_ROLE:
                return True
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setPointSizeF(font.pointSizeF() * 0.85)
                font.setBold(True)
                return font
            return None
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return row.title or self.tr("New chat")
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.title or None
        if role == CONVERSATION_ID_ROLE:
            return row.id
        if role == IS_HEADER_ROLE:
            return False
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if index.isValid() and isinstance(self._rows[index.row()], str):
            return Qt.ItemFlag.ItemIsEnabled
        return super().flags(index) | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: QModelIndex, value, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        title = str(value).strip()
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not title:
            return False
        row = self._rows[index.row()]
        if isinstance(row, str):
            return False
        self._rename(row.id, title)
        # Shown at once; the library's next list says the same once the title is stored.
        self._rows[index.row()] = replace(row, title=title)
        self.dataChanged.emit(index, index)
        return True

    def row_of(self, conversation_id: int) -> int:
        for row, item in enumerate(self._rows):
            if isinstance(item, Conversation) and item.id == conversation_id:
                return row
        return -1
