"""The main window: conversations on the left, the chat on the right, model and status around it.

All store access happens here, on the GUI thread (the store's one owner); the inference worker
only ever sees immutable requests.
"""

from __future__ import annotations

import html
import importlib.metadata
import logging
import re
from dataclasses import asdict, replace
from pathlib import Path

from PySide6.QtCore import (
    QByteArray,
    QCoreApplication,
    QEvent,
    QModelIndex,
    QPoint,
    QSize,
    Qt,
    QTimer,
    Signal,
    qVersion,
)
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.build_info import build_info
from app.core.chat_settings import ChatSettings, SamplingPreset
from app.core.chat_template import ChatMessage
from app.core.conversation_export import ConversationImportError, export_all, import_conversations, to_json, to_markdown
from app.core.conversation_store import ConversationStore, Message, MessageState
from app.core.generation_stats import StopReason
from app.core.inference_engine import GenerationResult, LoadSettings, ModelFacts
from app.core.reply_recorder import ReplyRecorder
from app.core.settings import Settings
from app.ui.chat_settings_panel import ChatSettingsPanel
from app.ui.composer_widget import ComposerWidget
from app.ui.conversation_list_model import CONVERSATION_ID_ROLE, IS_HEADER_ROLE, ConversationListModel
from app.ui.fit_badge import verdict_icon, verdict_text
from app.ui.inference_worker import GenerationRequest, InferenceService
from app.ui.models_controller import ModelsController
from app.ui.models_dialog import ModelsDialog
from app.ui.settings_dialog import SettingsDialog
from app.ui.stream_coalescer import StreamCoalescer
from app.ui.theme import THEMES, set_color_scheme
from app.ui.transcript_view import MessageWidget, TranscriptView
from app.ui.welcome_panel import WelcomePanel

logger = logging.getLogger(__name__)

TITLE_LENGTH = 48


class Banner(QFrame):
    """A dismissible, non-blocking message above the transcript, with an optional action."""

    def __init__(self, object_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(object_name)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.hide()
        self._action = None
        self.action_button.clicked.connect(lambda: self._action and self._action())
        close = QToolButton()
        close.setText("✕")
        close.setAccessibleName(self.tr("Dismiss message"))
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, action_text: str = "", action=None) -> None:
        self.label.setText(text)
        self._action = action
        self.action_button.setText(action_text)
        self.action_button.setVisible(action is not None)
        self.show()


class MainWindow(QMainWindow):
    sig_settings_changed = Signal()
    """Settings were changed in the window and should be saved by the composition root."""

    def __init__(
        self,
        store: ConversationStore,
        settings: Settings,
        inference: InferenceService,
        models: ModelsController,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Qwen Local Chat"))
        self.setAcceptDrops(True)
        self._store = store
        self._settings = settings
        self._inference = inference
        self._models = models
        self._models_dialog: ModelsDialog | None = None
        # Settings of the conversation on screen; for a new chat they are stored with its first message.
        self._chat_settings = ChatSettings(enable_thinking=settings.enable_thinking)
        self._system_prompt = ""
        self._prompt_message_ids: list[int] = []  # store ids of the turns in the last prompt
        self._deleted: tuple | None = None  # the last deleted conversation, for Undo
        self._editing: Message | None = None  # the question being edited in the composer
        self._facts: ModelFacts | None = None
        self._loading_path: Path | None = None
        self._conversation_id: int | None = None
        self._recorder: ReplyRecorder | None = None
        self._streaming_widget: MessageWidget | None = None
        self._coalescer = StreamCoalescer(self)
        self._coalescer.sig_flushed.connect(self._show_streamed_text)

        self._build_widgets()
        self._build_actions()
        self._connect_worker()
        models.sig_local_models_changed.connect(self._refresh_model_picker)
        models.sig_settings_changed.connect(self.sig_settings_changed)
        self._refresh_model_picker()
        self._restore_state()

    # ------------------------------------------------------------------------------- building

    def _build_widgets(self) -> None:
        self.conversation_model = ConversationListModel(self._store, self)
        self.conversation_list = QListView()
        self.conversation_list.setObjectName("conversationList")
        self.conversation_list.setAccessibleName(self.tr("Conversations"))
        self.conversation_list.setModel(self.conversation_model)
        self.conversation_list.setEditTriggers(
            QAbstractItemView.EditTrigger.EditKeyPressed | QAbstractItemView.EditTrigger.DoubleClicked
        )
        self.conversation_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_list.customContextMenuRequested.connect(self._show_conversation_menu)
        self.conversation_list.selectionModel().currentChanged.connect(self._on_conversation_selected)

        self.new_chat_button = QPushButton(self.tr("New chat"))
        self.new_chat_button.setObjectName("newChatButton")
        self.new_chat_button.clicked.connect(self.new_conversation)
        sidebar = QWidget()
        sidebar.setObjectName("sidebar")
        sidebar_layout = QVBoxLayout(sidebar)
        sidebar_layout.setContentsMargins(10, 10, 10, 10)
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
        self._search_timer.setInterval(150)  # search when typing pauses, not at every key
        self._search_timer.timeout.connect(self._run_search)
        self.search_edit.textChanged.connect(lambda: self._search_timer.start())
        sidebar_layout.addWidget(self.new_chat_button)
        sidebar_layout.addWidget(self.search_edit)
        sidebar_layout.addWidget(self.search_results, 1)
        sidebar_layout.addWidget(self.conversation_list, 1)

        self.model_picker = QComboBox()
        self.model_picker.setObjectName("modelPicker")
        self.model_picker.setAccessibleName(self.tr("Model"))
        self.model_picker.setMinimumContentsLength(28)
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_picker.activated.connect(self._on_model_picked)
        self.models_button = QPushButton(self.tr("Models…"))
        self.models_button.setObjectName("modelsButton")
        self.models_button.setToolTip(self.tr("Download models, see what fits this computer"))
        self.models_button.clicked.connect(self.show_models)
        header = QWidget()
        header.setObjectName("chatHeader")
        header_layout = QHBoxLayout(header)
        header_layout.setContentsMargins(24, 10, 24, 10)
        header_layout.addWidget(QLabel(self.tr("Model:")))
        header_layout.addWidget(self.model_picker, 1)
        header_layout.addWidget(self.models_button)
        self.chat_settings_button = QPushButton(self.tr("Chat settings"))
        self.chat_settings_button.setCheckable(True)
        self.chat_settings_button.setToolTip(self.tr("System prompt, sampling presets, reply length, context size"))
        header_layout.addWidget(self.chat_settings_button)

        self.error_banner = Banner("errorBanner")
        self.info_banner = Banner("infoBanner")
        self.transcript = TranscriptView()
        self.transcript.sig_message_action.connect(self._on_message_action)
        self.empty_hint = QLabel()
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.composer = ComposerWidget()
        self.composer.sig_send.connect(self.send_message)
        self.composer.sig_stop.connect(self.stop_generation)
        self.composer.thinking_switch.toggled.connect(self._on_thinking_toggled)

        chat = QWidget()
        chat.setObjectName("chatPane")
        chat_layout = QVBoxLayout(chat)
        chat_layout.setContentsMargins(0, 0, 0, 0)
        chat_layout.setSpacing(0)
        chat_layout.addWidget(header)
        chat_layout.addWidget(self.error_banner)
        chat_layout.addWidget(self.info_banner)
        chat_layout.addWidget(self.empty_hint, 1)
        self.welcome_panel: WelcomePanel | None = None
        self._chat_layout = chat_layout
        chat_layout.addWidget(self.transcript, 1)
        chat_layout.addWidget(self.composer)

        self.chat_settings_panel = ChatSettingsPanel(
            [SamplingPreset(**preset) for preset in self._settings.user_presets]
        )
        self.chat_settings_panel.sig_changed.connect(self._on_chat_settings_changed)
        self.chat_settings_panel.sig_preset_saved.connect(self._on_preset_saved)
        self.chat_settings_panel.sig_context_size_changed.connect(self._on_context_size_changed)
        self.chat_settings_dock = QDockWidget(self.tr("Chat settings"), self)
        self.chat_settings_dock.setObjectName("chatSettingsDock")
        self.chat_settings_dock.setWidget(self.chat_settings_panel)
        self.chat_settings_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.chat_settings_dock)
        self.chat_settings_dock.hide()
        self.chat_settings_button.toggled.connect(self.chat_settings_dock.setVisible)
        self.chat_settings_dock.visibilityChanged.connect(self.chat_settings_button.setChecked)

        splitter = QSplitter()
        splitter.addWidget(sidebar)
        splitter.addWidget(chat)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        self.model_status = QLabel(self.tr("No model loaded"))
        self.backend_status = QLabel()
        self.speed_status = QLabel()
        self.context_status = QLabel()
        self.context_status.setToolTip(self.tr("How much of the model's context window the conversation used in the last reply"))
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 100)
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setAccessibleName(self.tr("Model loading progress"))
        self.load_progress.hide()
        status = self.statusBar()
        status.addWidget(self.model_status, 1)
        status.addPermanentWidget(self.load_progress)
        status.addPermanentWidget(self.context_status)
        status.addPermanentWidget(self.speed_status)
        status.addPermanentWidget(self.backend_status)
        self.resize(1100, 720)

    def _build_actions(self) -> None:
        def action(text: str, shortcut, slot) -> QAction:
            item = QAction(text, self)
            item.setShortcut(QKeySequence(shortcut))
            item.triggered.connect(slot)
            self.addAction(item)
            return item

        self.new_chat_action = action(self.tr("&New Chat"), QKeySequence.StandardKey.New, self.new_conversation)
        self.open_model_action = action(self.tr("&Open Model File…"), QKeySequence.StandardKey.Open, self.choose_model_file)
        self.models_action = action(self.tr("&Models…"), "Ctrl+M", self.show_models)
        self.settings_action = action(self.tr("&Settings…"), "Ctrl+,", self.show_settings)
        self.stop_action = action(self.tr("&Stop Reply"), Qt.Key.Key_Escape, self.stop_generation)
        self.focus_composer_action = action(self.tr("&Write a Message"), "Ctrl+L", self.composer.edit.setFocus)
        self.regenerate_action = action(self.tr("&Regenerate Reply"), "Ctrl+R", lambda: self._act_on_last_reply("regenerate"))
        self.continue_action = action(self.tr("C&ontinue Reply"), "Ctrl+Shift+Return", lambda: self._act_on_last_reply("continue"))
        self.copy_answer_action = action(self.tr("&Copy Last Answer"), "Ctrl+Shift+C", lambda: self._act_on_last_reply("copy"))
        self.chat_settings_action = action(self.tr("Chat &Settings"), "Ctrl+Shift+S", self.chat_settings_button.click)
        self.search_action = action(self.tr("&Search All Chats"), QKeySequence.StandardKey.Find, self._focus_search)
        self.quit_action = action(self.tr("&Quit"), QKeySequence.StandardKey.Quit, self.close)
        file_menu = self.menuBar().addMenu(self.tr("&File"))
        file_menu.addAction(self.new_chat_action)
        file_menu.addAction(self.open_model_action)
        file_menu.addAction(self.models_action)
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.tr("&Import Chats…"), self.import_conversations)
        file_menu.addAction(self.tr("&Export All Chats…"), self.export_all_conversations)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        chat_menu = self.menuBar().addMenu(self.tr("&Chat"))
        for item in (
            self.search_action,
            self.focus_composer_action,
            self.stop_action,
            self.regenerate_action,
            self.continue_action,
            self.copy_answer_action,
            self.chat_settings_action,
        ):
            chat_menu.addAction(item)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        help_menu.addAction(self.tr("&About Qwen Local Chat"), self.show_about)
        self.models_button.setToolTip(self._with_shortcut(self.models_button.toolTip(), self.models_action))
        self.chat_settings_button.setToolTip(self._with_shortcut(self.chat_settings_button.toolTip(), self.chat_settings_action))
        self.composer.edit.setToolTip(self._with_shortcut(self.tr("Write a message"), self.focus_composer_action))
        self.search_edit.setToolTip(self._with_shortcut(self.tr("Search all chats"), self.search_action))
        self.new_chat_button.setToolTip(self._with_shortcut(self.tr("New chat"), self.new_chat_action))

    @staticmethod
    def _with_shortcut(text: str, action: QAction) -> str:
        return f"{text} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"

    def _connect_worker(self) -> None:
        worker = self._inference.worker
        worker.sig_load_progress.connect(self._on_load_progress)
        worker.sig_model_loaded.connect(self._on_model_loaded)
        worker.sig_load_failed.connect(self._on_load_failed)
        worker.sig_text.connect(self._coalescer.add)
        worker.sig_generation_finished.connect(self._on_generation_finished)
        worker.sig_generation_failed.connect(self._on_generation_failed)

    def _restore_state(self) -> None:
        if self._settings.window_geometry:
            self.restoreGeometry(QByteArray.fromHex(self._settings.window_geometry.encode()))
        last = self._settings.last_conversation_id
        row = self.conversation_model.row_of(last) if last is not None else -1
        if row < 0:
            row = self.conversation_model.first_conversation_row()
        if row >= 0:
            self.conversation_list.setCurrentIndex(self.conversation_model.index(row))
        else:
            self._show_conversation(None)
        self._update_ready_state()

    # ------------------------------------------------------------------------------- models

    def load_model(self, path: Path) -> None:
        """Starts loading ``path`` on the inference thread; the window stays responsive."""
        if self._recorder is not None:
            self.stop_generation()
        self._loading_path = Path(path)
        self._facts = None
        self.error_banner.hide()
        self.load_progress.setValue(0)
        self.load_progress.show()
        self.model_status.setText(self.tr("Loading %1…").replace("%1", self._loading_path.name))
        self._update_ready_state()
        self._inference.load_model(self._loading_path, LoadSettings(context_size=self._context_size_for(self._loading_path)))

    def _context_size_for(self, path: Path) -> int:
        """The preferred context size, reduced if this model could not run well with it."""
        try:
            size = path.stat().st_size
        except OSError:
            return self._settings.context_size  # loading will report the problem
        largest = self._models.largest_context_for(path, size)
        return min(self._settings.context_size, largest) if largest else self._settings.context_size

    def last_model_if_present(self) -> Path | None:
        """The model used last time, if its file is still there."""
        last = self._settings.last_model
        return last if last is not None and last.is_file() else None

    def show_models(self) -> None:
        if self._models_dialog is None:
            self._models_dialog = ModelsDialog(self._models, self)
            self._models_dialog.sig_use_model.connect(self.load_model)
            self._models_dialog.sig_open_settings.connect(self.show_settings)
        self._models_dialog.reload()
        self._models_dialog.show()
        self._models_dialog.raise_()

    def show_about(self) -> None:
        QMessageBox.about(self, self.tr("About Qwen Local Chat"), about_text())

    def show_settings(self) -> None:
        dialog = SettingsDialog(self._models, self._settings.theme, self)
        if dialog.exec() and dialog.theme != self._settings.theme:
            self._settings.theme = dialog.theme
            self.sig_settings_changed.emit()
            set_color_scheme(QApplication.instance(), THEMES[dialog.theme])
        self._refresh_model_picker()

    def choose_model_file(self) -> None:
        start = str(self._settings.last_model.parent) if self._settings.last_model else ""
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Open a GGUF model"), start, self.tr("GGUF models (*.gguf);;All files (*)")
        )
        if path:
            self._models.import_model(Path(path))
            self.load_model(Path(path))

    def _refresh_model_picker(self) -> None:
        """Lists the models on this computer with their fit verdict, the current one selected."""
        picker = self.model_picker
        picker.blockSignals(True)
        picker.clear()
        models = {model.path: model for model in self._models.local_models()}
        recent = [Path(text).absolute() for text in self._settings.recent_models if Path(text).is_file()]
        ordered = recent + sorted(set(models) - set(recent))
        for path in ordered:
            model = models.get(path)
            assessment = self._models.assess_local(model) if model else None
            tooltip = str(path)
            if assessment is not None:
                picker.addItem(verdict_icon(assessment.verdict), path.stem, str(path))
                tooltip += "\n" + verdict_text(assessment.verdict) + ": " + assessment.explanation
            else:
                picker.addItem(path.stem, str(path))
            picker.setItemData(picker.count() - 1, tooltip, Qt.ItemDataRole.ToolTipRole)
        picker.setPlaceholderText(self.tr("No model yet: download one or open a .gguf file"))
        current = self._facts.path if self._facts else (recent[0] if recent else None)
        picker.setCurrentIndex(picker.findData(str(current)) if current else -1)
        picker.blockSignals(False)
        self._update_empty_hint()

    def _on_model_picked(self, index: int) -> None:
        path = self.model_picker.itemData(index)
        if path and (self._facts is None or Path(path) != self._facts.path):
            self.load_model(Path(path))

    def _on_load_progress(self, value: float) -> None:
        self.load_progress.setValue(round(value * 100))

    def _on_model_loaded(self, facts: ModelFacts) -> None:
        self._facts = facts
        self._loading_path = None
        self.load_progress.hide()
        self._settings.remember_model(facts.path)
        self._refresh_model_picker()
        self.sig_settings_changed.emit()
        size = f" {facts.size_label}" if facts.size_label else ""
        self.model_status.setText(
            self.tr("%1%2 · context %3 tokens").replace("%1", facts.name).replace("%2", size).replace("%3", f"{facts.context_size:,}")
        )
        self.backend_status.setText(
            self.tr("%1 · %2 threads").replace("%1", facts.backend).replace("%2", str(facts.threads))
        )
        self._show_chat_settings()
        self._update_ready_state()

    def _on_load_failed(self, message: str) -> None:
        self._loading_path = None
        self.load_progress.hide()
        self.model_status.setText(self.tr("No model loaded"))
        self.error_banner.show_message(message)
        self._update_ready_state()

    def _on_thinking_toggled(self, checked: bool) -> None:
        self._settings.enable_thinking = checked
        self.sig_settings_changed.emit()
        self._chat_settings = replace(self._chat_settings, enable_thinking=checked)
        self._save_chat_settings()
        self.chat_settings_panel.set_thinking(checked)

    def _show_chat_settings(self) -> None:
        """Shows the conversation's settings in the panel and its thinking mode in the composer."""
        default = self._facts.thinks_by_default if self._facts else True
        thinking = self._chat_settings.thinking(default)
        self.composer.thinking_switch.blockSignals(True)
        self.composer.thinking_switch.setChecked(thinking)
        self.composer.thinking_switch.blockSignals(False)
        self.chat_settings_panel.show_settings(
            self._chat_settings, self._system_prompt, self._settings.context_size, thinking=thinking
        )

    def _on_chat_settings_changed(self, settings: ChatSettings, system_prompt: str) -> None:
        # The thinking mode is the composer's switch, not the panel's to change.
        settings = replace(settings, enable_thinking=self._chat_settings.enable_thinking)
        self._chat_settings, self._system_prompt = settings, system_prompt
        self._save_chat_settings()

    def _save_chat_settings(self) -> None:
        if self._conversation_id is not None:
            self._store.update_conversation(
                self._conversation_id,
                system_prompt=self._system_prompt,
                generation_settings=self._chat_settings.as_dict(),
            )

    def _on_preset_saved(self, preset: SamplingPreset) -> None:
        presets = [item for item in self._settings.user_presets if item.get("name") != preset.name]
        self._settings.user_presets = presets + [asdict(preset)]
        self.sig_settings_changed.emit()

    def _on_context_size_changed(self, context_size: int) -> None:
        if context_size == self._settings.context_size:
            return
        self._settings.context_size = context_size
        self.sig_settings_changed.emit()
        if self._facts is not None and not self.is_generating:
            self.load_model(self._facts.path)  # the context is set when a model is loaded

    # ------------------------------------------------------------------------ conversations

    def new_conversation(self) -> None:
        """Starts an empty chat; it is stored with its first message, so no empty chats pile up."""
        self.stop_generation()
        self.conversation_list.selectionModel().clearCurrentIndex()
        self.conversation_list.clearSelection()
        self._show_conversation(None)
        self.composer.edit.setFocus()

    def _on_conversation_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        conversation_id = current.data(CONVERSATION_ID_ROLE) if current.isValid() else None
        if conversation_id == self._conversation_id:
            return
        # A reply belongs to its conversation: leaving it stops the reply (kept as "Stopped").
        self.stop_generation()
        self._show_conversation(conversation_id)

    def _show_conversation(self, conversation_id: int | None) -> None:
        if self._editing is not None and self._editing.conversation_id != conversation_id:
            self._editing = None
            self.composer.set_editing(False)
        self._conversation_id = conversation_id
        self._streaming_widget = None  # its transcript is being replaced
        if conversation_id is None:
            self._chat_settings = ChatSettings(enable_thinking=self._settings.enable_thinking)
            self._system_prompt = ""
        else:
            conversation = self._store.get_conversation(conversation_id)
            self._chat_settings = ChatSettings.from_dict(conversation.generation_settings)
            self._system_prompt = conversation.system_prompt
        self._show_chat_settings()
        self.transcript.set_messages(
            self._store.messages(conversation_id) if conversation_id else [], self._alternative_position
        )
        self._settings.last_conversation_id = conversation_id
        self._update_empty_hint()

    def _show_conversation_menu(self, position: QPoint) -> None:
        index = self.conversation_list.indexAt(position)
        if not index.isValid():
            return
        if index.data(IS_HEADER_ROLE):
            return
        conversation_id = index.data(CONVERSATION_ID_ROLE)
        pinned = self._store.get_conversation(conversation_id).pinned
        menu = QMenu(self)
        menu.addAction(self.tr("Rename"), lambda: self.conversation_list.edit(index))
        menu.addAction(self.tr("Unpin") if pinned else self.tr("Pin"), lambda: self.set_pinned(conversation_id, not pinned))
        menu.addAction(self.tr("Export as Markdown…"), lambda: self.export_conversation(conversation_id, "md"))
        menu.addAction(self.tr("Export as JSON…"), lambda: self.export_conversation(conversation_id, "json"))
        menu.addSeparator()
        menu.addAction(self.tr("Delete"), lambda: self.delete_conversation(conversation_id))
        menu.exec(self.conversation_list.viewport().mapToGlobal(position))

    # ------------------------------------------------------------------------------- search

    def _focus_search(self) -> None:
        self.search_edit.setFocus()
        self.search_edit.selectAll()

    def _run_search(self) -> None:
        query = self.search_edit.text().strip()
        self.search_results.clear()
        searching = bool(query)
        self.search_results.setVisible(searching)
        self.conversation_list.setVisible(not searching)
        if not searching:
            return
        hits = self._store.search(query)
        if not hits:
            item = QListWidgetItem(self.tr("No messages match “%1”.").replace("%1", query))
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.search_results.addItem(item)
            return
        palette = self.palette()
        mark = (
            f"background: {palette.color(QPalette.ColorRole.Highlight).name()};"
            f" color: {palette.color(QPalette.ColorRole.HighlightedText).name()}"
        )
        for hit in hits:
            snippet = "".join(
                f"<b style='{mark}'>{html.escape(text)}</b>"
                if is_match
                else html.escape(text)
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
        if not target:
            return
        conversation_id, message_id = target
        if conversation_id != self._conversation_id:
            self.conversation_list.setCurrentIndex(self.conversation_model.index(self.conversation_model.row_of(conversation_id)))
        self.transcript.reveal_message(message_id)

    # ------------------------------------------------------------------------------ history

    def set_pinned(self, conversation_id: int, pinned: bool) -> None:
        self._store.set_pinned(conversation_id, pinned)
        self._select_without_reload(self._conversation_id) if self._conversation_id else self.conversation_model.reload()

    def delete_conversation(self, conversation_id: int) -> None:
        """Deletes at once; the banner that says so offers Undo until the next deletion."""
        conversation = self._store.get_conversation(conversation_id)
        self._deleted = (conversation, self._store.messages(conversation_id))
        if conversation_id == self._conversation_id:
            self.stop_generation()
            self._conversation_id = None
        self._store.delete_conversation(conversation_id)
        self.conversation_model.reload()
        row = self.conversation_model.first_conversation_row()
        if row >= 0:
            self.conversation_list.setCurrentIndex(self.conversation_model.index(row))
        else:
            self._show_conversation(None)
        title = conversation.title or self.tr("New chat")
        self.info_banner.show_message(self.tr("Deleted “%1”.").replace("%1", title), self.tr("Undo"), self.undo_delete)

    def undo_delete(self) -> None:
        if self._deleted is None:
            return
        restored = self._store.restore_conversation(*self._deleted)
        self._deleted = None
        self.info_banner.hide()
        self.conversation_model.reload()
        self.conversation_list.setCurrentIndex(self.conversation_model.index(self.conversation_model.row_of(restored.id)))

    def export_conversation(self, conversation_id: int, kind: str) -> None:
        conversation = self._store.get_conversation(conversation_id)
        messages = self._store.messages(conversation_id)
        name = _file_name(conversation.title or "chat")
        if kind == "md":
            path, _ = QFileDialog.getSaveFileName(self, self.tr("Export as Markdown"), f"{name}.md", self.tr("Markdown (*.md)"))
            text = to_markdown(conversation, messages)
        else:
            path, _ = QFileDialog.getSaveFileName(self, self.tr("Export as JSON"), f"{name}.json", self.tr("JSON (*.json)"))
            text = to_json(conversation, messages)
        if path:
            self._write_export(Path(path), text)

    def export_all_conversations(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export all chats"), "qwen-local-chat.json", self.tr("JSON (*.json)"))
        if path:
            self._write_export(Path(path), export_all(self._store))

    def import_conversations(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, self.tr("Import chats"), "", self.tr("JSON (*.json)"))
            if not chosen:
                return
            path = Path(chosen)
        try:
            imported = import_conversations(self._store, path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ConversationImportError) as error:
            self.error_banner.show_message(self.tr("Could not import “%1”: %2").replace("%1", path.name).replace("%2", str(error)))
            return
        self.conversation_model.reload()
        if imported:
            self.conversation_list.setCurrentIndex(self.conversation_model.index(self.conversation_model.row_of(imported[-1].id)))
        self.info_banner.show_message(self.tr("Imported %1 chat(s).").replace("%1", str(len(imported))))

    def _write_export(self, path: Path, text: str) -> None:
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            self.error_banner.show_message(self.tr("Could not save “%1”: %2").replace("%1", path.name).replace("%2", error.strerror or str(error)))

    # ---------------------------------------------------------------------------------- chat

    def send_message(self, text: str) -> None:
        if self._facts is None or self._recorder is not None:
            return
        if self._conversation_id is None:
            conversation = self._store.create_conversation(
                model=self._facts.name,
                system_prompt=self._system_prompt,
                generation_settings=self._chat_settings.as_dict(),
            )
            self._conversation_id = conversation.id
        conversation_id = self._conversation_id
        if not self._store.get_conversation(conversation_id).title:
            self._store.rename_conversation(conversation_id, _title_from(text))
        self._store.update_conversation(conversation_id, model=self._facts.name)
        editing, self._editing = self._editing, None
        self.composer.set_editing(False)
        if editing is not None:
            # The edited question becomes an alternative to the original; the old branch stays.
            self._store.add_message(conversation_id, "user", text, parent_id=editing.parent_id)
            self._show_conversation(conversation_id)
        else:
            self.transcript.add_message(self._store.add_message(conversation_id, "user", text))
        self._reply_to_current_question()

    def _reply_to_current_question(self, *, alternative_to: Message | None = None) -> None:
        """Generates a reply to the conversation's last message (a user message), as a new
        message, or as an alternative to ``alternative_to`` (the reply being regenerated)."""
        conversation_id = self._conversation_id
        path = self._store.messages(conversation_id)
        if alternative_to is not None:
            path = path[: [message.id for message in path].index(alternative_to.id)]
        history, self._prompt_message_ids = _chat_messages(self._system_prompt, path)
        reply = self._store.add_message(
            conversation_id, "assistant", state=MessageState.STREAMING, parent_id=path[-1].id
        )
        if alternative_to is not None:
            self._show_conversation(conversation_id)
            self._streaming_widget = self.transcript.widget_for(reply.id)
        else:
            self._streaming_widget = self.transcript.add_message(reply)
        self._recorder = ReplyRecorder(self._store, reply.id)
        self._select_without_reload(conversation_id)
        self._update_empty_hint()

        thinking = self.composer.thinking_switch.isChecked()
        self._start_generation(GenerationRequest(
            messages=tuple(history),
            enable_thinking=thinking,
            sampling=self._chat_settings.sampling(thinking=thinking),
        ))

    def _regenerate_reply(self, reply: Message) -> None:
        """Writes the reply again; the earlier one stays as an alternative ("1/2")."""
        if self._facts is not None and reply.role == "assistant" and reply.parent_id is not None:
            self._reply_to_current_question(alternative_to=reply)

    def _alternative_position(self, message_id: int) -> tuple[int, int]:
        alternatives = [item.id for item in self._store.alternatives(message_id)]
        return alternatives.index(message_id), len(alternatives)

    def _switch_alternative(self, message: Message, step: int) -> None:
        alternatives = self._store.alternatives(message.id)
        position = [item.id for item in alternatives].index(message.id) + step
        if 0 <= position < len(alternatives):
            self._store.switch_to(alternatives[position].id)
            self._show_conversation(self._conversation_id)

    def _edit_question(self, message: Message) -> None:
        self._editing = message
        self.composer.edit.setPlainText(message.content)
        self.composer.set_editing(True)
        self.composer.edit.setFocus()

    def _start_generation(self, request: GenerationRequest) -> None:
        self.composer.set_generating(True)
        self.transcript.refresh_actions()
        self.speed_status.setText(self.tr("Generating…"))
        self._inference.generate(request)

    def stop_generation(self) -> None:
        if self._recorder is not None:
            self._inference.stop_generation()

    @property
    def is_generating(self) -> bool:
        return self._recorder is not None

    def _show_streamed_text(self, reasoning: str, answer: str) -> None:
        if self._recorder is None:
            return
        self._recorder.append(reasoning, answer)
        if self._streaming_widget is not None:
            self._streaming_widget.append(reasoning, answer)

    def _on_generation_finished(self, result: GenerationResult) -> None:
        self._coalescer.flush()
        stopped = result.stats.stop_reason == StopReason.CANCELLED
        self._finish_reply(MessageState.INTERRUPTED if stopped else MessageState.COMPLETE, result.stats, None)
        self.speed_status.setText(self.tr("%1 tok/s").replace("%1", f"{result.stats.tokens_per_second:.1f}"))
        used = result.stats.prompt_tokens + result.stats.generated_tokens
        context = self._facts.context_size if self._facts else 0
        self.context_status.setText(self.tr("Context: %1 / %2 tokens").replace("%1", f"{used:,}").replace("%2", f"{context:,}"))
        if result.omitted_messages and result.omitted_messages < len(self._prompt_message_ids):
            self.transcript.show_context_boundary(self._prompt_message_ids[result.omitted_messages], result.omitted_messages)
        else:
            self.transcript.show_context_boundary(None, 0)
        self._prepare_next_turn()

    def _prepare_next_turn(self) -> None:
        """Lets the inference thread evaluate the conversation so far while the user reads and
        types, so the next question is answered as quickly as the first one."""
        if self._facts is None or self._conversation_id is None:
            return
        history, _ = _chat_messages(self._system_prompt, self._store.messages(self._conversation_id))
        thinking = self.composer.thinking_switch.isChecked()
        self._inference.prepare_next_turn(GenerationRequest(
            messages=tuple(history),
            enable_thinking=thinking,
            sampling=self._chat_settings.sampling(thinking=thinking),
        ))

    def _on_generation_failed(self, message: str) -> None:
        self._coalescer.flush()
        self._finish_reply(MessageState.FAILED, None, message)
        self.speed_status.clear()
        self.error_banner.show_message(message)

    def _finish_reply(self, state: MessageState, stats, error: str | None) -> None:
        recorder, widget = self._recorder, self._streaming_widget
        self._recorder = self._streaming_widget = None
        if recorder is not None:
            recorder.finish(state, stats, error)
        if widget is not None:
            widget.set_outcome(state, stats, error)
        self.composer.set_generating(False)
        self.transcript.refresh_actions()
        if self._conversation_id is not None:
            self._select_without_reload(self._conversation_id)
        self._update_ready_state()

    # ------------------------------------------------------------------------------ helpers

    def _on_message_action(self, action: str, message_id: int) -> None:
        if self.is_generating or self._conversation_id is None:
            return
        message = self._store.get_message(message_id)
        if action == "copy":
            QGuiApplication.clipboard().setText(message.content)
        elif action == "delete":
            self._store.delete_message(message_id)
            self._show_conversation(self._conversation_id)
        elif action == "continue":
            self._continue_reply(message)
        elif action == "regenerate":
            self._regenerate_reply(message)
        elif action == "edit":
            self._edit_question(message)
        elif action in ("previous", "next"):
            self._switch_alternative(message, -1 if action == "previous" else 1)

    def _act_on_last_reply(self, action: str) -> None:
        replies = [widget for widget in self.transcript.message_widgets() if widget.role == "assistant"]
        if replies and (action != "continue" or replies[-1].action_buttons["continue"].isVisible()):
            self._on_message_action(action, replies[-1].message_id)

    def _continue_reply(self, reply: Message) -> None:
        """Carries on writing a reply that stopped at its length limit, into the same message."""
        if self._facts is None:
            return
        messages = self._store.messages(self._conversation_id)
        history, self._prompt_message_ids = _chat_messages(self._system_prompt, [m for m in messages if m.id != reply.id])
        self._store.update_message(reply.id, state=MessageState.STREAMING)
        self._streaming_widget = self.transcript.widget_for(reply.id)
        self._streaming_widget.set_outcome(MessageState.STREAMING, None, None)
        self._recorder = ReplyRecorder(self._store, reply.id, initial=(reply.reasoning, reply.content))
        thinking = self.composer.thinking_switch.isChecked()
        self._start_generation(GenerationRequest(
            messages=tuple(history),
            enable_thinking=thinking,
            sampling=self._chat_settings.sampling(thinking=thinking),
            continuation=ChatMessage("assistant", reply.content, reply.reasoning),
        ))

    def _select_without_reload(self, conversation_id: int) -> None:
        """Highlights ``conversation_id`` in the list without rebuilding the transcript."""
        self.conversation_model.reload()
        row = self.conversation_model.row_of(conversation_id)
        selection = self.conversation_list.selectionModel()
        selection.blockSignals(True)
        self.conversation_list.setCurrentIndex(self.conversation_model.index(row))
        selection.blockSignals(False)
        self.conversation_list.viewport().update()

    def _update_ready_state(self) -> None:
        if self._loading_path is not None:
            reason = self.tr("The model is still loading.")
        elif self._facts is None:
            reason = self.tr("Open a model to start chatting.")
        else:
            reason = ""
        self.composer.set_ready(not reason, reason)
        self._update_empty_hint()

    def _update_empty_hint(self) -> None:
        empty = not self.transcript.message_widgets()
        no_model = self._facts is None and self._loading_path is None
        first_run = empty and no_model and not self.model_picker.count()
        if first_run and self.welcome_panel is None:
            self.welcome_panel = WelcomePanel(self._models)
            self.welcome_panel.sig_use_model.connect(self.load_model)
            self.welcome_panel.sig_show_models.connect(self.show_models)
            self.welcome_panel.sig_open_file.connect(self.choose_model_file)
            self._chat_layout.insertWidget(self._chat_layout.indexOf(self.empty_hint), self.welcome_panel, 1)
        if self.welcome_panel is not None:
            self.welcome_panel.setVisible(first_run)
        if no_model:
            hint = self.tr("Choose a model above to start, open “Models…” to download one, or drop a .gguf file here.")
        else:
            hint = self.tr("Ask anything. Everything stays on this computer.")
        self.empty_hint.setText(hint)
        self.empty_hint.setVisible(empty and not first_run)
        self.transcript.setVisible(not empty)

    # ------------------------------------------------------------------------------- events

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        if any(url.toLocalFile().lower().endswith(".gguf") for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        for url in event.mimeData().urls():
            if url.toLocalFile().lower().endswith(".gguf"):
                self._models.import_model(Path(url.toLocalFile()))
                self.load_model(Path(url.toLocalFile()))
                return

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """Stops any reply, waits for the inference thread to finish, and saves state."""
        self._inference.shutdown()
        self._models.shutdown()
        # The worker is gone; deliver what it sent before stopping (last text, the end of the
        # reply) now, because the event loop may not run again.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.MetaCall)
        if self._recorder is not None:
            self._coalescer.flush()
            self._finish_reply(MessageState.INTERRUPTED, None, None)
        self._settings.window_geometry = bytes(self.saveGeometry().toHex()).decode()
        self.sig_settings_changed.emit()
        super().closeEvent(event)


def _chat_messages(system_prompt: str, messages: list[Message]) -> tuple[list[ChatMessage], list[int]]:
    """What the model sees (the system prompt, then every turn that produced text), and the
    store ids of those turns in the same order."""
    kept = [
        message
        for message in messages
        if message.state != MessageState.FAILED and (message.content or message.role == "user")
    ]
    turns = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
    turns += [ChatMessage(message.role, message.content, message.reasoning) for message in kept]
    return turns, [message.id for message in kept]


def about_text() -> str:
    """Version, and how llama.cpp was built (backend and CPU baseline), for the About box."""
    try:
        version = importlib.metadata.version("qwen-local-chat")
    except importlib.metadata.PackageNotFoundError:
        version = "development"
    return (
        f"<h3>Qwen Local Chat {html.escape(version)}</h3>"
        "<p>Chat with Qwen3.5 models, offline, on this computer.</p>"
        f"<p>llama.cpp: {html.escape(build_info().describe())}<br>"
        f"llama-cpp-python {html.escape(importlib.metadata.version('llama-cpp-python'))} · "
        f"Qt {html.escape(qVersion())}</p>"
    )


def _file_name(title: str) -> str:
    """A title made safe to use as a file name on every system."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", title).strip(" .")
    return cleaned[:80] or "chat"


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
