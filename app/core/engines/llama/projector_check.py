"""The checks a vision projector (``mmproj-*.gguf``) passes before libmtmd sees it.

libmtmd trusts its file more than llama.cpp's model loader does: a position-embedding table in
any type but F32, a missing patch bias or sizes that do not divide end the process with a
``GGML_ASSERT``, and a projector made for another model is loaded happily and then fed into a
text model of another width. So the header and tensor table are read in Python first and every
value the Qwen3-VL graph (``tools/mtmd/models/qwen3vl.cpp``) relies on is checked; what slips
through is caught by the first-use probe in a child process (``model_probe``).
"""

from __future__ import annotations

import math
from pathlib import Path

from gguf.constants import GGMLQuantizationType

from app.core.domain.generation import ModelLoadError
from app.core.domain.gguf_header import GGUFHeader, GGUFHeaderError, read_gguf_header
from app.core.domain.model_files import gguf_file_problem
from app.core.engines.llama.model_header_check import tensor_layout_problem

# The projector types whose graph this app has run; other families have other assertions.
SUPPORTED_PROJECTORS = frozenset({"qwen3vl_merger"})
MAX_WIDTH = 1 << 14  # the real Qwen3.5 towers are 768 to 1,152 wide
MAX_LAYERS = 256
MAX_IMAGE_SIZE = 1 << 14
_F32 = GGMLQuantizationType.F32


class _Refused(Exception):
    pass


def checked_projector(path: Path, text_embedding: int) -> GGUFHeader:
    """The header of the projector at ``path`` once the file and its header passed every check
    for a text model ``text_embedding`` wide; raises ``ModelLoadError`` with the reason."""
    problem = gguf_file_problem(path)
    if problem is not None:
        raise ModelLoadError(problem)
    try:
        header = read_gguf_header(path)
    except GGUFHeaderError as error:
        raise ModelLoadError(f"The image support file “{path.name}” cannot be read: {error}") from None
    problem = projector_problem(header, path.name, text_embedding)
    if problem is not None:
        raise ModelLoadError(problem)
    return header


def projector_problem(header: GGUFHeader, file_name: str, text_embedding: int) -> str | None:
    """Why this projector must not be loaded beside a text model ``text_embedding`` wide, as a
    sentence for the user; None if it may."""
    try:
        _check(header, text_embedding)
    except _Refused as refusal:
        return f"The image support file “{file_name}” cannot be used: {refusal}."
    return None


def _check(header: GGUFHeader, text_embedding: int) -> None:
    metadata = header.metadata
    if header.architecture != "clip":
        raise _Refused("it is not a vision projector (mmproj) file")
    if metadata.get("clip.has_vision_encoder") is not True:
        raise _Refused("it holds no vision encoder")
    projector_type = metadata.get("clip.projector_type") or metadata.get("clip.vision.projector_type")
    if projector_type not in SUPPORTED_PROJECTORS:
        raise _Refused(f"it is made for another kind of model (projector “{projector_type}”), not Qwen3.5")
    projection = _integer(metadata, "clip.vision.projection_dim", MAX_WIDTH)
    if projection != text_embedding:
        raise _Refused(
            f"it is made for a model {projection:,} wide, and the loaded model is {text_embedding:,} wide: "
            "choose the projector of the same model size"
        )
    width = _integer(metadata, "clip.vision.embedding_length", MAX_WIDTH)
    heads = _integer(metadata, "clip.vision.attention.head_count", MAX_WIDTH)
    layers = _integer(metadata, "clip.vision.block_count", MAX_LAYERS)
    feed_forward = _integer(metadata, "clip.vision.feed_forward_length", 4 * MAX_WIDTH)
    patch = _integer(metadata, "clip.vision.patch_size", 1024)
    _integer(metadata, "clip.vision.image_size", MAX_IMAGE_SIZE)
    merge = metadata.get("clip.vision.spatial_merge_size", 2)
    if merge != 2:
        raise _Refused(f"its spatial merge size is {merge!r}; Qwen3.5's is 2")
    if width % heads or (width // heads) % 4:
        raise _Refused(f"its {width} channels cannot be split into {heads} heads for M-RoPE")
    epsilon = metadata.get("clip.vision.attention.layer_norm_epsilon")
    if not isinstance(epsilon, float) or not 0 < epsilon < 1:
        raise _Refused(f"its layer-norm epsilon is {epsilon!r}")
    for key in ("clip.vision.image_mean", "clip.vision.image_std"):
        values = metadata.get(key)
        if not isinstance(values, list) or len(values) < 3 or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise _Refused(f"{key} is not three numbers")
    if not all(isinstance(v, float) and v != 0 for v in metadata["clip.vision.image_std"]):
        raise _Refused("clip.vision.image_std holds a zero")
    problem = tensor_layout_problem(header)
    if problem is not None:
        raise _Refused(problem)
    merged = 4 * width
    expected = {
        "v.patch_embd.weight": (patch, patch, 3, width),
        "v.patch_embd.weight.1": (patch, patch, 3, width),
        "v.patch_embd.bias": (width,),
        "mm.0.weight": (merged, None),
        "mm.2.weight": (None, projection),
    }
    for layer in range(layers):
        expected |= {
            f"v.blk.{layer}.attn_qkv.weight": (width, 3 * width),
            f"v.blk.{layer}.attn_out.weight": (width, width),
            f"v.blk.{layer}.ffn_up.weight": (width, feed_forward),
            f"v.blk.{layer}.ffn_down.weight": (feed_forward, width),
        }
    for name, shape in expected.items():
        tensor = header.tensors.get(name)
        if tensor is None:
            raise _Refused(f"it lacks the tensor {name}")
        if len(tensor.shape) != len(shape) or any(want is not None and have != want for have, want in zip(tensor.shape, shape)):
            raise _Refused(f"its tensor {name} has the shape {list(tensor.shape)}, not one its sizes allow")
    hidden = header.tensors["mm.0.weight"].shape[1]
    if header.tensors["mm.2.weight"].shape[0] != hidden:
        raise _Refused("its two merger layers do not fit together")
    positions = header.tensors.get("v.position_embd.weight")
    if positions is None:
        raise _Refused("it lacks the tensor v.position_embd.weight")
    side = math.isqrt(positions.shape[1]) if len(positions.shape) == 2 else 0
    if positions.ggml_type != _F32 or positions.shape[0] != width or side * side != positions.shape[1]:
        raise _Refused("its position table is not a square grid of F32 values")
    if any(name.startswith("v.deepstack") or ".deepstack" in name for name in header.tensors):
        raise _Refused("it has deepstack layers, which Qwen3.5 projectors do not")


def _integer(metadata: dict, key: str, high: int) -> int:
    value = metadata.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise _Refused(f"{key} is {value!r}" if value is not None else f"{key} is missing")
    return value
