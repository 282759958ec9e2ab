"""The chat session: one conversation at a time, and every turn in it from question to saved reply.

Every client drives this one service: the window, tests and, later, other front ends. It
decides what a turn is (send, regenerate, continue, edit and resend), which messages the model
sees (``prompt_assembly``), records the reply as it streams, and prepares the next turn while the
user reads. It knows no Qt: clients learn what happened from events (``chat_events``).

Threads. Requests may come from any thread; each becomes a job for the store worker, which runs
them one at a time, so the session's state (the conversation open, its branch and settings, the
running turn) is only ever touched on the worker thread and needs no lock. The reply itself is
written on the engine host's thread: its text events go to listeners from there, straight away,
and the recorder hands a save to the store worker every half second. The end of a turn is again
a store job. Listeners are called on either thread and must only hand events on.

Stopping only sets the turn's cancel flag, the one thing that crosses threads; the engine ends
the reply within one decode step and the turn finishes as usual, its text kept.

Tools. With tools on for the conversation, a turn may take several steps: a reply that calls
tools is stored with its calls (``ToolCallPart``), each call waits for the person's answer
(``answer_tool_call``) unless its tool is always allowed, runs on the tool service's threads,
and its result is stored as a ``tool`` message after it; once every call is answered the model
writes the next reply, which reads only the new results (the engine kept the rest). A turn makes
at most the tool service's step limit of calls. Stop ends it at any step: the model, a call
waiting for approval, or a call running; calls left are answered "stopped", never run. The
model is always told what became of a call (denied, failed, timed out), so history stays valid.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from app.core.chat import prompt_assembly, tool_steps
from app.core.chat.chat_events import (
    AnswerDelta,
    ChatSettingsChanged,
    ConversationCreated,
    ConversationOpened,
    ConversationView,
    ImageReading,
    MessageAdded,
    NextTurnPrepared,
    PromptProgress,
    ReasoningDelta,
    ReplyCalledTools,
    SessionEvent,
    SessionProblem,
    ToolApproval,
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
from app.core.chat.chat_settings import ChatSettings
from app.core.chat.reply_recorder import ReplyRecorder
from app.core.conversations.conversation_store import ConversationStore, NotFoundError
from app.core.conversations.store_worker import StoreWorker
from app.core.domain.conversations import (
    MAX_MESSAGE_CHARACTERS,
    Conversation,
    ImagePart,
    Message,
    MessageState,
    ToolCallPart,
    ToolOutcome,
    ToolResultPart,
)
from app.core.domain.generation import (
    DEFAULT_IMAGE_DETAIL,
    IMAGE_DETAIL_TOKENS,
    NO_PROJECTOR_MESSAGE,
    ChatImage,
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    ModelFacts,
    StopReason,
    ToolCall,
)
from app.core.engines.engine_events import (
    GenerationEvent,
    GenerationFailed,
    GenerationFinished,
    GenerationStarted,
    ImageEncoding,
    ModelEvent,
    ModelLoaded,
    ModelLoadFailed,
    PromptEvaluated,
    TextGenerated,
    WaitingForServer,
)
from app.core.engines.engine_host import EngineHost, Priority
from app.core.engines.tool_calls import OPEN as TOOL_CALL_OPEN
from app.core.images.image_intake import PreparedImage
from app.core.models.hardware_probe import runs_on_battery
from app.core.listeners import Listeners
from app.core.tools.tool_catalog import OfferedTools, ToolDefinition, ToolRun, offer
from app.core.tools.tool_service import ToolCallHandle, ToolService

logger = logging.getLogger(__name__)


@dataclass
class _Turn:
    """A reply being written, and the tool calls of its turn."""

    conversation_id: int
    reply: Message
    request: GenerationRequest
    recorder: ReplyRecorder
    kept_message_ids: list[int]  # store ids of the messages in the prompt, in order
    calls_made: int = 0  # tool calls the turn (one question) has run or answered before this reply
    tools: OfferedTools = field(default_factory=OfferedTools)
    pending: list[ToolCallPart] = field(default_factory=list)  # the reply's calls not yet answered
    awaiting: ToolCallPart | None = None  # the call waiting for the person's approval
    running: ToolCallHandle | None = None  # the call running now
    last_message: Message | None = None  # the turn's newest message: the next one follows it
    limit_reached: bool = False
    continued: Message | None = None  # the reply as it was before this turn began continuing it


class ChatSession:
    """The conversation a client is having; every method may be called from any thread."""

    def __init__(
        self,
        worker: StoreWorker,
        host: EngineHost,
        *,
        default_thinking: bool | None = None,
        tools: ToolService | None = None,
        on_battery: Callable[[], bool] = runs_on_battery,
    ) -> None:
        """``default_thinking`` is the thinking choice for new chats (None: the model's own);
        ``tools`` the tools replies may call (None: none, whatever a chat's settings say);
        ``on_battery`` says whether the computer runs on its battery now."""
        self._worker = worker
        self._host = host
        self._tools = tools
        self._listeners: Listeners[SessionEvent] = Listeners()
        self._closing = False
        self._reads_while_typing = True  # flags any thread may flip; read on the worker
        self._reads_on_battery = False
        self._on_battery = on_battery
        # Worker-thread state:
        self._default_thinking = default_thinking
        self._facts: ModelFacts | None = host.facts
        self._conversation: Conversation | None = None
        self._path: list[Message] = []
        self._settings = ChatSettings(enable_thinking=default_thinking)
        self._system_prompt = ""
        self._image_token_limit = IMAGE_DETAIL_TOKENS[DEFAULT_IMAGE_DETAIL]
        # Read from other threads by stop() (a reference read is atomic); replaced on the worker.
        self._turn: _Turn | None = None
        host.subscribe(self._on_model_event)

    def subscribe(self, listener: Callable[[SessionEvent], None]) -> None:
        self._listeners.add(listener)

    # ------------------------------------------------------------------------------ requests

    def open_conversation(self, conversation_id: int | None) -> None:
        """Shows a stored conversation, or a new empty chat (None), stopping any reply: a reply
        belongs to its conversation. Ends with ``ConversationOpened``."""

        def open_(store: ConversationStore) -> None:
            self._stop_turn(store)
            if self._path and (self._conversation is None or self._conversation.id != conversation_id):
                self._host.keep_states()  # the chat left now resumes from its state later
            if conversation_id is None:
                self._conversation, self._path = None, []
                self._settings, self._system_prompt = self._new_chat_settings(), ""
            else:
                self._conversation = store.get_conversation(conversation_id)
                self._path = store.messages(conversation_id)
                self._settings = ChatSettings.from_dict(self._conversation.generation_settings)
                self._system_prompt = self._conversation.system_prompt
            # Its saved state is asked for first: restoring it is under way (queued on the
            # engine) by the time anyone hears that the chat is open, and is read while it is read.
            self._prepare_next_turn(store, saved_only=True)
            self._show(store)
            self._emit_settings()

        self._run(open_)

    def send(self, text: str, images: Sequence[PreparedImage] = ()) -> None:
        """Asks the model about ``text`` and ``images`` (checked by ``image_intake``) at the end
        of the open conversation (storing a new chat first). The images are kept in the store,
        once each, before the question that shows them."""
        images = tuple(images)

        def send(store: ConversationStore) -> None:
            if not self._may_start(text, images=bool(images)):
                return
            parts = tuple(store.save_image(image.data, image.media_type) for image in images)
            title = prompt_assembly.title_from(text) if text.strip() else _image_title(len(images))
            if self._conversation is None:
                self._conversation = store.create_conversation(
                    title=title,
                    model=self._facts.name,
                    system_prompt=self._system_prompt,
                    generation_settings=self._settings.as_dict(),
                )
                self._emit(ConversationCreated(self._conversation))
            else:
                if not self._conversation.title:
                    store.rename_conversation(self._conversation.id, title)
                store.update_conversation(self._conversation.id, model=self._facts.name)
            question = store.add_message(self._conversation.id, "user", text, parts=parts)
            self._path.append(question)
            self._emit(MessageAdded(question))
            self._start_reply(store)

        self._run(send, text)

    def edit_and_resend(self, question_id: int, text: str) -> None:
        """Asks ``text`` in place of the question ``question_id``, with the same images; the old
        question stays as an alternative, with everything that followed it."""

        def edit(store: ConversationStore) -> None:
            position = self._position(question_id, role="user")
            original = self._path[position] if position is not None else None
            shows_images = original is not None and any(isinstance(part, ImagePart) for part in original.parts)
            if not self._may_start(text, images=shows_images):
                return
            if original is None:
                self._emit(TurnRefused("That question is no longer in this chat.", text))
                return
            question = store.add_message(
                self._conversation.id, "user", text, parent_id=original.parent_id, parts=original.parts
            )
            self._path = self._path[:position] + [question]
            self._start_reply(store, show_branch=True)

        self._run(edit, text)

    def regenerate(self, reply_id: int) -> None:
        """Writes the reply ``reply_id`` again; the earlier one stays as an alternative ("1/2")."""
        self._run(lambda store: self._regenerate(store, reply_id))

    def regenerate_last_reply(self) -> None:
        def regenerate(store: ConversationStore) -> None:
            replies = [message for message in self._path if message.role == "assistant"]
            if replies:
                self._regenerate(store, replies[-1].id)

        self._run(regenerate)

    def continue_reply(self, reply_id: int) -> None:
        """Carries on writing a reply that stopped at its length limit, into the same message."""
        self._run(lambda store: self._continue(store, reply_id))

    def continue_last_reply(self) -> None:
        """Continues the last reply if it stopped at its length limit (else does nothing)."""

        def continue_(store: ConversationStore) -> None:
            if self._path and prompt_assembly.can_continue(self._path, self._path[-1].id):
                self._continue(store, self._path[-1].id)

        self._run(continue_)

    def read_while_typing(
        self, text: str, images: Sequence[PreparedImage] = (), *, replacing: int | None = None
    ) -> None:
        """The person paused while writing ``text``, the open chat's next message, with
        ``images`` attached (or, with ``replacing``, an edit of that question, which keeps its
        images): the engine reads, when idle, as much of the next prompt as is certain, the
        pictures included, so that sending it leaves only the rest to evaluate. Nothing while a
        reply is written, or when switched off."""
        images = tuple(images)

        def read(store: ConversationStore) -> None:
            if not self._reads_while_typing or self._facts is None or self._turn is not None or self._closing:
                return
            if not self._reads_on_battery and self._on_battery():
                return  # typing on throws the drafts read away: battery spent for nothing
            if len(text) > MAX_MESSAGE_CHARACTERS or not (text.strip() or images or replacing is not None):
                return
            if images and not self._facts.reads_images:
                return  # sending it is refused: nothing to read ahead
            path = self._path
            if replacing is not None:
                position = self._position(replacing, role="user")
                if position is None:
                    return
                path = path[: position + 1]
            messages, _ = prompt_assembly.prompt_messages(self._system_prompt, path, _image_reader(store))
            if replacing is not None:  # the question as edited so far, with its images
                typed = replace(messages.pop(), content=text)
            else:
                typed = ChatMessage("user", text, images=tuple(ChatImage(image.sha256, image.data) for image in images))
            request = self._next_turn_request(messages)
            self._host.prepare_next_turn(request, lambda evaluated: self._emit(NextTurnPrepared(evaluated)), typed=typed)

        self._run(read)

    def set_read_while_typing(self, enabled: bool, *, on_battery: bool = False) -> None:
        """Whether ``read_while_typing`` reads (off: the message is read once it is sent, which
        saves the work of reading drafts), and whether it does so while the computer runs on
        its battery (by default not: typing on, the drafts read are work thrown away)."""
        self._reads_while_typing, self._reads_on_battery = enabled, on_battery

    def stop(self) -> None:
        """Stops the reply being written, also one asked for a moment ago and not yet started."""
        turn = self._turn
        if turn is not None:
            turn.request.cancel.set()
        self._run(self._stop_turn)

    def delete_message(self, message_id: int) -> None:
        """Deletes one message of the open conversation; what followed it stays."""

        def delete(store: ConversationStore) -> None:
            if self._refuse_while_writing():
                return
            store.delete_message(message_id)
            self._reload_branch(store)

        self._run(delete)

    def switch_alternative(self, message_id: int, step: int) -> None:
        """Shows the previous (``step`` -1) or next (+1) version of a message, with the latest
        turns that follow it."""

        def switch(store: ConversationStore) -> None:
            if self._refuse_while_writing():
                return
            alternatives = store.alternatives(message_id)
            position = [message.id for message in alternatives].index(message_id) + step
            if 0 <= position < len(alternatives):
                store.switch_to(alternatives[position].id)
                self._reload_branch(store)

        self._run(switch)

    def set_image_detail(self, detail: str) -> None:
        """How many tokens each image may become from now on: a key of ``IMAGE_DETAIL_TOKENS``."""
        limit = IMAGE_DETAIL_TOKENS.get(detail, IMAGE_DETAIL_TOKENS[DEFAULT_IMAGE_DETAIL])

        def set_detail(_store: ConversationStore) -> None:
            self._image_token_limit = limit

        self._run(set_detail)

    def set_thinking(self, enabled: bool) -> None:
        """Whether replies in this conversation (and new chats from now on) think first."""

        def set_thinking(store: ConversationStore) -> None:
            self._default_thinking = enabled
            self._settings = replace(self._settings, enable_thinking=enabled)
            self._save_settings(store)
            self._emit_settings()

        self._run(set_thinking)

    def update_settings(self, settings: ChatSettings, system_prompt: str) -> None:
        """The conversation's sampling, reply length and system prompt; thinking and tools stay
        as they are (``set_thinking`` and ``set_chat_tools`` change them)."""

        def update(store: ConversationStore) -> None:
            self._settings = replace(
                settings,
                enable_thinking=self._settings.enable_thinking,
                tools_enabled=self._settings.tools_enabled,
                tools_switched_off=self._settings.tools_switched_off,
            )
            self._system_prompt = system_prompt
            self._save_settings(store)

        self._run(update)

    def answer_tool_call(self, call_id: str, approval: ToolApproval) -> None:
        """The person's answer to ``ToolApprovalRequested`` for the call ``call_id``."""

        def answer(store: ConversationStore) -> None:
            turn = self._turn
            if turn is None or turn.awaiting is None or turn.awaiting.call_id != call_id:
                logger.info("Ignored an answer to tool call %s, which no longer waits", call_id)
                return
            call, turn.awaiting = turn.awaiting, None
            tool = turn.tools.find(call.name)
            if approval is ToolApproval.DENY or tool is None:
                self._answer_unrun(store, turn, call, tool_steps.DENIED_RESULT, ToolOutcome.DENIED, tool)
                self._next_call(store, turn)
                return
            if approval is ToolApproval.ALWAYS_ALLOW:
                self._tools.always_allow(tool)
            self._run_call(turn, call, tool, always_allowed=False)

        self._run(answer)

    def set_chat_tools(self, enabled: bool, switched_off: Sequence[str] = ()) -> None:
        """Whether replies in this conversation may call tools, and which tools it leaves out
        (keys, "server/tool"); answers with ``ChatSettingsChanged`` and ``ToolsMeasured``."""

        def set_tools(store: ConversationStore) -> None:
            self._settings = replace(self._settings, tools_enabled=enabled, tools_switched_off=tuple(switched_off))
            self._save_settings(store)
            self._emit_settings()
            self._measure_tools()

        self._run(set_tools)

    def measure_tools(self) -> None:
        """Counts the tokens the open chat's tools take (``ToolsMeasured``)."""
        self._run(lambda _store: self._measure_tools())

    def shutdown(self) -> None:
        """The app is closing: a reply being written ends now and is kept as interrupted, a
        tool call waiting or running is stopped. Shut the engine host down next, then the store
        worker, so that ending is saved."""
        self._closing = True
        turn = self._turn
        if turn is not None:
            turn.request.cancel.set()
            self._run(self._stop_turn)

    # ------------------------------------------------------------------------------- a turn

    def _regenerate(self, store: ConversationStore, reply_id: int) -> None:
        if not self._may_start(""):
            return
        position = self._position(reply_id, role="assistant")
        if position is None or self._path[position].parent_id is None:
            self._emit(TurnRefused("There is no question to answer again."))
            return
        self._path = self._path[:position]
        self._start_reply(store, show_branch=True)

    def _continue(self, store: ConversationStore, reply_id: int) -> None:
        if not self._may_start(""):
            return
        if not prompt_assembly.can_continue(self._path, reply_id):
            self._emit(TurnRefused("Only the last reply, stopped at its length limit, can be continued."))
            return
        reply = self._path[-1]
        # The reason it stopped (a broken connection) no longer holds once it goes on.
        store.update_message(reply.id, state=MessageState.STREAMING, error="")
        streaming = replace(reply, state=MessageState.STREAMING, stats=None, error=None)
        self._path[-1] = streaming
        self._start_turn(store, streaming, self._path[:-1], continuation=reply)

    def _may_start(self, text: str, *, images: bool = False) -> bool:
        if len(text) > MAX_MESSAGE_CHARACTERS:
            self._emit(TurnRefused(
                f"This message is {len(text):,} characters long; a message holds at most "
                f"{MAX_MESSAGE_CHARACTERS:,}. Shorten it, or send it in parts.", text
            ))
            return False
        if self._facts is None:
            self._emit(TurnRefused("Open a model to start chatting.", text))
            return False
        if self._turn is not None:
            self._emit(TurnRefused("A reply is still being written: stop it or wait for it.", text))
            return False
        if images and not self._facts.reads_images:
            self._emit(TurnRefused(NO_PROJECTOR_MESSAGE, text))
            return False
        return True

    def _start_reply(self, store: ConversationStore, *, show_branch: bool = False) -> None:
        """Adds a reply to the branch's last message (a question) and writes it."""
        question = self._path[-1]
        reply = store.add_message(
            self._conversation.id, "assistant", state=MessageState.STREAMING, parent_id=question.id
        )
        history = list(self._path)
        self._path.append(reply)
        if show_branch:
            self._show(store)
        else:
            self._emit(MessageAdded(reply))
        self._start_turn(store, reply, history)

    def _start_turn(
        self,
        store: ConversationStore,
        reply: Message,
        history: list[Message],
        continuation: Message | None = None,
        *,
        calls_made: int = 0,
    ) -> None:
        messages, kept_ids = prompt_assembly.prompt_messages(self._system_prompt, history, _image_reader(store))
        thinking = prompt_assembly.thinking_enabled(self._settings, self._facts)
        request = prompt_assembly.reply_request(
            messages, self._settings, thinking=thinking, continuation=continuation,
            image_token_limit=self._image_token_limit,
        )
        recorder = ReplyRecorder(
            lambda content, reasoning: self._worker.submit(
                lambda store: store.update_message(reply.id, content=content, reasoning=reasoning)
            ),
            initial=(reply.reasoning, reply.content),
        )
        turn = _Turn(self._conversation.id, reply, request, recorder, kept_ids, calls_made=calls_made, continued=continuation)
        self._turn = turn
        self._emit(TurnStarted(reply))
        if self._tools is None or not self._settings.tools_enabled:
            self._generate(store, turn, OfferedTools())
            return

        def ready(offered: OfferedTools) -> None:  # on a server thread, or here
            self._run(lambda store: self._generate(store, turn, offered))

        if self._tools.prepare(self._settings.tools_switched_off, ready):
            self._emit(ToolsStarting(reply.id))

    def _generate(self, store: ConversationStore, turn: _Turn, offered: OfferedTools) -> None:
        if turn.request.cancel.is_set():  # stopped while its tools' servers started
            self._end_turn(store, turn, GenerationFinished(_nothing_generated()))
            return
        turn.tools = offered
        if offered:
            turn.request = replace(turn.request, tools=offered.schemas())
        self._host.generate(turn.request, Priority.PERSON, lambda event: self._on_generation_event(turn, event))
        if self._host.running_priority is Priority.API:  # a reply for another program goes on first
            self._emit(TurnWaiting(turn.reply.id))

    def _on_generation_event(self, turn: _Turn, event: GenerationEvent) -> None:
        """Engine thread: text goes out at once; the end is a store job."""
        if isinstance(event, TextGenerated):
            turn.recorder.append(event.reasoning, event.answer)
            if event.reasoning:
                self._emit(ReasoningDelta(turn.reply.id, event.reasoning))
            if event.answer:
                self._emit(AnswerDelta(turn.reply.id, event.answer))
        elif isinstance(event, PromptEvaluated):
            self._emit(PromptProgress(turn.reply.id, event.done, event.total))
        elif isinstance(event, ImageEncoding):
            self._emit(ImageReading(turn.reply.id, event.number, event.count, event.fraction))
        elif isinstance(event, WaitingForServer):
            remote = self._facts.remote if self._facts is not None else None
            self._emit(TurnWaitingForServer(turn.reply.id, remote.server if remote else ""))
        elif not isinstance(event, GenerationStarted):
            self._run(lambda store: self._end_turn(store, turn, event))

    def _end_turn(self, store: ConversationStore, turn: _Turn, event: GenerationFinished | GenerationFailed) -> None:
        recorder = turn.recorder
        calls: tuple[ToolCall, ...] = ()
        if isinstance(event, GenerationFailed):
            state, stats, error = MessageState.FAILED, None, event.message
            if event.request_problem == "context_length_exceeded" and turn.calls_made:
                error = tool_steps.TOOL_RESULTS_TOO_LONG
            before = turn.continued
            if before is not None and (recorder.content, recorder.reasoning) == (before.content, before.reasoning):
                # Nothing was added (its server is still down…): it stays as it was, to continue later.
                state, stats, error = before.state, before.stats, before.error
        else:
            stats, error = event.result.stats, None
            if stats.stop_reason is StopReason.CONNECTION_LOST:  # what came is kept; continue goes on
                state, error = MessageState.INTERRUPTED, event.result.problem
            elif stats.stop_reason is not StopReason.CANCELLED:
                state = MessageState.COMPLETE
                calls = event.result.tool_calls if turn.tools else ()
                if turn.tools and TOOL_CALL_OPEN in recorder.content:
                    error = tool_steps.UNREADABLE_CALL_NOTICE
            else:
                state = MessageState.INTERRUPTED if self._closing else MessageState.STOPPED
        parts = tool_steps.call_parts(calls)
        if self._turn is turn and not parts:
            self._turn = None
        try:
            store.update_message(
                turn.reply.id, content=recorder.content, reasoning=recorder.reasoning, state=state, stats=stats,
                error=error, parts=parts or None,
            )
            reply = store.get_message(turn.reply.id)
        except NotFoundError:  # its conversation was deleted while it was written
            if self._turn is turn:
                self._turn = None
            return
        self._replace_in_path(turn, reply)
        turn.reply = turn.last_message = reply
        if isinstance(event, GenerationFailed):
            self._emit(TurnFailed(reply, error if state is MessageState.FAILED else event.message))
            return
        if parts:
            self._emit(ReplyCalledTools(reply))
            if self._turn is not turn:  # stopped just as it ended: its calls stay unanswered, unrun
                self._finish(store, turn)
                return
            turn.pending = list(parts)
            self._next_call(store, turn)
            return
        omitted = event.result.omitted_messages
        kept = turn.kept_message_ids
        first_kept = kept[omitted] if 0 < omitted < len(kept) else None
        self._emit(TurnFinished(reply, omitted, first_kept))
        self._prepare_next_turn(store)

    # --------------------------------------------------------------------------- tool calls

    def _next_call(self, store: ConversationStore, turn: _Turn) -> None:
        """Answers the reply's calls in order: each waits for the person unless its tool is
        always allowed; once all are answered the model goes on."""
        limit = self._tools.preferences.step_limit
        while turn.pending:
            call = turn.pending[0]
            tool = turn.tools.find(call.name)
            if tool is None:  # a JSON-form call of a tool this chat does not offer
                self._answer_unrun(store, turn, call, f"There is no tool named {call.name!r}.", ToolOutcome.UNAVAILABLE, None)
                continue
            if turn.calls_made >= limit:
                turn.limit_reached = True
                self._answer_unrun(store, turn, call, tool_steps.step_limit_notice(limit), ToolOutcome.UNAVAILABLE, tool)
                continue
            if self._tools.is_always_allowed(tool):
                self._run_call(turn, call, tool, always_allowed=True)
                return
            turn.awaiting = call
            self._emit(ToolApprovalRequested(turn.reply.id, call, tool.server, tool.description))
            return
        self._after_calls(store, turn)

    def _run_call(self, turn: _Turn, call: ToolCallPart, tool: ToolDefinition, *, always_allowed: bool) -> None:
        turn.calls_made += 1
        self._emit(ToolCallRunning(turn.reply.id, call.call_id, always_allowed, tool.server))

        def done(run: ToolRun) -> None:  # on a tool thread
            self._run(lambda store: self._call_done(store, turn, call, tool, run, always_allowed))

        turn.running = self._tools.run(tool, call.arguments, done)

    def _call_done(
        self, store: ConversationStore, turn: _Turn, call: ToolCallPart, tool: ToolDefinition, run: ToolRun,
        always_allowed: bool,
    ) -> None:
        turn.running = None
        outcome = ToolOutcome.ALWAYS_ALLOWED if always_allowed and run.outcome is ToolOutcome.ALLOWED else run.outcome
        self._add_result(store, turn, ToolResultPart(
            call.call_id, call.name, run.output.text, run.output.is_error, tool.server, outcome.value, run.duration_s
        ))
        if self._turn is not turn or turn.request.cancel.is_set():
            self._finish_stopped(store, turn)
        else:
            self._next_call(store, turn)

    def _answer_unrun(
        self, store: ConversationStore, turn: _Turn, call: ToolCallPart, text: str, outcome: ToolOutcome,
        tool: ToolDefinition | None,
    ) -> None:
        """Tells the model the call did not run, and why."""
        self._add_result(store, turn, ToolResultPart(
            call.call_id, call.name, text, True, tool.server if tool else "", outcome.value
        ))

    def _add_result(self, store: ConversationStore, turn: _Turn, result: ToolResultPart) -> None:
        turn.pending = [call for call in turn.pending if call.call_id != result.call_id]
        message = store.add_message(
            turn.conversation_id, "tool", result.text, parent_id=turn.last_message.id, parts=(result,)
        )
        turn.last_message = message
        if self._conversation is not None and self._conversation.id == turn.conversation_id:
            self._path.append(message)
        self._emit(MessageAdded(message))

    def _after_calls(self, store: ConversationStore, turn: _Turn) -> None:
        """Every call is answered: the model reads the results and goes on, unless the turn
        reached its step limit."""
        if turn.limit_reached:
            store.update_message(turn.reply.id, error=tool_steps.step_limit_notice(self._tools.preferences.step_limit))
            turn.reply = store.get_message(turn.reply.id)
            self._replace_in_path(turn, turn.reply)
            self._finish(store, turn)
            return
        showing = self._conversation is not None and self._conversation.id == turn.conversation_id
        if not showing or self._facts is None:
            self._finish(store, turn)
            return
        reply = store.add_message(
            turn.conversation_id, "assistant", state=MessageState.STREAMING, parent_id=turn.last_message.id
        )
        history = list(self._path)
        self._path.append(reply)
        self._emit(MessageAdded(reply))
        self._start_turn(store, reply, history, calls_made=turn.calls_made)

    def _finish_stopped(self, store: ConversationStore, turn: _Turn) -> None:
        """Stop came while the turn's calls were answered: those left are not run."""
        if turn.running is not None:  # it ends (reported as stopped) and comes back here
            turn.running.cancel()
            return
        turn.awaiting = None
        for call in list(turn.pending):
            self._answer_unrun(store, turn, call, tool_steps.STOPPED_BEFORE_RESULT, ToolOutcome.STOPPED, turn.tools.find(call.name))
        self._finish(store, turn)

    def _finish(self, store: ConversationStore, turn: _Turn) -> None:
        if self._turn is turn:
            self._turn = None
        self._emit(TurnFinished(turn.reply))
        self._prepare_next_turn(store)

    def _measure_tools(self) -> None:
        offered = self._offered_tools()
        if not offered or self._facts is None:
            self._emit(ToolsMeasured(len(offered.by_name), 0))
            return
        schemas = offered.schemas()
        measuring = self._host.call(lambda engine: engine.count_tool_tokens(schemas), Priority.PREPARATION)

        def measured(future) -> None:
            tokens = 0 if future.cancelled() or future.exception() else future.result()
            self._emit(ToolsMeasured(len(schemas), tokens))

        measuring.add_done_callback(measured)

    def _offered_tools(self) -> OfferedTools:
        """The tools the open chat offers as far as they are known now (servers not started)."""
        if self._tools is None or not self._settings.tools_enabled:
            return OfferedTools()
        switched_off = set(self._settings.tools_switched_off)
        return offer(tool for tool in self._tools.known_tools() if tool.key not in switched_off)

    def _prepare_next_turn(self, store: ConversationStore, *, saved_only: bool = False) -> None:
        """Lets the engine evaluate the conversation so far while the user reads and types, so
        the next question is answered as quickly as the first one (``saved_only``: only restore
        a state saved for it, evaluating nothing)."""
        if self._facts is None or self._conversation is None or self._turn is not None or self._closing or not self._path:
            return
        messages, _ = prompt_assembly.prompt_messages(self._system_prompt, self._path, _image_reader(store))
        self._host.prepare_next_turn(
            self._next_turn_request(messages), lambda evaluated: self._emit(NextTurnPrepared(evaluated)), saved_only=saved_only
        )

    def _next_turn_request(self, messages: list[ChatMessage]) -> GenerationRequest:
        thinking = prompt_assembly.thinking_enabled(self._settings, self._facts)
        return prompt_assembly.reply_request(
            messages, self._settings, thinking=thinking, image_token_limit=self._image_token_limit,
            tools=self._offered_tools().schemas(),  # the tools open the prompt: the next turn's too
        )

    def _stop_turn(self, store: ConversationStore) -> None:
        turn = self._turn
        if turn is None:
            return
        turn.request.cancel.set()
        if turn.pending:  # between replies, answering its tool calls
            self._finish_stopped(store, turn)
        else:
            self._turn = None  # it still ends (and is saved) through its own events

    # ------------------------------------------------------------------------------ helpers

    def _position(self, message_id: int, *, role: str) -> int | None:
        return next(
            (index for index, message in enumerate(self._path) if message.id == message_id and message.role == role),
            None,
        )

    def _replace_in_path(self, turn: _Turn, message: Message) -> None:
        if self._conversation is not None and self._conversation.id == turn.conversation_id:
            self._path = [message if shown.id == message.id else shown for shown in self._path]

    def _new_chat_settings(self) -> ChatSettings:
        tools_on = self._tools is not None and self._tools.preferences.offer_in_new_chats
        return ChatSettings(enable_thinking=self._default_thinking, tools_enabled=tools_on)

    def _refuse_while_writing(self) -> bool:
        if self._turn is not None:
            self._emit(TurnRefused("Wait for the reply to end, or stop it, first."))
            return True
        return False

    def _reload_branch(self, store: ConversationStore) -> None:
        if self._conversation is not None:
            self._path = store.messages(self._conversation.id)
            self._show(store)

    def _show(self, store: ConversationStore) -> None:
        alternatives = store.alternative_positions(self._conversation.id) if self._conversation else {}
        self._emit(ConversationOpened(ConversationView(self._conversation, tuple(self._path), alternatives)))

    def _save_settings(self, store: ConversationStore) -> None:
        if self._conversation is not None:
            store.update_conversation(
                self._conversation.id,
                system_prompt=self._system_prompt,
                generation_settings=self._settings.as_dict(),
            )

    def _emit_settings(self) -> None:
        thinking = prompt_assembly.thinking_enabled(self._settings, self._facts)
        self._emit(ChatSettingsChanged(self._settings, self._system_prompt, thinking))

    def _on_model_event(self, event: ModelEvent) -> None:
        """Engine thread: the model the next turn will use."""
        if isinstance(event, (ModelLoaded, ModelLoadFailed)):
            facts = event.facts if isinstance(event, ModelLoaded) else event.still_loaded

            def set_facts(_store: ConversationStore) -> None:
                self._facts = facts
                self._emit_settings()
                if self._settings.tools_enabled:
                    self._measure_tools()  # another model counts the tools' tokens its own way

            self._run(set_facts)

    def _run(self, job: Callable[[ConversationStore], None], text: str = "") -> None:
        """Queues ``job`` on the store worker; a failing store becomes a message for the user
        (and ``text``, the user's message, is given back)."""

        def guarded(store: ConversationStore) -> None:
            try:
                job(store)
            except NotFoundError:
                self._emit(TurnRefused("That conversation or message no longer exists.", text))
            except sqlite3.Error as error:
                logger.exception("The conversation store failed")
                self._emit(SessionProblem(f"The conversation file could not be changed: {error}"))
                if text:
                    self._emit(TurnRefused("Your message was not sent.", text))

        try:
            self._worker.submit(guarded)
        except RuntimeError:  # the store is closed: the app is ending
            logger.debug("Dropped a chat request after the store closed")

    def _emit(self, event: SessionEvent) -> None:
        self._listeners.emit(event)


def _nothing_generated() -> GenerationResult:
    return GenerationResult("", "", GenerationStats(0, 0, 0, 0.0, 0.0, StopReason.CANCELLED))


def _image_reader(store: ConversationStore) -> prompt_assembly.ReadImage:
    return lambda sha256: store.image_path(sha256).read_bytes()


def _image_title(count: int) -> str:
    return "Image" if count == 1 else f"{count} images"
