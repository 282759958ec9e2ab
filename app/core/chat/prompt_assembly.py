"""Which stored messages a reply is asked with, and how: the turn's prompt, before any engine.

Plain functions of the conversation and its settings, so every rule here has a unit test. The
engine then fits what it is given into its context window (``app.core.engines.context_window``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence

from app.core.chat.chat_settings import ChatSettings
from app.core.domain.conversations import ImagePart, Message, MessageState, ToolCallPart, ToolResultPart
from app.core.domain.generation import ChatImage, ChatMessage, GenerationRequest, ModelFacts, StopReason, ToolCall

logger = logging.getLogger(__name__)

TITLE_LENGTH = 48


ReadImage = Callable[[str], bytes]
"""The bytes of the stored image with this SHA-256 (raises ``OSError`` when it is gone)."""


def prompt_messages(
    system_prompt: str, path: Sequence[Message], read_image: ReadImage | None = None
) -> tuple[list[ChatMessage], list[int]]:
    """What the model sees of ``path`` (a branch, oldest first), and the store ids of the
    messages it came from, in the same order (the system prompt has none). Image parts become
    the messages' images, read with ``read_image`` (None: text only).

    The system prompt comes first when it holds any text. Failed replies are left out (their
    text is an error, not something the model said), and so are replies without text (stopped
    before they said anything): sending them would teach the model that empty answers are fine.
    User messages always go, even empty ones, so the turns still alternate.
    """
    kept = [
        message
        for message in path
        if message.state is not MessageState.FAILED
        and (message.content or message.role in ("user", "tool") or _tool_calls(message))
    ]
    turns = [ChatMessage("system", system_prompt)] if system_prompt.strip() else []
    turns += [_chat_message(message, read_image) for message in kept]
    return turns, [message.id for message in kept]


def _chat_message(message: Message, read_image: ReadImage | None) -> ChatMessage:
    """A stored message as the model sees it: a reply with the calls it made, a tool message
    as the result of its call."""
    if message.role == "tool":
        result = next((part for part in message.parts if isinstance(part, ToolResultPart)), None)
        return ChatMessage("tool", message.content, tool_call_id=result.call_id if result else "")
    return ChatMessage(
        message.role, message.content, message.reasoning,
        tool_calls=_tool_calls(message), images=_images(message, read_image),
    )


def _tool_calls(message: Message) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(part.call_id, part.name, json.dumps(part.arguments, ensure_ascii=False))
        for part in message.parts
        if isinstance(part, ToolCallPart)
    )


def _images(message: Message, read_image: ReadImage | None) -> tuple[ChatImage, ...]:
    if read_image is None:
        return ()
    images = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            try:
                images.append(ChatImage(part.sha256, read_image(part.sha256)))
            except OSError as error:  # removed from the data folder behind the app's back
                logger.warning("Image %s of message %s is gone (%s); asking without it", part.sha256, message.id, error)
    return tuple(images)


def has_images(history: Sequence[ChatMessage]) -> bool:
    return any(message.images for message in history)


def thinking_enabled(settings: ChatSettings, facts: ModelFacts | None) -> bool:
    """Whether the next reply thinks: the conversation's choice, else the model's own default
    (Qwen3.5 4B/9B think unless told not to; 0.8B/2B do not), else yes."""
    return settings.thinking(facts.thinks_by_default if facts is not None else True)


def reply_request(
    history: Sequence[ChatMessage],
    settings: ChatSettings,
    *,
    thinking: bool,
    continuation: Message | None = None,
    image_token_limit: int | None = None,
    tools: tuple[Mapping, ...] = (),
) -> GenerationRequest:
    """The request for a reply to ``history``: sampling from the conversation's preset for the
    thinking mode (the vision preset when the history shows images); with ``continuation``,
    carrying on that reply where it stopped. ``image_token_limit`` bounds each image's tokens;
    ``tools`` are the function definitions the reply may call."""
    return GenerationRequest(
        messages=tuple(history),
        enable_thinking=thinking,
        sampling=settings.sampling(thinking=thinking, images=has_images(history)),
        image_token_limit=image_token_limit,
        tools=tools,
        continuation=(
            ChatMessage("assistant", continuation.content, continuation.reasoning) if continuation else None
        ),
    )


def can_continue(path: Sequence[Message], reply_id: int) -> bool:
    """A reply can be continued when it is the branch's last message and stopped at its length
    limit, or where its model server's connection broke (carrying on a reply that later turns
    answered would rewrite what they answered)."""
    last = path[-1] if path else None
    return (
        last is not None
        and last.id == reply_id
        and last.role == "assistant"
        and last.stats is not None
        and last.stats.stop_reason in (StopReason.MAX_TOKENS, StopReason.CONNECTION_LOST)
    )


def title_from(text: str) -> str:
    """A conversation's title from its first message: the first words, on one line."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
