"""The main window: a shell that lays out the sidebar, the model bar, the chat pane and the status
bar, holds the menus, and loads models.

It keeps no conversation state and touches no store: the chat pane's controller
(``chat_controller``) talks to the chat session, the sidebar (``conversation_sidebar``) to the
conversation library, and both show what those report.
"""

from __future__ import annotations

import html
import importlib.metadata
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, qVersion
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.core.api.local_api_service import LocalApiService, LocalApiState, configured_api
from app.core.chat.chat_session import ChatSession
from app.core.chat.chat_settings import SamplingPreset
from app.core.conversations.conversation_events import (
    ConversationDeleted,
    ConversationRestored,
    ConversationsChanged,
)
from app.core.conversations.conversation_library import ConversationLibrary
from app.core.domain.conversations import Message
from app.core.domain.generation import GenerationStats, LoadSettings, MemoryShortfall, ModelSource, RemoteModel
from app.core.engines.engine_events import ModelChecking, ModelLoaded, ModelLoadFailed, ModelLoading
from app.core.engines.engine_host import EngineHost
from app.core.engines.remote.model_servers import ModelServers
from app.core.models.fit_estimate import format_gb
from app.core.profile.secret_store import SecretStore
from app.core.profile.settings import Settings
from app.core.tools.tool_service import ToolService
from app.ui.api_request_log_dialog import ApiRequestLogDialog
from app.ui.api_status import ApiStatusIndicator
from app.ui.attachments import carries_images
from app.ui.banner import Banner
from app.ui.chat_controller import ChatController
from app.ui.chat_settings_panel import ChatSettingsPanel
from app.ui.composer_widget import ComposerWidget
from app.ui.conversation_files import ConversationFiles
from app.ui.conversation_sidebar import ConversationSidebar
from app.ui.download_status import DownloadsIndicator
from app.ui.event_bridges import (
    ApiRequestLogBridge,
    EngineBridge,
    LibraryBridge,
    LocalApiBridge,
    ModelServersBridge,
    SessionBridge,
    ToolsBridge,
)
from app.ui.model_bar import ModelBar
from app.ui.model_server_texts import model_label, privacy_notice, replies_from
from app.ui.models_controller import ModelsController
from app.ui.models_dialog import ModelsDialog
from app.ui.settings_dialog import SavedStates, SettingsDialog
from app.ui.shortcuts_dialog import ShortcutsDialog
from app.ui.theme import THEMES, set_color_scheme, set_font_size
from app.ui.transcript_view import TranscriptView
from app.ui.welcome_panel import WelcomePanel


class MainWindow(QMainWindow):
    sig_settings_changed = Signal()
    """Settings were changed in the window and should be saved by the composition root."""
    sig_closing = Signal()
    """The window is closing: the composition root shuts the core down (before this returns)."""

    def __init__(
        self,
        session: ChatSession,
        library: ConversationLibrary,
        host: EngineHost,
        settings: Settings,
        models: ModelsController,
        runtime_description: str,
        api: LocalApiService,
        api_key: SecretStore,
        image_path: Callable[[str], Path],
        tools: ToolService,
        model_servers: ModelServers,
        saved_states: SavedStates,
        parent: QWidget | None = None,
    ) -> None:
        """``runtime_description`` says what runs the models, for the About box; ``api`` is the
        local API server that Settings turns on and off, and ``api_key`` keeps its key;
        ``image_path(sha256)`` is where the stored picture with that hash is, for the transcript;
        ``tools`` are the tools chats may offer (the composer's Tools menu); ``model_servers``
        are the servers whose models the model list offers (Settings › Model servers);
        ``saved_states`` are the chat states kept on disk (Settings › Speed shows and clears them)."""
        super().__init__(parent)
        self.setWindowTitle(self.tr("Qwen Local Chat"))
        self.setAcceptDrops(True)
        self._library = library
        self._host = host
        self._settings = settings
        self._models = models
        # Owned by the window from now on, so it is deleted on this thread with the window, never
        # by its worker threads (a header read or a download report) dropping the last reference.
        models.setParent(self)
        self._runtime_description = runtime_description
        self._models_dialog: ModelsDialog | None = None
        self._api = api
        self._api_key = api_key
        self._image_path = image_path
        self._request_log_dialog: ApiRequestLogDialog | None = None
        self._facts = host.facts
        self._loading_source: ModelSource | None = None
        self._first_conversation_opened = False
        self._closed = False  # the core has been shut down
        self._reveal_when_shown: tuple[int, int] | None = None  # a search hit: (conversation, message)
        self._library_bridge = LibraryBridge(library, self)
        self._engine_bridge = EngineBridge(host, self)
        self._session_bridge = SessionBridge(session, self)
        self._api_bridge = LocalApiBridge(api, self)
        self._api_log_bridge = ApiRequestLogBridge(api.log, self)
        self._tools = tools
        self._tools_bridge = ToolsBridge(tools, self)
        self._model_servers = model_servers
        self._servers_bridge = ModelServersBridge(model_servers, self)
        self._saved_states = saved_states

        self._build_widgets()
        self.conversation_files = ConversationFiles(
            library, self._library_bridge, self.sidebar.model, self.info_banner, self
        )
        self.chat = ChatController(
            session, self._session_bridge, self.transcript, self.composer, self.chat_settings_panel,
            self._context_size, tools, self._tools_bridge, self,
        )
        self._build_actions()
        self._connect()
        self._refresh_model_picker()
        self._restore_geometry()
        self._update_ready_state()
        for bridge in (
            self._engine_bridge, self._session_bridge, self._library_bridge, self._api_bridge, self._api_log_bridge,
            self._tools_bridge, self._servers_bridge,
        ):
            bridge.start()
        self.api_status.show_state(api.state)  # read once its changes are sure to arrive
        model_servers.refresh()  # their models join the list as they answer

    # ------------------------------------------------------------------------------- building

    def _build_widgets(self) -> None:
        self.sidebar = ConversationSidebar(self._library, self._library_bridge)
        self.model_bar = ModelBar(self._models, self._model_servers, self._servers_bridge)
        self.error_banner = Banner("errorBanner")
        self.info_banner = Banner("infoBanner")
        self.transcript = TranscriptView(self._image_path)
        self.empty_hint = QLabel()
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.composer = ComposerWidget()
        self.welcome_panel: WelcomePanel | None = None

        chat = QWidget()
        chat.setObjectName("chatPane")
        self._chat_layout = QVBoxLayout(chat)
        self._chat_layout.setContentsMargins(0, 0, 0, 0)
        self._chat_layout.setSpacing(0)
        for widget, stretch in (
            (self.model_bar, 0), (self.error_banner, 0), (self.info_banner, 0),
            (self.empty_hint, 1), (self.transcript, 1), (self.composer, 0),
        ):
            self._chat_layout.addWidget(widget, stretch)

        self.chat_settings_panel = ChatSettingsPanel([SamplingPreset(**preset) for preset in self._settings.user_presets])
        self.chat_settings_dock = QDockWidget(self.tr("Chat settings"), self)
        self.chat_settings_dock.setObjectName("chatSettingsDock")
        self.chat_settings_dock.setWidget(self.chat_settings_panel)
        self.chat_settings_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.chat_settings_dock)
        self.chat_settings_dock.hide()

        splitter = QSplitter()
        splitter.addWidget(self.sidebar)
        splitter.addWidget(chat)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        self.model_status = QLabel(self.tr("No model loaded"))
        self.model_status.setObjectName("modelStatus")
        self.backend_status = QLabel()
        self.speed_status = QLabel()
        self.context_status = QLabel()
        self.context_status.setToolTip(self.tr("How much of the model's context window the conversation used in the last reply"))
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 100)
        self.load_progress.setMaximumWidth(160)
        self.load_progress.setAccessibleName(self.tr("Model loading progress"))
        self.load_progress.hide()
        self.downloads_indicator = DownloadsIndicator(self._models)
        self.downloads_indicator.sig_clicked.connect(self.show_models)
        self.api_status = ApiStatusIndicator()
        self.api_status.clicked.connect(self.show_api_request_log)
        status = self.statusBar()
        status.addWidget(self.model_status, 1)
        status.addPermanentWidget(self.api_status)
        status.addPermanentWidget(self.downloads_indicator)
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

        chat = self.chat
        self.new_chat_action = action(self.tr("&New Chat"), QKeySequence.StandardKey.New, self.new_conversation)
        self.open_model_action = action(self.tr("&Open Model File…"), QKeySequence.StandardKey.Open, self.choose_model_file)
        self.models_action = action(self.tr("&Models…"), "Ctrl+M", self.show_models)
        self.settings_action = action(self.tr("&Settings…"), "Ctrl+,", self.show_settings)
        self.stop_action = action(self.tr("&Stop Reply or Editing"), Qt.Key.Key_Escape, chat.escape)
        self.focus_composer_action = action(self.tr("&Write a Message"), "Ctrl+L", self.composer.edit.setFocus)
        self.regenerate_action = action(self.tr("&Regenerate Reply"), "Ctrl+R", chat.regenerate_last_reply)
        self.continue_action = action(self.tr("C&ontinue Reply"), "Ctrl+Shift+Return", chat.continue_last_reply)
        self.copy_answer_action = action(self.tr("&Copy Last Answer"), "Ctrl+Shift+C", chat.copy_last_answer)
        self.chat_settings_action = action(self.tr("Chat &Settings"), "Ctrl+Shift+S", self.model_bar.chat_settings_button.click)
        self.search_action = action(self.tr("&Search All Chats"), QKeySequence.StandardKey.Find, self.sidebar.focus_search)
        self.quit_action = action(self.tr("&Quit"), QKeySequence.StandardKey.Quit, self.close)
        self.shortcuts_action = action(self.tr("&Keyboard Shortcuts"), "Ctrl+/", self.show_shortcuts)
        file_menu = self.menuBar().addMenu(self.tr("&File"))
        for item in (self.new_chat_action, self.open_model_action, self.models_action, self.settings_action):
            file_menu.addAction(item)
        file_menu.addSeparator()
        file_menu.addAction(self.tr("&Import Chats…"), self.conversation_files.import_file)
        file_menu.addAction(self.tr("&Export All Chats…"), self.conversation_files.export_all)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        chat_menu = self.menuBar().addMenu(self.tr("&Chat"))
        for item in (
            self.search_action, self.focus_composer_action, self.stop_action, self.regenerate_action,
            self.continue_action, self.copy_answer_action, self.chat_settings_action,
        ):
            chat_menu.addAction(item)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        help_menu.addAction(self.shortcuts_action)
        help_menu.addAction(self.tr("&About Qwen Local Chat"), self.show_about)
        self._set_tab_order()
        for widget, text, item in (
            (self.model_bar.models_button, self.model_bar.models_button.toolTip(), self.models_action),
            (self.model_bar.chat_settings_button, self.model_bar.chat_settings_button.toolTip(), self.chat_settings_action),
            (self.composer.edit, self.tr("Write a message"), self.focus_composer_action),
            (self.sidebar.search_edit, self.tr("Search all chats"), self.search_action),
            (self.sidebar.new_chat_button, self.tr("New chat"), self.new_chat_action),
        ):
            widget.setToolTip(f"{text} ({item.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})")

    def _set_tab_order(self) -> None:
        """Tab goes where the eye does: writing, sending, reading, then the chats."""
        chain = [
            self.composer.edit, self.composer.send_button, self.transcript,
            self.sidebar.new_chat_button, self.sidebar.search_edit, self.sidebar.list_view,
            self.model_bar.picker, self.model_bar.models_button, self.model_bar.chat_settings_button,
        ]
        for first, second in zip(chain, chain[1:]):
            QWidget.setTabOrder(first, second)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.actions(), self).exec()

    def _connect(self) -> None:
        self.sidebar.sig_conversation_chosen.connect(self.chat.open)
        self.sidebar.sig_search_hit_chosen.connect(self._open_search_hit)
        self.sidebar.sig_export_requested.connect(self.conversation_files.export_conversation)
        self.sidebar.sig_delete_requested.connect(self.delete_conversation)
        self.model_bar.sig_model_chosen.connect(self.load_model)
        self.model_bar.models_button.clicked.connect(self.show_models)
        self.model_bar.chat_settings_button.toggled.connect(self.chat_settings_dock.setVisible)
        self.chat_settings_dock.visibilityChanged.connect(self.model_bar.chat_settings_button.setChecked)
        self.chat_settings_panel.sig_presets_changed.connect(self._on_presets_changed)

        self.chat.sig_conversation_shown.connect(self._on_conversation_shown)
        self.chat.sig_activity.connect(lambda text: text and self.speed_status.setText(text))
        self.chat.sig_reply_finished.connect(self._on_reply_finished)
        self.chat.sig_error.connect(self.error_banner.show_message)
        self.chat.sig_thinking_changed.connect(self._on_thinking_changed)
        self.chat.sig_busy_changed.connect(lambda _busy: self.transcript.refresh_actions())
        self.composer.sig_image_support_requested.connect(self.show_models)
        self.composer.tools_button.sig_settings_requested.connect(self.show_settings)
        self._servers_bridge.sig_servers_changed.connect(self._check_loaded_models_server)

        library = self._library_bridge
        library.sig_conversations_changed.connect(self._on_conversations_changed)
        library.sig_conversation_deleted.connect(self._on_conversation_deleted)
        library.sig_conversation_restored.connect(self._on_conversation_restored)
        self.conversation_files.sig_imported.connect(self.chat.open)
        library.sig_operation_failed.connect(lambda event: self.error_banner.show_message(event.message))

        engine = self._engine_bridge
        engine.sig_model_checking.connect(self._on_model_checking)
        engine.sig_model_loading.connect(self._on_model_loading)
        engine.sig_model_loaded.connect(self._on_model_loaded)
        engine.sig_model_load_failed.connect(self._on_model_load_failed)
        self._models.sig_local_models_changed.connect(self._refresh_model_picker)
        self._models.sig_download_finished.connect(self._on_download_finished)
        self._models.sig_hardware_changed.connect(self._refresh_model_picker)
        self._models.sig_model_headers_read.connect(self._refresh_model_picker)
        self._models.sig_settings_changed.connect(self.sig_settings_changed)
        self._api_bridge.sig_api_state_changed.connect(self._on_api_state_changed)

    def _restore_geometry(self) -> None:
        if self._settings.window_geometry:
            self.restoreGeometry(QByteArray.fromHex(self._settings.window_geometry.encode()))

    # ------------------------------------------------------------------------ shortcuts for tests

    @property
    def conversation_id(self) -> int | None:
        """The conversation on screen (None: a new chat not stored yet)."""
        return self.chat.conversation_id

    @property
    def is_generating(self) -> bool:
        return self.chat.is_busy

    @property
    def is_ready(self) -> bool:
        """The conversation list has arrived and the first conversation is on screen."""
        return self._first_conversation_opened

    @property
    def model_picker(self):
        return self.model_bar.picker

    # --------------------------------------------------------------------------------- models

    def load_model(self, source: ModelSource, *, context_size: int | None = None, despite_memory: bool = False) -> None:
        """Starts loading ``source`` (a model file, or a ``RemoteModel`` on a model server) on
        the engine thread; the window stays responsive. A file's context is the one in Settings
        (the engine side reduces it to what runs well here) unless ``context_size`` is given;
        ``despite_memory`` loads a model the memory check refused. A server's model runs as its
        server set it up: none of that applies."""
        self.chat.stop()
        self.error_banner.hide()
        self.load_progress.show()
        if isinstance(source, RemoteModel):
            self._loading_source = source
            self.load_progress.setRange(0, 0)  # the server answers at once or not at all: no steps to count
            self.model_status.setText(self.tr("Connecting to %1…").replace("%1", source.server))
            self.model_status.setToolTip(self.tr("Asking %1 for the model %2").replace("%1", source.server).replace("%2", source.model_id))
            self._update_ready_state()
            self._host.load_model(source, LoadSettings())
            return
        path = self._loading_source = Path(source)
        self.load_progress.setRange(0, 100)
        self.load_progress.setValue(0)
        self.model_status.setText(self.tr("Loading %1…").replace("%1", path.name))
        self._update_ready_state()
        projector = self._models.projector_for(path)  # its image support, if it has one
        settings = self._settings.load_settings(context_size or self._settings.context_size, projector)
        self._host.load_model(path, settings, despite_memory=despite_memory)

    def _context_size(self) -> int:
        """The context chats run with: the loaded model's (0: its server did not say), else
        the one in Settings."""
        return self._facts.context_size if self._facts else self._settings.context_size

    def _show_context_size(self) -> None:
        server = self._facts.remote.server if self._facts is not None and self._facts.remote else ""
        self.chat_settings_panel.set_context_size(self._context_size(), server)

    def last_model_if_present(self) -> ModelSource | None:
        """The model used last time: a model on a server that is still set up, else the last
        model file if it is still there."""
        remote = self._settings.remote_model_to_reopen
        if remote is not None and self._model_servers.server(remote.server) is not None:
            return remote
        last = self._settings.last_model
        return last if last is not None and last.is_file() else None

    def _on_model_checking(self, event: ModelChecking) -> None:
        if event.path != self._loading_source:
            return
        self.model_status.setText(self.tr("Checking %1 (first use)…").replace("%1", event.path.name))
        self.model_status.setToolTip(self.tr(
            "The first time a model file is used, it is tried in a separate process, so that a damaged "
            "file cannot stop the app. This happens once per file."
        ))
        self.load_progress.setValue(round(event.fraction * 100))

    def _on_model_loading(self, event: ModelLoading) -> None:
        checked = isinstance(event.path, Path) and self.model_status.text().startswith(self.tr("Checking"))
        if event.path == self._loading_source and checked:
            self.model_status.setText(self.tr("Loading %1…").replace("%1", event.path.name))
            self.model_status.setToolTip("")
        if self.load_progress.maximum():
            self.load_progress.setValue(round(event.fraction * 100))

    def _on_model_loaded(self, event: ModelLoaded) -> None:
        facts = self._facts = event.facts
        self._loading_source = None
        self.load_progress.hide()
        if facts.path is not None:
            self._models.remember_opened(facts.path)  # only a file that loaded joins the list
            self._settings.remember_model(facts.path)
        self._settings.remember_remote_model(facts.remote)  # None for a file: that file is reopened
        self.sig_settings_changed.emit()
        self._refresh_model_picker()
        self._show_model_status()
        self._show_reply_figures(self.chat.last_reply_stats())
        self._show_context_size()
        self._update_ready_state()

    def _on_model_load_failed(self, event: ModelLoadFailed) -> None:
        """A failed open changes nothing: the model loaded before (if any) is still the one."""
        self._facts = event.still_loaded
        self._loading_source = None
        self.load_progress.hide()
        self._refresh_model_picker()
        self._show_model_status()
        message = event.message
        if event.still_loaded is not None:
            message += " " + self.tr("Still using %1.").replace("%1", model_label(event.still_loaded))
        if isinstance(event.path, RemoteModel):
            self._offer_a_model_file(message)
        elif event.shortfall is None:
            self.error_banner.show_message(message)
        else:
            self._offer_ways_out(event.path, event.shortfall, message)
        self._update_ready_state()

    def _check_loaded_models_server(self) -> None:
        """The loaded model's server was removed or renamed in Settings: say so now, not at the
        next reply, and point to its models under the server's new name."""
        remote = self._facts.remote if self._facts is not None else None
        if remote is not None and self._model_servers.server(remote.server) is None:
            self._offer_a_model_file(
                self.tr("The model server %1 was removed or renamed: choose its model again in the model list.")
                .replace("%1", remote.server)
            )

    def _offer_a_model_file(self, message: str) -> None:
        """A server's model could not be loaded, and none is: the model file used last is one
        click away (at start, a server that is off would otherwise leave the window idle)."""
        recent = self._recent_models()
        if self._facts is None and recent:
            name = recent[0].stem
            self.error_banner.show_message(message, self.tr("Use %1").replace("%1", name), lambda: self.load_model(recent[0]))
        else:
            self.error_banner.show_message(message)

    def _offer_ways_out(self, path: Path, shortfall: MemoryShortfall, message: str) -> None:
        """A model that does not fit now: load it with the context that fits, or anyway, after
        a warning."""
        context = shortfall.fitting_context
        actions = [(self.tr("Load anyway…"), lambda: self._load_despite_memory(path, shortfall))]
        if context:
            label = self.tr("Use %1 tokens").replace("%1", f"{context:,}")
            actions.insert(0, (label, lambda: self.load_model(path, context_size=context)))
        self.error_banner.show_message(message, actions=actions)

    def _load_despite_memory(self, path: Path, shortfall: MemoryShortfall) -> None:
        answer = QMessageBox.warning(
            self,
            self.tr("Load a model that does not fit?"),
            self.tr(
                "%1 needs about %2, but only %3 is free now. Loading it anyway can make the computer "
                "very slow while it swaps memory to disk, or fail part-way. Load it anyway?"
            ).replace("%1", path.name).replace("%2", format_gb(shortfall.needed_bytes)).replace("%3", format_gb(shortfall.available_bytes)),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.load_model(path, despite_memory=True)

    def _show_model_status(self) -> None:
        """The loaded model under the same name as in the picker, and where its replies come
        from; their details in the tooltips."""
        facts = self._facts
        self.composer.show_privacy_notice(privacy_notice(facts))
        if facts is None:
            self.model_status.setText(self.tr("No model loaded"))
            self.model_status.setToolTip("")
            self.backend_status.clear()
            self.backend_status.setToolTip("")
            return
        self.model_status.setText(model_label(facts))
        size = f" ({facts.size_label})" if facts.size_label else ""
        if facts.remote is not None:
            where = self.tr("on the model server %1 (%2)").replace("%1", facts.remote.server).replace("%2", facts.server_address)
        else:
            where = str(facts.path)
        self.model_status.setToolTip(f"{facts.name}{size}\n{where}")
        text, tooltip = replies_from(facts)
        self.backend_status.setText(text)
        self.backend_status.setToolTip(tooltip)

    def _on_download_finished(self, progress) -> None:
        """Offers a model that just finished downloading (unless it is already being loaded)."""
        path = Path(progress.path)
        if path in (self._loading_source, self._facts.path if self._facts else None):
            return
        name = self._models.display_name_of(progress)
        self.info_banner.show_message(
            self.tr("%1 is downloaded and checked, ready to use.").replace("%1", name),
            self.tr("Load"),
            lambda: (self.info_banner.hide(), self.load_model(path)),
        )

    def _recent_models(self) -> list[Path]:
        return [Path(text).absolute() for text in self._settings.recent_models if Path(text).is_file()]

    def _refresh_model_picker(self) -> None:
        recent = self._recent_models()
        if self._facts is not None:
            current = self._facts.source
        else:
            current = self._settings.remote_model_to_reopen or (recent[0] if recent else None)
        self.model_bar.show_models(recent, current)
        self._update_empty_hint()

    def show_models(self) -> None:
        if self._models_dialog is None:
            self._models_dialog = ModelsDialog(self._models, self)
            self._models_dialog.sig_use_model.connect(self.load_model)
            self._models_dialog.sig_open_settings.connect(self.show_settings)
        self._models_dialog.reload()
        self._models_dialog.show()
        self._models_dialog.raise_()

    def choose_model_file(self) -> None:
        start = str(self._settings.last_model.parent) if self._settings.last_model else ""
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Open a GGUF model"), start, self.tr("GGUF models (*.gguf);;All files (*)")
        )
        if path:
            self.load_model(Path(path))

    # ----------------------------------------------------------------------- settings, about

    def show_settings(self, *, api_section: bool = False) -> None:
        """Opens Settings (scrolled to the local API server's with ``api_section``)."""
        settings = self._settings
        before = (settings.theme, settings.font_size, self._load_settings_for_current())
        api_before = configured_api(settings, self._api_key.token())
        dialog = SettingsDialog(
            self._models, settings, self._api_key, self._api.state, self, tools=self._tools, tools_bridge=self._tools_bridge,
            model_servers=self._model_servers, model_servers_bridge=self._servers_bridge, saved_states=self._saved_states,
        )
        # Over the dialog, which blocks every other window while it is open.
        dialog.sig_request_log_requested.connect(lambda: ApiRequestLogDialog(self._api.log, self._api_log_bridge, dialog).exec())
        if api_section:
            QTimer.singleShot(0, dialog.show_api_section)  # once it is laid out on screen
        if dialog.exec():
            self.sig_settings_changed.emit()
            api_after = configured_api(settings, self._api_key.token())
            if api_after != api_before or (api_after is not None and not self._api.state.running):
                self._api.apply(api_after)  # a server that could not start is tried again
            if settings.theme != before[0]:
                set_color_scheme(QApplication.instance(), THEMES[settings.theme])
            if settings.font_size != before[1]:
                set_font_size(QApplication.instance(), settings.font_size)
            if self._load_settings_for_current() != before[2] and not self.is_generating:
                self.load_model(self._facts.path)  # context, threads and GPU are set at load
        self._refresh_model_picker()
        # Offline mode may have changed, and servers been added or changed: their models are
        # listed afresh (the last answers show meanwhile).
        self._model_servers.refresh()

    def _load_settings_for_current(self) -> LoadSettings | None:
        """What a model file is loaded with; None for a model on a server, which its server runs."""
        loaded_file = self._facts is not None and self._facts.path is not None
        return self._settings.load_settings(self._settings.context_size) if loaded_file else None

    def show_api_request_log(self) -> None:
        if self._request_log_dialog is None:
            self._request_log_dialog = ApiRequestLogDialog(self._api.log, self._api_log_bridge, self)
        self._request_log_dialog.show()
        self._request_log_dialog.raise_()

    def _on_api_state_changed(self, state: LocalApiState) -> None:
        self.api_status.show_state(state)
        if state.problem:  # one event per failed start: said once, where the user looks
            self.error_banner.show_message(
                self.tr("The local API server is off: %1").replace("%1", state.problem),
                actions=[(self.tr("Settings…"), lambda: self.show_settings(api_section=True))],
            )

    def show_about(self) -> None:
        QMessageBox.about(self, self.tr("About Qwen Local Chat"), about_text(self._runtime_description))

    def _on_thinking_changed(self, checked: bool) -> None:
        self._settings.enable_thinking = checked
        self.sig_settings_changed.emit()

    def _on_presets_changed(self, presets: list[SamplingPreset]) -> None:
        self._settings.user_presets = [asdict(preset) for preset in presets]
        self.sig_settings_changed.emit()

    # ------------------------------------------------------------------------ conversations

    def new_conversation(self) -> None:
        """Starts an empty chat; it is stored with its first message, so no empty chats pile up."""
        self.chat.open(None)
        self.composer.edit.setFocus()

    def _on_conversations_changed(self, event: ConversationsChanged) -> None:
        if not self._first_conversation_opened:
            # The first list: open the conversation of last time, else the newest one.
            ids = [conversation.id for conversation in event.conversations]
            last = self._settings.last_conversation_id
            self.chat.open(last if last in ids else (ids[0] if ids else None))

    def _on_conversation_shown(self, conversation_id: int | None) -> None:
        if not self.is_generating:
            self._show_reply_figures(self.chat.last_reply_stats())
        self._first_conversation_opened = True
        self.sidebar.set_current(conversation_id)
        self._settings.last_conversation_id = conversation_id
        self._update_empty_hint()
        if self._reveal_when_shown is not None and self._reveal_when_shown[0] == conversation_id:
            self.transcript.reveal_message(self._reveal_when_shown[1])
            self._reveal_when_shown = None

    def _open_search_hit(self, conversation_id: int, message_id: int) -> None:
        if conversation_id == self.conversation_id:
            self.transcript.reveal_message(message_id)
        else:
            self._reveal_when_shown = (conversation_id, message_id)
            self.chat.open(conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        """Deletes at once; the banner that says so offers Undo until the next deletion."""
        if conversation_id == self.conversation_id:
            others = [c.id for c in self.sidebar.model.conversations() if c.id != conversation_id]
            self.chat.open(others[0] if others else None)
        self._library.delete(conversation_id)

    def _on_conversation_deleted(self, event: ConversationDeleted) -> None:
        title = event.conversation.title or self.tr("New chat")
        self.info_banner.show_message(self.tr("Deleted “%1”.").replace("%1", title), self.tr("Undo"), self._library.undo_delete)

    def _on_conversation_restored(self, event: ConversationRestored) -> None:
        self.info_banner.hide()
        self.chat.open(event.conversation.id)

    # ---------------------------------------------------------------------------- the chat pane

    def _on_reply_finished(self, reply: Message) -> None:
        self._show_reply_figures(reply.stats)
        # A server's speed says nothing about this computer's, which the fit advice learns.
        if reply.stats is not None and self._facts is not None and self._facts.path is not None:
            self._models.record_reply_speed(reply.stats.tokens_per_second, reply.stats.generated_tokens, self._facts.file_size)

    def _show_reply_figures(self, stats: GenerationStats | None) -> None:
        """The chat on screen's last reply: its speed, and the context it used of the loaded
        model's (the one place the context size is shown)."""
        self.speed_status.setText(self.tr("%1 tok/s").replace("%1", f"{stats.tokens_per_second:.1f}") if stats else "")
        if self._facts is None:
            self.context_status.clear()
            return
        if stats is not None and stats.prompt_tokens == 0 and stats.generated_tokens:
            return  # a reply cut off before its server counted the prompt: the last count stands
        used = stats.prompt_tokens + stats.generated_tokens if stats else 0
        if self._facts.context_size:
            self.context_status.setText(
                self.tr("Context: %1 / %2 tokens").replace("%1", f"{used:,}").replace("%2", f"{self._facts.context_size:,}")
            )
            self.context_status.setToolTip(self.tr("How much of the model's context window the conversation used in the last reply"))
        else:
            self.context_status.setText(self.tr("Context: %1 / unknown").replace("%1", f"{used:,}"))
            self.context_status.setToolTip(self.tr(
                "The tokens the conversation used in the last reply; the model server did not say how large its context window is"
            ))

    def _update_ready_state(self) -> None:
        if isinstance(self._loading_source, RemoteModel):
            reason = self.tr("Still connecting to %1.").replace("%1", self._loading_source.server)
        elif self._loading_source is not None:
            reason = self.tr("The model is still loading.")
        elif self._facts is None:
            reason = self.tr("Open a model to start chatting.")
        else:
            reason = ""
        self.composer.set_ready(not reason, reason)
        self.composer.set_image_support(
            model_loaded=self._facts is not None, reads_images=self._facts is not None and self._facts.reads_images,
            server=self._facts.remote.server if self._facts is not None and self._facts.remote else "",
        )
        self.transcript.set_model_ready(not reason, reason)
        self._update_empty_hint()

    def _update_empty_hint(self) -> None:
        empty = not self.transcript.message_widgets()
        no_model = self._facts is None and self._loading_source is None
        first_run = empty and no_model and not self.model_bar.picker.count()
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
        elif self._facts is not None and self._facts.leaves_this_computer:
            hint = self.tr("Ask anything. Replies come from %1, on another computer.").replace("%1", self._facts.remote.server)
        else:
            hint = self.tr("Ask anything. Everything stays on this computer.")
        self.empty_hint.setText(hint)
        self.empty_hint.setVisible(empty and not first_run)
        self.transcript.setVisible(not empty)

    # ------------------------------------------------------------------------------- events

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt API)
        """Every file drag is accepted, so a drop of the wrong kind can say why it is refused;
        the window is outlined while a file hovers over it."""
        if event.mimeData().hasUrls() or carries_images(event.mimeData()):
            event.acceptProposedAction()
            self._set_drop_highlight(True)

    def dragLeaveEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._set_drop_highlight(False)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt API)
        self._set_drop_highlight(False)
        files = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        model = next((path for path in files if path.suffix.lower() == ".gguf"), None)
        if model is not None:
            event.acceptProposedAction()
            self.load_model(model)
            return
        if self.composer.offer_images(event.mimeData()):
            event.acceptProposedAction()
            return
        names = ", ".join(f"“{path.name}”" for path in files[:3]) or self.tr("This item")
        self.error_banner.show_message(
            self.tr("%1 cannot be opened here: drop a model file (.gguf) to chat with it, or images to attach them. Chats are imported with File › Import Chats…").replace("%1", names)
        )

    def _set_drop_highlight(self, on: bool) -> None:
        self.centralWidget().setProperty("dropTarget", on)
        self.centralWidget().style().unpolish(self.centralWidget())
        self.centralWidget().style().polish(self.centralWidget())

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """Asks first while models download; then ends any reply (kept as interrupted), stops
        the core's threads, and saves state."""
        if self._closed:
            super().closeEvent(event)  # closed again (by the toolkit at exit): all was done once
            return
        if not self._confirm_quit_during_downloads():
            event.ignore()
            return
        self._closed = True
        self.sig_closing.emit()
        self._models.shutdown()
        self._settings.window_geometry = bytes(self.saveGeometry().toHex()).decode()
        self.sig_settings_changed.emit()
        super().closeEvent(event)

    def _confirm_quit_during_downloads(self) -> bool:
        active = self._models.active_downloads()
        if not active:
            return True
        names = ", ".join(self._models.display_name_of(progress) for progress in active[:3])
        answer = QMessageBox.question(
            self,
            self.tr("Downloads in progress"),
            self.tr("%1 is still downloading. Quit anyway? The download continues where it stopped the next time you start the app.").replace("%1", names),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        return answer == QMessageBox.StandardButton.Yes


def about_text(runtime_description: str) -> str:
    """Version, and what runs the models (llama.cpp's backend and CPU baseline), for the About box."""
    try:
        version = importlib.metadata.version("qwen-local-chat")
    except importlib.metadata.PackageNotFoundError:
        version = "development"
    return (
        f"<h3>Qwen Local Chat {html.escape(version)}</h3>"
        "<p>Chat with Qwen3.5 models, offline, on this computer.</p>"
        f"<p>llama.cpp: {html.escape(runtime_description)}<br>"
        f"llama-cpp-python {html.escape(importlib.metadata.version('llama-cpp-python'))} · "
        f"Qt {html.escape(qVersion())}</p>"
    )
