"""What the engine host reports: a request's progress and outcome, and the model's own state.

Events are plain frozen values, delivered by callbacks on the engine host's thread; each client
(the chat session, the Qt bridge, a test, the local API) turns them into whatever it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.domain.generation import GenerationResult, MemoryShortfall, ModelFacts, ModelSource


# ------------------------------------------------------------------ one request, in this order


@dataclass(frozen=True)
class GenerationStarted:
    """The request left the queue: the engine works on it now."""


@dataclass(frozen=True)
class PromptEvaluated:
    """``done`` of the prompt's ``total`` tokens are in the context (reused ones count as done)."""

    done: int
    total: int


@dataclass(frozen=True)
class ImageEncoding:
    """Image ``number`` (from 1) of the ``count`` this prompt has to read is ``fraction`` (0.0 …
    1.0) encoded; images that saved states already hold are not read again and not counted."""

    number: int
    count: int
    fraction: float


@dataclass(frozen=True)
class WaitingForServer:
    """The request is with the model server, which has not begun its reply (it reads the prompt,
    or serves others first); the next event is the reply's text, or its end."""


@dataclass(frozen=True)
class TextGenerated:
    """New text of the reply; either part may be empty."""

    reasoning: str
    answer: str


@dataclass(frozen=True)
class GenerationFinished:
    """The reply ended (end of turn, its limit, a full context, or cancelled)."""

    result: GenerationResult


@dataclass(frozen=True)
class GenerationFailed:
    """No reply could be generated: ``message`` says why, for the user. ``request_problem`` is
    set when the request itself is at fault, not the engine or the model:
    ``"context_length_exceeded"`` (the prompt is too long for the context) or
    ``"invalid_prompt"`` (the model's template refuses the conversation)."""

    message: str
    request_problem: str = ""


GenerationEvent = (
    GenerationStarted | ImageEncoding | PromptEvaluated | WaitingForServer | TextGenerated | GenerationFinished | GenerationFailed
)


# ------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class ModelLoading:
    """Loading ``path`` (a file, or a model on a model server) is ``fraction`` (0.0 … 1.0) done."""

    path: ModelSource
    fraction: float


@dataclass(frozen=True)
class ModelChecking:
    """``path`` is being checked before its first use (in a child process): ``fraction`` (0.0 …
    1.0) of that check's load is done. Loading itself follows with ``ModelLoading``."""

    path: Path
    fraction: float


@dataclass(frozen=True)
class ModelLoaded:
    facts: ModelFacts


@dataclass(frozen=True)
class ModelLoadFailed:
    """``path`` could not be loaded (``message`` says why). A failed open changes nothing:
    ``still_loaded`` is the model that was loaded before and still is (kept, or loaded again),
    None when there was none or it could not be brought back. ``shortfall`` is set when it was
    refused because it does not fit in the free memory: loading it anyway is the user's call."""

    path: ModelSource
    message: str
    still_loaded: ModelFacts | None = None
    shortfall: MemoryShortfall | None = None


ModelEvent = ModelChecking | ModelLoading | ModelLoaded | ModelLoadFailed
