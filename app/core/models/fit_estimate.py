"""Will a model run well on this computer? Memory estimates for llama.cpp and verdicts built on them.

The estimate covers what loading a model with the engine's settings allocates (one sequence, f16
KV cache, flash attention, one logits row, ``n_batch == n_ubatch``):

* the weights (the file, memory-mapped or copied to a device);
* the KV cache of the full-attention layers, which grows with the context;
* the recurrent state of the Gated-DeltaNet layers, which does not;
* llama.cpp's compute buffers for one micro-batch;
* the runtime's own overhead (vocabulary, output buffers, thread pool, graph metadata).

It does not cover what the engine keeps for reusing work across turns (saved sequence states, up
to an eighth of the RAM by default) nor llama-cpp-python's own import (the app has paid for that
before it measures the available memory). Verdicts compare the estimate with the memory that is
*available* now, not the installed total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from app.core.domain.generation import default_batch_size
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
    shape: ModelShape, weights_bytes: int, context_size: int, *, gpu_layers: int = 0, batch_size: int = 512
) -> MemoryEstimate:
    """What loading the model with this context needs, with ``gpu_layers`` layers on a GPU.

    As in llama.cpp, the token embeddings always stay in RAM, the last ``gpu_layers`` layers (and
    their KV cache and state) go to the GPU, and the output matrix joins them once ``gpu_layers``
    exceeds the layer count (a tied one is then copied there). Each device that runs part of the
    model has its own compute buffer. Layers are taken as equal in size.
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
    return MemoryEstimate(
        weights=gpu_weights + cpu_weights,
        kv_cache=kv_cache,
        recurrent_state=recurrent,
        compute_buffers=gpu_compute + cpu_compute,
        runtime_overhead=overhead,
        gpu_bytes=gpu_weights + gpu_state + gpu_compute,
        cpu_bytes=cpu_weights + kv_cache + recurrent - gpu_state + cpu_compute + overhead,
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
) -> FitAssessment:
    """Whether the model runs well, tightly or not at all with this context, and why in numbers.

    With discrete GPUs the GPU part counts against their free memory (taken together, as llama.cpp
    spreads layers over them) and the rest against the RAM; with unified memory, or no GPU at all,
    everything counts against the RAM.
    """
    layers_on_gpu = _resolved_gpu_layers(shape, hardware, gpu_layers)
    if batch_size is None:
        batch_size = default_batch_size(hardware.backend)
    estimate = estimate_memory(shape, weights_bytes, context_size, gpu_layers=layers_on_gpu, batch_size=batch_size)
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
) -> int:
    """The largest context, a multiple of 1024 up to the trained one, whose memory verdict is
    ``at_worst`` or better: that runs well, or (``TIGHT``) that fits at all. 0 if none."""

    def good_enough(steps: int) -> bool:
        assessment = assess_fit(shape, weights_bytes, hardware, steps * CONTEXT_STEP, gpu_layers=gpu_layers)
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
    shape: ModelShape, weights_bytes: int, hardware: HardwareInfo, *, gpu_layers: int | None = None
) -> int:
    """A good default context: the largest that runs well, capped at 32K and rounded down to 4K.

    Below 4K, 4K is still recommended if it fits at all (tightly), since less is barely usable
    for a chat; otherwise the largest context that runs well, 0 if none does.
    """
    largest = largest_context(shape, weights_bytes, hardware, gpu_layers=gpu_layers)
    minimum = min(MINIMUM_USEFUL_CONTEXT, shape.trained_context)
    if largest >= minimum:
        capped = min(largest, DEFAULT_CONTEXT_LIMIT)
        return max(capped - capped % MINIMUM_USEFUL_CONTEXT, minimum)
    fits = assess_fit(shape, weights_bytes, hardware, minimum, gpu_layers=gpu_layers).memory_verdict is not FitVerdict.WONT_FIT
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
    candidates: Sequence[tuple[str, ModelShape, int]], hardware: HardwareInfo
) -> Recommendation | None:
    """The largest of ``(label, shape, weights_bytes)`` that runs well with at least an 8K context
    and answers at a comfortable reading speed here.

    "Largest" is by parameter count, then file size (a larger quantization of the same model is
    the more faithful one). When nothing that fits is fast enough, the fastest that fits is
    chosen. None when no candidate runs well with 8K.
    """
    ranked = sorted(candidates, key=lambda candidate: (candidate[1].parameter_count, candidate[2]), reverse=True)
    fitting = [
        candidate
        for candidate in ranked
        if largest_context(candidate[1], candidate[2], hardware) >= RECOMMENDATION_MINIMUM_CONTEXT
    ]
    if not fitting:
        return None
    fast_enough = [
        candidate
        for candidate in fitting
        if estimated_tokens_per_second(candidate[2], hardware) >= MINIMUM_CHAT_TOKENS_PER_SECOND
    ]
    label, shape, weights_bytes = fast_enough[0] if fast_enough else fitting[-1]
    context = recommended_context(shape, weights_bytes, hardware)
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
