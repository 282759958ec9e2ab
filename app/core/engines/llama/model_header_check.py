"""The header checks a model file passes before llama.cpp sees it: sane, consistent values only.

llama.cpp trusts a GGUF's hyper-parameters: some values kill the process that loads it (an
``full_attention_interval`` of 0 divides by zero; an odd rotary dimension, rope sections wider
than it, a zero layer count or a NaN epsilon hit a ``GGML_ASSERT``), and a header that declares
billions of layers makes every loop over them hang. These checks refuse such files in Python with
a reason. They are a first line only: what they miss, the first-use probe in a child process
(``model_probe``) catches, so they stay cheap and aim at the values llama.cpp is known to trust.
"""

from __future__ import annotations

import math
import re

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from app.core.domain.gguf_header import GGUFHeader

MAX_LAYERS = 1024  # the largest published models have ~128
MAX_WIDTH = 1 << 17  # hidden sizes, feed-forward widths (the largest published: ~50k)
MAX_HEADS = 1024
MAX_HEAD_DIMENSION = 8192
MAX_TRAINED_CONTEXT = 1 << 24  # 16M tokens; Qwen3.5's is 262,144
MAX_VOCABULARY = 1 << 22
MAX_TEMPLATE_CHARACTERS = 1 << 20  # real chat templates are 5-30 KB
_LAYER_TENSOR = re.compile(r"blk\.(\d+)\.")

# What the qwen35 loader reads without a default (src/models/qwen35.cpp) and its range.
_QWEN35_REQUIRED = {
    "ssm.conv_kernel": (1, 64),
    "ssm.state_size": (1, 4096),
    "ssm.group_count": (1, MAX_HEADS),
    "ssm.time_step_rank": (1, MAX_HEADS),
    "ssm.inner_size": (1, MAX_WIDTH),
}


class _Refused(Exception):
    pass


def model_header_problem(header: GGUFHeader, file_name: str) -> str | None:
    """Why llama.cpp must not be given this file, as a sentence for the user; None if it may."""
    try:
        _check(header)
    except _Refused as refusal:
        return f"“{file_name}” cannot be used: {refusal}. The file is damaged or was made wrongly."
    return None


def _check(header: GGUFHeader) -> None:
    metadata = header.metadata
    architecture = header.architecture
    if not architecture:
        raise _Refused("it names no model architecture")
    template = metadata.get("tokenizer.chat_template")
    if isinstance(template, str) and len(template) > MAX_TEMPLATE_CHARACTERS:
        raise _Refused(f"its chat template is {len(template):,} characters long")

    def key(name: str) -> str:
        return f"{architecture}.{name}"

    for name, value in metadata.items():
        if name.startswith(architecture + ".") and isinstance(value, float) and not math.isfinite(value):
            raise _Refused(f"{name} is {value}")

    layers = _integer(metadata, key("block_count"), 1, MAX_LAYERS, required=True)
    embedding = _integer(metadata, key("embedding_length"), 1, MAX_WIDTH, required=True)
    _integers(metadata, key("feed_forward_length"), 0, MAX_WIDTH)
    # Per-layer lists may hold 0 (a recurrent layer); one number for all layers may not: llama.cpp
    # divides by it.
    heads = _integers(metadata, key("attention.head_count"), 0, MAX_HEADS, each_layer_at_least=1)
    kv_heads = _integers(metadata, key("attention.head_count_kv"), 0, MAX_HEADS, each_layer_at_least=1)
    for head_count, kv_head_count in zip(heads, kv_heads):
        if kv_head_count and head_count % kv_head_count:
            raise _Refused(f"{head_count} attention heads cannot share {kv_head_count} key-value heads")
    key_length = _integer(metadata, key("attention.key_length"), 1, MAX_HEAD_DIMENSION)
    _integer(metadata, key("attention.value_length"), 1, MAX_HEAD_DIMENSION)
    _integer(metadata, key("context_length"), 1, MAX_TRAINED_CONTEXT)
    for epsilon_key in ("attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon"):
        _fraction(metadata, key(epsilon_key))
    base = metadata.get(key("rope.freq_base"))
    if base is not None and not (isinstance(base, (int, float)) and base > 0):
        raise _Refused(f"{key('rope.freq_base')} is {base}")
    head_dimension = key_length or (embedding // max(heads) if heads and max(heads) else 0)
    rotary = _integer(metadata, key("rope.dimension_count"), 1, max(head_dimension, 1))
    if rotary is not None and rotary % 2:
        raise _Refused(f"its rotary dimension {rotary} is odd")
    sections = metadata.get(key("rope.dimension_sections"))
    if sections is not None:
        if not isinstance(sections, list) or len(sections) > 4 or not all(isinstance(s, int) and s >= 0 for s in sections):
            raise _Refused(f"{key('rope.dimension_sections')} is not four sizes")
        if sum(sections) > (rotary or head_dimension) // 2:
            raise _Refused("its rope sections are wider than its rotary dimensions")
    interval = _integer(metadata, key("full_attention_interval"), 1, layers)
    if architecture == "qwen35":
        _check_qwen35(metadata, key, interval)
    _check_tensors(header, layers, embedding)


def _check_qwen35(metadata: dict, key, interval: int | None) -> None:
    values = {name: _integer(metadata, key(name), low, high, required=True) for name, (low, high) in _QWEN35_REQUIRED.items()}
    if interval is None and key("attention.recurrent_layers") not in metadata:
        raise _Refused(f"{key('full_attention_interval')} is missing")
    if values["ssm.time_step_rank"] % values["ssm.group_count"]:
        raise _Refused("its linear-attention value heads cannot share its key heads")
    if values["ssm.inner_size"] != values["ssm.state_size"] * values["ssm.time_step_rank"]:
        raise _Refused("its linear-attention sizes do not agree with each other")


def tensor_layout_problem(header: GGUFHeader) -> str | None:
    """Why the tensor table cannot be right (a type, a shape, an offset outside the file), as
    the end of a sentence ("tensor x is not aligned"); None when every tensor lies in the file.
    Shared with the projector's checks."""
    data_size = header.file_size - header.data_offset
    for name, tensor in header.tensors.items():
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.ggml_type)]
        except (ValueError, KeyError):
            return f"tensor {name} has an unknown type {tensor.ggml_type}"
        if any(dimension < 1 for dimension in tensor.shape) or tensor.shape[0] % block:
            return f"tensor {name} has the impossible shape {list(tensor.shape)}"
        if tensor.offset % header.alignment:
            return f"tensor {name} is not aligned"
        byte_count = math.prod(tensor.shape) // block * block_bytes
        if tensor.offset > data_size or byte_count > data_size - tensor.offset:
            return f"tensor {name} lies beyond the end of the file: the file is incomplete"
    return None


def _check_tensors(header: GGUFHeader, layers: int, embedding: int) -> None:
    if not header.tensors:
        raise _Refused("it holds no tensors")
    problem = tensor_layout_problem(header)
    if problem is not None:
        raise _Refused(problem)
    for name in header.tensors:
        match = _LAYER_TENSOR.match(name)
        if match and int(match.group(1)) >= layers:
            raise _Refused(f"tensor {name} belongs to a layer beyond its {layers} layers")
    missing = next((layer for layer in range(layers) if f"blk.{layer}.attn_norm.weight" not in header.tensors), None)
    if missing is not None:
        raise _Refused(f"it declares {layers} layers but holds no layer {missing}")
    embeddings = header.tensors.get("token_embd.weight")
    vocabulary = header.metadata.get("tokenizer.ggml.tokens")
    if embeddings is None:
        raise _Refused("it holds no token embeddings")
    if embeddings.shape[0] != embedding or (isinstance(vocabulary, int) and embeddings.shape[1:2] != (vocabulary,)):
        raise _Refused("its token embeddings do not match its sizes")
    if isinstance(vocabulary, int) and not 1 <= vocabulary <= MAX_VOCABULARY:
        raise _Refused(f"its vocabulary has {vocabulary:,} tokens")


def _integer(metadata: dict, name: str, low: int, high: int, *, required: bool = False) -> int | None:
    value = metadata.get(name)
    if value is None:
        if required:
            raise _Refused(f"{name} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Refused(f"{name} is {value!r}, outside {low:,} to {high:,}")
    return value


def _integers(metadata: dict, name: str, low: int, high: int, *, each_layer_at_least: int = 0) -> list[int]:
    """A value llama.cpp accepts as one number or one per layer; one number stands for every
    layer, so it must be at least ``each_layer_at_least``."""
    value = metadata.get(name)
    if value is None:
        return []
    if isinstance(value, list):
        values = value
    else:
        values, low = [value], max(low, each_layer_at_least)
    for item in values:
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise _Refused(f"{name} holds {item!r}, outside {low:,} to {high:,}")
    return values


def _fraction(metadata: dict, name: str) -> None:
    value = metadata.get(name)
    if value is not None and not (isinstance(value, (int, float)) and 0 < value < 1):
        raise _Refused(f"{name} is {value!r}, not a small positive number")
