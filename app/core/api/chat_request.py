"""A ``POST /v1/chat/completions`` body, checked and turned into the engine's request.

Field names follow OpenAI's API and llama-server's additions exactly, so existing clients work
unchanged. The body is untrusted: every field is type-checked and bounded here, before anything
reaches the template or llama.cpp, and each refusal says which field and why (400).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.core.api.api_errors import invalid
from app.core.domain.generation import (
    DEFAULT_IMAGE_DETAIL,
    IMAGE_DETAIL_TOKENS,
    ChatImage,
    ChatMessage,
    GenerationRequest,
    ModelFacts,
    SamplingSettings,
    ToolCall,
)
from app.core.images.image_intake import ImageRejected, prepare_image

MAX_MESSAGES = 10_000
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4  # OpenAI's limit
MAX_STOP_LENGTH = 256
MAX_SEED = 2**32 - 1  # llama.cpp's seed is a uint32
MAX_IMAGES = 16  # per request: each costs seconds of encoding on a laptop
# OpenAI's image ``detail``: "low" and "high" pick the app's image detail of that name; "auto"
# (or none) the server's default.
_DETAILS = {"low": "low", "high": "high", "auto": None}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_SAMPLING_FIELDS = {
    # field: (type, lowest, highest)
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "top_k": (int, 0, 1000),
    "min_p": (float, 0.0, 1.0),
    "presence_penalty": (float, -2.0, 2.0),
    "frequency_penalty": (float, -2.0, 2.0),
}


@dataclass(frozen=True)
class ChatRequest:
    """What a client asked for, valid in itself; ``generation_request`` fits it to the model."""

    messages: tuple[ChatMessage, ...]
    stream: bool = False
    include_usage: bool = False
    enable_thinking: bool | None = None  # None: the model's own default
    sampling: Mapping[str, float | int] = field(default_factory=dict)  # the sampling fields given
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[Mapping, ...] = ()
    image_detail: str | None = None  # a key of IMAGE_DETAIL_TOKENS the client asked for; None: auto
    continuation: ChatMessage | None = None  # vLLM's continue_final_message: carry on this reply

    def generation_request(self, facts: ModelFacts, image_detail: str = DEFAULT_IMAGE_DETAIL) -> GenerationRequest:
        """The engine's request: the model card's preset for the thinking mode (its vision
        preset for pictures), with the fields the client gave on top. Without ``max_tokens`` a
        reply may use the rest of the context. ``image_detail`` is the server's, for "auto"."""
        thinking = facts.thinks_by_default if self.enable_thinking is None else self.enable_thinking
        images = any(message.images for message in self.messages)
        sampling = replace(
            # A model server that does not say its context (0) bounds the reply itself.
            SamplingSettings.for_mode(
                thinking=thinking, max_tokens=self.max_tokens or facts.context_size or SamplingSettings.max_tokens, images=images
            ),
            seed=self.seed,
            **self.sampling,
        )
        return GenerationRequest(
            messages=self.messages,
            enable_thinking=thinking,
            sampling=sampling,
            tools=self.tools,
            continuation=self.continuation,
            reply_room=self.max_tokens or 1,
            image_token_limit=IMAGE_DETAIL_TOKENS[self.image_detail or image_detail],
        )


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request in ``body`` (JSON); raises ``ApiError`` (400) naming the field at fault."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise invalid(f"The request body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    if data.get("n", 1) != 1:
        raise invalid("Only one choice per request is supported (n must be 1).", param="n")
    if data.get("logprobs"):
        raise invalid("logprobs are not supported.", param="logprobs")
    response_format = data.get("response_format")
    if response_format is not None and not (isinstance(response_format, dict) and response_format.get("type") == "text"):
        raise invalid("Only the text response_format is supported.", param="response_format")
    stream = _optional(data, "stream", bool, False)
    stream_options = _optional(data, "stream_options", dict, {})
    kwargs = _optional(data, "chat_template_kwargs", dict, {})
    thinking = kwargs.get("enable_thinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise invalid("chat_template_kwargs.enable_thinking must be true or false.", param="chat_template_kwargs")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
        raise invalid("max_tokens must be a positive integer.", param="max_tokens")
    seed = data.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise invalid(f"seed must be an integer from 0 to {MAX_SEED}.", param="seed")
    messages = _messages(data.get("messages"))
    continuation = None
    if _optional(data, "continue_final_message", bool, False):
        if messages[-1].role != "assistant" or messages[-1].tool_calls or len(messages) < 2:
            raise invalid(
                "continue_final_message needs the last message to be an assistant reply without tool calls.",
                param="continue_final_message",
            )
        messages, continuation = messages[:-1], messages[-1]
    if sum(len(message.images) for message in messages) > MAX_IMAGES:
        raise invalid(f"At most {MAX_IMAGES} images are accepted in one request.", param="messages")
    return ChatRequest(
        messages=messages,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")) if stream else False,
        enable_thinking=thinking,
        sampling=_sampling(data),
        max_tokens=max_tokens,
        seed=seed,
        stop=_stop(data.get("stop")),
        tools=_tools(data.get("tools"), data.get("tool_choice", "auto")),
        image_detail=_image_detail(data.get("messages")),
        continuation=continuation,
    )


def _messages(value: Any) -> tuple[ChatMessage, ...]:
    if not isinstance(value, list) or not value:
        raise invalid("messages must be a non-empty array.", param="messages")
    if len(value) > MAX_MESSAGES:
        raise invalid(f"At most {MAX_MESSAGES:,} messages are accepted.", param="messages")
    return tuple(_message(item, index) for index, item in enumerate(value))


def _message(item: Any, index: int) -> ChatMessage:
    param = f"messages[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"{param} must be an object.", param=param)
    role = item.get("role")
    if role not in _ROLES:
        raise invalid(
            f"{param}.role {json.dumps(role)} is not one of system, developer, user, assistant, tool.",
            param=f"{param}.role",
        )
    content, images = _content(item.get("content"), f"{param}.content", allow_missing=role == "assistant")
    if images and role != "user":
        raise invalid(f"{param}: only user messages may show images.", param=f"{param}.content")
    if role == "developer":  # OpenAI's newer name for the system message
        role = "system"
    reasoning = item.get("reasoning_content") or ""
    if not isinstance(reasoning, str):
        raise invalid(f"{param}.reasoning_content must be a string.", param=f"{param}.reasoning_content")
    calls = _tool_calls(item.get("tool_calls"), param) if role == "assistant" else ()
    call_id = item.get("tool_call_id") or ""
    if role == "tool" and not isinstance(call_id, str):
        raise invalid(f"{param}.tool_call_id must be a string.", param=f"{param}.tool_call_id")
    return ChatMessage(role, content, reasoning, calls, call_id if role == "tool" else "", images)


def _content(value: Any, param: str, *, allow_missing: bool) -> tuple[str, tuple[ChatImage, ...]]:
    """A message's text and images: a string, or text and ``image_url`` parts (the model sees
    the images before the text, as Qwen's template places them)."""
    if value is None and allow_missing:
        return "", ()
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise invalid(f"{param} must be a string or an array of content parts.", param=param)
    texts, images = [], []
    for position, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image(part, f"{param}[{position}]"))
        else:
            raise invalid(
                f"{param}[{position}] must be a text or image_url part ({{\"type\": \"text\", \"text\": …}}).",
                param=param,
            )
    return "".join(texts), tuple(images)


def _image(part: dict, param: str) -> ChatImage:
    """The picture of an ``image_url`` part: only ``data:`` URLs, checked like any attachment."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise invalid(f"{param}.image_url.url must be a string.", param=param)
    if not url.startswith("data:"):
        raise invalid(
            "Images are never fetched from the network: send the image itself as a data: URL "
            "(data:image/png;base64,…).",
            param=param, code="remote_image_refused",
        )
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise invalid(f"{param}: the data: URL must be base64 (data:image/png;base64,…).", param=param, code="invalid_image")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{param}: the data: URL is not valid base64.", param=param, code="invalid_image") from None
    try:
        prepared = prepare_image(data)
    except ImageRejected as error:
        raise invalid(f"{param}: {error}", param=param, code="invalid_image") from None
    return ChatImage(prepared.sha256, prepared.data)


def _image_detail(messages: list) -> str | None:
    """The most detailed ``detail`` any image part asks for (None: auto)."""
    asked = [
        part["image_url"].get("detail", "auto")
        for message in messages
        for part in (message.get("content") if isinstance(message.get("content"), list) else [])
        if isinstance(part, dict) and isinstance(part.get("image_url"), dict)
    ]
    for detail in asked:
        if detail not in _DETAILS:
            raise invalid('image_url.detail must be "low", "high" or "auto".', param="messages")
    chosen = [_DETAILS[detail] for detail in asked if _DETAILS[detail]]
    return "high" if "high" in chosen else ("low" if chosen else None)


def _tool_calls(value: Any, param: str) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"{param}.tool_calls must be an array.", param=f"{param}.tool_calls")
    calls = []
    for position, call in enumerate(value):
        where = f"{param}.tool_calls[{position}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.function.name must be a string.", param=where)
        arguments = function.get("arguments", "{}")
        if isinstance(arguments, dict):  # some clients send the object itself
            arguments = json.dumps(arguments, ensure_ascii=False)
        if not isinstance(arguments, str) or not _is_json_object(arguments):
            raise invalid(f"{where}.function.arguments must be a JSON object, as a string.", param=where)
        call_id = call.get("id") or ""
        calls.append(ToolCall(call_id if isinstance(call_id, str) else "", function["name"], arguments))
    return tuple(calls)


def _tools(value: Any, choice: Any) -> tuple[Mapping, ...]:
    """The functions offered: all of them (``auto``, ``required``), none (``none``), or the one
    a ``tool_choice`` names. A call is never forced: the model decides, as with ``auto``."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise invalid(f"tools must be an array of at most {MAX_TOOLS} functions.", param="tools")
    for position, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(function, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function.get("name"), str)
        ):
            raise invalid(
                f"tools[{position}] must be {{\"type\": \"function\", \"function\": {{\"name\": …}}}}.",
                param=f"tools[{position}]",
            )
    if choice == "none":
        return ()
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        chosen = tuple(tool for tool in value if tool["function"]["name"] == name)
        if not chosen:
            raise invalid(f"tool_choice names {json.dumps(name)}, which is not among the tools.", param="tool_choice")
        return chosen
    if choice not in ("auto", "required"):
        raise invalid('tool_choice must be "none", "auto", "required" or a function.', param="tool_choice")
    return tuple(value)


def _sampling(data: dict) -> dict[str, float | int]:
    given = {}
    for name, (kind, lowest, highest) in _SAMPLING_FIELDS.items():
        value = data.get(name)
        if value is None:
            continue
        number_ok = _is_int(value) if kind is int else _is_number(value)
        if not number_ok or not lowest <= value <= highest:
            raise invalid(f"{name} must be a number from {lowest:g} to {highest:g}.", param=name)
        given[name] = kind(value)
    return given


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    sequences = [value] if isinstance(value, str) else value
    if (
        not isinstance(sequences, list)
        or len(sequences) > MAX_STOP_SEQUENCES
        or not all(isinstance(item, str) and 0 < len(item) <= MAX_STOP_LENGTH for item in sequences)
    ):
        raise invalid(
            f"stop must be a string or an array of at most {MAX_STOP_SEQUENCES} non-empty strings "
            f"of up to {MAX_STOP_LENGTH} characters.",
            param="stop",
        )
    return tuple(sequences)


def _optional(data: dict, name: str, kind: type, default: Any) -> Any:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise invalid(f"{name} must be {'an object' if kind is dict else 'true or false'}.", param=name)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False

