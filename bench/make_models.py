"""Random-weight Qwen3.5 GGUFs with the published shapes, for measuring speed and memory.

Speed and memory depend on a model's shapes and quantization, not on what its weights say, so a
file with Qwen3.5's exact tensor shapes, its real 248,320-token vocabulary and llama.cpp's own
quantization runs like the published one. Generating it takes a minute and needs no download.

The vocabulary is a genuine byte-level BPE one: the 256 byte tokens, word pieces built by real
merges (so prompts tokenize to a few letters per token, and generated text is words and spaces,
not one long string that no label can wrap), and the ChatML special tokens at the end.

Files go to a cache folder outside the repository (``--cache``, by default the user cache folder)
and are reused. ``python -m bench.make_models --sizes 0.8B 2B 4B 9B --quants Q4_K_M Q8_0``
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import llama_cpp
import numpy as np
import platformdirs

from app.core.profile.app_paths import APP_AUTHOR, APP_NAME
from app.core.engines.llama.llama_runtime import default_thread_count
from app.core.engines.llama.self_test_model import (
    CHAT_TEMPLATE_THINKS_BY_DEFAULT,
    CHAT_TEMPLATE_THINKS_ON_REQUEST,
    TOKEN_TYPES,
    TOKENS,
)

# Shared by all sizes (/work/shared/reference/qwen35.md).
VOCABULARY_SIZE = 248_320
CONTEXT_LENGTH = 262_144
HEAD_DIM = 256
LINEAR_KEY_HEADS = 16
LINEAR_HEAD_DIM = 128
CONV_KERNEL = 4
FULL_ATTENTION_INTERVAL = 4  # three Gated-DeltaNet layers, then one full-attention layer
ROPE_FREQ_BASE = 10_000_000.0
ROPE_DIMENSION_COUNT = 64
ROPE_DIMENSION_SECTIONS = [11, 11, 10, 0]
RMS_NORM_EPS = 1e-6
WEIGHT_STD = 0.02  # small random weights keep activations in a normal range at every depth
CONV_STD = 0.3


@dataclass(frozen=True)
class ModelSize:
    """One Qwen3.5 size's shapes (the reference's architecture table)."""

    label: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    feed_forward: int
    linear_value_heads: int
    tied_output: bool
    thinks_by_default: bool  # 4B/9B templates think unless told not to; 0.8B/2B the reverse


SIZES = {
    size.label: size
    for size in (
        ModelSize("0.8B", 1024, 24, 8, 2, 3584, 16, tied_output=True, thinks_by_default=False),
        ModelSize("2B", 2048, 24, 8, 2, 6144, 16, tied_output=True, thinks_by_default=False),
        ModelSize("4B", 2560, 32, 16, 4, 9216, 32, tied_output=True, thinks_by_default=True),
        ModelSize("9B", 4096, 32, 16, 4, 12288, 32, tied_output=False, thinks_by_default=True),
    )
}

QUANTIZATIONS = {"Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}

# Sizes of the published re-hosts (reference), to check that the random files are faithful.
PUBLISHED_BYTES = {
    ("0.8B", "Q4_K_M"): 532_517_120,
    ("2B", "Q4_K_M"): 1_280_835_840,
    ("4B", "Q4_K_M"): 2_740_937_888,
    ("9B", "Q4_K_M"): 5_680_522_464,
    ("9B", "Q8_0"): 9_527_502_048,
}


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)) / "bench-models"


# Bumped whenever what a file holds changes, so a cache never serves an outdated model. 2: the
# vision tokens and a template that shows images (the vision benchmark needs both).
GENERATION = 2


def model_path(cache_dir: Path, size: str, quantization: str) -> Path:
    return cache_dir / f"qwen35-{size.lower()}-shaped-v{GENERATION}-{quantization.lower()}.gguf"


def ensure_model(size: str, quantization: str, cache_dir: Path, *, keep_f16: bool = False) -> Path:
    """The cached model file, written and quantized first if it is not there yet."""
    destination = model_path(cache_dir, size, quantization)
    if destination.is_file():
        return destination
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = model_path(cache_dir, size, "f16")
    if not source.is_file():
        write_f16_model(SIZES[size], source)
    quantize(source, destination, quantization)
    if not keep_f16:
        source.unlink()
    return destination


# ------------------------------------------------------------------------------------ writing


def write_f16_model(size: ModelSize, path: Path, seed: int = 0) -> Path:
    """Writes the unquantized model, one tensor at a time (a 9B one never sits in memory whole)."""
    tokens, token_types, merges = bpe_vocabulary(seed)
    partial = path.with_suffix(".partial")
    writer = gguf.GGUFWriter(partial, "qwen35")
    writer.add_name(f"Qwen3.5-{size.label}-shaped random weights")
    writer.add_size_label(size.label)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(size.hidden)
    writer.add_block_count(size.layers)
    writer.add_feed_forward_length(size.feed_forward)
    writer.add_head_count(size.heads)
    writer.add_head_count_kv(size.kv_heads)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_layer_norm_rms_eps(RMS_NORM_EPS)
    writer.add_rope_freq_base(ROPE_FREQ_BASE)
    writer.add_rope_dimension_count(ROPE_DIMENSION_COUNT)
    writer.add_rope_dimension_sections(ROPE_DIMENSION_SECTIONS)
    writer.add_ssm_conv_kernel(CONV_KERNEL)
    writer.add_ssm_state_size(LINEAR_HEAD_DIM)
    writer.add_ssm_group_count(LINEAR_KEY_HEADS)
    writer.add_ssm_time_step_rank(size.linear_value_heads)
    writer.add_ssm_inner_size(size.linear_value_heads * LINEAR_HEAD_DIM)
    writer.add_full_attention_interval(FULL_ATTENTION_INTERVAL)

    token_id = {token: index for index, token in enumerate(tokens)}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen35")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(token_id["<|endoftext|>"])
    writer.add_eos_token_id(token_id["<|im_end|>"])
    writer.add_eot_token_id(token_id["<|im_end|>"])
    writer.add_pad_token_id(token_id["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(
        CHAT_TEMPLATE_THINKS_BY_DEFAULT if size.thinks_by_default else CHAT_TEMPLATE_THINKS_ON_REQUEST
    )

    shapes = dict(_tensor_shapes(size))
    for name, (shape, dtype) in shapes.items():
        writer.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, (shape, dtype) in shapes.items():
        writer.write_tensor_data(_tensor_values(rng, name, shape, dtype))
    writer.close()
    os.replace(partial, path)
    return path


def _tensor_shapes(size: ModelSize) -> Iterator[tuple[str, tuple[tuple[int, ...], type]]]:
    """Names, numpy shapes (the reverse of ggml's) and types of every tensor llama.cpp expects."""
    hidden = size.hidden
    inner = size.linear_value_heads * LINEAR_HEAD_DIM
    conv_channels = 2 * LINEAR_KEY_HEADS * LINEAR_HEAD_DIM + inner
    yield "token_embd.weight", ((VOCABULARY_SIZE, hidden), np.float16)
    yield "output_norm.weight", ((hidden,), np.float32)
    if not size.tied_output:
        yield "output.weight", ((VOCABULARY_SIZE, hidden), np.float16)
    for layer in range(size.layers):
        block = f"blk.{layer}."
        yield block + "attn_norm.weight", ((hidden,), np.float32)
        yield block + "post_attention_norm.weight", ((hidden,), np.float32)
        if (layer + 1) % FULL_ATTENTION_INTERVAL:  # Gated-DeltaNet layer
            yield block + "attn_qkv.weight", ((conv_channels, hidden), np.float16)
            yield block + "attn_gate.weight", ((inner, hidden), np.float16)
            yield block + "ssm_conv1d.weight", ((conv_channels, CONV_KERNEL), np.float32)
            yield block + "ssm_dt.bias", ((size.linear_value_heads,), np.float32)
            yield block + "ssm_a", ((size.linear_value_heads,), np.float32)
            yield block + "ssm_beta.weight", ((size.linear_value_heads, hidden), np.float16)
            yield block + "ssm_alpha.weight", ((size.linear_value_heads, hidden), np.float16)
            yield block + "ssm_norm.weight", ((LINEAR_HEAD_DIM,), np.float32)
            yield block + "ssm_out.weight", ((hidden, inner), np.float16)
        else:  # gated full attention: attn_q also carries the output gate
            yield block + "attn_q.weight", ((2 * size.heads * HEAD_DIM, hidden), np.float16)
            yield block + "attn_k.weight", ((size.kv_heads * HEAD_DIM, hidden), np.float16)
            yield block + "attn_v.weight", ((size.kv_heads * HEAD_DIM, hidden), np.float16)
            yield block + "attn_output.weight", ((hidden, size.heads * HEAD_DIM), np.float16)
            yield block + "attn_q_norm.weight", ((HEAD_DIM,), np.float32)
            yield block + "attn_k_norm.weight", ((HEAD_DIM,), np.float32)
        yield block + "ffn_gate.weight", ((size.feed_forward, hidden), np.float16)
        yield block + "ffn_up.weight", ((size.feed_forward, hidden), np.float16)
        yield block + "ffn_down.weight", ((hidden, size.feed_forward), np.float16)


def _tensor_values(rng: np.random.Generator, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if name.endswith("norm.weight"):
        return np.ones(shape, dtype)
    if name.endswith("ssm_a"):
        return np.full(shape, -0.5, dtype)  # a mild decay: the recurrent state stays bounded
    if name.endswith("ssm_dt.bias"):
        return np.zeros(shape, dtype)
    std = CONV_STD if name.endswith("ssm_conv1d.weight") else WEIGHT_STD
    values = np.empty(shape, dtype)
    rows = values.reshape(-1, shape[-1])
    step = max(1, (1 << 24) // shape[-1])  # ~64 MB of float32 at a time
    for start in range(0, len(rows), step):
        block = rng.standard_normal((min(step, len(rows) - start), shape[-1]), dtype=np.float32)
        rows[start:start + step] = block * std
    return values


def bpe_vocabulary(seed: int = 0) -> tuple[list[str], list[int], list[str]]:
    """Tokens, token types and merges of a 248,320-token byte-level BPE vocabulary.

    The byte tokens and the ChatML/think special tokens are the self-test model's; every other
    token is a word piece that a merge builds from a shorter one, so llama.cpp's tokenizer really
    uses them. Half the pieces start a word (GPT-2's "Ġ" marks the space before it).
    """
    byte_tokens = [token for token, kind in zip(TOKENS, TOKEN_TYPES) if kind == gguf.TokenType.NORMAL and len(token) == 1]
    special = [(token, kind) for token, kind in zip(TOKENS, TOKEN_TYPES) if kind != gguf.TokenType.NORMAL]
    tokens = list(byte_tokens) + ["ĊĊ"]  # "\n\n" is one token, as in the real vocabulary
    merges = ["Ċ Ċ"]
    known = set(tokens)
    rng = random.Random(seed)
    # Every prefix of a random word becomes a token, merged from the prefix one letter shorter.
    while len(tokens) < VOCABULARY_SIZE - len(special):
        word = ("Ġ" if rng.random() < 0.5 else "") + "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 8)))
        for end in range(2, len(word) + 1):
            piece = word[:end]
            if piece not in known and len(tokens) < VOCABULARY_SIZE - len(special):
                known.add(piece)
                tokens.append(piece)
                merges.append(f"{word[:end - 1]} {word[end - 1]}")
    token_types = [int(gguf.TokenType.NORMAL)] * len(tokens) + [int(kind) for _, kind in special]
    return tokens + [token for token, _ in special], token_types, merges


# --------------------------------------------------------------------------------- quantizing


@llama_cpp.llama_log_callback
def _errors_only(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # The quantizer reports every tensor at info level; only warnings and errors matter here.
    if level in (3, 4):
        sys.stderr.write(text.decode("utf-8", "replace"))


def quantize(source: Path, destination: Path, quantization: str) -> Path:
    """Quantizes with llama.cpp's own quantizer, exactly as ``llama-quantize`` would."""
    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(_errors_only, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZATIONS[quantization]
    params.nthread = default_thread_count()
    partial = destination.with_suffix(".partial")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {source.name} to {quantization}")
    os.replace(partial, destination)
    return destination


def size_check(size: str, quantization: str, path: Path) -> str:
    """How the file's size compares with the published file's, when that is known."""
    published = PUBLISHED_BYTES.get((size, quantization))
    if published is None:
        return "no published size to compare"
    deviation = path.stat().st_size / published - 1
    return f"{deviation:+.2%} vs published {published:,} B"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["0.8B", "2B"])
    parser.add_argument("--quants", nargs="+", choices=list(QUANTIZATIONS), default=list(QUANTIZATIONS))
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="folder for the model files")
    parser.add_argument("--keep-f16", action="store_true", help="keep the unquantized files too")
    args = parser.parse_args(argv)
    for size in args.sizes:
        for index, quantization in enumerate(args.quants):
            keep = args.keep_f16 or index < len(args.quants) - 1  # quantize all from one f16 file
            path = ensure_model(size, quantization, args.cache, keep_f16=keep)
            print(f"{path}  {path.stat().st_size:,} B  ({size_check(size, quantization, path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
