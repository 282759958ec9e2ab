"""Help › Keyboard Shortcuts (Ctrl+/): every key the app answers to, from the window's actions
themselves (so the list cannot drift from what the keys do) plus the keys of single widgets."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget


def _widget_keys() -> list[tuple[str, str, str]]:
    """(where, what, keys) for keys handled inside one widget rather than by an action."""
    return [
        (QDialog.tr("Message box"), QDialog.tr("Send"), "Enter"),
        (QDialog.tr("Message box"), QDialog.tr("New line"), "Shift+Enter"),
        (QDialog.tr("Message box"), QDialog.tr("Next or previous control"), "Tab / Shift+Tab"),
        (QDialog.tr("Chat list"), QDialog.tr("Rename the chat"), "F2"),
        (QDialog.tr("Chat list"), QDialog.tr("Delete the chat (with Undo)"), "Delete"),
        (QDialog.tr("Chat list"), QDialog.tr("The chat's menu"), QDialog.tr("Menu key / Shift+F10")),
        (QDialog.tr("Chat list"), QDialog.tr("Previous or next chat"), "↑ / ↓"),
        (QDialog.tr("Conversation"), QDialog.tr("Scroll"), "↑ ↓ / Page Up / Page Down"),
    ]


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Keyboard shortcuts"))
        self.table = QTreeWidget()
        self.table.setHeaderLabels([self.tr("Where"), self.tr("What"), self.tr("Keys")])
        self.table.setRootIsDecorated(False)
        self.table.setAccessibleName(self.tr("Keyboard shortcuts"))
        for action in actions:
            keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            if keys:
                what = action.text().replace("&", "")
                self.table.addTopLevelItem(QTreeWidgetItem([self.tr("Anywhere"), what, keys]))
        for row in _widget_keys():
            self.table.addTopLevelItem(QTreeWidgetItem(list(row)))
        header = self.table.header()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 460)
