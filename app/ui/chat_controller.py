"""The chat pane's controller: the transcript and composer on one side, the chat session on the other.

It forwards what the user asks for (send, with pictures, stop, edit, regenerate, continue, switch
version, delete, thinking on or off, chat settings, the chat's tools, answers to tool calls) to
the session, and shows what the session reports. Pauses in typing the next message are passed on
too, for the session to read it ahead (the session decides whether it does).
It decides nothing about turns: whether a reply may be continued or a message sent is the
session's call, and a refusal comes back as an event. A turn with tool calls is one busy span,
from the question to the last reply's end, however many replies and calls it takes.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QGuiApplication

from app.core.chat.chat_events import (
    ChatSettingsChanged,
    ConversationCreated,
    ConversationOpened,
    ImageReading,
    MessageAdded,
    PromptProgress,
    ReplyCalledTools,
    ToolApprovalRequested,
    ToolCallRunning,
    ToolsMeasured,
    ToolsStarting,
    TurnFailed,
    TurnFinished,
    TurnRefused,
    TurnStarted,
    TurnWaiting,
    TurnWaitingForServer,
)
from app.core.chat.chat_session import ChatSession
from app.core.domain.conversations import MessageState
from app.core.domain.generation import GenerationStats
from app.core.tools.tool_service import ToolService
from app.ui.attachments import Attachment
from app.ui.chat_settings_panel import ChatSettingsPanel
from app.ui.composer_widget import ComposerWidget
from app.ui.event_bridges import SessionBridge, ToolsBridge
from app.ui.stream_coalescer import StreamCoalescer
from app.ui.transcript_view import MessageWidget, TranscriptView

STOP_ANSWER_SECONDS = 2.0  # a reply normally ends within one decoding step of Stop (milliseconds)


class ChatController(QObject):
    sig_conversation_shown = Signal(object)
    """The conversation on screen changed (opened, or a new chat stored): its id, None for a new chat."""
    sig_activity = Signal(str)
    """What the model is doing now, for the status bar ("" when idle)."""
    sig_reply_finished = Signal(object)
    """A reply on screen ended: its stored ``Message`` (with statistics unless it failed)."""
    sig_error = Signal(str)
    """Something the user asked for failed or was refused: a message for the user."""
    sig_thinking_changed = Signal(bool)
    """The user switched thinking on or off (the new default for chats)."""
    sig_busy_changed = Signal(bool)
    """A reply was asked for or is being written (True), or none is (False)."""

    def __init__(
        self,
        session: ChatSession,
        bridge: SessionBridge,
        transcript: TranscriptView,
        composer: ComposerWidget,
        settings_panel: ChatSettingsPanel,
        context_size: Callable[[], int],
        tools: ToolService,
        tools_bridge: ToolsBridge,
        parent: QObject | None = None,
    ) -> None:
        """``context_size()`` is the context the model is loaded with (shown in the panel);
        ``tools`` are the tools a chat may offer (listed in the composer's Tools menu)."""
        super().__init__(parent)
        self._session = session
        self._tools = tools
        self.transcript = transcript
        self.composer = composer
        self._panel = settings_panel
        self._context_size = context_size
        self.conversation_id: int | None = None
        self._editing_question_id: int | None = None
        self._draft_before_editing = ""  # what the composer held when editing began
        # The pictures of a message sent and not yet stored: given back if the turn is refused.
        self._attachments_sent: tuple[Attachment, ...] = ()
        self._busy = False
        self._streaming_id: int | None = None
        self._streaming_widget: MessageWidget | None = None
        self._tool_calling_ids: list[int] = []  # the turn's replies that called tools (no actions yet)
        self._reading_prompt = False  # the status bar shows prompt progress, not "Generating…"
        self._stop_watch = QTimer(self)  # how long a Stop may go unanswered before we say so
        self._stop_watch.setSingleShot(True)
        self._stop_watch.setInterval(round(STOP_ANSWER_SECONDS * 1000))
        self._stop_watch.timeout.connect(self._on_stop_unanswered)
        self._coalescer = StreamCoalescer(self)
        self._coalescer.sig_flushed.connect(self._show_streamed_text)
        # The chat's tool choice (on, switched off) whose cost was last asked for: a chat opened
        # with the same choice costs the same, and the session measures a choice made here itself.
        self._measured_choice: tuple[bool, tuple[str, ...]] | None = None
        # ToolsChanged comes in bursts (a server starting, then ready): one refresh per pass.
        self._tools_refresh = QTimer(self)
        self._tools_refresh.setSingleShot(True)
        self._tools_refresh.setInterval(0)
        self._tools_refresh.timeout.connect(self._refresh_tools)

        composer.sig_send.connect(self.send)
        composer.sig_stop.connect(self.stop)
        composer.sig_cancel_edit.connect(self.cancel_edit)
        composer.sig_typing_paused.connect(self._on_typing_paused)
        composer.thinking_switch.toggled.connect(self._on_thinking_toggled)
        transcript.sig_message_action.connect(self._on_message_action)
        transcript.sig_tool_call_answered.connect(session.answer_tool_call)
        settings_panel.sig_changed.connect(session.update_settings)
        composer.tools_button.sig_choice_changed.connect(self._on_tool_choice_changed)
        tools_bridge.sig_tools_changed.connect(self._tools_refresh.start)
        composer.tools_button.show_tools(tools.known_tools(), tools.servers())

        bridge.sig_conversation_opened.connect(self._on_conversation_opened)
        bridge.sig_conversation_created.connect(self._on_conversation_created)
        bridge.sig_message_added.connect(self._on_message_added)
        bridge.sig_chat_settings_changed.connect(self._on_chat_settings_changed)
        bridge.sig_turn_started.connect(self._on_turn_started)
        bridge.sig_turn_waiting.connect(self._on_turn_waiting)
        bridge.sig_turn_waiting_for_server.connect(self._on_turn_waiting_for_server)
        bridge.sig_prompt_progress.connect(self._on_prompt_progress)
        bridge.sig_image_reading.connect(self._on_image_reading)
        bridge.sig_text.connect(self._on_text)
        bridge.sig_turn_finished.connect(self._on_turn_ended)
        bridge.sig_turn_failed.connect(self._on_turn_ended)
        bridge.sig_turn_refused.connect(self._on_turn_refused)
        bridge.sig_tools_starting.connect(self._on_tools_starting)
        bridge.sig_reply_called_tools.connect(self._on_reply_called_tools)
        bridge.sig_tool_approval_requested.connect(self._on_tool_approval_requested)
        bridge.sig_tool_call_running.connect(self._on_tool_call_running)
        bridge.sig_tools_measured.connect(self._on_tools_measured)
        bridge.sig_problem.connect(lambda event: self.sig_error.emit(event.message))

    # ------------------------------------------------------------------------------ intents

    @property
    def is_busy(self) -> bool:
        """A reply was asked for and has not ended yet."""
        return self._busy

    def open(self, conversation_id: int | None) -> None:
        self._session.open_conversation(conversation_id)

    def stop(self) -> None:
        if self._busy:
            self._stop_reply()

    def escape(self) -> None:
        """Esc: stops a reply being written, else gives up editing a question."""
        if self._busy:
            self._stop_reply()
        elif self._editing_question_id is not None:
            self.cancel_edit()

    def _stop_reply(self) -> None:
        self._session.stop()
        if not self._stop_watch.isActive():
            self._stop_watch.start()

    def _on_stop_unanswered(self) -> None:
        """Stop was pressed, and the reply has still not ended: say so rather than look dead."""
        if self._busy:
            self.sig_activity.emit(self.tr("Stopping…"))
            self.sig_error.emit(self.tr(
                "The model has not stopped yet: llama.cpp is inside a step that cannot be interrupted. "
                "The reply ends as soon as that step returns; you can keep reading, or close the app."
            ))

    def cancel_edit(self) -> None:
        """Leaves the question as it was and gives the composer back what it held before."""
        self._end_editing()
        self.composer.edit.setPlainText(self._draft_before_editing)

    def _end_editing(self) -> None:
        widget = self.transcript.widget_for(self._editing_question_id) if self._editing_question_id is not None else None
        if widget is not None:
            widget.set_editing(False)
        self._editing_question_id = None
        self.composer.set_editing(False)

    def regenerate_last_reply(self) -> None:
        if not self._busy:
            self._session.regenerate_last_reply()

    def continue_last_reply(self) -> None:
        """Continues the last reply when it stopped at its length limit (the session decides)."""
        if not self._busy:
            self._session.continue_last_reply()

    def last_reply_stats(self) -> GenerationStats | None:
        """The figures of the conversation's last reply on screen, None if it has none."""
        replies = [widget for widget in self.transcript.message_widgets() if widget.role == "assistant"]
        return replies[-1].stats if replies else None

    def copy_last_answer(self) -> None:
        replies = [widget for widget in self.transcript.message_widgets() if widget.role == "assistant"]
        if replies:
            QGuiApplication.clipboard().setText(replies[-1].answer)
            replies[-1].show_copied()

    def send(self, text: str, attachments: tuple[Attachment, ...] = ()) -> None:
        """Sends ``text`` with the pictures ``attachments`` (or the edited question, which keeps
        its own), as Enter in the composer does."""
        self._set_busy(True)
        editing = self._editing_question_id
        self._end_editing()
        if editing is not None:
            self._session.edit_and_resend(editing, text)
        else:
            self._attachments_sent = attachments
            self._session.send(text, [attachment.image for attachment in attachments])

    def _on_typing_paused(self, text: str, pictures: tuple) -> None:
        if self._busy:  # the message is offered again when the reply ends (the composer's pause)
            return
        if self._editing_question_id is not None:
            self._session.read_while_typing(text, replacing=self._editing_question_id)
        else:
            self._session.read_while_typing(text, [attachment.image for attachment in pictures])

    def _on_message_action(self, action: str, message_id: int) -> None:
        if self._busy:
            return
        widget = self.transcript.widget_for(message_id)
        if action == "copy" and widget is not None:
            QGuiApplication.clipboard().setText(widget.answer)
            widget.show_copied()
        elif action == "delete":
            self._session.delete_message(message_id)
        elif action == "continue":
            self._set_busy(True)
            self._session.continue_reply(message_id)
        elif action == "regenerate":
            self._set_busy(True)
            self._session.regenerate(message_id)
        elif action == "edit" and widget is not None:
            if self._editing_question_id is None:
                self._draft_before_editing = self.composer.edit.toPlainText()
            else:
                self._end_editing()
            self._editing_question_id = message_id
            widget.set_editing(True)
            self.composer.edit.setPlainText(widget.answer)
            self.composer.set_editing(True)
            self.composer.edit.setFocus()
        elif action in ("previous", "next"):
            self._session.switch_alternative(message_id, -1 if action == "previous" else 1)

    def _on_tool_choice_changed(self, enabled: bool, switched_off: tuple[str, ...]) -> None:
        self._measured_choice = (enabled, switched_off)  # set_chat_tools measures it
        self._session.set_chat_tools(enabled, switched_off)

    def _refresh_tools(self) -> None:
        """The tools there are changed (settings, a server started): the menu lists them again,
        and their cost is counted again."""
        self.composer.tools_button.show_tools(self._tools.known_tools(), self._tools.servers())
        self._session.measure_tools()

    def _on_thinking_toggled(self, checked: bool) -> None:
        self._session.set_thinking(checked)
        self._panel.set_thinking(checked)
        self.sig_thinking_changed.emit(checked)

    # ------------------------------------------------------------------------------- events

    def _on_conversation_opened(self, event: ConversationOpened) -> None:
        view = event.view
        conversation_id = view.conversation.id if view.conversation else None
        if conversation_id != self.conversation_id and self._editing_question_id is not None:
            self._end_editing()
        self.conversation_id = conversation_id
        self._streaming_widget = None  # its transcript is being replaced
        self.transcript.set_messages(list(view.messages), view.alternative_position)
        if self._streaming_id is not None:
            self._streaming_widget = self.transcript.widget_for(self._streaming_id)
        self.sig_conversation_shown.emit(conversation_id)

    def _on_conversation_created(self, event: ConversationCreated) -> None:
        self.conversation_id = event.conversation.id
        self.sig_conversation_shown.emit(self.conversation_id)

    def _on_message_added(self, event: MessageAdded) -> None:
        if event.message.role == "user":
            self._attachments_sent = ()  # stored with the question
        if event.message.conversation_id == self.conversation_id:
            self.transcript.add_message(event.message)
            self.sig_conversation_shown.emit(self.conversation_id)

    def _on_chat_settings_changed(self, event: ChatSettingsChanged) -> None:
        switch = self.composer.thinking_switch
        switch.blockSignals(True)
        switch.setChecked(event.thinking)
        switch.blockSignals(False)
        self._panel.show_settings(event.settings, event.system_prompt, self._context_size(), thinking=event.thinking)
        choice = (event.settings.tools_enabled, event.settings.tools_switched_off)
        self.composer.tools_button.show_choice(*choice)
        if choice != self._measured_choice:
            self._measured_choice = choice
            self._session.measure_tools()

    def _on_tools_measured(self, event: ToolsMeasured) -> None:
        self.composer.tools_button.show_measure(event.count, event.tokens)

    def _on_turn_started(self, event: TurnStarted) -> None:
        self._set_busy(True)
        self._coalescer.flush()
        self._streaming_id = event.reply.id
        self._streaming_widget = self.transcript.widget_for(event.reply.id)
        if self._streaming_widget is not None:
            self._streaming_widget.set_outcome(MessageState.STREAMING, None, None)
        self.transcript.refresh_actions()
        self.sig_activity.emit(self.tr("Generating…"))

    def _on_tools_starting(self, event: ToolsStarting) -> None:
        if event.message_id == self._streaming_id:
            self._reading_prompt = True  # the first text or progress replaces this line
            self.sig_activity.emit(self.tr("Starting tool servers…"))

    def _on_reply_called_tools(self, event: ReplyCalledTools) -> None:
        """One step of the turn ended with calls: they show, and the turn (busy) goes on; the
        reply stays the one a Stop now ends."""
        reply = event.reply
        if reply.id != self._streaming_id:
            return
        self._coalescer.flush()
        widget = self.transcript.show_tool_calls(reply)
        if widget is not None:
            widget.set_outcome(reply.state, reply.stats, reply.error)
            widget.set_turn_goes_on(True)
            self._tool_calling_ids.append(reply.id)
            for block in widget.tool_blocks():
                block.show_queued()

    def _on_tool_approval_requested(self, event: ToolApprovalRequested) -> None:
        block = self.transcript.tool_block(event.call.call_id)
        if block is not None:
            block.show_approval(event.server, event.description)
        if event.message_id == self._streaming_id:
            self.sig_activity.emit(self.tr("Waiting for your approval"))

    def _on_tool_call_running(self, event: ToolCallRunning) -> None:
        block = self.transcript.tool_block(event.call_id)
        if block is not None:
            block.show_running(event.server)
        if event.message_id == self._streaming_id and block is not None:
            self.sig_activity.emit(self.tr("Running %1…").replace("%1", block.call.name))

    def _on_turn_waiting(self, event: TurnWaiting) -> None:
        if event.message_id == self._streaming_id:
            self._reading_prompt = True  # the first text or progress replaces this line
            self.sig_activity.emit(self.tr("Waiting for a reply to another program (local API) to end…"))

    def _on_turn_waiting_for_server(self, event: TurnWaitingForServer) -> None:
        """The server has the request and has not begun the reply (it reads the conversation,
        or serves others first): the reply and the status bar say so until its text comes."""
        if event.message_id == self._streaming_id:
            self._reading_prompt = True  # the first text replaces this line
            waiting = self.tr("Waiting for %1…").replace("%1", event.server or self.tr("the model server"))
            if self._streaming_widget is not None:
                self._streaming_widget.show_waiting(waiting)
            self.sig_activity.emit(waiting)

    def _on_prompt_progress(self, event: PromptProgress) -> None:
        if event.message_id == self._streaming_id and event.total:
            self._reading_prompt = True
            self.sig_activity.emit(
                self.tr("Reading the conversation… %1 %").replace("%1", str(round(100 * event.done / event.total)))
            )

    def _on_image_reading(self, event: ImageReading) -> None:
        if event.message_id == self._streaming_id:
            self._reading_prompt = True
            percent = str(round(100 * event.fraction))
            if event.count == 1:
                activity = self.tr("Reading image… %1 %").replace("%1", percent)
            else:
                activity = (
                    self.tr("Reading image %1 of %2… %3 %")
                    .replace("%1", str(event.number)).replace("%2", str(event.count)).replace("%3", percent)
                )
            self.sig_activity.emit(activity)

    def _on_text(self, message_id: int, reasoning: str, answer: str) -> None:
        if message_id == self._streaming_id:
            if self._reading_prompt:
                self._reading_prompt = False
                self.sig_activity.emit(self.tr("Generating…"))
            self._coalescer.add(reasoning, answer)

    def _show_streamed_text(self, reasoning: str, answer: str) -> None:
        if self._streaming_widget is not None:
            self._streaming_widget.append(reasoning, answer)

    def _on_turn_ended(self, event: TurnFinished | TurnFailed) -> None:
        reply = event.reply
        if reply.id == self._streaming_id:
            self._coalescer.flush()
            widget = self.transcript.widget_for(reply.id)
            if widget is not None:
                widget.set_outcome(reply.state, reply.stats, reply.error)
                for block in widget.tool_blocks():
                    if block.result is None:  # stopped as the reply ended: its calls never ran
                        block.show_not_run()
            self._streaming_id = self._streaming_widget = None
            for message_id in self._tool_calling_ids:
                earlier = self.transcript.widget_for(message_id)
                if earlier is not None:
                    earlier.set_turn_goes_on(False)
            self._tool_calling_ids = []
            self._set_busy(False)
            self.transcript.refresh_actions()
            self.sig_activity.emit("")
            self.sig_reply_finished.emit(reply)
        if isinstance(event, TurnFailed):
            self.sig_error.emit(event.message)
        elif reply.conversation_id == self.conversation_id:
            self.transcript.show_context_boundary(event.first_kept_message_id, event.omitted_messages)

    def _on_turn_refused(self, event: TurnRefused) -> None:
        if self._streaming_id is None:
            self._set_busy(False)
        if event.text and not self.composer.edit.toPlainText():
            self.composer.edit.setPlainText(event.text)  # nothing the user wrote is lost
        self.composer.give_back(self._attachments_sent)
        self._attachments_sent = ()
        self.sig_error.emit(event.reason)

    def _set_busy(self, busy: bool) -> None:
        if not busy:
            self._stop_watch.stop()
        if busy != self._busy:
            self._busy = busy
            self.composer.set_generating(busy)
            self.sig_busy_changed.emit(busy)
