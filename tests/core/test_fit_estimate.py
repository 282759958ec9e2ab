"""Memory estimates and fit verdicts: the four real Qwen3.5 shapes, GGUF headers, synthetic machines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.core.engines.llama import self_test_model
from app.core.models.fit_estimate import (
    GIB,
    MIB,
    QWEN35_SHAPES,
    FitVerdict,
    ModelShape,
    assess_fit,
    compute_buffer_bytes,
    estimate_memory,
    estimated_tokens_per_second,
    format_speed,
    format_gb,
    largest_context,
    margin_bytes,
    recommend_model,
    recommended_context,
)
from app.core.domain.hardware import GpuDevice, HardwareInfo
from app.core.domain.generation import default_batch_size

# Published Q4_K_M file sizes (reference, "Published GGUF files").
CPU_BATCH = default_batch_size("CPU")  # what the engine and assess_fit use on a CPU
Q4_K_M_BYTES = {"0.8B": 532_517_120, "2B": 1_280_835_840, "4B": 2_740_937_888, "9B": 5_680_522_464}
SIZES = list(QWEN35_SHAPES)
CONTEXTS = [4096, 32768, 131072, 262144]


def machine(*, total_gb: float = 16, available_gb: float = 12, gpus: tuple[GpuDevice, ...] = ()) -> HardwareInfo:
    return HardwareInfo(
        total_ram_bytes=int(total_gb * GIB),
        available_ram_bytes=int(available_gb * GIB),
        physical_cores=4,
        logical_cores=8,
        cpu_features=("AVX2",),
        backend="CUDA" if gpus else "CPU",
        gpus=gpus,
        models_dir_free_bytes=None,
    )


def gpu(*, free_gb: float, total_gb: float = 24, unified: bool = False) -> GpuDevice:
    return GpuDevice("CUDA0", "NVIDIA GeForce RTX 4090", int(free_gb * GIB), int(total_gb * GIB), unified)


def write_qwen35_gguf(
    path: Path,
    *,
    hidden: int,
    feed_forward: int,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    linear_key_heads: int,
    linear_value_heads: int,
    full_attention_interval: int = 4,
    tied: bool = False,
    vocabulary: int | None = None,
    with_data: bool = False,
) -> Path:
    """A qwen35 GGUF with these sizes, laid out as llama.cpp's loader expects.

    ``vocabulary=None`` uses the self-test model's tokenizer, so llama.cpp can load the file;
    a number only sizes the embedding matrices (a header to read, not a model to run).
    ``with_data`` writes small random F16 weights (F32 for vectors); otherwise only the header.
    """
    state = 128  # linear-attention head size, as in every Qwen3.5
    inner = linear_value_heads * state
    channels = inner + 2 * linear_key_heads * state
    vocabulary_size = self_test_model.VOCAB_SIZE if vocabulary is None else vocabulary
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (vocabulary_size, hidden),
        "output_norm.weight": (hidden,),
    }
    if not tied:
        shapes["output.weight"] = (vocabulary_size, hidden)
    for layer in range(layers):
        block = f"blk.{layer}."
        shapes[block + "attn_norm.weight"] = (hidden,)
        shapes[block + "post_attention_norm.weight"] = (hidden,)
        if (layer + 1) % full_attention_interval:
            shapes |= {
                block + "attn_qkv.weight": (channels, hidden),
                block + "attn_gate.weight": (inner, hidden),
                block + "ssm_conv1d.weight": (channels, 4),
                block + "ssm_dt.bias": (linear_value_heads,),
                block + "ssm_a": (linear_value_heads,),
                block + "ssm_beta.weight": (linear_value_heads, hidden),
                block + "ssm_alpha.weight": (linear_value_heads, hidden),
                block + "ssm_norm.weight": (state,),
                block + "ssm_out.weight": (hidden, inner),
            }
        else:
            shapes |= {
                block + "attn_q.weight": (2 * heads * head_dim, hidden),
                block + "attn_k.weight": (kv_heads * head_dim, hidden),
                block + "attn_v.weight": (kv_heads * head_dim, hidden),
                block + "attn_output.weight": (hidden, heads * head_dim),
                block + "attn_q_norm.weight": (head_dim,),
                block + "attn_k_norm.weight": (head_dim,),
            }
        shapes |= {
            block + "ffn_gate.weight": (feed_forward, hidden),
            block + "ffn_up.weight": (feed_forward, hidden),
            block + "ffn_down.weight": (hidden, feed_forward),
        }

    writer = gguf.GGUFWriter(path, "qwen35")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(262144)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(feed_forward)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(1e7)
    writer.add_rope_dimension_count(64)
    writer.add_rope_dimension_sections([11, 11, 10, 0])
    writer.add_ssm_conv_kernel(4)
    writer.add_ssm_state_size(state)
    writer.add_ssm_group_count(linear_key_heads)
    writer.add_ssm_time_step_rank(linear_value_heads)
    writer.add_ssm_inner_size(inner)
    writer.add_full_attention_interval(full_attention_interval)
    if vocabulary is None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen35")
        writer.add_token_list(list(self_test_model.TOKENS))
        writer.add_token_types(list(self_test_model.TOKEN_TYPES))
        writer.add_token_merges(["Ċ Ċ"])
        writer.add_eos_token_id(self_test_model.IM_END_ID)
        writer.add_pad_token_id(self_test_model.ENDOFTEXT_ID)
        writer.add_add_bos_token(False)
        writer.add_chat_template(self_test_model.CHAT_TEMPLATE_THINKS_ON_REQUEST)

    # Vectors and the convolution stay F32, as llama.cpp's converter writes them.
    def dtype(name: str, shape: tuple[int, ...]) -> type:
        return np.float32 if len(shape) == 1 or "ssm_conv1d" in name else np.float16

    if with_data:
        filler = np.random.default_rng(0).normal(0.0, 0.02, 1 << 16).astype(np.float32)
        for name, shape in shapes.items():
            values = np.resize(filler, shape)
            if name.endswith("norm.weight"):
                values = np.ones(shape, np.float32)
            elif name.endswith("ssm_a"):
                values = np.full(shape, -0.5, np.float32)
            writer.add_tensor(name, values.astype(dtype(name, shape)))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    else:
        for name, shape in shapes.items():
            item = np.dtype(dtype(name, shape))
            writer.add_tensor_info(name, shape, item, int(np.prod(shape)) * item.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
    writer.close()
    return path


# The reference's sizes, as write_qwen35_gguf takes them.
QWEN35_DIMENSIONS = {
    "0.8B": {"hidden": 1024, "feed_forward": 3584, "layers": 24, "heads": 8, "kv_heads": 2, "linear_value_heads": 16},
    "2B": {"hidden": 2048, "feed_forward": 6144, "layers": 24, "heads": 8, "kv_heads": 2, "linear_value_heads": 16},
    "4B": {"hidden": 2560, "feed_forward": 9216, "layers": 32, "heads": 16, "kv_heads": 4, "linear_value_heads": 32},
    "9B": {"hidden": 4096, "feed_forward": 12288, "layers": 32, "heads": 16, "kv_heads": 4, "linear_value_heads": 32},
}
TIED = {"0.8B": True, "2B": True, "4B": True, "9B": False}  # reference: 9B's untied output is unconfirmed


# ------------------------------------------------------------------------------ GGUF headers


@pytest.mark.parametrize("size", SIZES)
def test_reading_a_header_with_the_real_sizes_gives_the_reference_shape(tmp_path: Path, size: str) -> None:
    path = write_qwen35_gguf(
        tmp_path / f"{size}.gguf",
        head_dim=256,
        linear_key_heads=16,
        vocabulary=248320,
        tied=TIED[size],
        **QWEN35_DIMENSIONS[size],
    )
    assert ModelShape.from_gguf(path) == QWEN35_SHAPES[size]


def test_reading_the_self_test_model_counts_its_tokens_and_its_layer_kinds(tiny_model: Path) -> None:
    shape = ModelShape.from_gguf(tiny_model)
    assert shape.vocabulary_size == self_test_model.VOCAB_SIZE
    assert (shape.layer_count, shape.attention_layer_count) == (self_test_model.BLOCK_COUNT, 1)
    assert shape.trained_context == self_test_model.CONTEXT_LENGTH
    assert shape.kv_head_count == self_test_model.HEAD_COUNT_KV
    assert shape.ssm_inner_size == self_test_model.SSM_INNER_SIZE
    assert shape.tied_embeddings is False


def test_a_model_without_recurrent_layers_is_all_attention(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(tmp_path / "llama.gguf", "llama")
    writer.add_context_length(8192)
    writer.add_embedding_length(512)
    writer.add_block_count(6)
    writer.add_feed_forward_length(1536)
    writer.add_head_count(8)
    writer.add_head_count_kv(2)
    writer.add_tensor_info("token_embd.weight", (1000, 512), np.dtype(np.float16), 1000 * 512 * 2)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()

    shape = ModelShape.from_gguf(tmp_path / "llama.gguf")

    assert shape.attention_layer_count == shape.layer_count == 6
    assert shape.recurrent_state_bytes == 0
    assert shape.key_length == shape.value_length == 64  # embedding / heads when not written
    assert shape.kv_bytes_per_token == 6 * 2 * (64 + 64) * 2
    assert shape.vocabulary_size == 1000
    assert shape.tied_embeddings is True


def test_a_file_that_is_not_gguf_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="notes.gguf"):
        ModelShape.from_gguf(path)


def test_a_truncated_header_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_model.read_bytes()[:2000])
    with pytest.raises(ValueError, match="cut.gguf"):
        ModelShape.from_gguf(path)


# --------------------------------------------------------------------------------- estimates


@pytest.mark.parametrize(("size", "bytes_per_token"), [("0.8B", 12288), ("2B", 12288), ("4B", 32768), ("9B", 32768)])
@pytest.mark.parametrize("context", CONTEXTS)
def test_kv_cache_is_the_reference_bytes_per_token_times_the_context(
    size: str, bytes_per_token: int, context: int
) -> None:
    estimate = estimate_memory(QWEN35_SHAPES[size], Q4_K_M_BYTES[size], context)
    assert estimate.kv_cache == bytes_per_token * context


def test_kv_cache_at_the_native_context_is_3_and_8_gib() -> None:
    assert estimate_memory(QWEN35_SHAPES["2B"], 0, 262144).kv_cache == 3 * GIB
    assert estimate_memory(QWEN35_SHAPES["9B"], 0, 262144).kv_cache == 8 * GIB


@pytest.mark.parametrize(("size", "mib"), [("0.8B", 19.3), ("2B", 19.3), ("4B", 50.3), ("9B", 50.3)])
@pytest.mark.parametrize("context", CONTEXTS)
def test_recurrent_state_matches_the_reference_whatever_the_context(size: str, mib: float, context: int) -> None:
    estimate = estimate_memory(QWEN35_SHAPES[size], Q4_K_M_BYTES[size], context)
    assert estimate.recurrent_state / MIB == pytest.approx(mib, abs=0.05)


# "CPU compute buffer size" as llama.cpp 0.3.36 logged it (MiB) for the real sizes (see fit_estimate).
MEASURED_COMPUTE_MIB = [
    ("0.8B", 4096, 512, 46.16), ("0.8B", 32768, 512, 74.16), ("0.8B", 262144, 512, 298.16), ("0.8B", 4096, 256, 23.15),
    ("2B", 4096, 512, 52.16), ("2B", 32768, 512, 80.16), ("2B", 262144, 512, 304.16), ("2B", 32768, 256, 40.15),
    ("4B", 4096, 512, 73.02), ("4B", 32768, 512, 101.02), ("4B", 262144, 512, 325.02), ("4B", 262144, 256, 162.51),
    ("9B", 4096, 512, 100.02), ("9B", 32768, 512, 128.02), ("9B", 262144, 512, 352.02), ("9B", 4096, 256, 50.01),
]


@pytest.mark.parametrize(("size", "context", "batch", "mib"), MEASURED_COMPUTE_MIB)
def test_compute_buffers_match_what_llama_cpp_reserved(size: str, context: int, batch: int, mib: float) -> None:
    assert compute_buffer_bytes(QWEN35_SHAPES[size], context, batch) / MIB == pytest.approx(mib, abs=0.25)


@pytest.mark.parametrize("size", SIZES)
def test_memory_grows_with_the_context_and_the_weights(size: str) -> None:
    shape = QWEN35_SHAPES[size]
    totals = [estimate_memory(shape, Q4_K_M_BYTES[size], context).total for context in CONTEXTS]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert estimate_memory(shape, Q4_K_M_BYTES[size] + 1000, 4096).total == totals[0] + 1000


@pytest.mark.parametrize("size", SIZES)
def test_without_a_gpu_everything_is_in_ram_and_adds_up(size: str) -> None:
    estimate = estimate_memory(QWEN35_SHAPES[size], Q4_K_M_BYTES[size], 32768)
    assert estimate.gpu_bytes == 0
    assert estimate.weights == Q4_K_M_BYTES[size]
    parts = estimate.weights + estimate.kv_cache + estimate.recurrent_state + estimate.compute_buffers
    assert estimate.cpu_bytes == estimate.total == parts + estimate.runtime_overhead


def test_a_context_is_padded_and_capped_like_llama_cpp_does() -> None:
    shape = QWEN35_SHAPES["4B"]
    assert estimate_memory(shape, 0, 4000).kv_cache == estimate_memory(shape, 0, 4096).kv_cache
    assert estimate_memory(shape, 0, 10**7).kv_cache == estimate_memory(shape, 0, 262144).kv_cache


# ------------------------------------------------------------------------------------ GPU split


def test_offloading_every_layer_leaves_only_the_token_embeddings_and_runtime_in_ram() -> None:
    shape, weights = QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"]  # untied: the output matrix moves too
    on_cpu = estimate_memory(shape, weights, 32768)
    on_gpu = estimate_memory(shape, weights, 32768, gpu_layers=999)
    embeddings = round(weights * shape.vocabulary_size * shape.embedding_length / shape.parameter_count)

    assert on_gpu.cpu_bytes == embeddings + on_gpu.runtime_overhead
    assert on_gpu.gpu_bytes == weights - embeddings + on_gpu.kv_cache + on_gpu.recurrent_state + on_cpu.compute_buffers
    assert on_gpu.total == on_cpu.total


def test_a_tied_output_matrix_is_copied_to_the_gpu() -> None:
    shape, weights = QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"]
    embeddings = round(weights * shape.vocabulary_size * shape.embedding_length / shape.parameter_count)
    assert estimate_memory(shape, weights, 4096, gpu_layers=999).weights == weights + embeddings
    assert estimate_memory(shape, weights, 4096, gpu_layers=shape.layer_count).weights == weights


def test_partial_offload_splits_layers_and_gives_both_devices_a_compute_buffer() -> None:
    shape, weights = QWEN35_SHAPES["2B"], Q4_K_M_BYTES["2B"]
    full = estimate_memory(shape, weights, 32768, gpu_layers=shape.layer_count)
    half = estimate_memory(shape, weights, 32768, gpu_layers=shape.layer_count // 2)
    compute = compute_buffer_bytes(shape, 32768)

    assert half.compute_buffers == 2 * compute
    assert half.gpu_bytes - compute == pytest.approx((full.gpu_bytes - compute) / 2, abs=1)
    assert half.total == full.total + compute


def test_a_gpu_that_is_too_small_makes_a_model_not_fit_even_with_ample_ram() -> None:
    assessment = assess_fit(
        QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"], machine(total_gb=64, available_gb=60, gpus=(gpu(free_gb=4),)), 8192
    )
    assert assessment.verdict is FitVerdict.WONT_FIT
    assert assessment.gpu_available_bytes == 4 * GIB
    gpu_part = format_gb(assessment.estimate.gpu_bytes)
    assert assessment.explanation == f"Needs {gpu_part} on NVIDIA GeForce RTX 4090, but only 4.0 GB is free there."


def test_with_a_big_gpu_both_memories_are_named() -> None:
    assessment = assess_fit(QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"], machine(gpus=(gpu(free_gb=20),)), 32768)
    estimate = assessment.estimate
    assert assessment.verdict is FitVerdict.RUNS_WELL
    assert assessment.explanation == (
        f"Needs {format_gb(estimate.gpu_bytes)} of the 20.0 GB free on NVIDIA GeForce RTX 4090"
        f" and {format_gb(estimate.cpu_bytes)} of the 12.0 GB of RAM available."
        f" It should write about {format_speed(assessment.tokens_per_second)} tokens a second here."
    )


def test_with_every_layer_on_the_gpu_the_ram_can_still_be_too_small() -> None:
    hardware = machine(total_gb=2, available_gb=0.5, gpus=(gpu(free_gb=20),))
    assessment = assess_fit(QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"], hardware, 8192)
    ram_part = format_gb(assessment.estimate.cpu_bytes)
    assert assessment.verdict is FitVerdict.WONT_FIT
    assert assessment.explanation == f"Needs {ram_part} of RAM, but only 0.5 GB is available."


def test_keeping_every_layer_on_the_cpu_ignores_the_gpu() -> None:
    assessment = assess_fit(
        QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"], machine(gpus=(gpu(free_gb=0.5),)), 32768, gpu_layers=0
    )
    assert assessment.estimate.gpu_bytes == 0
    assert assessment.verdict is FitVerdict.RUNS_WELL


def test_unified_memory_counts_everything_against_the_ram() -> None:
    shape, weights = QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"]
    needed = estimate_memory(shape, weights, 32768, gpu_layers=999).total
    metal = GpuDevice("MTL0", "Apple M3", int(100 * GIB), int(100 * GIB), unified_memory=True)

    short = assess_fit(shape, weights, machine(available_gb=needed / GIB - 0.1, gpus=(metal,)), 32768)
    ample = assess_fit(shape, weights, machine(total_gb=32, available_gb=needed / GIB + 2, gpus=(metal,)), 32768)

    assert short.verdict is FitVerdict.WONT_FIT and short.gpu_available_bytes is None
    assert ample.verdict is FitVerdict.RUNS_WELL


# ------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    ("spare_bytes", "verdict"),
    [
        (2 * GIB, FitVerdict.RUNS_WELL),
        (int(1.5 * GIB), FitVerdict.RUNS_WELL),  # exactly the margin
        (int(1.5 * GIB) - 1, FitVerdict.TIGHT),
        (0, FitVerdict.TIGHT),
        (-1, FitVerdict.WONT_FIT),
    ],
)
def test_runs_well_only_with_1_5_gb_to_spare_on_a_big_machine(size: str, spare_bytes: int, verdict: FitVerdict) -> None:
    shape = QWEN35_SHAPES[size]
    estimated = estimate_memory(shape, Q4_K_M_BYTES[size], 32768, batch_size=CPU_BATCH).total
    # Bigger weights make small models need 8 GiB too: on such machines 1.5 GiB is under a fifth.
    needed = max(estimated, 8 * GIB)
    weights = Q4_K_M_BYTES[size] + needed - estimated
    hardware = replace(machine(total_gb=32), available_ram_bytes=needed + spare_bytes)
    assert assess_fit(shape, weights, hardware, 32768).memory_verdict is verdict


@pytest.mark.parametrize(
    ("available_over_needed", "verdict"),
    [(1.30, FitVerdict.RUNS_WELL), (1.26, FitVerdict.RUNS_WELL), (1.24, FitVerdict.TIGHT), (1.0, FitVerdict.TIGHT)],
)
def test_on_a_small_machine_a_fifth_of_the_available_memory_is_margin_enough(
    available_over_needed: float, verdict: FitVerdict
) -> None:
    shape, weights = QWEN35_SHAPES["0.8B"], Q4_K_M_BYTES["0.8B"]
    needed = estimate_memory(shape, weights, 4096, batch_size=CPU_BATCH).total
    hardware = machine(total_gb=4, available_gb=needed * available_over_needed / GIB)
    assert margin_bytes(hardware.available_ram_bytes) < 1.5 * GIB
    assert assess_fit(shape, weights, hardware, 4096).verdict is verdict


def test_the_explanation_gives_the_need_and_what_is_available() -> None:
    shape, weights = QWEN35_SHAPES["2B"], Q4_K_M_BYTES["2B"]
    needed = estimate_memory(shape, weights, 8192).total
    well = assess_fit(shape, weights, machine(available_gb=9.75), 8192)
    tight = assess_fit(shape, weights, machine(available_gb=needed / GIB + 0.2), 8192)
    short = assess_fit(shape, weights, machine(available_gb=1), 8192)

    assert well.explanation.startswith(f"Needs {format_gb(needed)} of the 9.8 GB available. It should write about ")
    assert well.available_bytes == int(9.75 * GIB)
    assert "available. That leaves little memory for other programs. It should write" in tight.explanation
    assert short.explanation == f"Needs {format_gb(needed)}, but only 1.0 GB is available."


# ------------------------------------------------------------------------------------- contexts


def test_largest_context_is_the_last_multiple_of_1024_that_runs_well() -> None:
    shape, weights = QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"]
    hardware = machine(available_gb=7)

    largest = largest_context(shape, weights, hardware)

    assert largest % 1024 == 0 and 8192 < largest < shape.trained_context
    assert assess_fit(shape, weights, hardware, largest).verdict is FitVerdict.RUNS_WELL
    assert assess_fit(shape, weights, hardware, largest + 1024).verdict is not FitVerdict.RUNS_WELL


def test_largest_context_is_the_trained_one_on_a_big_machine_and_zero_when_nothing_fits() -> None:
    shape, weights = QWEN35_SHAPES["0.8B"], Q4_K_M_BYTES["0.8B"]
    assert largest_context(shape, weights, machine(total_gb=64, available_gb=60)) == 262144
    assert largest_context(shape, weights, machine(total_gb=1, available_gb=0.5)) == 0


def test_largest_context_counts_the_gpu_for_offloaded_layers() -> None:
    shape, weights = QWEN35_SHAPES["9B"], Q4_K_M_BYTES["9B"]
    hardware = machine(total_gb=64, available_gb=60, gpus=(gpu(free_gb=8),))
    with_gpu = largest_context(shape, weights, hardware)
    assert 0 < with_gpu < largest_context(shape, weights, hardware, gpu_layers=0)


@pytest.mark.parametrize(
    ("available_gb", "expected"),
    [
        (60, 32768),  # capped at 32K
        (4.3, 20480),  # the largest that runs well (21K), rounded down to 4K
        (3.2, 4096),  # nothing runs well, but 4K fits tightly: still the minimum useful context
        (2.5, 0),  # not even 4K fits
    ],
)
def test_recommended_context(available_gb: float, expected: int) -> None:
    shape, weights = QWEN35_SHAPES["4B"], Q4_K_M_BYTES["4B"]
    assert recommended_context(shape, weights, machine(total_gb=64, available_gb=available_gb)) == expected


# -------------------------------------------------------------------------------- recommendation

CANDIDATES = [(f"Qwen3.5 {size}", QWEN35_SHAPES[size], Q4_K_M_BYTES[size]) for size in SIZES]


@pytest.mark.parametrize(
    ("total_gb", "available_gb", "cores", "label", "context"),
    [
        (32, 24, 16, "Qwen3.5 9B", 32768),
        (16, 10, 16, "Qwen3.5 9B", 32768),
        (8, 4.3, 16, "Qwen3.5 4B", 20480),
        (8, 3, 16, "Qwen3.5 2B", 32768),
        (4, 1.2, 16, "Qwen3.5 0.8B", 28672),  # a 256-token micro-batch: smaller compute buffers
        # Plenty of memory but few cores: the 9B would write too slowly to chat with.
        (32, 24, 4, "Qwen3.5 4B", 32768),
        (32, 24, 2, "Qwen3.5 2B", 32768),
    ],
)
def test_recommends_the_largest_model_that_runs_well_with_a_useful_context_and_speed(
    total_gb: float, available_gb: float, cores: int, label: str, context: int
) -> None:
    hardware = replace(machine(total_gb=total_gb, available_gb=available_gb), physical_cores=cores)
    recommendation = recommend_model(CANDIDATES, hardware)
    assert recommendation is not None
    assert (recommendation.label, recommendation.context_size) == (label, context)
    assert recommendation.reason.startswith(
        f"{label} fits comfortably in your {total_gb} GB of RAM with a {context // 1024}K-token context and should write about "
    )
    assert recommendation.reason.endswith(" tokens a second here.")


def test_when_nothing_is_fast_enough_the_fastest_model_that_fits_is_recommended() -> None:
    hardware = replace(machine(total_gb=32, available_gb=24), physical_cores=1)
    recommendation = recommend_model(CANDIDATES, hardware)
    assert recommendation is not None and recommendation.label == "Qwen3.5 0.8B"


def test_speed_estimate_scales_with_bandwidth_and_model_size() -> None:
    two_cores = replace(machine(), physical_cores=2)
    # Measured on this kind of machine: 0.8B Q4_K_M at 29.5 tokens/s with 2 threads.
    assert 25 < estimated_tokens_per_second(525_000_000, two_cores) < 35
    assert estimated_tokens_per_second(2 * Q4_K_M_BYTES["4B"], two_cores) == pytest.approx(
        estimated_tokens_per_second(Q4_K_M_BYTES["4B"], two_cores) / 2
    )
    assert estimated_tokens_per_second(Q4_K_M_BYTES["9B"], machine(gpus=(gpu(free_gb=22),))) > 30


def test_recommends_nothing_when_no_model_runs_well_with_8k() -> None:
    assert recommend_model(CANDIDATES, machine(total_gb=2, available_gb=0.8)) is None


def test_recommendation_names_the_gpu_or_unified_memory() -> None:
    discrete = recommend_model(CANDIDATES, machine(gpus=(gpu(free_gb=22),)))
    metal = GpuDevice("MTL0", "Apple M4", 12 * GIB, 12 * GIB, unified_memory=True)
    unified = recommend_model(CANDIDATES, machine(total_gb=16, available_gb=10, gpus=(metal,)))

    assert discrete is not None and discrete.reason.startswith(
        "Qwen3.5 9B fits comfortably in the 24 GB of memory on NVIDIA GeForce RTX 4090 with a 32K-token context"
    )
    assert unified is not None and "in your 16 GB of unified memory with a 32K-token context" in unified.reason


def test_a_larger_quantization_of_the_same_size_wins_when_it_runs_well() -> None:
    shape = QWEN35_SHAPES["4B"]
    candidates = [("4B Q4_K_M", shape, 2_740_937_888), ("4B Q6_K", shape, 3_525_956_768)]
    recommendation = recommend_model(candidates, machine(total_gb=8, available_gb=7))
    assert recommendation is not None and recommendation.label == "4B Q6_K"


def test_a_model_that_fits_but_writes_slower_than_people_read_is_called_slow() -> None:
    # The project's 2-core machine, as its replies measured it: 15.5 GB/s of weights read.
    two_cores = replace(machine(total_gb=24, available_gb=20), physical_cores=2, decode_bytes_per_second=15.5e9, decode_speed_source="your replies")
    verdicts = {
        size: assess_fit(QWEN35_SHAPES[size], Q4_K_M_BYTES[size], two_cores, 8192) for size in ("0.8B", "2B", "4B", "9B")
    }
    assert [verdicts[size].memory_verdict for size in verdicts] == [FitVerdict.RUNS_WELL] * 4
    assert [verdicts[size].verdict for size in verdicts] == [FitVerdict.RUNS_WELL, FitVerdict.RUNS_WELL, FitVerdict.SLOW, FitVerdict.SLOW]
    assert 10 < verdicts["2B"].tokens_per_second < 14  # what the window measured with the 2B
    assert verdicts["9B"].tokens_per_second < 3
    assert "slower than you read" in verdicts["9B"].explanation and "measured from your replies" in verdicts["9B"].explanation
    # The recommendation is the largest that is not slow.
    candidates = [(size, QWEN35_SHAPES[size], Q4_K_M_BYTES[size]) for size in verdicts]
    assert recommend_model(candidates, two_cores).label == "2B"
