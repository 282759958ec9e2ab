"""What an engine is to the rest of the app: the one interface local and remote models share.

The engine host (``engine_host``) drives an engine on its own thread; nothing else calls it. The
llama.cpp engine (``app.core.engines.llama.llama_engine``) runs model files, the remote engine
(``app.core.engines.remote.remote_engine``) models on model servers, and the engine switch
(``engine_switch``) is the one the app's host drives: it hands each model to the engine for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from app.core.domain.generation import ChatMessage, GenerationResult, LoadSettings, ModelFacts, ModelSource, SamplingSettings


class ModelAdmission(Protocol):
    """Decides whether a model file may be loaded, before the engine sees it."""

    def __call__(
        self,
        path: Path,
        settings: LoadSettings,
        *,
        loaded: ModelFacts | None,
        despite_memory: bool,
        on_checking: Callable[[float], None] | None,
        cancel: threading.Event | None,
    ) -> LoadSettings:
        """The settings to load ``path`` with; raises ``ModelLoadError`` (``ModelWontFitError``
        when only the memory is short and ``despite_memory`` is false) with the reason."""


class Engine(Protocol):
    """A model that can be loaded and asked for replies, from one thread at a time."""

    facts: ModelFacts | None
    """The loaded model's facts; None while nothing is loaded."""

    @property
    def is_loaded(self) -> bool: ...

    def load(
        self,
        path: ModelSource,
        settings: LoadSettings,
        progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelFacts:
        """Loads ``path``, replacing any loaded model; raises ``ModelLoadError`` with a message
        for the user (``ModelLoadCancelled`` once ``cancel`` is set). A file refused before it is
        read (missing, not a model) leaves the loaded model in place and ``facts`` unchanged."""

    def unload(self) -> None:
        """Frees the model (harmless when none is loaded)."""

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
        """Streams the reply to ``messages`` through ``on_text(reasoning, answer)``; stops soon
        after ``cancel`` is set. With ``tools`` offered, the calls the model writes come back in
        the result's ``tool_calls`` and are not streamed as answer text. ``reply_room`` and
        ``image_token_limit`` are ``GenerationRequest``'s; ``on_image_progress(number, count,
        fraction)`` follows the encoding of the images no saved state holds. Raises
        ``PromptTooLongError`` when no reply fits, ``PromptRejectedError`` when the model's
        template refuses the conversation or the model cannot read its images, and
        ``GenerationError`` (a sentence for the user) when no reply can be had for another
        reason. ``on_waiting_for_server()`` is called when the request has gone to a model
        server, which has not begun its reply (only the remote engine has a server to wait for)."""

    def count_tool_tokens(self, tools: Sequence[Mapping]) -> int:
        """How many tokens offering ``tools`` (function definitions) adds to every prompt."""

    def prepare_next_turn(
        self,
        messages: Sequence[ChatMessage],
        *,
        enable_thinking: bool,
        sampling: SamplingSettings,
        cancel: threading.Event,
        tools: Sequence[Mapping] = (),
        image_token_limit: int | None = None,
        typed: ChatMessage | None = None,
        saved_only: bool = False,
    ) -> int:
        """Does now, while the user types, the work the next turn would start with (with
        ``typed``, the next user message as far as it is written, its pictures included, the
        part of it no further typing can change too; with ``saved_only``, only what restoring a
        saved state does); returns how many prompt tokens that evaluated."""

    def keep_states(self) -> None:
        """Keeps the newest saved state where it outlasts the engine (on disk, written in the
        background), for a conversation that is left now and resumed later; engines without
        such a place do nothing."""
