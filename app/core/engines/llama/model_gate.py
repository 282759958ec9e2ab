"""The gate every model file passes before llama.cpp loads it in the app's process.

In order: the file is a regular GGUF file; its header reads within bounds and its values are sane
(``model_header_check``); it fits in the memory free now (a check the composition root supplies,
since the estimate belongs to the models domain); and, the first time this exact file is used, the
child-process probe (``model_probe``) has loaded and used it without dying or hanging. A vision
projector to load with it passes its own header check (``projector_check``) and is probed with
the model, showing it a picture: the verdict is for the pair. The probe's
verdict is remembered by file identity (size, modification time, a hash of the header, and the
llama.cpp version that judged it), so it costs once per file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import llama_cpp

from app.core.atomic_file import write_text_atomically
from app.core.domain.generation import LoadSettings, ModelFacts, ModelLoadError, ModelMemoryError
from app.core.domain.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header
from app.core.domain.model_files import gguf_file_problem
from app.core.engines.llama.model_header_check import model_header_problem
from app.core.engines.llama.model_probe import ProbeLimits, probe_model
from app.core.engines.llama.projector_check import checked_projector

logger = logging.getLogger(__name__)

_HASHED_HEADER_BYTES = 64 * 1024 * 1024  # a header is ~10 MB (the vocabulary); hashing costs ~15 ms


class MemoryCheck(Protocol):
    def __call__(
        self, header: GGUFHeader, settings: LoadSettings, *, loaded: ModelFacts | None, despite_memory: bool
    ) -> LoadSettings:
        """The settings to load with (the context possibly reduced to what fits); raises
        ``ModelWontFitError`` when it does not fit, unless ``despite_memory``. ``loaded`` is
        the model loaded now, whose memory the new one will get."""


class ModelGate:
    """Admits model files to the engine. Used from the engine thread only."""

    def __init__(
        self,
        verdicts_file: Path | None,
        memory_check: MemoryCheck | None = None,
        *,
        limits: ProbeLimits = ProbeLimits(),
    ) -> None:
        """``verdicts_file`` keeps the probe's verdicts across runs (None: for this run only)."""
        self._verdicts_file = verdicts_file
        self._memory_check = memory_check
        self._limits = limits
        self._verdicts: dict[str, dict] | None = None

    def __call__(
        self,
        path: Path,
        settings: LoadSettings,
        *,
        loaded: ModelFacts | None = None,
        despite_memory: bool = False,
        on_checking: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> LoadSettings:
        """The settings to load ``path`` with; raises ``ModelLoadError`` (or its
        ``ModelWontFitError``, ``ModelMemoryError``, ``ModelLoadCancelled``) with a reason for the
        user when it must not be loaded. ``on_checking(fraction)`` reports the first-use probe."""
        path = Path(path)
        problem = gguf_file_problem(path)
        if problem is not None:
            raise ModelLoadError(problem)
        try:
            header = read_gguf_header(path)
        except GGUFHeaderError as error:
            raise ModelLoadError(str(error)) from None
        problem = model_header_problem(header, path.name)
        if problem is not None:
            raise ModelLoadError(problem)
        identity = _identity(path, header)
        if settings.projector is not None:
            identity += "|" + self._check_projector(Path(settings.projector), header)
        if self._memory_check is not None:
            settings = self._memory_check(header, settings, loaded=loaded, despite_memory=despite_memory)
        self._probe_once(path, identity, settings, on_checking, cancel)
        return settings

    @staticmethod
    def _check_projector(path: Path, model_header: GGUFHeader) -> str:
        """The projector's identity, once its header has passed ``projector_check``."""
        embedding = model_header.metadata.get(f"{model_header.architecture}.embedding_length")
        return _identity(path, checked_projector(path, embedding if isinstance(embedding, int) else 0))

    def _probe_once(self, path: Path, identity: str, settings: LoadSettings, on_checking, cancel) -> None:
        verdict = self._known_verdicts().get(identity)
        if verdict is None:
            if on_checking is not None:
                on_checking(0.0)
            result = probe_model(path, settings, on_progress=on_checking, cancel=cancel, limits=self._limits)
            if result.out_of_memory:
                raise ModelMemoryError(result.message)
            if not result.definitive:  # a time-out may pass on a quieter machine: not remembered
                raise ModelLoadError(result.message)
            verdict = {"ok": result.ok, "message": result.message, "file": str(path)}
            self._remember(identity, verdict)
        if not verdict["ok"]:
            raise ModelLoadError(verdict["message"])

    def _known_verdicts(self) -> dict[str, dict]:
        if self._verdicts is None:
            self._verdicts = {}
            if self._verdicts_file is not None:
                try:
                    stored = json.loads(self._verdicts_file.read_text(encoding="utf-8"))
                    self._verdicts = {key: value for key, value in stored.items() if _is_verdict(value)}
                except (OSError, ValueError, AttributeError):
                    pass  # none yet, or damaged: files are checked again
        return self._verdicts

    def _remember(self, identity: str, verdict: dict) -> None:
        verdicts = self._known_verdicts()
        verdicts[identity] = verdict
        if self._verdicts_file is None:
            return
        try:
            write_text_atomically(self._verdicts_file, json.dumps(verdicts, ensure_ascii=False, indent=1))
        except OSError as error:  # the check is only repeated next time
            logger.warning("Could not remember model checks in %s: %s", self._verdicts_file, error)


def _identity(path: Path, header: GGUFHeader) -> str:
    status = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as file:
        digest.update(file.read(min(header.data_offset, _HASHED_HEADER_BYTES)))
    return f"llama.cpp {llama_cpp.__version__}|{status.st_size}|{status.st_mtime_ns}|{digest.hexdigest()}"


def _is_verdict(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get("ok"), bool) and isinstance(value.get("message"), str)
