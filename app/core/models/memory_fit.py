"""Memory as a gate: the context a model is loaded with, and refusing one that cannot fit now.

The estimate (``fit_estimate``) is compared with the memory free *right now*, plus what the model
loaded at the moment will give back when it is replaced. A preferred context the model cannot run
well with is reduced to the largest one it runs well with; a model that does not fit at all is
refused with the numbers and the ways out, unless the user confirmed loading it anyway. A vision
projector loaded with the model counts, reading pictures at the default image detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.core.domain.generation import LoadSettings, MemoryShortfall, ModelFacts, ModelWontFitError
from app.core.domain.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header
from app.core.domain.hardware import HardwareInfo
from app.core.domain.model_files import gguf_file_problem
from app.core.models.fit_estimate import (
    FitVerdict,
    ModelShape,
    VisionProjector,
    assess_fit,
    estimate_memory,
    largest_context,
)


class MemoryFit:
    """The admission's memory check (``ModelGate``'s ``memory_check``)."""

    def __init__(self, hardware_now: Callable[[], HardwareInfo]) -> None:
        """``hardware_now()`` measures the free memory (RAM and GPUs) at the moment of a load."""
        self._hardware_now = hardware_now

    def __call__(
        self, header: GGUFHeader, settings: LoadSettings, *, loaded: ModelFacts | None, despite_memory: bool
    ) -> LoadSettings:
        try:
            shape = ModelShape.from_header(header, "")
        except (ValueError, TypeError):
            return settings  # an architecture the estimate cannot read: llama.cpp decides
        hardware = _with_memory_of(self._hardware_now(), loaded)
        weights = header.file_size
        projector = _projector(settings.projector)
        largest = largest_context(shape, weights, hardware, gpu_layers=settings.gpu_layers, projector=projector)
        context = min(settings.context_size, largest) if largest else settings.context_size
        assessment = assess_fit(shape, weights, hardware, context, gpu_layers=settings.gpu_layers, projector=projector)
        if assessment.memory_verdict is FitVerdict.WONT_FIT and not despite_memory:
            fitting = largest_context(
                shape, weights, hardware, gpu_layers=settings.gpu_layers, at_worst=FitVerdict.TIGHT, projector=projector
            )
            shortfall = MemoryShortfall(assessment.needed_bytes, assessment.shown_available_bytes, fitting)
            raise ModelWontFitError(_refusal(assessment.explanation, context, fitting), shortfall)
        return replace(settings, context_size=context)


def _with_memory_of(hardware: HardwareInfo, loaded: ModelFacts | None) -> HardwareInfo:
    """The computer as it will be once the loaded model is freed for the new one."""
    if loaded is None:
        return hardware
    try:
        shape = ModelShape.from_header(read_gguf_header(loaded.path), "")
    except (GGUFHeaderError, ValueError, TypeError, OSError):
        return hardware
    freed = estimate_memory(
        shape, loaded.file_size, loaded.context_size, gpu_layers=loaded.gpu_layers, projector=_projector(loaded.projector)
    )
    gpus = hardware.gpus
    if gpus and freed.gpu_bytes:
        gpus = (replace(gpus[0], free_bytes=gpus[0].free_bytes + freed.gpu_bytes), *gpus[1:])
    return replace(hardware, available_ram_bytes=hardware.available_ram_bytes + freed.cpu_bytes, gpus=gpus)


def _projector(path: Path | None) -> VisionProjector | None:
    """The projector to count; one that cannot be read is the engine's to refuse, not this check's."""
    if path is None or gguf_file_problem(path) is not None:  # never opens a pipe, which would block
        return None
    try:
        return VisionProjector.from_gguf(path)
    except (GGUFHeaderError, ValueError, OSError):
        return None


def _refusal(explanation: str, context: int, fitting: int) -> str:
    """E.g. "Needs 33.8 GB, but only 22.4 GB is available. It would fit with a context of 8,192
    tokens; or choose a smaller size or quantization, or close other programs."."""
    sentence = f"This model does not fit in the memory free now. {explanation}"
    if fitting and fitting < context:
        return sentence + (
            f" It would fit with a context of {fitting:,} tokens instead of {context:,}; or choose a "
            "smaller size or quantization, or close other programs."
        )
    return sentence + " Choose a smaller size or quantization in Models…, or close other programs."

