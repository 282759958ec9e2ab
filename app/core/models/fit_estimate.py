"""Will a model run well on this computer? Memory estimates for llama.cpp and verdicts built on them.

The estimate covers what loading a model with the engine's settings allocates (one sequence, f16
KV cache, flash attention, one logits row, ``n_batch == n_ubatch``):

* the weights (the file, memory-mapped or copied to a device);
* the KV cache of the full-attention layers, which grows with the context;
* the recurrent state of the Gated-DeltaNet layers, which does not;
* llama.cpp's compute buffers for one micro-batch;
* the runtime's own overhead (vocabulary, output buffers, thread pool, graph metadata).

With a vision projector (``mmproj-*.gguf``) loaded beside the model, it also covers the
projector's weights and what its vision tower needs while it reads the largest picture the image
detail allows (see "Vision projectors" below).

It does not cover what the engine keeps for reusing work across turns (saved sequence states, up
to an eighth of the RAM by default) nor llama-cpp-python's own import (the app has paid for that
before it measures the available memory). Verdicts compare the estimate with the memory that is
*available* now, not the installed total.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from app.core.domain.generation import DEFAULT_IMAGE_DETAIL, IMAGE_DETAIL_TOKENS, default_batch_size
from app.core.domain.gguf_header import GGUFHeader, read_gguf_header
from app.core.domain.hardware import GpuDevice, HardwareInfo

GIB = 1024**3
MIB = 1024**2

KV_BYTES_PER_VALUE = 2  # f16 KV cache
STATE_BYTES_PER_VALUE = 4  # llama.cpp keeps recurrent states in f32
CONTEXT_PADDING = 256  # llama.cpp rounds n_ctx up to a multiple of this

# Compute buffers, measured on llama-cpp-python 0.3.36 (CPU backend, flash attention on) from the
# "compute buffer size" line llama.cpp logs when it creates a context, with GGUFs that have the
# real hidden, feed-forward, head and SSM sizes of each Qwen3.5 model (4 layers, tiny vocabulary):
#
#                n_ctx 4096  32768  262144 (MiB, ubatch 512; ubatch 256 gives exactly half)
#   0.8B         46.16       74.16  298.16
#   2B           52.16       80.16  304.16
#   4B           73.02      101.02  325.02
#   9B          100.02      128.02  352.02
#
# The same 0.8B sizes with 8 layers instead of 4, or a 50k-token vocabulary instead of 268 tokens,
# give the same 46.16 MiB. Per token of the micro-batch that is 2 bytes per context cell (the
# f16 attention mask) plus 12 bytes (three f32 activations alive at the peak) per unit of
# hidden + max(feed-forward, recurrent convolution channels); the formula is within 0.2 MiB of
# every measurement above and of single-dimension variations of them.
MASK_BYTES_PER_CONTEXT_CELL = 2
ACTIVATION_BYTES_PER_WIDTH = 12

# Runtime overhead: the process's RSS growth from loading and one generation, minus the parts
# above, in fresh processes with llama_cpp already imported, for the four Qwen3.5 shapes, 4K-64K
# contexts and F16 weights: 13.3, 17.3, 22-29 and 43.3 MiB with micro-batches of 128, 256, 512
# and 1024 tokens (thread pool, graph metadata and the CPU backend's scratch space), plus 236
# bytes per vocabulary token (a 248,320-token vocabulary with its merges adds 56 MiB: tokenizer
# tables, logits, sampler arrays). Rounded up a little.
RUNTIME_OVERHEAD_BYTES = 10 * MIB
RUNTIME_OVERHEAD_BYTES_PER_BATCH_TOKEN = 36 * 1024
RUNTIME_OVERHEAD_BYTES_PER_VOCABULARY_TOKEN = 240

# "Runs well" leaves a margin for the system and other programs: 1.5 GiB, or a fifth of what is
# available when that is less. A fixed 1.5 GiB would rule out models that run fine on small
# machines; a fixed fifth would waste gigabytes on large ones.
MARGIN_BYTES = int(1.5 * GIB)
MARGIN_FRACTION = 0.2

CONTEXT_STEP = 1024
# Recommended contexts: 32K holds long conversations and the model cards' typical reply budget
# while keeping the KV cache modest; below 4K a chat barely fits its system prompt and a reply.
DEFAULT_CONTEXT_LIMIT = 32768
MINIMUM_USEFUL_CONTEXT = 4096
# A model is only recommended if it runs well with a context at least this large.
RECOMMENDATION_MINIMUM_CONTEXT = 8192


@dataclass(frozen=True)
class ModelShape:
    """The dimensions of a model that its memory use depends on (weights aside)."""

    parameter_count: int
    layer_count: int
    attention_layer_count: int  # the rest are recurrent (Gated-DeltaNet / Mamba-style) layers
    embedding_length: int
    feed_forward_length: int
    kv_head_count: int
    key_length: int
    value_length: int
    trained_context: int
    vocabulary_size: int
    tied_embeddings: bool  # the output matrix is the token embedding matrix
    ssm_conv_kernel: int = 0
    ssm_state_size: int = 0
    ssm_group_count: int = 0
    ssm_inner_size: int = 0

    @property
    def recurrent_layer_count(self) -> int:
        return self.layer_count - self.attention_layer_count

    @property
    def kv_bytes_per_token(self) -> int:
        per_layer = self.kv_head_count * (self.key_length + self.value_length) * KV_BYTES_PER_VALUE
        return self.attention_layer_count * per_layer

    @property
    def recurrent_channels(self) -> int:
        """Channels of a recurrent layer's convolution: values, then keys and queries per group."""
        return self.ssm_inner_size + 2 * self.ssm_group_count * self.ssm_state_size

    @property
    def recurrent_state_bytes(self) -> int:
        """One sequence's recurrent state, as llama.cpp sizes it (``n_embd_r`` + ``n_embd_s``)."""
        convolution = max(self.ssm_conv_kernel - 1, 0) * self.recurrent_channels
        delta_rule = self.ssm_state_size * self.ssm_inner_size
        return self.recurrent_layer_count * (convolution + delta_rule) * STATE_BYTES_PER_VALUE

    @classmethod
    def from_gguf(cls, path: Path) -> ModelShape:
        """Reads the shape from a GGUF file's header (keys ``<architecture>.*`` and tensor infos).

        Raises ValueError if the file is not a readable GGUF model.
        """
        return cls.from_header(read_gguf_header(Path(path)), Path(path).name)

    @classmethod
    def from_header(cls, header: GGUFHeader, name: str) -> ModelShape:
        """The shape a header declares; raises ValueError if it names no architecture."""
        metadata = header.metadata
        tensors = {tensor_name: tensor.shape for tensor_name, tensor in header.tensors.items()}
        architecture = header.architecture
        if not architecture:
            raise ValueError(f"“{name}” names no architecture.")

        def number(key: str, default: int = 0) -> int:
            value = metadata.get(f"{architecture}.{key}")
            if value is None:
                return default
            # Some architectures give per-layer values; the largest one bounds the memory.
            return int(max(value, default=0) if isinstance(value, list) else value)

        layers = number("block_count")
        embedding = number("embedding_length")
        heads = number("attention.head_count")
        kv_heads = number("attention.head_count_kv", heads)
        key_length = number("attention.key_length", embedding // heads if heads else 0)
        attention_layers = _attention_layer_count(metadata, architecture, layers, kv_heads)
        # The token list's length, else the embedding matrix's second (ggml) dimension.
        vocabulary = metadata.get("tokenizer.ggml.tokens")
        if not isinstance(vocabulary, int):
            embedding_matrix = tensors.get("token_embd.weight", (0, 0))
            vocabulary = embedding_matrix[1] if len(embedding_matrix) > 1 else 0
        return cls(
            parameter_count=sum(math.prod(dims) for dims in tensors.values()),
            layer_count=layers,
            attention_layer_count=attention_layers,
            embedding_length=embedding,
            feed_forward_length=number("feed_forward_length"),
            kv_head_count=kv_heads if attention_layers else 0,
            key_length=key_length,
            value_length=number("attention.value_length", key_length),
            trained_context=number("context_length"),
            vocabulary_size=vocabulary,
            tied_embeddings="output.weight" not in tensors,
            ssm_conv_kernel=number("ssm.conv_kernel"),
            ssm_state_size=number("ssm.state_size"),
            ssm_group_count=number("ssm.group_count"),
            ssm_inner_size=number("ssm.inner_size"),
        )


def _attention_layer_count(metadata: dict, architecture: str, layers: int, kv_heads: int) -> int:
    interval = metadata.get(f"{architecture}.full_attention_interval")
    if isinstance(interval, int) and interval > 0:  # qwen35, qwen3next: every interval-th layer
        return layers // interval
    per_layer = metadata.get(f"{architecture}.attention.head_count_kv")
    if isinstance(per_layer, list):  # hybrids listing kv heads per layer: 0 marks a recurrent one
        return sum(1 for count in per_layer if count)
    return layers if kv_heads else 0


def _qwen35(*, hidden: int, feed_forward: int, layers: int, kv_heads: int, value_heads: int,
            parameters: int, tied: bool) -> ModelShape:
    return ModelShape(
        parameter_count=parameters,
        layer_count=layers,
        attention_layer_count=layers // 4,  # 3 Gated-DeltaNet layers, then 1 full-attention layer
        embedding_length=hidden,
        feed_forward_length=feed_forward,
        kv_head_count=kv_heads,
        key_length=256,
        value_length=256,
        trained_context=262144,
        vocabulary_size=248320,
        tied_embeddings=tied,
        ssm_conv_kernel=4,
        ssm_state_size=128,
        ssm_group_count=16,
        ssm_inner_size=value_heads * 128,
    )


# Text models from /work/shared/reference/qwen35.md. Parameter counts are those of the tensors a
# qwen35 GGUF holds with these sizes (the vision tower ships separately).
QWEN35_SHAPES: dict[str, ModelShape] = {
    "0.8B": _qwen35(hidden=1024, feed_forward=3584, layers=24, kv_heads=2, value_heads=16,
                    parameters=752_393_024, tied=True),
    "2B": _qwen35(hidden=2048, feed_forward=6144, layers=24, kv_heads=2, value_heads=16,
                  parameters=1_881_825_088, tied=True),
    "4B": _qwen35(hidden=2560, feed_forward=9216, layers=32, kv_heads=4, value_heads=32,
                  parameters=4_205_751_296, tied=True),
    "9B": _qwen35(hidden=4096, feed_forward=12288, layers=32, kv_heads=4, value_heads=32,
                  parameters=8_953_803_264, tied=False),
}


# --------------------------------------------------------------------------- vision projectors

# What a projector adds, measured with libmtmd from llama-cpp-python 0.3.36 on the CPU backend (2
# threads, flash attention on, as libmtmd's "auto" picks) in fresh processes, with projectors of
# the real Qwen3.5 widths (768/3072, 1024/4096, 1152/4304) and two others (1024/2048, 512/4096),
# F16 matrices like the published files, reading square pictures of 256, 1,024 and 4,096 tokens:
#
# * The weights: libmtmd reads the whole file into a buffer of its own (it maps nothing), so the
#   resident set grows by the file's size plus 3.5 MiB for its context, whatever the shape.
# * The vision tower's compute buffer, which the graph allocator sizes for the picture being read
#   (the engine skips the warm-up on a CPU): linear in the patches (16 × 16 pixels; 2 × 2 patches
#   make one image token), and not in the layer count (layers reuse it). Per patch it is the
#   larger of the attention step's 27 bytes per unit of width (qkv, the rotated q and k, F16
#   copies of k and v) and the feed-forward step's 4 bytes per feed-forward unit plus 10 per unit
#   of width: logged as 19,984, 27,664, 30,736, 27,664 and 21,520 bytes per patch for the five
#   shapes above, against 20,736, 27,648, 31,104, 27,648 and 21,504 from the formula.
# * Around that buffer, in the process heap: the picture's normalised pixels (3 KiB a patch), the
#   F16 copies of activations that F16 matrix products take, and the allocator's slack. 2 bytes
#   per feed-forward unit plus 8 KiB a patch is within 20 % of it everywhere.
# * The image's embeddings, one row of the text model's width per image token, twice (in the
#   compute buffer and in libmtmd's copy that the text model then evaluates).
# * The state the engine saves after each new picture, so that a later turn does not read it
#   again: the text model's recurrent state and the picture's KV cells. (Other saved states are
#   left out, as above; this one exists only because of the picture.)
#
# Together the estimate is within 8 % of the measured growth of the resident set for every shape
# and picture size above (tests/core/test_fit_estimate_measured.py checks it again, against the
# engine). With the benchmark's Qwen3.5-0.8B-shaped model and projector (bench/make_models.py,
# bench/vision.py), in fresh processes that load and answer one question at a 4K context, the
# whole estimate is 4 % under the measured growth with a 640×480 picture (302 tokens) and with a
# 1600×1200 one (974 tokens); the growth beyond a text-only run, 293 and 401 MiB, is within 10 %
# of image support's 265 and 368 MiB, the rest being text compute buffers that a short text-only
# question leaves untouched (bench/vision.py, with the saved state's quarter of slack counted:
# 291 MiB measured against 270 MiB, 1.08×; the whole 1.04×). The fit advice counts the largest
# picture the image detail allows
# (its token bound); compared with one picture, the estimate takes that picture's tokens.
#
# On a GPU the engine warms the projector up: its compute buffer is reserved on the device for
# the warm-up picture of 46 × 46 tokens (llama.cpp's clip.cpp, PROJECTOR_TYPE_QWEN3VL) or the
# largest picture if that is larger, and only the pixels, the embeddings and the saved state stay
# in RAM. No GPU was available to measure that part; it follows the same graph.
PROJECTOR_CONTEXT_BYTES = 4 * MIB
PIXELS_PER_IMAGE_TOKEN = 4  # 2 × 2 patches are merged into one token
ATTENTION_BYTES_PER_PATCH_WIDTH = 27
FEED_FORWARD_BYTES_PER_PATCH_UNIT = 4
FEED_FORWARD_BYTES_PER_PATCH_WIDTH = 10
HEAP_BYTES_PER_PATCH_FEED_FORWARD_UNIT = 2
HEAP_BYTES_PER_PATCH = 8 * 1024
PIXEL_BYTES_PER_PATCH = 16 * 16 * 3 * 4  # a 16 × 16 RGB patch in f32
EMBEDDING_BYTES_PER_VALUE = 4
WARMUP_IMAGE_TOKENS = 46 * 46
# Image tokens per picture at the default image detail: what the estimate assumes unless told.
DEFAULT_IMAGE_TOKENS = IMAGE_DETAIL_TOKENS[DEFAULT_IMAGE_DETAIL]


@dataclass(frozen=True)
class ProjectorShape:
    """The dimensions of a Qwen3.5 vision projector that its memory depends on."""

    width: int  # the vision tower's embedding length
    feed_forward_length: int
    block_count: int
    projection_dim: int  # the width of the text model it feeds
    position_count: int = 2304  # learned positions, a 48 × 48 grid in every Qwen3.5
    patch_size: int = 16

    @property
    def estimated_file_bytes(self) -> int:
        """Its file as published (``mmproj-F16.gguf``: matrices in F16, vectors and the position
        table in F32), for a catalog entry whose projector size the Hub has not given yet. Within
        0.01 % of the published 4B and 9B files (the header's few kilobytes)."""
        w, ff, layers = self.width, self.feed_forward_length, self.block_count
        merged = 4 * w  # 2 × 2 patches, side by side, enter the merger
        half_precision = (
            2 * 3 * self.patch_size**2 * w  # two patch-embedding frames
            + layers * (4 * w * w + 2 * w * ff)  # qkv, attention output, feed-forward up and down
            + merged * merged
            + merged * self.projection_dim
        )
        single_precision = self.position_count * w + w + layers * (9 * w + ff) + 2 * w + merged + self.projection_dim
        return 2 * half_precision + 4 * single_precision

    @classmethod
    def from_header(cls, header: GGUFHeader, name: str) -> ProjectorShape:
        """The shape a projector's header declares; raises ValueError if it is no vision projector."""
        metadata = header.metadata

        def number(key: str) -> int:
            value = metadata.get(f"clip.vision.{key}")
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"“{name}” is no vision projector: clip.vision.{key} is {value!r}.")
            return value

        if header.architecture != "clip":
            raise ValueError(f"“{name}” is no vision projector.")
        positions = header.tensors.get("v.position_embd.weight")
        return cls(
            width=number("embedding_length"),
            feed_forward_length=number("feed_forward_length"),
            block_count=number("block_count"),
            projection_dim=number("projection_dim"),
            position_count=positions.shape[-1] if positions is not None else cls.position_count,
            patch_size=number("patch_size"),
        )


@dataclass(frozen=True)
class VisionProjector:
    """A projector to load beside a model: its shape and the size of its file (its weights)."""

    shape: ProjectorShape
    file_bytes: int

    @classmethod
    def from_gguf(cls, path: Path) -> VisionProjector:
        """Reads the projector at ``path``; raises ValueError if it is no readable projector."""
        header = read_gguf_header(Path(path))
        return cls(ProjectorShape.from_header(header, Path(path).name), header.file_size)


# The projectors published with the Qwen3.5 models (their config.json "vision_config"). 2B's is
# taken to be 4B's tower (its width is *unconfirmed*); the file sizes of 4B and 9B match the
# published mmproj-F16.gguf files.
QWEN35_PROJECTOR_SHAPES: dict[str, ProjectorShape] = {
    "0.8B": ProjectorShape(width=768, feed_forward_length=3072, block_count=12, projection_dim=1024),
    "2B": ProjectorShape(width=1024, feed_forward_length=4096, block_count=24, projection_dim=2048),
    "4B": ProjectorShape(width=1024, feed_forward_length=4096, block_count=24, projection_dim=2560),
    "9B": ProjectorShape(width=1152, feed_forward_length=4304, block_count=27, projection_dim=4096),
}


def vision_compute_bytes_per_patch(shape: ProjectorShape) -> int:
    """The vision tower's compute buffer per patch of a picture (measured, see above)."""
    attention = ATTENTION_BYTES_PER_PATCH_WIDTH * shape.width
    feed_forward = FEED_FORWARD_BYTES_PER_PATCH_UNIT * shape.feed_forward_length + FEED_FORWARD_BYTES_PER_PATCH_WIDTH * shape.width
    return max(attention, feed_forward)


def image_encoder_bytes(shape: ProjectorShape, image_tokens: int, *, on_gpu: bool = False) -> tuple[int, int]:
    """``(device bytes, RAM bytes)`` that reading one picture of ``image_tokens`` tokens takes
    beyond the projector's weights: all in RAM on a CPU; on a GPU the compute buffer, reserved
    for at least the warm-up picture, is on the device."""
    patches = PIXELS_PER_IMAGE_TOKEN * image_tokens
    embeddings = image_tokens * shape.projection_dim * EMBEDDING_BYTES_PER_VALUE
    if on_gpu:
        reserved = PIXELS_PER_IMAGE_TOKEN * max(image_tokens, WARMUP_IMAGE_TOKENS)
        return reserved * vision_compute_bytes_per_patch(shape) + embeddings, patches * PIXEL_BYTES_PER_PATCH + embeddings
    heap = HEAP_BYTES_PER_PATCH_FEED_FORWARD_UNIT * shape.feed_forward_length + HEAP_BYTES_PER_PATCH
    return 0, patches * (vision_compute_bytes_per_patch(shape) + heap) + 2 * embeddings


# ----------------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a loaded model needs, by purpose and by where they live (GPU memory or RAM)."""

    weights: int
    kv_cache: int
    recurrent_state: int
    compute_buffers: int
    runtime_overhead: int
    gpu_bytes: int
    cpu_bytes: int
    projector_weights: int = 0  # the vision projector's file and context, when one is loaded
    image_encoder: int = 0  # what reading the largest picture takes beyond them, its saved state included

    @property
    def image_support(self) -> int:
        """What the projector adds in all (0 without one)."""
        return self.projector_weights + self.image_encoder

    @property
    def total(self) -> int:
        return self.gpu_bytes + self.cpu_bytes


def effective_context_size(shape: ModelShape, context_size: int) -> int:
    """The context llama.cpp allocates for a requested one: clamped as the engine does, padded."""
    clamped = max(256, min(context_size, shape.trained_context or context_size))
    return -(-clamped // CONTEXT_PADDING) * CONTEXT_PADDING


def compute_buffer_bytes(shape: ModelShape, context_size: int, batch_size: int = 512) -> int:
    """One device's compute buffer for micro-batches of ``batch_size`` tokens (measured, see above)."""
    context = effective_context_size(shape, context_size)
    tokens = min(batch_size, context)
    width = shape.embedding_length + max(shape.feed_forward_length, shape.recurrent_channels)
    return tokens * (ACTIVATION_BYTES_PER_WIDTH * width + MASK_BYTES_PER_CONTEXT_CELL * context)


def estimate_memory(
    shape: ModelShape,
    weights_bytes: int,
    context_size: int,
    *,
    gpu_layers: int = 0,
    batch_size: int = 512,
    projector: VisionProjector | None = None,
    image_tokens: int = DEFAULT_IMAGE_TOKENS,
) -> MemoryEstimate:
    """What loading the model with this context needs, with ``gpu_layers`` layers on a GPU.

    As in llama.cpp, the token embeddings always stay in RAM, the last ``gpu_layers`` layers (and
    their KV cache and state) go to the GPU, and the output matrix joins them once ``gpu_layers``
    exceeds the layer count (a tied one is then copied there). Each device that runs part of the
    model has its own compute buffer. Layers are taken as equal in size.

    With a ``projector``, add its weights and what reading a picture of ``image_tokens`` tokens
    takes (the most the image detail allows), with the state saved after it (in RAM); the engine
    puts the projector on the GPU whenever any layer is there.
    """
    context = effective_context_size(shape, context_size)
    kv_cache = shape.kv_bytes_per_token * context
    recurrent = shape.recurrent_state_bytes
    compute = compute_buffer_bytes(shape, context, batch_size)
    overhead = (
        RUNTIME_OVERHEAD_BYTES
        + RUNTIME_OVERHEAD_BYTES_PER_BATCH_TOKEN * min(batch_size, context)
        + RUNTIME_OVERHEAD_BYTES_PER_VOCABULARY_TOKEN * shape.vocabulary_size
    )

    # Where the weights live. The file's bytes are apportioned by parameter count.
    embedding_parameters = shape.vocabulary_size * shape.embedding_length
    embedding_share = embedding_parameters / shape.parameter_count if shape.parameter_count else 0.0
    embedding = min(round(weights_bytes * embedding_share), weights_bytes)
    output = 0 if shape.tied_embeddings else min(embedding, weights_bytes - embedding)
    layer_weights = weights_bytes - embedding - output
    offloaded = min(max(gpu_layers, 0), shape.layer_count) / shape.layer_count if shape.layer_count else 0.0
    output_on_gpu = gpu_layers > shape.layer_count
    gpu_output = (embedding if shape.tied_embeddings else output) if output_on_gpu else 0

    gpu_weights = round(layer_weights * offloaded) + gpu_output
    cpu_weights = weights_bytes - round(layer_weights * offloaded) - (output if output_on_gpu else 0)
    gpu_state = round((kv_cache + recurrent) * offloaded)
    gpu_compute = compute if offloaded > 0 else 0
    cpu_compute = compute if offloaded < 1 else 0

    gpu_projector = cpu_projector = projector_weights = 0
    if projector is not None:
        projector_on_gpu = offloaded > 0
        gpu_encoder, cpu_encoder = image_encoder_bytes(projector.shape, image_tokens, on_gpu=projector_on_gpu)
        projector_weights = projector.file_bytes + PROJECTOR_CONTEXT_BYTES
        # The engine gives each saved state's buffer a quarter more room, so that later, longer
        # states fit in it (LlamaEngine._state_buffer).
        saved_state = (shape.recurrent_state_bytes + shape.kv_bytes_per_token * image_tokens) * 5 // 4
        gpu_projector = gpu_encoder + (projector.file_bytes if projector_on_gpu else 0)
        cpu_projector = cpu_encoder + saved_state + PROJECTOR_CONTEXT_BYTES + (0 if projector_on_gpu else projector.file_bytes)
    return MemoryEstimate(
        weights=gpu_weights + cpu_weights,
        kv_cache=kv_cache,
        recurrent_state=recurrent,
        compute_buffers=gpu_compute + cpu_compute,
        runtime_overhead=overhead,
        gpu_bytes=gpu_weights + gpu_state + gpu_compute + gpu_projector,
        cpu_bytes=cpu_weights + kv_cache + recurrent - gpu_state + cpu_compute + overhead + cpu_projector,
        projector_weights=projector_weights,
        image_encoder=gpu_projector + cpu_projector - projector_weights,
    )


# ------------------------------------------------------------------------------------ verdicts


class FitVerdict(IntEnum):
    """Ordered from best to worst, so the worse of two verdicts is their ``max``."""

    RUNS_WELL = 0  # fits with room to spare and writes at least at reading speed
    SLOW = 1  # fits with room to spare, but writes slower than people read
    TIGHT = 2  # fits, but leaves the system less than the margin
    WONT_FIT = 3


@dataclass(frozen=True)
class FitAssessment:
    verdict: FitVerdict  # from memory and speed together
    estimate: MemoryEstimate
    available_bytes: int  # RAM available (with unified memory: for CPU and GPU together)
    explanation: str  # one or two sentences with the numbers, for the user
    gpu_available_bytes: int | None = None  # free memory of the discrete GPU(s) used, if any
    memory_verdict: FitVerdict = FitVerdict.RUNS_WELL  # from memory alone (never SLOW)
    tokens_per_second: float = 0.0  # the expected writing speed here

    @property
    def needed_bytes(self) -> int:
        """What the bar shows against ``shown_available_bytes``: the memory that runs short first."""
        return self.estimate.gpu_bytes if self.gpu_available_bytes is not None else self.estimate.total

    @property
    def shown_available_bytes(self) -> int:
        return self.gpu_available_bytes if self.gpu_available_bytes is not None else self.available_bytes


def margin_bytes(available_bytes: int) -> int:
    """Memory a model that "runs well" leaves unused (see MARGIN_BYTES)."""
    return min(MARGIN_BYTES, int(available_bytes * MARGIN_FRACTION))


def _verdict(needed: int, available: int) -> FitVerdict:
    if needed > available:
        return FitVerdict.WONT_FIT
    return FitVerdict.RUNS_WELL if available - needed >= margin_bytes(available) else FitVerdict.TIGHT


def _resolved_gpu_layers(shape: ModelShape, hardware: HardwareInfo, gpu_layers: int | None) -> int:
    """``None`` means every layer and the output on the GPU when there is one, as the engine does."""
    if not hardware.gpus:
        return 0
    return shape.layer_count + 1 if gpu_layers is None else gpu_layers


@dataclass(frozen=True)
class _Pool:
    """One memory the model draws on, with how to word its share and its shortfall."""

    needed: int
    available: int
    share: str  # e.g. "{needed} of the {available} free on NVIDIA GeForce RTX 4070"
    shortfall: str  # e.g. "Needs {needed} on NVIDIA GeForce RTX 4070, but only {available} is free there."

    @property
    def verdict(self) -> FitVerdict:
        return _verdict(self.needed, self.available)

    def words(self, template: str) -> str:
        return template.format(needed=format_gb(self.needed), available=format_gb(self.available))


def assess_fit(
    shape: ModelShape,
    weights_bytes: int,
    hardware: HardwareInfo,
    context_size: int,
    *,
    gpu_layers: int | None = None,
    batch_size: int | None = None,
    projector: VisionProjector | None = None,
    image_tokens: int = DEFAULT_IMAGE_TOKENS,
) -> FitAssessment:
    """Whether the model runs well, tightly or not at all with this context, and why in numbers.

    With discrete GPUs the GPU part counts against their free memory (taken together, as llama.cpp
    spreads layers over them) and the rest against the RAM; with unified memory, or no GPU at all,
    everything counts against the RAM. A ``projector`` (image support) counts too, reading
    pictures of up to ``image_tokens`` tokens.
    """
    layers_on_gpu = _resolved_gpu_layers(shape, hardware, gpu_layers)
    if batch_size is None:
        batch_size = default_batch_size(hardware.backend)
    estimate = estimate_memory(
        shape, weights_bytes, context_size, gpu_layers=layers_on_gpu, batch_size=batch_size,
        projector=projector, image_tokens=image_tokens,
    )
    ram = hardware.available_ram_bytes
    discrete = [gpu for gpu in hardware.gpus if not gpu.unified_memory]
    if estimate.gpu_bytes == 0 or not discrete:
        pools = [
            _Pool(
                estimate.total,
                ram,
                "{needed} of the {available} available",
                "Needs {needed}, but only {available} is available.",
            )
        ]
        gpu_free = None
    else:
        gpu_free = sum(gpu.free_bytes for gpu in discrete)
        name = _gpu_names(discrete)
        pools = [
            _Pool(
                estimate.gpu_bytes,
                gpu_free,
                f"{{needed}} of the {{available}} free on {name}",
                f"Needs {{needed}} on {name}, but only {{available}} is free there.",
            ),
            _Pool(
                estimate.cpu_bytes,
                ram,
                "{needed} of the {available} of RAM available",
                "Needs {needed} of RAM, but only {available} is available.",
            ),
        ]
    memory_verdict = max(pool.verdict for pool in pools)
    speed = estimated_tokens_per_second(weights_bytes, hardware)
    slow = speed < MINIMUM_CHAT_TOKENS_PER_SECOND
    verdict = FitVerdict.SLOW if memory_verdict is FitVerdict.RUNS_WELL and slow else memory_verdict
    explanation = _explain(pools, memory_verdict)
    if estimate.image_support:
        explanation += f" Image support takes {format_gb(estimate.image_support)} of that."
    if memory_verdict is not FitVerdict.WONT_FIT:
        explanation += " " + _speed_sentence(speed, hardware)
    return FitAssessment(
        verdict, estimate, ram, explanation, gpu_available_bytes=gpu_free, memory_verdict=memory_verdict, tokens_per_second=speed
    )


def _speed_sentence(speed: float, hardware: HardwareInfo) -> str:
    source = f" (measured from {hardware.decode_speed_source})" if hardware.decode_speed_source else ""
    sentence = f"It should write about {format_speed(speed)} tokens a second here{source}"
    if speed < MINIMUM_CHAT_TOKENS_PER_SECOND:
        return sentence + ", slower than you read."
    return sentence + "."


def format_speed(tokens_per_second: float) -> str:
    """12.3 → "12"; 2.46 → "2.5": whole numbers once they are large enough to read that way."""
    return f"{tokens_per_second:.0f}" if tokens_per_second >= 10 else f"{tokens_per_second:.1f}"


def _explain(pools: list[_Pool], verdict: FitVerdict) -> str:
    """E.g. "Needs 1.4 GB of the 9.8 GB available." or "Needs 12.3 GB, but only 9.8 GB is available."."""
    if verdict is FitVerdict.WONT_FIT:
        short = next(pool for pool in pools if pool.verdict is FitVerdict.WONT_FIT)
        return short.words(short.shortfall)
    sentence = "Needs " + " and ".join(pool.words(pool.share) for pool in pools) + "."
    if verdict is FitVerdict.TIGHT:
        sentence += " That leaves little memory for other programs."
    return sentence


def _gpu_names(gpus: Sequence[GpuDevice]) -> str:
    return gpus[0].description or gpus[0].name if len(gpus) == 1 else f"{len(gpus)} GPUs"


def format_gb(byte_count: int) -> str:
    """Binary gigabytes with one decimal, labelled "GB" as operating systems and RAM makers do."""
    return f"{byte_count / GIB:.1f} GB"


# ------------------------------------------------------------------------------------ contexts


def largest_context(
    shape: ModelShape,
    weights_bytes: int,
    hardware: HardwareInfo,
    *,
    gpu_layers: int | None = None,
    at_worst: FitVerdict = FitVerdict.RUNS_WELL,
    projector: VisionProjector | None = None,
    image_tokens: int = DEFAULT_IMAGE_TOKENS,
) -> int:
    """The largest context, a multiple of 1024 up to the trained one, whose memory verdict is
    ``at_worst`` or better: that runs well, or (``TIGHT``) that fits at all. 0 if none."""

    def good_enough(steps: int) -> bool:
        assessment = assess_fit(
            shape, weights_bytes, hardware, steps * CONTEXT_STEP, gpu_layers=gpu_layers,
            projector=projector, image_tokens=image_tokens,
        )
        return assessment.memory_verdict <= at_worst  # speed hardly depends on the context

    # Memory grows with the context, so the contexts good enough are a prefix: bisect it.
    low, high = 0, shape.trained_context // CONTEXT_STEP
    while low < high:
        middle = (low + high + 1) // 2
        if good_enough(middle):
            low = middle
        else:
            high = middle - 1
    return low * CONTEXT_STEP


def recommended_context(
    shape: ModelShape,
    weights_bytes: int,
    hardware: HardwareInfo,
    *,
    gpu_layers: int | None = None,
    projector: VisionProjector | None = None,
) -> int:
    """A good default context: the largest that runs well, capped at 32K and rounded down to 4K.

    Below 4K, 4K is still recommended if it fits at all (tightly), since less is barely usable
    for a chat; otherwise the largest context that runs well, 0 if none does.
    """
    largest = largest_context(shape, weights_bytes, hardware, gpu_layers=gpu_layers, projector=projector)
    minimum = min(MINIMUM_USEFUL_CONTEXT, shape.trained_context)
    if largest >= minimum:
        capped = min(largest, DEFAULT_CONTEXT_LIMIT)
        return max(capped - capped % MINIMUM_USEFUL_CONTEXT, minimum)
    assessment = assess_fit(shape, weights_bytes, hardware, minimum, gpu_layers=gpu_layers, projector=projector)
    fits = assessment.memory_verdict is not FitVerdict.WONT_FIT
    return minimum if fits and minimum > 0 else largest


# Decode-speed model for recommendations. CPU bandwidth per core was measured here: Qwen3.5-0.8B
# Q4_K_M (525 MB) decodes at 29.5 tokens/s on 2 cores, about 7.7 GB/s a core; laptop memory tops
# out near 60 GB/s. Accelerators: conservative figures for Apple silicon (68–120 GB/s on M1–M4)
# and discrete GPUs (250 GB/s and more).
CPU_BYTES_PER_SECOND_PER_CORE = 7.5e9
CPU_BYTES_PER_SECOND_LIMIT = 60e9
UNIFIED_MEMORY_BYTES_PER_SECOND = 68e9
DISCRETE_GPU_BYTES_PER_SECOND = 250e9
MINIMUM_CHAT_TOKENS_PER_SECOND = 8.0  # a little faster than people read


@dataclass(frozen=True)
class Recommendation:
    label: str
    context_size: int
    reason: str  # one sentence for the user


def estimated_tokens_per_second(weights_bytes: int, hardware: HardwareInfo) -> float:
    """The decode speed: generating a token reads every weight once, so it is about the memory
    bandwidth divided by the model's size; the bandwidth measured on this computer when there is
    one (``hardware.decode_bytes_per_second``), else a rule of thumb for its kind."""
    if hardware.decode_bytes_per_second:
        bandwidth = hardware.decode_bytes_per_second
    elif any(not gpu.unified_memory for gpu in hardware.gpus):
        bandwidth = DISCRETE_GPU_BYTES_PER_SECOND
    elif hardware.gpus:
        bandwidth = UNIFIED_MEMORY_BYTES_PER_SECOND
    else:
        bandwidth = min(hardware.physical_cores * CPU_BYTES_PER_SECOND_PER_CORE, CPU_BYTES_PER_SECOND_LIMIT)
    return bandwidth / max(weights_bytes, 1)


def recommend_model(
    candidates: Sequence[tuple[str, ModelShape, int]],
    hardware: HardwareInfo,
    projectors: Mapping[str, VisionProjector] | None = None,
) -> Recommendation | None:
    """The largest of ``(label, shape, weights_bytes)`` that runs well with at least an 8K context
    and answers at a comfortable reading speed here; ``projectors`` gives, by label, the image
    support that would be loaded with a candidate (its memory counts too).

    "Largest" is by parameter count, then file size (a larger quantization of the same model is
    the more faithful one). When nothing that fits is fast enough, the fastest that fits is
    chosen. None when no candidate runs well with 8K.
    """
    projectors = projectors or {}
    ranked = sorted(candidates, key=lambda candidate: (candidate[1].parameter_count, candidate[2]), reverse=True)
    fitting = [
        candidate
        for candidate in ranked
        if largest_context(candidate[1], candidate[2], hardware, projector=projectors.get(candidate[0]))
        >= RECOMMENDATION_MINIMUM_CONTEXT
    ]
    if not fitting:
        return None
    fast_enough = [
        candidate
        for candidate in fitting
        if estimated_tokens_per_second(candidate[2], hardware) >= MINIMUM_CHAT_TOKENS_PER_SECOND
    ]
    label, shape, weights_bytes = fast_enough[0] if fast_enough else fitting[-1]
    context = recommended_context(shape, weights_bytes, hardware, projector=projectors.get(label))
    speed = estimated_tokens_per_second(weights_bytes, hardware)
    reason = (
        f"{label} fits comfortably in {_memory_phrase(hardware)} with a {context // 1024}K-token context "
        f"and should write about {speed:.0f} tokens a second here."
    )
    return Recommendation(label, context, reason)


def _memory_phrase(hardware: HardwareInfo) -> str:
    discrete = [gpu for gpu in hardware.gpus if not gpu.unified_memory]
    if discrete:
        total = sum(gpu.total_bytes for gpu in discrete)
        return f"the {round(total / GIB)} GB of memory on {_gpu_names(discrete)}"
    kind = "unified memory" if hardware.gpus else "RAM"
    return f"your {round(hardware.total_ram_bytes / GIB)} GB of {kind}"
