"""The engine the host drives: the llama.cpp engine for model files, the remote engine for
models on model servers, one of them loaded at a time.

Choosing a model on a server frees the local one (its memory is the point of using a server),
but only once the server has answered for it: a server that cannot be used leaves the model
that was loaded in place, as a file that cannot be opened does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from app.core.domain.generation import ChatMessage, GenerationResult, LoadSettings, ModelFacts, ModelSource, RemoteModel
from app.core.engines.engine import Engine
from app.core.engines.remote.remote_engine import RemoteEngine


class EngineSwitch:
    """An ``Engine`` over a local engine and a remote one; lives on the engine thread."""

    def __init__(self, local: Engine, remote: RemoteEngine) -> None:
        self._local = local
        self._remote = remote
        self._active: Engine = local

    @property
    def facts(self) -> ModelFacts | None:
        return self._active.facts

    @property
    def is_loaded(self) -> bool:
        return self._active.is_loaded

    def load(
        self,
        source: ModelSource,
        settings: LoadSettings,
        progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ModelFacts:
        engine, other = (self._remote, self._local) if isinstance(source, RemoteModel) else (self._local, self._remote)
        facts = engine.load(source, settings, progress, cancel)
        other.unload()
        self._active = engine
        return facts

    def unload(self) -> None:
        self._local.unload()
        self._remote.unload()

    def generate(self, messages: Sequence[ChatMessage], **request) -> GenerationResult:
        return self._active.generate(messages, **request)

    def count_tool_tokens(self, tools: Sequence[Mapping]) -> int:
        return self._active.count_tool_tokens(tools)

    def prepare_next_turn(self, messages: Sequence[ChatMessage], **request) -> int:
        return self._active.prepare_next_turn(messages, **request)

    def keep_states(self) -> None:
        self._active.keep_states()

    @property
    def local(self) -> Engine:
        """The llama.cpp engine (for checks and benchmarks that compute where the engine does)."""
        return self._local
