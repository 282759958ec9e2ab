"""Qt bridges: the core's events, which arrive on its worker threads, as signals on the GUI thread.

Each bridge lives on the GUI thread and subscribes to one core service. A core thread calling a
bridge emits its signal there; Qt sees that the receiving objects live on another thread and
queues the call, so every slot runs on the GUI thread, in the order the events happened. The
bridges hold no state and make no decision: one signal per event type, carrying the event.

A signal emitted before a slot is connected reaches nobody, and the services start reporting
as soon as they are subscribed to (the library sends its list at once). So a bridge subscribes
only in :meth:`start`, called once everything is connected.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core.api.local_api_service import LocalApiService, LocalApiState
from app.core.api.request_log import ApiRequestLog, ApiRequestRecord
from app.core.chat import chat_events
from app.core.chat.chat_session import ChatSession
from app.core.conversations import conversation_events
from app.core.conversations.conversation_library import ConversationLibrary
from app.core.engines import engine_events
from app.core.engines.engine_host import EngineHost
from app.core.engines.remote.model_servers import ModelServer, ModelServers, ServerListed, ServersChanged
from app.core.tools.tool_service import ToolsChanged, ToolService


class _Bridge(QObject):
    """Emits, for each event, the signal its type maps to."""

    def __init__(self, subscribe: Callable[[Callable[[object], None]], None], parent: QObject | None) -> None:
        super().__init__(parent)
        self._subscribe = subscribe
        self._signals: dict[type, Signal] = {}

    def start(self) -> None:
        """Starts passing the service's events on; connect every slot first."""
        self._subscribe(self._receive)

    def _route(self, event_type: type, signal) -> None:
        self._signals[event_type] = signal

    def _receive(self, event: object) -> None:  # any thread
        signal = self._signals.get(type(event))
        if signal is not None:
            signal.emit(event)


class EngineBridge(_Bridge):
    """The engine host's model events."""

    sig_model_checking = Signal(object)
    """``ModelChecking``: how far the first-use check of a model file has come."""
    sig_model_loading = Signal(object)
    """``ModelLoading``: how far loading a model has come."""
    sig_model_loaded = Signal(object)
    """``ModelLoaded``: a model is ready; its facts."""
    sig_model_load_failed = Signal(object)
    """``ModelLoadFailed``: the file could not be loaded (a message for the user); no model now."""

    def __init__(self, host: EngineHost, parent: QObject | None = None) -> None:
        super().__init__(host.subscribe, parent)
        self._route(engine_events.ModelChecking, self.sig_model_checking)
        self._route(engine_events.ModelLoading, self.sig_model_loading)
        self._route(engine_events.ModelLoaded, self.sig_model_loaded)
        self._route(engine_events.ModelLoadFailed, self.sig_model_load_failed)


class SessionBridge(_Bridge):
    """The chat session's events (see ``app.core.chat.chat_events`` for their order)."""

    sig_conversation_opened = Signal(object)
    """``ConversationOpened``: show this conversation (or branch) from scratch."""
    sig_conversation_created = Signal(object)
    """``ConversationCreated``: the new chat is stored; it is the one open."""
    sig_message_added = Signal(object)
    """``MessageAdded``: a message now ends the open branch."""
    sig_chat_settings_changed = Signal(object)
    """``ChatSettingsChanged``: the open conversation's settings and thinking mode."""
    sig_turn_started = Signal(object)
    """``TurnStarted``: a reply is being written."""
    sig_turn_waiting = Signal(object)
    """``TurnWaiting``: the reply waits for the engine to end a reply to another program."""
    sig_turn_waiting_for_server = Signal(object)
    """``TurnWaitingForServer``: the reply was asked of a model server, which has not begun it
    yet; its text (or its end) comes next."""
    sig_prompt_progress = Signal(object)
    """``PromptProgress``: how much of the prompt the model has read."""
    sig_image_reading = Signal(object)
    """``ImageReading``: the model is reading (encoding) one of the prompt's new pictures, and
    how far it has come; the prompt's progress follows."""
    sig_text = Signal(int, str, str)
    """New text of a reply: (message id, reasoning delta, answer delta); one of them is empty."""
    sig_turn_finished = Signal(object)
    """``TurnFinished``: the reply ended and is stored."""
    sig_turn_failed = Signal(object)
    """``TurnFailed``: no reply could be written."""
    sig_turn_refused = Signal(object)
    """``TurnRefused``: nothing was started; the reason and the user's text."""
    sig_tools_starting = Signal(object)
    """``ToolsStarting``: the reply waits for MCP servers to start before it is written."""
    sig_reply_called_tools = Signal(object)
    """``ReplyCalledTools``: a reply ended asking for tool calls (its parts); the turn goes on."""
    sig_tool_approval_requested = Signal(object)
    """``ToolApprovalRequested``: a call waits for the person's answer; nothing runs until then."""
    sig_tool_call_running = Signal(object)
    """``ToolCallRunning``: an allowed call runs now."""
    sig_tools_measured = Signal(object)
    """``ToolsMeasured``: how many tools the open chat offers and the prompt tokens they take."""
    sig_next_turn_prepared = Signal(object)
    """``NextTurnPrepared``: the conversation was evaluated ahead of the next question."""
    sig_problem = Signal(object)
    """``SessionProblem``: something the user must be told."""

    def __init__(self, session: ChatSession, parent: QObject | None = None) -> None:
        super().__init__(session.subscribe, parent)
        for event_type, signal in (
            (chat_events.ConversationOpened, self.sig_conversation_opened),
            (chat_events.ConversationCreated, self.sig_conversation_created),
            (chat_events.MessageAdded, self.sig_message_added),
            (chat_events.ChatSettingsChanged, self.sig_chat_settings_changed),
            (chat_events.TurnStarted, self.sig_turn_started),
            (chat_events.TurnWaiting, self.sig_turn_waiting),
            (chat_events.TurnWaitingForServer, self.sig_turn_waiting_for_server),
            (chat_events.PromptProgress, self.sig_prompt_progress),
            (chat_events.ImageReading, self.sig_image_reading),
            (chat_events.TurnFinished, self.sig_turn_finished),
            (chat_events.TurnFailed, self.sig_turn_failed),
            (chat_events.TurnRefused, self.sig_turn_refused),
            (chat_events.ToolsStarting, self.sig_tools_starting),
            (chat_events.ReplyCalledTools, self.sig_reply_called_tools),
            (chat_events.ToolApprovalRequested, self.sig_tool_approval_requested),
            (chat_events.ToolCallRunning, self.sig_tool_call_running),
            (chat_events.ToolsMeasured, self.sig_tools_measured),
            (chat_events.NextTurnPrepared, self.sig_next_turn_prepared),
            (chat_events.SessionProblem, self.sig_problem),
        ):
            self._route(event_type, signal)

    def _receive(self, event: object) -> None:  # store or engine thread
        # The hot path: a plain (int, str, str) signal per piece of text, no event object queued.
        if isinstance(event, chat_events.AnswerDelta):
            self.sig_text.emit(event.message_id, "", event.text)
        elif isinstance(event, chat_events.ReasoningDelta):
            self.sig_text.emit(event.message_id, event.text, "")
        else:
            super()._receive(event)


class LibraryBridge(_Bridge):
    """The conversation library's events."""

    sig_conversations_changed = Signal(object)
    """``ConversationsChanged``: the conversation list as it is now."""
    sig_conversation_deleted = Signal(object)
    """``ConversationDeleted``: a conversation was deleted and can be restored."""
    sig_conversation_restored = Signal(object)
    """``ConversationRestored``: the deleted conversation is back."""
    sig_export_finished = Signal(object)
    """``ExportFinished``: conversations were written to a file."""
    sig_import_finished = Signal(object)
    """``ImportFinished``: conversations were read from a file and stored."""
    sig_import_needs_choice = Signal(object)
    """``ImportNeedsChoice``: the file repeats stored conversations; nothing imported yet."""
    sig_search_finished = Signal(object)
    """``SearchFinished``: the messages that match a query."""
    sig_operation_failed = Signal(object)
    """``LibraryOperationFailed``: something asked for could not be done; nothing changed."""

    def __init__(self, library: ConversationLibrary, parent: QObject | None = None) -> None:
        super().__init__(library.subscribe, parent)
        for event_type, signal in (
            (conversation_events.ConversationsChanged, self.sig_conversations_changed),
            (conversation_events.ConversationDeleted, self.sig_conversation_deleted),
            (conversation_events.ConversationRestored, self.sig_conversation_restored),
            (conversation_events.ExportFinished, self.sig_export_finished),
            (conversation_events.ImportFinished, self.sig_import_finished),
            (conversation_events.ImportNeedsChoice, self.sig_import_needs_choice),
            (conversation_events.SearchFinished, self.sig_search_finished),
            (conversation_events.LibraryOperationFailed, self.sig_operation_failed),
        ):
            self._route(event_type, signal)


class LocalApiBridge(_Bridge):
    """The local API server's state."""

    sig_api_state_changed = Signal(object)
    """``LocalApiState``: the API started, stopped, failed to start (its ``problem``), or its
    running and queued counts changed."""

    def __init__(self, api: LocalApiService, parent: QObject | None = None) -> None:
        super().__init__(api.subscribe, parent)
        self._route(LocalApiState, self.sig_api_state_changed)


class ApiRequestLogBridge(_Bridge):
    """The local API's request log."""

    sig_request_logged = Signal(object)
    """``ApiRequestRecord``: one more request was answered (its counts, never its content)."""

    def __init__(self, log: ApiRequestLog, parent: QObject | None = None) -> None:
        super().__init__(log.subscribe, parent)
        self._route(ApiRequestRecord, self.sig_request_logged)


class ToolsBridge(_Bridge):
    """The tool service's changes."""

    sig_tools_changed = Signal(object)
    """``ToolsChanged``: servers, their status or the tool settings changed: read them again."""

    def __init__(self, tools: ToolService, parent: QObject | None = None) -> None:
        super().__init__(tools.subscribe, parent)
        self._route(ToolsChanged, self.sig_tools_changed)


class ModelServersBridge(_Bridge):
    """The model servers' changes and answers, and the answers to connection tests."""

    sig_servers_changed = Signal(object)
    """``ServersChanged``: servers were added, changed or removed, or offline mode changed:
    read them again."""
    sig_server_listed = Signal(object)
    """``ServerListed``: what one server answers now when asked for its models (or that it is
    being asked)."""
    sig_tested = Signal(int, object)
    """A connection test asked for with :meth:`test` ended: (the number ``test`` returned, the
    ``ServerListing`` with the models the server lists or its problem)."""

    def __init__(self, servers: ModelServers, parent: QObject | None = None) -> None:
        super().__init__(servers.subscribe, parent)
        self._servers = servers
        self._tests = itertools.count(1)
        self._route(ServersChanged, self.sig_servers_changed)
        self._route(ServerListed, self.sig_server_listed)

    def test(self, server: ModelServer, key: str | None, *, saved_key_of: str | None = None) -> int:
        """Tests ``server`` as set up in a form (``key`` None: the key saved for
        ``saved_key_of``, by default ``server``'s name) and returns the number its
        ``sig_tested`` will carry. A form that cannot be tried is answered before this
        returns: connect to ``sig_tested`` queued, to hear it after the number."""
        number = next(self._tests)
        self._servers.test(server, key, lambda listing: self.sig_tested.emit(number, listing), saved_key_of=saved_key_of)
        return number
