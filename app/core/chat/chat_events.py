"""What the chat session tells its clients: the conversation shown, and each turn as it runs.

A turn's events come in this order: ``TurnStarted``, any ``PromptProgress``, ``ReasoningDelta``
and ``AnswerDelta`` events as the reply is written, then exactly one ``TurnFinished`` or
``TurnFailed``. A request that could not start a turn gets ``TurnRefused`` instead.

With tools on, a turn may take several steps. A reply that calls tools ends with
``ReplyCalledTools`` instead of ``TurnFinished``; then, for each call in order, either
``ToolApprovalRequested`` (answered with ``ChatSession.answer_tool_call``) and, once allowed,
``ToolCallRunning``, and always a ``MessageAdded`` with the ``tool`` message holding its result;
then the next reply's ``TurnStarted``. The turn's last reply ends with ``TurnFinished``.
``ToolsStarting`` comes after a ``TurnStarted`` while MCP servers start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from app.core.chat.chat_settings import ChatSettings
from app.core.domain.conversations import Conversation, Message, ToolCallPart


@dataclass(frozen=True)
class ConversationView:
    """A conversation as it is to be shown."""

    conversation: Conversation | None  # None: a new chat, stored with its first message
    messages: tuple[Message, ...]  # the branch shown, oldest first
    alternatives: dict[int, tuple[int, int]] = field(default_factory=dict)
    """For messages with other versions: (index, count), e.g. (1, 2) for "2/2"."""

    def alternative_position(self, message_id: int) -> tuple[int, int]:
        return self.alternatives.get(message_id, (0, 1))


@dataclass(frozen=True)
class ConversationOpened:
    """Show ``view`` in place of what was shown (another chat, or another branch of this one)."""

    view: ConversationView


@dataclass(frozen=True)
class ConversationCreated:
    """The new chat was stored with its first message; it is the one open."""

    conversation: Conversation


@dataclass(frozen=True)
class MessageAdded:
    """``message`` now ends the open conversation's branch."""

    message: Message


@dataclass(frozen=True)
class ChatSettingsChanged:
    """The open conversation's settings, system prompt and whether its next reply thinks."""

    settings: ChatSettings
    system_prompt: str
    thinking: bool


@dataclass(frozen=True)
class TurnStarted:
    """``reply`` (new, or a reply being continued) is being written."""

    reply: Message


@dataclass(frozen=True)
class TurnWaiting:
    """The reply ``message_id`` waits for the engine to finish a reply it is writing for another
    program (the local API); it starts as soon as that one ends."""

    message_id: int


@dataclass(frozen=True)
class TurnWaitingForServer:
    """The reply ``message_id`` was asked of the model server ``server``, which has not begun
    it yet (it reads the conversation, or serves others first)."""

    message_id: int
    server: str


@dataclass(frozen=True)
class PromptProgress:
    """``done`` of the prompt's ``total`` tokens are read (reused ones count as done)."""

    message_id: int
    done: int
    total: int


@dataclass(frozen=True)
class ImageReading:
    """The reply ``message_id`` waits for the model to read image ``number`` (from 1) of the
    ``count`` it has not seen before; ``fraction`` of it is encoded."""

    message_id: int
    number: int
    count: int
    fraction: float


@dataclass(frozen=True)
class ReasoningDelta:
    message_id: int
    text: str


@dataclass(frozen=True)
class AnswerDelta:
    message_id: int
    text: str


@dataclass(frozen=True)
class TurnFinished:
    """The reply ended and is stored as ``reply`` (its state and statistics say how).

    ``omitted_messages`` older messages did not fit in the context; the model's view began at
    ``first_kept_message_id`` (None when nothing was left out).
    """

    reply: Message
    omitted_messages: int = 0
    first_kept_message_id: int | None = None


@dataclass(frozen=True)
class TurnFailed:
    """No reply could be written: ``message`` says why. ``reply`` is stored as failed."""

    reply: Message
    message: str


class ToolApproval(StrEnum):
    """The person's answer to a tool call."""

    ALLOW_ONCE = "allow_once"
    ALWAYS_ALLOW = "always_allow"  # this tool of this server runs without asking from now on
    DENY = "deny"  # the model is told that the person said no


@dataclass(frozen=True)
class ToolsStarting:
    """The reply ``message_id`` waits for MCP servers to start (their tools are not known yet)."""

    message_id: int


@dataclass(frozen=True)
class ReplyCalledTools:
    """The reply ended asking for tool calls (its ``ToolCallPart`` parts); the turn goes on."""

    reply: Message


@dataclass(frozen=True)
class ToolApprovalRequested:
    """The reply ``message_id`` wants to run ``call`` (the tool ``server``/``call.name``, whose
    ``description`` the model read): nothing runs until ``ChatSession.answer_tool_call``."""

    message_id: int
    call: ToolCallPart
    server: str
    description: str


@dataclass(frozen=True)
class ToolCallRunning:
    """The call ``call_id`` of the reply ``message_id`` was allowed and runs now, on ``server``
    (``always_allowed``: without asking)."""

    message_id: int
    call_id: str
    always_allowed: bool
    server: str


@dataclass(frozen=True)
class ToolsMeasured:
    """The tools the open chat offers (``count``) take ``tokens`` of every prompt (0 when tools
    are off, or no model is loaded to count them)."""

    count: int
    tokens: int


@dataclass(frozen=True)
class TurnRefused:
    """Nothing was started: ``reason`` says why. ``text`` is what the user wrote, to give back."""

    reason: str
    text: str = ""


@dataclass(frozen=True)
class NextTurnPrepared:
    """The conversation so far was evaluated ahead of the next question (0: nothing to do)."""

    evaluated_tokens: int


@dataclass(frozen=True)
class SessionProblem:
    """Something went wrong that the user should know (the conversation file failed)."""

    message: str


SessionEvent = (
    ConversationOpened
    | ConversationCreated
    | MessageAdded
    | ChatSettingsChanged
    | TurnStarted
    | TurnWaiting
    | TurnWaitingForServer
    | PromptProgress
    | ImageReading
    | ReasoningDelta
    | AnswerDelta
    | TurnFinished
    | TurnFailed
    | TurnRefused
    | ToolsStarting
    | ReplyCalledTools
    | ToolApprovalRequested
    | ToolCallRunning
    | ToolsMeasured
    | NextTurnPrepared
    | SessionProblem
)
