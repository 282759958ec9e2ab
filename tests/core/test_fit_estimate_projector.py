"""Image support in the memory estimate: projector shapes, where their memory lives, and verdicts with them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.core.domain.generation import IMAGE_DETAIL_TOKENS
from app.core.engines.llama import self_test_projector
from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf
from app.core.engines.llama.self_test_projector import write_tiny_qwen35_projector
from app.core.models.fit_estimate import (
    GIB,
    MIB,
    QWEN35_PROJECTOR_SHAPES,
    QWEN35_SHAPES,
    WARMUP_IMAGE_TOKENS,
    FitVerdict,
    ProjectorShape,
    VisionProjector,
    assess_fit,
    estimate_memory,
    largest_context,
    recommend_model,
)
from tests.core.test_fit_estimate import CPU_BATCH, Q4_K_M_BYTES, machine

# Published mmproj-F16.gguf sizes (reference, "Published GGUF files").
PUBLISHED_PROJECTOR_BYTES = {"4B": 672_423_616, "9B": 918_166_080}


def _catalog_projector(size: str) -> VisionProjector:
    shape = QWEN35_PROJECTOR_SHAPES[size]
    return VisionProjector(shape, PUBLISHED_PROJECTOR_BYTES.get(size, shape.estimated_file_bytes))


@pytest.mark.parametrize("size", PUBLISHED_PROJECTOR_BYTES)
def test_a_projectors_file_size_follows_from_its_shape(size: str) -> None:
    estimated = QWEN35_PROJECTOR_SHAPES[size].estimated_file_bytes
    assert abs(estimated - PUBLISHED_PROJECTOR_BYTES[size]) <= 0.0001 * PUBLISHED_PROJECTOR_BYTES[size]


def test_every_size_has_a_projector_that_feeds_its_width() -> None:
    assert {size: shape.projection_dim for size, shape in QWEN35_PROJECTOR_SHAPES.items()} == {
        size: shape.embedding_length for size, shape in QWEN35_SHAPES.items()
    }


def test_a_projectors_header_gives_its_shape_and_a_model_is_no_projector(tmp_path: Path) -> None:
    path = write_tiny_qwen35_projector(tmp_path / "mmproj-tiny.gguf")
    projector = VisionProjector.from_gguf(path)
    tiny = self_test_projector.TINY
    assert projector.file_bytes == path.stat().st_size
    assert projector.shape == ProjectorShape(
        width=tiny.hidden_size,
        feed_forward_length=tiny.feed_forward_length,
        block_count=tiny.block_count,
        projection_dim=tiny.projection_dim,
        position_count=(tiny.image_size // 16) ** 2,
    )
    with pytest.raises(ValueError, match="no vision projector"):
        VisionProjector.from_gguf(write_tiny_qwen35_gguf(tmp_path / "model.gguf"))


def test_on_a_cpu_image_support_is_the_projectors_file_and_what_reading_a_picture_takes() -> None:
    shape, weights = QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"]
    projector = _catalog_projector("4B")
    text = estimate_memory(shape, weights, 8192, batch_size=CPU_BATCH)
    with_images = estimate_memory(shape, weights, 8192, batch_size=CPU_BATCH, projector=projector)

    assert text.image_support == 0
    assert with_images.total - text.total == with_images.image_support
    assert with_images.cpu_bytes - text.cpu_bytes == with_images.image_support and with_images.gpu_bytes == 0
    assert projector.file_bytes < with_images.projector_weights < projector.file_bytes + 8 * MIB
    # A standard picture (1,024 tokens) through a 1024-wide tower: some 200 MiB besides the weights.
    assert 150 * MIB < with_images.image_encoder < 300 * MIB


def test_a_larger_picture_takes_more_memory_in_proportion_to_its_tokens() -> None:
    shape, weights, projector = QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"], _catalog_projector("9B")

    def encoder(tokens: int) -> int:
        return estimate_memory(shape, weights, 8192, projector=projector, image_tokens=tokens).image_encoder

    tokens = [IMAGE_DETAIL_TOKENS[detail] for detail in ("low", "standard", "high")]
    low, standard, high = map(encoder, tokens)
    assert low < standard < high
    assert (high - standard) * (tokens[1] - tokens[0]) == (standard - low) * (tokens[2] - tokens[1])  # linear


def test_with_layers_on_a_gpu_the_projector_and_its_warm_up_buffer_are_there_too() -> None:
    shape, weights, projector = QWEN35_SHAPES["2B"], Q4_K_M_BYTES["2B"], _catalog_projector("2B")
    layers = shape.layer_count + 1
    text = estimate_memory(shape, weights, 8192, gpu_layers=layers)

    def on_gpu(tokens: int):
        return estimate_memory(shape, weights, 8192, gpu_layers=layers, projector=projector, image_tokens=tokens)

    small, warm_up, large = on_gpu(256), on_gpu(WARMUP_IMAGE_TOKENS), on_gpu(IMAGE_DETAIL_TOKENS["high"])
    assert small.gpu_bytes - text.gpu_bytes > projector.file_bytes
    # The device's buffer is reserved for the warm-up picture, however small the pictures are.
    assert small.gpu_bytes - text.gpu_bytes > 0.95 * (warm_up.gpu_bytes - text.gpu_bytes)
    assert large.gpu_bytes > warm_up.gpu_bytes
    # What stays in RAM: the pixels, the embeddings and the saved state, far less than the weights.
    assert small.cpu_bytes - text.cpu_bytes < projector.file_bytes // 4


def test_the_verdict_says_what_image_support_takes_and_can_turn_on_it() -> None:
    shape, weights, projector = QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"], _catalog_projector("4B")
    text = assess_fit(shape, weights, machine(available_gb=12), 8192)
    with_images = assess_fit(shape, weights, machine(available_gb=12), 8192, projector=projector)
    assert "Image support" not in text.explanation
    assert f"Image support takes {with_images.estimate.image_support / GIB:.1f} GB of that." in with_images.explanation

    # A little less memory than it needs with image support: with it, only a smaller context fits.
    between = with_images.estimate.total - 100 * MIB
    tight = replace(machine(), available_ram_bytes=between)
    assert assess_fit(shape, weights, tight, 8192).memory_verdict is not FitVerdict.WONT_FIT
    assert assess_fit(shape, weights, tight, 8192, projector=projector).memory_verdict is FitVerdict.WONT_FIT
    fitting = {
        support: largest_context(shape, weights, tight, at_worst=FitVerdict.TIGHT, projector=support)
        for support in (None, projector)
    }
    assert 0 < fitting[projector] < 8192 <= fitting[None]  # the context that fits with images is smaller


def test_the_recommendation_counts_the_image_support_downloaded_with_it() -> None:
    candidates = [(size, QWEN35_SHAPES[size], Q4_K_M_BYTES[size]) for size in QWEN35_SHAPES]
    projectors = {size: _catalog_projector(size) for size in QWEN35_SHAPES}
    # Where 4B runs well text-only with an 8K context, but not once its image support is added.
    needed = assess_fit(QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"], machine(available_gb=64), 8192).estimate.total
    available = needed + int(1.6 * GIB)  # the margin that "runs well" leaves, and a little more
    computer = replace(machine(total_gb=16), available_ram_bytes=available, decode_bytes_per_second=400e9)
    assert recommend_model(candidates, computer).label == "4B"
    assert recommend_model(candidates, computer, projectors).label == "2B"
