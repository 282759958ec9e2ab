"""Chats to and from files: the save and open dialogs for export and import, the question when a
file repeats chats that are already here, and the banner that says how it went."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.core.conversations.conversation_events import ExportFinished, ImportFinished, ImportNeedsChoice
from app.core.conversations.conversation_export import DuplicateChoice
from app.core.conversations.conversation_library import ConversationLibrary
from app.ui.banner import Banner
from app.ui.conversation_list_model import ConversationListModel
from app.ui.event_bridges import LibraryBridge


class ConversationFiles(QObject):
    sig_imported = Signal(int)
    """Chats were imported: the id of the last one, to open."""

    def __init__(
        self,
        library: ConversationLibrary,
        bridge: LibraryBridge,
        conversations: ConversationListModel,
        banner: Banner,
        window: QWidget,
    ) -> None:
        """``conversations`` names the chats for file names; ``banner`` says how it went;
        ``window`` is the parent of the dialogs."""
        super().__init__(window)
        self._library = library
        self._conversations = conversations
        self._banner = banner
        self._window = window
        bridge.sig_export_finished.connect(self._on_export_finished)
        bridge.sig_import_finished.connect(self._on_import_finished)
        bridge.sig_import_needs_choice.connect(self._on_import_needs_choice)

    def export_conversation(self, conversation_id: int, kind: str) -> None:
        conversation = self._conversations.conversation(conversation_id)
        name = _file_name(conversation.title if conversation else "chat")
        if kind == "md":
            path, _ = QFileDialog.getSaveFileName(self._window, self.tr("Export as Markdown"), f"{name}.md", self.tr("Markdown (*.md)"))
        else:
            path, _ = QFileDialog.getSaveFileName(self._window, self.tr("Export as JSON"), f"{name}.json", self.tr("JSON (*.json)"))
        if path:
            self._library.export_conversation(conversation_id, kind, Path(path))

    def export_all(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._window, self.tr("Export all chats"), "qwen-local-chat.json", self.tr("JSON (*.json)"))
        if path:
            self._library.export_all(Path(path))

    def import_file(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self._window, self.tr("Import chats"), "", self.tr("JSON (*.json)"))
            if not chosen:
                return
            path = Path(chosen)
        self._library.import_file(path)

    def _on_export_finished(self, event: ExportFinished) -> None:
        text = self.tr("Saved %1 chats to %2.") if event.count != 1 else self.tr("Saved the chat to %2.")
        folder = event.path.parent
        self._banner.show_message(
            text.replace("%1", f"{event.count:,}").replace("%2", str(event.path)),
            self.tr("Show in folder"),
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))),
        )

    def _on_import_needs_choice(self, event: ImportNeedsChoice) -> None:
        """The file repeats chats that are here already: skip, replace or copy them."""
        repeated = len(event.already_here)
        box = QMessageBox(self._window)
        box.setWindowTitle(self.tr("Import chats"))
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(
            self.tr("%1 of the %2 chats in “%3” are already here.").replace("%1", str(repeated)).replace("%2", str(event.total)).replace("%3", event.path.name)
        )
        titles = [conversation.title or self.tr("New chat") for conversation in event.already_here[:5]]
        box.setInformativeText("\n".join(f"• {title}" for title in titles) + ("\n…" if repeated > 5 else ""))
        choices = {
            box.addButton(self.tr("Skip them"), QMessageBox.ButtonRole.AcceptRole): DuplicateChoice.SKIP,
            box.addButton(self.tr("Replace them"), QMessageBox.ButtonRole.DestructiveRole): DuplicateChoice.REPLACE,
            box.addButton(self.tr("Import copies"), QMessageBox.ButtonRole.ActionRole): DuplicateChoice.KEEP_BOTH,
        }
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(next(iter(choices)))
        box.exec()
        choice = choices.get(box.clickedButton())
        if choice is not None:
            self._library.import_file(event.path, choice)

    def _on_import_finished(self, event: ImportFinished) -> None:
        if event.conversations:
            self.sig_imported.emit(event.conversations[-1].id)
        count = len(event.conversations)
        text = self.tr("Imported 1 chat.") if count == 1 else self.tr("Imported %1 chats.").replace("%1", str(count))
        if event.already_here and count == 0:
            text = self.tr("Nothing new to import: every chat in “%1” is already here.").replace("%1", event.path.name)
        elif event.already_here:
            text += " " + self.tr("(%1 of them were already here.)").replace("%1", str(len(event.already_here)))
        self._banner.show_message(text)


def _file_name(title: str) -> str:
    """A title made safe to use as a file name on every system."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title).strip(" .")
    return cleaned[:80] or "chat"
