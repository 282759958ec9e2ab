"""What ``/v1/chat/completions`` answers: OpenAI's completion and chunk objects, from engine results.

Reasoning goes in ``reasoning_content`` (message and delta), as llama-server and vLLM send it;
the answer in ``content``; function calls in ``tool_calls`` with their arguments as JSON text.
"""

from __future__ import annotations

import secrets
import time

from app.core.domain.generation import GenerationResult, StopReason, ToolCall
from app.core.engines.tool_calls import unfinished_marker_length


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


def finish_reason(result: GenerationResult, *, stopped_by_sequence: bool) -> str:
    """OpenAI's finish reason: ``tool_calls``, ``length`` (a limit or the full context) or ``stop``."""
    if result.tool_calls:
        return "tool_calls"
    if not stopped_by_sequence and result.stats.stop_reason in (StopReason.MAX_TOKENS, StopReason.CONTEXT_FULL):
        return "length"
    return "stop"


def usage(result: GenerationResult) -> dict:
    """Token counts; ``cached_tokens`` are prompt tokens reused from an earlier request's state."""
    stats = result.stats
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.generated_tokens,
        "total_tokens": stats.prompt_tokens + stats.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.prompt_tokens - stats.evaluated_prompt_tokens},
    }


def timings(result: GenerationResult) -> dict:
    """llama-server's ``timings`` object: what evaluating and generating took."""
    stats = result.stats
    return {
        "cache_n": stats.prompt_tokens - stats.evaluated_prompt_tokens,
        "prompt_n": stats.evaluated_prompt_tokens,
        "prompt_ms": round(stats.time_to_first_token_s * 1000, 3),
        "predicted_n": stats.generated_tokens,
        "predicted_per_second": round(stats.tokens_per_second, 3),
    }


def tool_calls_field(calls: tuple[ToolCall, ...], *, streamed: bool) -> list[dict]:
    return [
        {
            **({"index": index} if streamed else {}),
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for index, call in enumerate(calls)
    ]


def completion_body(
    identifier: str, model: str, reasoning: str, answer: str, result: GenerationResult, *, stopped_by_sequence: bool
) -> dict:
    message: dict = {"role": "assistant", "content": answer if answer or not result.tool_calls else None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if result.tool_calls:
        message["tool_calls"] = tool_calls_field(result.tool_calls, streamed=False)
    return {
        "id": identifier,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(result, stopped_by_sequence=stopped_by_sequence),
                "logprobs": None,
            }
        ],
        "usage": usage(result),
        "timings": timings(result),
    }


class ChunkWriter:
    """The chunks of one streamed reply, each a ``chat.completion.chunk`` object."""

    def __init__(self, identifier: str, model: str, *, include_usage: bool) -> None:
        self._identifier = identifier
        self._model = model
        self._created = int(time.time())
        self._include_usage = include_usage

    def delta(self, delta: dict, finish: str | None = None) -> dict:
        chunk = {
            "id": self._identifier,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self._include_usage:
            chunk["usage"] = None  # OpenAI's form: only the last chunk carries the counts
        return chunk

    def ending(self, result: GenerationResult, *, stopped_by_sequence: bool) -> list[dict]:
        """The last chunks: the calls (whole, in one delta), the finish reason, the usage."""
        chunks = []
        if result.tool_calls:
            chunks.append(self.delta({"tool_calls": tool_calls_field(result.tool_calls, streamed=True)}))
        final = self.delta({}, finish_reason(result, stopped_by_sequence=stopped_by_sequence))
        final["timings"] = timings(result)
        chunks.append(final)
        if self._include_usage:
            chunks.append({
                "id": self._identifier,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage(result),
            })
        return chunks


class StopSequences:
    """Cuts the answer at the first of the client's ``stop`` strings, also one split across
    pieces: text that may be the start of one is held back until it is known not to be."""

    def __init__(self, sequences: tuple[str, ...]) -> None:
        self._sequences = sequences
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of ``text`` that is answer for certain now ("" once stopped)."""
        if self.stopped or not self._sequences:
            return "" if self.stopped else text
        text = self._held + text
        found = [index for index in (text.find(sequence) for sequence in self._sequences) if index >= 0]
        if found:
            self.stopped, self._held = True, ""
            return text[: min(found)]
        keep = max((unfinished_marker_length(text, sequence) for sequence in self._sequences), default=0)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def finish(self) -> str:
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def cut(self, answer: str) -> str:
        """The whole ``answer`` as the stream let it out: up to the first stop sequence."""
        found = [index for index in (answer.find(sequence) for sequence in self._sequences) if index >= 0]
        return answer[: min(found)] if found else answer

