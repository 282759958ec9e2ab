"""Memory is a gate: the context a model loads with (and its projector), and refusing what cannot fit in the free memory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.core.domain.generation import LoadSettings, ModelFacts, ModelWontFitError
from app.core.domain.gguf_header import read_gguf_header
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.fit_estimate import GIB, FitVerdict, ModelShape, assess_fit
from app.core.models.memory_fit import MemoryFit
from tests.core.test_fit_estimate import machine
from tests.gguf_mutations import declare_huge_tensor


def _fit(available_bytes: int) -> MemoryFit:
    return MemoryFit(lambda: replace(machine(), available_ram_bytes=available_bytes))


def test_a_model_declaring_more_than_the_free_memory_is_refused_with_the_numbers(tmp_path) -> None:
    huge = declare_huge_tensor(write_tiny_qwen35_gguf(tmp_path / "huge.gguf"), 40 * GIB)
    with pytest.raises(ModelWontFitError, match="Needs 40.0 GB, but only 12.0 GB is available") as refusal:
        _fit(12 * GIB)(read_gguf_header(huge), LoadSettings(), loaded=None, despite_memory=False)
    shortfall = refusal.value.shortfall
    assert shortfall.needed_bytes > 40 * GIB and shortfall.available_bytes == 12 * GIB
    assert shortfall.fitting_context == 0
    assert "Choose a smaller size or quantization" in str(refusal.value)


def test_loading_anyway_passes_the_gate_once_the_user_confirmed(tmp_path) -> None:
    huge = declare_huge_tensor(write_tiny_qwen35_gguf(tmp_path / "huge.gguf"), 40 * GIB)
    settings = _fit(12 * GIB)(read_gguf_header(huge), LoadSettings(context_size=4096), loaded=None, despite_memory=True)
    assert settings.context_size == 4096


def _long_context_model(tmp_path: Path, weights_bytes: int = 0) -> tuple[Path, ModelShape]:
    model = write_tiny_qwen35_gguf(tmp_path / "long.gguf", overrides={"qwen35.context_length": 1 << 20})
    if weights_bytes:
        declare_huge_tensor(model, weights_bytes)
    return model, ModelShape.from_gguf(model)


def test_a_context_that_does_not_fit_is_refused_with_the_largest_one_that_does(tmp_path) -> None:
    model, shape = _long_context_model(tmp_path, weights_bytes=8 * GIB)
    size = model.stat().st_size
    # Fits with 64K tokens, though too tightly to run well at any context: then the preferred
    # context is not reduced by itself, and the refusal names the one that fits.
    needed_at_64k = assess_fit(shape, size, machine(available_gb=1000), 65536).estimate.total
    available = needed_at_64k
    assert assess_fit(shape, size, replace(machine(), available_ram_bytes=available), 1024).memory_verdict is FitVerdict.TIGHT

    with pytest.raises(ModelWontFitError) as refusal:
        _fit(available)(read_gguf_header(model), LoadSettings(context_size=1 << 20), loaded=None, despite_memory=False)
    assert refusal.value.shortfall.fitting_context == 65536
    assert "It would fit with a context of 65,536 tokens instead of 1,048,576" in str(refusal.value)


def test_a_preferred_context_too_large_to_run_well_is_reduced_to_one_that_does(tmp_path) -> None:
    model, shape = _long_context_model(tmp_path)
    settings = _fit(GIB // 2)(read_gguf_header(model), LoadSettings(context_size=1 << 20), loaded=None, despite_memory=False)
    assert 0 < settings.context_size < 1 << 20
    fit = assess_fit(shape, model.stat().st_size, replace(machine(), available_ram_bytes=GIB // 2), settings.context_size)
    assert fit.memory_verdict is FitVerdict.RUNS_WELL


def test_the_memory_of_the_model_being_replaced_counts_as_free(tmp_path) -> None:
    loaded_path = declare_huge_tensor(write_tiny_qwen35_gguf(tmp_path / "loaded.gguf"), 10 * GIB)
    new = declare_huge_tensor(write_tiny_qwen35_gguf(tmp_path / "new.gguf"), 8 * GIB)
    loaded = ModelFacts(
        path=loaded_path, name="loaded", architecture="qwen35", size_label="", parameter_count=0,
        file_size=loaded_path.stat().st_size, trained_context=4096, context_size=4096, chat_template="",
        thinks_by_default=False, backend="CPU", gpu_layers=0, threads=2, batch_size=512,
    )
    header = read_gguf_header(new)
    with pytest.raises(ModelWontFitError):  # 2 GB free now, with the 10 GB model still loaded
        _fit(2 * GIB)(header, LoadSettings(context_size=4096), loaded=None, despite_memory=False)
    settings = _fit(2 * GIB)(header, LoadSettings(context_size=4096), loaded=loaded, despite_memory=False)
    assert settings.context_size == 4096


def _large_projector(tmp_path: Path, file_bytes: int) -> Path:
    """The tiny projector in a file of ``file_bytes`` (extended sparsely: no disk used)."""
    projector = write_tiny_qwen35_projector(tmp_path / "mmproj-F16.gguf")
    with projector.open("r+b") as file:
        file.truncate(file_bytes)
    return projector


def test_the_projector_loaded_with_a_model_counts_against_the_free_memory(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    projector = _large_projector(tmp_path, 8 * GIB)
    fit = _fit(6 * GIB)
    assert fit(read_gguf_header(model), LoadSettings(context_size=4096), loaded=None, despite_memory=False).context_size == 4096
    with pytest.raises(ModelWontFitError, match=r"Image support takes 8\.\d GB of that"):
        fit(read_gguf_header(model), LoadSettings(context_size=4096, projector=projector), loaded=None, despite_memory=False)


def test_the_projector_of_the_model_being_replaced_counts_as_free(tmp_path) -> None:
    model = write_tiny_qwen35_gguf(tmp_path / "model.gguf")
    projector = _large_projector(tmp_path, 8 * GIB)
    loaded = ModelFacts(
        path=model, name="loaded", architecture="qwen35", size_label="", parameter_count=0,
        file_size=model.stat().st_size, trained_context=4096, context_size=4096, chat_template="",
        thinks_by_default=False, backend="CPU", gpu_layers=0, threads=2, batch_size=512, projector=projector,
    )
    settings = LoadSettings(context_size=4096, projector=projector)
    with pytest.raises(ModelWontFitError):  # 2 GB free now, with the 8 GB projector still loaded
        _fit(2 * GIB)(read_gguf_header(model), settings, loaded=replace(loaded, projector=None), despite_memory=False)
    assert _fit(2 * GIB)(read_gguf_header(model), settings, loaded=loaded, despite_memory=False).projector == projector
