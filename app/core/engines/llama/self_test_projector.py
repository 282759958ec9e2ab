"""Generator of a tiny but real Qwen3.5 vision projector (``mmproj``), beside the tiny text model.

It has the keys and tensors llama.cpp's converter writes for Qwen3.5 (``clip.projector_type =
qwen3vl_merger``: a ViT with learned, resizable position embeddings, two patch-embedding frames, a
2×2 spatial merger and no deepstack layers), with random weights and a hidden size of 32, so
libmtmd loads it and encodes an image in milliseconds. Its projection size is the tiny text
model's embedding length, so the two pair up like a published model and its ``mmproj-F16.gguf``.

The weights are random: what the model "sees" is noise. Tests use it to run the real image path
(decode, preprocess, encode, evaluate, reuse), not to check what a reply says about a picture.
The benchmark writes one shaped like Qwen3.5-0.8B's (``QWEN35_0_8B``) to measure real costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from app.core.engines.llama import self_test_model

PROJECTOR_TYPE = "qwen3vl_merger"
PATCH_SIZE = 16
SPATIAL_MERGE_SIZE = 2  # 2×2 patches become one image token
LAYER_NORM_EPS = 1e-6
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ProjectorShape:
    """The sizes of a vision tower; ``half`` stores its matrices as F16, as published ones are."""

    hidden_size: int
    head_count: int  # the head dimension must divide by 4: M-RoPE splits it in four sections
    feed_forward_length: int
    block_count: int
    projection_dim: int  # the text model's embedding length
    image_size: int  # of the learned position grid (image_size / 16 on a side), resized per image
    half: bool = False


TINY = ProjectorShape(32, 2, 64, 2, self_test_model.EMBEDDING_LENGTH, 64)
# Shaped like Qwen3.5-0.8B's tower (assumed from Qwen3-VL's small towers: 12 layers of 768,
# a 48 × 48 position grid) for the benchmark: random weights, real costs.
QWEN35_0_8B = ProjectorShape(768, 12, 3072, 12, 1024, 768, half=True)


def _tensors(rng: np.random.Generator, shape: ProjectorShape, *, position_embedding_type: type = np.float32) -> dict[str, np.ndarray]:
    matrix_type = np.float16 if shape.half else np.float32

    def random(*dimensions: int, std: float = 0.02) -> np.ndarray:
        return rng.normal(0.0, std, dimensions).astype(matrix_type)

    n = shape.hidden_size
    merged = n * SPATIAL_MERGE_SIZE * SPATIAL_MERGE_SIZE
    positions = (shape.image_size // PATCH_SIZE) ** 2
    tensors = {
        # numpy shapes are the reverse of ggml's: a conv kernel is (out, in, height, width)
        "v.patch_embd.weight": random(n, 3, PATCH_SIZE, PATCH_SIZE),
        "v.patch_embd.weight.1": random(n, 3, PATCH_SIZE, PATCH_SIZE),
        "v.patch_embd.bias": np.zeros(n, dtype=np.float32),
        "v.position_embd.weight": rng.normal(0.0, 0.02, (positions, n)).astype(position_embedding_type),
    }
    for block in range(shape.block_count):
        prefix = f"v.blk.{block}."
        tensors |= {
            prefix + "ln1.weight": np.ones(n, dtype=np.float32),
            prefix + "ln1.bias": np.zeros(n, dtype=np.float32),
            prefix + "attn_qkv.weight": random(3 * n, n),
            prefix + "attn_qkv.bias": np.zeros(3 * n, dtype=np.float32),
            prefix + "attn_out.weight": random(n, n),
            prefix + "attn_out.bias": np.zeros(n, dtype=np.float32),
            prefix + "ln2.weight": np.ones(n, dtype=np.float32),
            prefix + "ln2.bias": np.zeros(n, dtype=np.float32),
            prefix + "ffn_up.weight": random(shape.feed_forward_length, n),
            prefix + "ffn_up.bias": np.zeros(shape.feed_forward_length, dtype=np.float32),
            prefix + "ffn_down.weight": random(n, shape.feed_forward_length),
            prefix + "ffn_down.bias": np.zeros(n, dtype=np.float32),
        }
    tensors |= {
        "v.post_ln.weight": np.ones(n, dtype=np.float32),
        "v.post_ln.bias": np.zeros(n, dtype=np.float32),
        "mm.0.weight": random(merged, merged),
        "mm.0.bias": np.zeros(merged, dtype=np.float32),
        "mm.2.weight": random(shape.projection_dim, merged),
        "mm.2.bias": np.zeros(shape.projection_dim, dtype=np.float32),
    }
    return tensors


def write_tiny_qwen35_projector(
    path: Path,
    *,
    seed: int = 0,
    overrides: Mapping[str, object] | None = None,
    leave_out: tuple[str, ...] = (),
    position_embedding_type: type = np.float32,
    shape: ProjectorShape = TINY,
) -> Path:
    """Write the tiny projector to ``path`` and return ``path``.

    For the damaged files the app must refuse: ``overrides`` replaces metadata values by key
    (keeping each value's type), ``leave_out`` drops tensors by name, and
    ``position_embedding_type`` stores the position table in another type (libmtmd aborts the
    process on anything but F32). ``shape`` makes a bigger tower (the benchmark's).
    """
    path = Path(path)
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_name("Tiny Qwen3.5 test projector")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_string("clip.projector_type", PROJECTOR_TYPE)
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.projection_dim", shape.projection_dim)
    writer.add_uint32("clip.vision.image_size", shape.image_size)
    writer.add_uint32("clip.vision.patch_size", PATCH_SIZE)
    writer.add_uint32("clip.vision.embedding_length", shape.hidden_size)
    writer.add_uint32("clip.vision.feed_forward_length", shape.feed_forward_length)
    writer.add_uint32("clip.vision.block_count", shape.block_count)
    writer.add_uint32("clip.vision.attention.head_count", shape.head_count)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", LAYER_NORM_EPS)
    writer.add_array("clip.vision.image_mean", list(IMAGE_MEAN))
    writer.add_array("clip.vision.image_std", list(IMAGE_STD))
    writer.add_uint32("clip.vision.spatial_merge_size", SPATIAL_MERGE_SIZE)

    for key, value in (overrides or {}).items():
        original = writer.kv_data[0][key]
        writer.kv_data[0][key] = gguf.GGUFValue(value, original.type, original.sub_type)

    tensors = _tensors(np.random.default_rng(seed), shape, position_embedding_type=position_embedding_type)
    for name, tensor in tensors.items():
        if name not in leave_out:
            writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
