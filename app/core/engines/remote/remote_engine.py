"""The engine for a model on a model server: the same interface as the llama.cpp engine, over
the OpenAI-compatible chat API with streaming.

The engine host drives it on its thread, as it drives the local engine: the chat session, the
local API and tests cannot tell them apart except by the model's facts. The HTTP client runs on
an event loop of this engine's own, turned only while the engine thread waits on it, so a
reply's stream can be closed the moment its cancel flag is set (the flag is the one thing that
crosses threads) instead of after the server's next chunk.

Servers differ in how they send reasoning (``reasoning_content``, ``reasoning``, or a
``<think>`` block in the content) and calls (``tool_calls``, or Qwen's ``<tool_call>`` text);
all are read. Everything a server sends is untrusted: replies, calls and names are bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import openai

from app.core.domain.generation import (
    ChatMessage,
    GenerationError,
    GenerationResult,
    GenerationStats,
    LoadSettings,
    ModelFacts,
    ModelLoadCancelled,
    ModelLoadError,
    ModelSource,
    PromptRejectedError,
    PromptTooLongError,
    RemoteModel,
    SamplingSettings,
    StopReason,
    ToolCall,
)
from app.core.engines.reasoning_splitter import ReasoningSplitter
from app.core.engines.remote.server_connection import (
    ServerConnection,
    ServerModel,
    ServerProblem,
    describe_failure,
    fetch_models,
    is_context_overflow,
    open_client,
    status_message,
)
from app.core.engines.tool_calls import MAX_CALLS, ToolCallSplitter, new_call_id, parse_tool_calls

logger = logging.getLogger(__name__)

CANCEL_POLL_S = 0.05  # how soon Stop closes a stream
MAX_REPLY_CHARACTERS = 2_000_000  # a server that never stops is stopped here, as at a length limit
MAX_NAME_CHARACTERS = 256
TOOL_TOKEN_CHARACTERS = 3.5  # servers do not count tokens for others: tool costs are estimated
_FINISH = {"length": StopReason.MAX_TOKENS, "stop": StopReason.END_OF_TURN, "tool_calls": StopReason.END_OF_TURN}
_SMALL_SIZES = re.compile(r"(?<![\d.])(0\.8|2)\s*b\b", re.IGNORECASE)  # Qwen3.5's sizes that do not think by default
_SIZE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*b\b", re.IGNORECASE)


class RemoteEngine:
    """Replies from a model on a model server. ``connection_for(server_name)`` gives the
    server's address and key at each use (so a changed key or offline mode counts at once), or
    raises ``ServerProblem`` when the server may not be used."""

    def __init__(self, connection_for: Callable[[str], ServerConnection]) -> None:
        self._connection_for = connection_for
        self.facts: ModelFacts | None = None
        self._loop = asyncio.new_event_loop()
        self._client: openai.AsyncOpenAI | None = None
        self._client_connection: ServerConnection | None = None

    @property
    def is_loaded(self) -> bool:
        return self.facts is not None

    def load(
        self,
        source: ModelSource,
        settings: LoadSettings,
        progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelFacts:
        """Asks the server for its models and takes ``source`` if it is among them; the model
        loaded before stays when it is not (``ModelLoadError`` says why)."""
        assert isinstance(source, RemoteModel)
        try:
            connection = self._connection_for(source.server)
        except ServerProblem as problem:
            raise ModelLoadError(str(problem)) from None
        try:
            models = self._wait(lambda client: fetch_models(client), connection, cancel or threading.Event())
        except _Cancelled:
            raise ModelLoadCancelled("Loading was cancelled.") from None
        except Exception as error:  # noqa: BLE001 - every failure becomes its sentence
            raise ModelLoadError(describe_failure(error, connection, listing=True)) from None
        model = next((model for model in models if model.id == source.model_id), None)
        if model is None:
            listed = ", ".join(model.id for model in models[:5]) or "none"
            raise ModelLoadError(f"{source.server} has no model {source.model_id!r} (it lists: {listed}).")
        self.facts = _facts(source, model, connection)
        if progress is not None:
            progress(1.0)
        return self.facts

    def unload(self) -> None:
        self.facts = None
        self._close_client()
        # A stream stopped midway leaves generators to finalise; a fresh loop starts clean.
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()
        self._loop = asyncio.new_event_loop()

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool,
        sampling: SamplingSettings,
        cancel: threading.Event,
        on_text: Callable[[str, str], None],
        on_prompt_progress: Callable[[int, int], None] | None = None,
        continuation: ChatMessage | None = None,
        tools: Sequence[Mapping] = (),
        reply_room: int | None = None,
        image_token_limit: int | None = None,
        on_image_progress: Callable[[int, int, float], None] | None = None,
        on_waiting_for_server: Callable[[], None] | None = None,
    ) -> GenerationResult:
        """Streams a reply from the server. A stream that breaks after the reply began ends
        with ``StopReason.CONNECTION_LOST`` and the reason in ``problem`` (what came is kept);
        one that fails before raises ``GenerationError`` with the sentence, or
        ``PromptTooLongError`` when the server says the conversation does not fit.
        ``reply_room``, ``image_token_limit`` and the image progress are the local engine's:
        the server decides those."""
        facts = self.facts
        assert facts is not None and facts.remote is not None
        try:
            connection = self._connection_for(facts.remote.server)
        except ServerProblem as problem:
            raise GenerationError(str(problem)) from None
        body = _request_body(facts, messages, enable_thinking, sampling, continuation, tools)
        reply = _ReplyStream(enable_thinking, tools, on_text)
        if on_waiting_for_server is not None:
            on_waiting_for_server()
        try:
            self._wait(lambda client: reply.read(client, body), connection, cancel)
        except _Cancelled:
            reply.stop_reason = StopReason.CANCELLED
        except Exception as error:  # noqa: BLE001 - every failure becomes its sentence
            if not isinstance(error, (openai.OpenAIError, ServerProblem, ValueError)):
                logger.warning("A reply from %s failed unexpectedly", connection.name, exc_info=True)
            if is_context_overflow(error):
                raise PromptTooLongError(f"The conversation does not fit {connection.name}'s context: {status_message(error)}") from None
            sentence = describe_failure(error, connection, model=facts.remote.model_id)
            if isinstance(error, openai.BadRequestError) and not reply.began:
                raise PromptRejectedError(sentence) from None
            if not reply.began:
                raise GenerationError(sentence) from None
            reply.stop_reason = StopReason.CONNECTION_LOST
            reply.problem = (
                f"The connection to {connection.name} broke before the reply was complete: the server stopped, "
                "or the network between you dropped."
            )
        if reply.stop_reason is StopReason.CONNECTION_LOST and not reply.problem:
            if not reply.began:
                raise GenerationError(f"{connection.name} ended the reply before sending any of it (it may have stopped or restarted).")
            reply.problem = f"{connection.name} ended the reply before it was complete (it may have stopped or restarted)."
        return reply.result()

    def count_tool_tokens(self, tools: Sequence[Mapping]) -> int:
        """An estimate from the definitions' length: servers do not count tokens for others."""
        return round(len(json.dumps(list(tools), ensure_ascii=False)) / TOOL_TOKEN_CHARACTERS) if tools else 0

    def prepare_next_turn(self, messages: Sequence[ChatMessage], **_request: object) -> int:
        """Nothing to do ahead: the server keeps its own prompt cache."""
        return 0

    def keep_states(self) -> None:
        """The server keeps its own states."""

    # ------------------------------------------------------------------------------ internals

    def _wait(self, work: Callable[[openai.AsyncOpenAI], object], connection: ServerConnection, cancel: threading.Event):
        """Runs ``work(client)`` on this engine's loop until it ends or ``cancel`` is set (then
        its connection is closed and ``_Cancelled`` raised)."""
        client = self._client_for(connection)

        async def watched():
            task = asyncio.ensure_future(work(client))
            while not task.done():
                if cancel.is_set():
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        pass
                    raise _Cancelled
                await asyncio.wait({task}, timeout=CANCEL_POLL_S)
            return task.result()

        return self._loop.run_until_complete(watched())

    def _client_for(self, connection: ServerConnection) -> openai.AsyncOpenAI:
        if self._client is None or connection != self._client_connection:  # a new address, key or CA
            self._close_client()
            self._client, self._client_connection = open_client(connection), connection
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            client, self._client, self._client_connection = self._client, None, None
            self._loop.run_until_complete(client.close())


class _Cancelled(Exception):
    pass


class _ReplyStream:
    """One streamed reply: reads the chunks, splits reasoning, answer and calls, counts."""

    def __init__(self, enable_thinking: bool, tools: Sequence[Mapping], on_text: Callable[[str, str], None]) -> None:
        self._tools = tools
        self._on_text = on_text
        # Used only for servers that leave Qwen's tags in the content.
        self._splitter = ReasoningSplitter(starts_in_reasoning=enable_thinking)
        self._server_splits: bool | None = None  # the server sends reasoning in fields of its own
        self._calls = ToolCallSplitter(tools) if tools else None
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self._call_parts: dict[int, dict[str, str]] = {}
        self._characters = 0
        self._started = time.perf_counter()
        self._first_token_at: float | None = None
        self._chunks = 0
        self._usage: Mapping = {}
        self._timings: Mapping = {}
        self.stop_reason = StopReason.CONNECTION_LOST  # until the server says why it ended
        self.problem = ""

    @property
    def began(self) -> bool:
        return self._first_token_at is not None

    async def read(self, client: openai.AsyncOpenAI, body: dict) -> None:
        stream = await client.chat.completions.create(**body)
        async with stream:
            async for chunk in stream:
                extra = chunk.model_extra or {}
                if chunk.usage is not None:
                    self._usage = chunk.usage.model_dump()
                if isinstance(extra.get("timings"), Mapping):
                    self._timings = extra["timings"]
                for choice in (chunk.choices or [])[:1]:  # untrusted: a server may leave fields out
                    if choice.delta is not None:
                        self._take(choice.delta)
                    if choice.finish_reason:
                        self.stop_reason = _FINISH.get(choice.finish_reason, StopReason.END_OF_TURN)
                if self._characters > MAX_REPLY_CHARACTERS:
                    self.stop_reason = StopReason.MAX_TOKENS
                    return

    def _take(self, delta) -> None:
        extra = delta.model_extra or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning") or ""
        content = delta.content or ""
        if not isinstance(reasoning, str):
            reasoning = ""
        if reasoning or content or delta.tool_calls:
            self._chunks += 1
            self._first_token_at = self._first_token_at or time.perf_counter()
            self._characters += len(reasoning) + len(content)
        if reasoning and self._server_splits is None:
            self._server_splits = True
        if content and self._server_splits is None:
            self._server_splits = False
        if self._server_splits:
            self._emit(reasoning, content)
        elif content:
            self._emit(*self._splitter.feed(content))
        for call in delta.tool_calls or ():
            self._take_call(call)

    def _take_call(self, call) -> None:
        index = call.index if isinstance(call.index, int) and 0 <= call.index < MAX_CALLS else None
        if index is None:
            return
        part = self._call_parts.setdefault(index, {"id": "", "name": "", "arguments": ""})
        if call.id:
            part["id"] = call.id[:MAX_NAME_CHARACTERS]
        if call.function is not None:
            part["name"] = (part["name"] + (call.function.name or ""))[:MAX_NAME_CHARACTERS]
            arguments = call.function.arguments or ""
            self._characters += len(arguments)
            part["arguments"] += arguments

    def _emit(self, reasoning: str, answer: str) -> None:
        if answer and self._calls is not None:
            answer = self._calls.feed(answer)
        if reasoning:
            self._reasoning.append(reasoning)
        if answer:
            self._answer.append(answer)
        if reasoning or answer:
            self._on_text(reasoning, answer)

    def result(self) -> GenerationResult:
        if not self._server_splits:
            self._emit(*self._splitter.finish())
        calls = self._streamed_calls()
        if self._calls is not None:
            rest, written_calls = self._calls.finish()
            if rest:
                self._answer.append(rest)
                self._on_text("", rest)
            calls = calls or written_calls
            if not calls:  # small models sometimes call a tool while still thinking
                _, calls = parse_tool_calls("".join(self._reasoning), self._tools)
        finished = time.perf_counter()
        prompt_tokens = _count(self._usage.get("prompt_tokens"), self._timings.get("prompt_n"))
        details = self._usage.get("prompt_tokens_details") or {}
        cached = _count(details.get("cached_tokens") if isinstance(details, Mapping) else 0, self._timings.get("cache_n"))
        generated = _count(self._usage.get("completion_tokens"), self._timings.get("predicted_n"), self._chunks)
        speed = self._timings.get("predicted_per_second")
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not 0 < speed < 1e6:
            seconds = finished - self._first_token_at if self._first_token_at else 0.0
            speed = generated / seconds if generated and seconds > 0 else 0.0
        stats = GenerationStats(
            prompt_tokens=prompt_tokens,
            evaluated_prompt_tokens=max(prompt_tokens - cached, 0),
            generated_tokens=generated,
            time_to_first_token_s=(self._first_token_at or finished) - self._started,
            tokens_per_second=float(speed),
            stop_reason=self.stop_reason,
        )
        return GenerationResult("".join(self._reasoning), "".join(self._answer), stats, 0, calls, self.problem)

    def _streamed_calls(self) -> tuple[ToolCall, ...]:
        offered = {tool.get("function", {}).get("name") for tool in self._tools if isinstance(tool, Mapping)}
        calls = []
        for _index, part in sorted(self._call_parts.items()):
            if part["name"] in offered:
                calls.append(ToolCall(part["id"] or new_call_id(), part["name"], part["arguments"] or "{}"))
        return tuple(calls)


def _request_body(
    facts: ModelFacts,
    messages: Sequence[ChatMessage],
    enable_thinking: bool,
    sampling: SamplingSettings,
    continuation: ChatMessage | None,
    tools: Sequence[Mapping],
) -> dict:
    """The chat request in OpenAI's form, with the fields llama-server and vLLM add (top_k,
    min_p, the template's thinking switch, continuing the last assistant message)."""
    wire = [_wire_message(message) for message in messages]
    extra: dict = {
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "chat_template_kwargs": {"enable_thinking": enable_thinking},
    }
    if continuation is not None:
        wire.append(_wire_message(continuation))
        extra.update(continue_final_message=True, add_generation_prompt=False)
    body: dict = {
        "model": facts.remote.model_id,
        "messages": wire,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "extra_body": extra,
    }
    # The setting's long default (the model card's) would be refused by a server whose context
    # is shorter (vLLM): it is sent only when it is the tighter bound.
    if not facts.context_size or sampling.max_tokens < facts.context_size:
        body["max_tokens"] = sampling.max_tokens
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if tools:
        body["tools"] = list(tools)
    return body


def _wire_message(message: ChatMessage) -> dict:
    wire: dict = {"role": message.role}
    if message.images:
        wire["content"] = [
            *({"type": "image_url", "image_url": {"url": _data_url(image.data)}} for image in message.images),
            {"type": "text", "text": message.content},
        ]
    else:
        wire["content"] = message.content
    if message.reasoning:
        wire["reasoning_content"] = message.reasoning
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _data_url(data: bytes) -> str:
    # Pictures reach an engine checked and re-encoded by image intake: PNG or JPEG.
    media_type = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _facts(source: RemoteModel, model: ServerModel, connection: ServerConnection) -> ModelFacts:
    size = _SIZE.search(model.id)
    return ModelFacts(
        path=None,
        name=model.id,
        architecture="",
        size_label=f"{size.group(1)}B" if size else "",
        parameter_count=0,
        file_size=0,
        trained_context=model.trained_context,
        context_size=model.context_length,
        chat_template="",
        thinks_by_default=not _SMALL_SIZES.search(model.id),
        backend=connection.name,
        gpu_layers=0,
        threads=0,
        batch_size=0,
        remote=source,
        server_address=connection.address,
        leaves_this_computer=not connection.on_this_computer,
        # A server that does not say is asked anyway: a refusal names the reason.
        server_reads_images=model.reads_images is not False,
    )


def _count(*values: object) -> int:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0

