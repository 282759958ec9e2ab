"""Figures measured for one generated reply, shared by the engine and the conversation store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StopReason(StrEnum):
    """Why generation of a reply ended."""

    END_OF_TURN = "end_of_turn"  # the model emitted an end-of-generation token such as <|im_end|>
    MAX_TOKENS = "max_tokens"  # the reply reached the max-token limit
    CONTEXT_FULL = "context_full"  # the context window has no room for another token
    CANCELLED = "cancelled"  # the user (or shutdown) asked it to stop


@dataclass(frozen=True)
class GenerationStats:
    """What one reply cost.

    ``evaluated_prompt_tokens`` is how many of the ``prompt_tokens`` llama.cpp actually had to
    process; the rest were reused from the state kept since the previous turn.
    """

    prompt_tokens: int
    evaluated_prompt_tokens: int
    generated_tokens: int
    time_to_first_token_s: float
    tokens_per_second: float
    stop_reason: StopReason
