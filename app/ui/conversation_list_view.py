"""The sidebar's list of conversations: titles cut with "…" to the sidebar's width, a "⋯" menu
button on the row under the mouse (and the selected one), and keys for everything the mouse
does: F2 renames, Delete deletes, the Menu key or Shift+F10 opens the menu, and the arrow keys
step over the date headers."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.ui.conversation_list_model import CONVERSATION_ID_ROLE, IS_HEADER_ROLE
from app.ui.icons import themed_icon

MENU_BUTTON_WIDTH = 28


class ConversationDelegate(QStyledItemDelegate):
    """Draws a row's title elided to the row, leaving room for the "⋯" button it draws on the
    hovered and the selected row."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        if index.data(IS_HEADER_ROLE):
            super().paint(painter, option, index)
            return
        shows_button = bool(option.state & (QStyle.StateFlag.State_MouseOver | QStyle.StateFlag.State_Selected))
        if not shows_button:
            super().paint(painter, option, index)
            return
        # The row's background across its whole width, then the title (drawn on the same
        # background, so no seam shows) in the part the button leaves.
        background = QStyleOptionViewItem(option)
        self.initStyleOption(background, index)
        background.text = ""
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, background, painter, option.widget)
        title = QStyleOptionViewItem(option)
        title.rect = option.rect.adjusted(0, 0, -MENU_BUTTON_WIDTH, 0)
        super().paint(painter, title, index)
        icon = themed_icon("ellipsis", option.widget.palette() if option.widget else None)
        icon.paint(painter, menu_button_rect(option.rect).adjusted(6, 0, -6, 0))

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802 (Qt API)
        # Width 0: the row takes the list's width and the title is elided, never scrolled.
        return QSize(0, super().sizeHint(option, index).height())


def menu_button_rect(row: QRect) -> QRect:
    return QRect(row.right() - MENU_BUTTON_WIDTH + 1, row.top(), MENU_BUTTON_WIDTH, row.height())


class ConversationListView(QListView):
    sig_menu_requested = Signal(QModelIndex, QPoint)
    """The user asked for a conversation's menu (right click, "⋯", Menu key, Shift+F10): the
    row and where to open it, in viewport coordinates."""
    sig_delete_requested = Signal(int)
    """Delete pressed on a conversation: its id."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegate(ConversationDelegate(self))
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrap(False)
        self.setMouseTracking(True)  # hover shows the "⋯" button
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(lambda position: self._request_menu(self.indexAt(position), position))

    def moveCursor(self, action: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier) -> QModelIndex:  # noqa: N802
        """Arrow keys and Home/End land on conversations only, never on a date header."""
        index = super().moveCursor(action, modifiers)
        model = self.model()
        if not index.isValid() or not index.data(IS_HEADER_ROLE):
            return index
        upwards = action in (
            QAbstractItemView.CursorAction.MoveUp,
            QAbstractItemView.CursorAction.MovePageUp,
            QAbstractItemView.CursorAction.MovePrevious,
        )
        step = -1 if upwards else 1
        row = index.row()
        while 0 <= row < model.rowCount() and model.index(row, 0).data(IS_HEADER_ROLE):
            row += step
        if not 0 <= row < model.rowCount():  # a header at the very top: stay where we were
            return self.currentIndex()
        return model.index(row, 0)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        current = self.currentIndex()
        is_conversation = current.isValid() and not current.data(IS_HEADER_ROLE)
        if is_conversation and event.key() == Qt.Key.Key_Delete and self.state() != QAbstractItemView.State.EditingState:
            self.sig_delete_requested.emit(current.data(CONVERSATION_ID_ROLE))
            return
        menu_key = event.key() == Qt.Key.Key_Menu or (
            event.key() == Qt.Key.Key_F10 and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if is_conversation and menu_key:
            self._request_menu(current, self.visualRect(current).center())
            return
        super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt API)
        index = self.indexAt(event.position().toPoint())
        if (
            event.button() == Qt.MouseButton.LeftButton
            and index.isValid()
            and not index.data(IS_HEADER_ROLE)
            and menu_button_rect(self.visualRect(index)).contains(event.position().toPoint())
        ):
            self.setCurrentIndex(index)
            button = menu_button_rect(self.visualRect(index))
            self._request_menu(index, button.bottomLeft())
            return
        super().mousePressEvent(event)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Leave:
            self.viewport().update()  # the hovered row's button goes away
        return super().viewportEvent(event)

    def _request_menu(self, index: QModelIndex, position: QPoint) -> None:
        if index.isValid() and not index.data(IS_HEADER_ROLE):
            self.sig_menu_requested.emit(index, position)
