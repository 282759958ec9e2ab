"""Generator of a tiny but real ``qwen35`` GGUF model, for the test suite and the app's self-test.

The file is a genuine Qwen3.5 hybrid network that llama.cpp loads and runs like the published
models: architecture ``qwen35``, three Gated-DeltaNet (recurrent) layers followed by one gated
full-attention layer, a byte-level BPE ``gpt2`` tokenizer with pre-tokenizer ``qwen35``, the ChatML
special tokens, ``<think>``/``</think>`` and a Qwen3.5-style chat template. It is about 1 MB and
loads and generates in milliseconds, so tests (and an installed app checking itself) can exercise
the real engine without downloading a model.

Tests need to know what the model will say, even with the recommended sampling settings
(temperature 1, top_k 20, top_p 0.95). The weights are therefore built by hand so that the network
is, in effect, a lookup table from the *last* token to the next one:

* Each "chain" token owns one embedding dimension (value ``_CHAIN_SCALE``); every token also has
  the value 1 in a shared "bias" dimension; all other tokens get random values in the remaining
  "free" dimensions and zero in the chain dimensions.
* Every layer only adds a small perturbation to the residual stream: all projections are random
  with a small standard deviation, norm weights are 1, the Gated-DeltaNet decay is mild
  (``ssm_a`` = -0.5, zero dt bias) and its delta rule keeps the state bounded, so a few thousand
  tokens of context change nothing that matters.
* The output matrix (untied from the embeddings) maps chain dimension ``t`` to a logit of about
  +42 for the successor of ``t``. Every token that may end or steer a reply (the chain tokens, the
  special tokens) gets a large negative weight on the bias dimension, so it is about -30 or lower
  everywhere except where a chain rule lifts it. Byte tokens outside printable ASCII get a smaller
  negative weight there, so random text stays readable. Other tokens get small random logits.

This yields two chains, matching the two endings of the generation prompt:

* thinking prompt, ending ``<think>\\n`` (token ``Ċ``):
  ``Ċ → W → h → y → </think> → O → k → <|im_end|>``, i.e. the reply ``Why</think>Ok`` then EOS:
  reasoning ``THINKING_REASONING``, answer ``THINKING_ANSWER``;
* non-thinking prompt, ending ``</think>\\n\\n`` (token ``ĊĊ``): ``ĊĊ → a → b → c → a → …``,
  an endless ``ENDLESS_CYCLE`` that never emits EOS (for token limits and cancellation).

After any other token the model produces random printable-ASCII text that never contains a chain
token or a special token, so it never stops by itself either.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path

import gguf
import numpy as np

# --- Architecture (numpy shapes below are the reverse of llama.cpp's ggml shapes) ---------------
CONTEXT_LENGTH = 4096
EMBEDDING_LENGTH = 64
BLOCK_COUNT = 4
FULL_ATTENTION_INTERVAL = 4  # layers 0-2 are Gated-DeltaNet, layer 3 is full attention
FEED_FORWARD_LENGTH = 128
HEAD_COUNT = 4
HEAD_COUNT_KV = 2
HEAD_DIM = 32  # attention.key_length == attention.value_length
ROPE_DIMENSION_COUNT = 16  # partial rotary, like the real 64 of 256
ROPE_DIMENSION_SECTIONS = (3, 3, 2, 0)  # interleaved M-RoPE: sums to ROPE_DIMENSION_COUNT / 2
ROPE_FREQ_BASE = 10_000_000.0
RMS_NORM_EPS = 1e-6
SSM_CONV_KERNEL = 4
SSM_STATE_SIZE = 32  # head dim of linear-attention keys and values
SSM_GROUP_COUNT = 2  # linear-attention key heads
SSM_TIME_STEP_RANK = 4  # linear-attention value heads
SSM_INNER_SIZE = SSM_STATE_SIZE * SSM_TIME_STEP_RANK

# --- Scripted behaviour ------------------------------------------------------------------------
THINKING_REASONING = "Why"
THINKING_ANSWER = "Ok"
THINKING_COMPLETION = f"{THINKING_REASONING}</think>{THINKING_ANSWER}"  # raw text before EOS
ENDLESS_CYCLE = "abc"  # the non-thinking reply repeats this forever
# The non-thinking reply of a model written with ``calls_tools``: one call, in Qwen3.5's XML form.
TOOL_CALL_NAME = "get_weather"
TOOL_CALL_BODY = f"\n<function={TOOL_CALL_NAME}>\n<parameter=city>\nParis\n</parameter>\n</function>\n"
# The reply of a model written with ``writes_malformed_tool_call``: a call whose function tag is
# never closed, which no parser can read.
MALFORMED_TOOL_CALL_BODY = f"\n<function={TOOL_CALL_NAME}\n<parameter=city>\nParis\n"

# --- Chat template (same structure as the Qwen3/Qwen3.5 templates, images too, no tool calls) ---
_TEMPLATE_BODY = """\
{%- if messages and messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(last_query_index=-1) %}
{%- for message in messages %}
    {%- if message.role == 'user' %}
        {%- set ns.last_query_index = loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = namespace(text='') %}
        {%- for item in message.content %}
            {%- if item.type == 'image' %}
                {%- set content.text = content.text + '<|vision_start|><|image_pad|><|vision_end|>' %}
            {%- elif item.type == 'text' %}
                {%- set content.text = content.text + item.text %}
            {%- endif %}
        {%- endfor %}
        {%- set content = content.text %}
    {%- endif %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- elif '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') + '<|im_end|>\\n' }}
        {%- else %}
            {{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
"""

# Like Qwen3.5 4B/9B: thinks unless enable_thinking is false.
CHAT_TEMPLATE_THINKS_BY_DEFAULT = _TEMPLATE_BODY + """\
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- else %}
        {{- '<think>\\n' }}
    {%- endif %}
{%- endif %}
"""

# Like Qwen3.5 0.8B/2B: thinks only when enable_thinking is true.
CHAT_TEMPLATE_THINKS_ON_REQUEST = _TEMPLATE_BODY + """\
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is true %}
        {{- '<think>\\n' }}
    {%- else %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""


# --- Tokenizer ---------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (its order is the vocabulary order)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


_BYTE_TOKENS = list(_bytes_to_unicode().values())
# "Ċ Ċ" makes "\n\n" a single token, as in the real vocabulary; the others are for realism.
_MERGES = ["Ċ Ċ", "Ġ t", "h e", "i n", "e r", "Ġ a", "Ġt he"]
_SPECIAL_TOKENS = [
    ("<|endoftext|>", gguf.TokenType.CONTROL),
    ("<|im_start|>", gguf.TokenType.CONTROL),
    ("<|im_end|>", gguf.TokenType.CONTROL),
    ("<think>", gguf.TokenType.USER_DEFINED),  # parsed from plain text and shown as text
    ("</think>", gguf.TokenType.USER_DEFINED),
    ("<tool_call>", gguf.TokenType.USER_DEFINED),
    ("</tool_call>", gguf.TokenType.USER_DEFINED),
    (TOOL_CALL_BODY, gguf.TokenType.USER_DEFINED),  # a whole call body in one token, for a chain
    (MALFORMED_TOOL_CALL_BODY, gguf.TokenType.USER_DEFINED),
    # What libmtmd wraps an image in; the template's image placeholder is these three.
    ("<|vision_start|>", gguf.TokenType.CONTROL),
    ("<|vision_end|>", gguf.TokenType.CONTROL),
    ("<|image_pad|>", gguf.TokenType.CONTROL),
]
TOKENS: tuple[str, ...] = tuple(
    _BYTE_TOKENS + [m.replace(" ", "") for m in _MERGES] + [t for t, _ in _SPECIAL_TOKENS]
)
TOKEN_TYPES: tuple[int, ...] = tuple(
    [gguf.TokenType.NORMAL] * (len(_BYTE_TOKENS) + len(_MERGES)) + [k for _, k in _SPECIAL_TOKENS]
)
VOCAB_SIZE = len(TOKENS)
_ID = {token: i for i, token in enumerate(TOKENS)}

NEWLINE_ID = _ID["Ċ"]  # "\n"
DOUBLE_NEWLINE_ID = _ID["ĊĊ"]  # "\n\n"
ENDOFTEXT_ID = _ID["<|endoftext|>"]  # bos (never added) and pad
IM_START_ID = _ID["<|im_start|>"]
IM_END_ID = _ID["<|im_end|>"]  # eos and eot
THINK_ID = _ID["<think>"]
END_THINK_ID = _ID["</think>"]

# Successor rules: the token after each chain token (keys own one embedding dimension each).
_THINKING_CHAIN = ["Ċ", *THINKING_REASONING, "</think>", *THINKING_ANSWER, "<|im_end|>"]
_CYCLE_CHAIN = ["ĊĊ", *ENDLESS_CYCLE, ENDLESS_CYCLE[0]]
_TOOL_CALL_CHAIN = ["ĊĊ", "<tool_call>", TOOL_CALL_BODY, "</tool_call>", "<|im_end|>"]
_MALFORMED_TOOL_CALL_CHAIN = ["ĊĊ", "<tool_call>", MALFORMED_TOOL_CALL_BODY, "</tool_call>", "<|im_end|>"]


def _successors(*chains: list[str]) -> dict[int, int]:
    return {_ID[a]: _ID[b] for chain in chains for a, b in pairwise(chain)}


_SUCCESSOR = _successors(_THINKING_CHAIN, _CYCLE_CHAIN)
_TOOL_CALLING_SUCCESSOR = _successors(_THINKING_CHAIN, _TOOL_CALL_CHAIN)
# A small model's slip: the call written inside its thinking, which it never closes.
_THINKING_TOOL_CALL_CHAIN = ["Ċ", *_TOOL_CALL_CHAIN[1:]]
_CALLING_WHILE_THINKING_SUCCESSOR = _successors(_THINKING_TOOL_CALL_CHAIN, _CYCLE_CHAIN)
_MALFORMED_CALL_SUCCESSOR = _successors(_THINKING_CHAIN, _MALFORMED_TOOL_CALL_CHAIN)

# --- Weight design (see the module docstring) --------------------------------------------------
_CHAIN_SCALE = 4.0  # embedding value of a chain token in its own dimension
_RULE_WEIGHT = 13.0  # output weight from a chain dimension to its successor: logit about +42
_BANNED_WEIGHT = -30.0  # output weight on the bias dimension for tokens random text must avoid
_UNPRINTABLE_WEIGHT = -10.0  # same, for byte tokens outside printable ASCII (keeps text readable)
_LAYER_STD = 0.02  # standard deviation of every projection matrix inside the layers
_OUTPUT_STD = 0.3  # random output weights on the free dimensions: mild random-text logits


def _output_and_embedding(rng: np.random.Generator, successor: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    chain_ids = sorted(successor)
    chain_dim = {token: d for d, token in enumerate(chain_ids)}
    bias_dim = len(chain_ids)
    free = slice(bias_dim + 1, EMBEDDING_LENGTH)

    embedding = np.zeros((VOCAB_SIZE, EMBEDDING_LENGTH), dtype=np.float32)
    embedding[:, bias_dim] = 1.0
    for token in range(VOCAB_SIZE):
        if token in chain_dim:
            embedding[token, chain_dim[token]] = _CHAIN_SCALE
        else:
            embedding[token, free] = rng.normal(0.0, 1.0, free.stop - free.start)

    output = np.zeros((VOCAB_SIZE, EMBEDDING_LENGTH), dtype=np.float32)
    output[:, free] = rng.normal(0.0, _OUTPUT_STD, (VOCAB_SIZE, free.stop - free.start))
    for byte, token in _bytes_to_unicode().items():
        if not 0x20 <= byte <= 0x7E:
            output[_ID[token], bias_dim] = _UNPRINTABLE_WEIGHT
    chains = _SUCCESSOR | _TOOL_CALLING_SUCCESSOR | _CALLING_WHILE_THINKING_SUCCESSOR | _MALFORMED_CALL_SUCCESSOR
    banned = set(chains) | set(chains.values()) | {_ID[t] for t, _ in _SPECIAL_TOKENS}
    for token in banned:
        output[token, bias_dim] = _BANNED_WEIGHT
    for token, next_token in successor.items():
        output[next_token, chain_dim[token]] = _RULE_WEIGHT
    return embedding, output


def _tensors(rng: np.random.Generator, successor: dict[int, int]) -> dict[str, np.ndarray]:
    def small(*shape: int, std: float = _LAYER_STD) -> np.ndarray:
        return rng.normal(0.0, std, shape).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return np.ones(n, dtype=np.float32)

    n = EMBEDDING_LENGTH
    key_dim = SSM_STATE_SIZE * SSM_GROUP_COUNT
    conv_dim = 2 * key_dim + SSM_INNER_SIZE

    embedding, output = _output_and_embedding(rng, successor)
    tensors = {
        "token_embd.weight": embedding,
        "output_norm.weight": ones(n),
        "output.weight": output,
    }
    for il in range(BLOCK_COUNT):
        blk = f"blk.{il}."
        tensors[blk + "attn_norm.weight"] = ones(n)
        tensors[blk + "post_attention_norm.weight"] = ones(n)
        if (il + 1) % FULL_ATTENTION_INTERVAL:  # Gated-DeltaNet layer
            tensors[blk + "attn_qkv.weight"] = small(conv_dim, n)
            tensors[blk + "attn_gate.weight"] = small(SSM_INNER_SIZE, n)
            tensors[blk + "ssm_conv1d.weight"] = small(conv_dim, SSM_CONV_KERNEL, std=0.3)
            tensors[blk + "ssm_dt.bias"] = np.zeros(SSM_TIME_STEP_RANK, dtype=np.float32)
            tensors[blk + "ssm_a"] = np.full(SSM_TIME_STEP_RANK, -0.5, dtype=np.float32)
            tensors[blk + "ssm_beta.weight"] = small(SSM_TIME_STEP_RANK, n)
            tensors[blk + "ssm_alpha.weight"] = small(SSM_TIME_STEP_RANK, n)
            tensors[blk + "ssm_norm.weight"] = ones(SSM_STATE_SIZE)
            tensors[blk + "ssm_out.weight"] = small(n, SSM_INNER_SIZE)
        else:  # gated full-attention layer; attn_q also carries the output gate
            tensors[blk + "attn_q.weight"] = small(2 * HEAD_COUNT * HEAD_DIM, n)
            tensors[blk + "attn_k.weight"] = small(HEAD_COUNT_KV * HEAD_DIM, n)
            tensors[blk + "attn_v.weight"] = small(HEAD_COUNT_KV * HEAD_DIM, n)
            tensors[blk + "attn_output.weight"] = small(n, HEAD_COUNT * HEAD_DIM)
            tensors[blk + "attn_q_norm.weight"] = ones(HEAD_DIM)
            tensors[blk + "attn_k_norm.weight"] = ones(HEAD_DIM)
        tensors[blk + "ffn_gate.weight"] = small(FEED_FORWARD_LENGTH, n)
        tensors[blk + "ffn_up.weight"] = small(FEED_FORWARD_LENGTH, n)
        tensors[blk + "ffn_down.weight"] = small(n, FEED_FORWARD_LENGTH)
    return tensors


def write_tiny_qwen35_gguf(
    path: Path,
    *,
    thinks_by_default: bool = True,
    seed: int = 0,
    overrides: Mapping[str, object] | None = None,
    calls_tools: bool = False,
    calls_tools_while_thinking: bool = False,
    writes_malformed_tool_call: bool = False,
    chat_template: str | None = None,
) -> Path:
    """Write the tiny ``qwen35`` model to ``path`` and return ``path``.

    ``thinks_by_default`` picks the chat template: True behaves like Qwen3.5 4B/9B
    (``CHAT_TEMPLATE_THINKS_BY_DEFAULT``), False like 0.8B/2B (``CHAT_TEMPLATE_THINKS_ON_REQUEST``).
    ``seed`` only changes the random filler weights, never the scripted replies. ``overrides``
    replaces metadata values by key (``"qwen35.block_count": 0``), keeping each value's type:
    the hostile files the app must refuse.

    With ``calls_tools`` the non-thinking reply is a call of ``TOOL_CALL_NAME`` (city "Paris")
    instead of the endless cycle; with ``calls_tools_while_thinking`` the thinking reply is that
    call, inside the unclosed thinking block; with ``writes_malformed_tool_call`` the non-thinking
    reply is a call that cannot be parsed (``MALFORMED_TOOL_CALL_BODY``). ``chat_template`` replaces the template (tests give the real
    Qwen3.5 one, which renders tools).
    """
    path = Path(path)
    writer = gguf.GGUFWriter(path, "qwen35")

    writer.add_name("Tiny Qwen3.5 test model")
    writer.add_size_label("tiny")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(EMBEDDING_LENGTH)
    writer.add_block_count(BLOCK_COUNT)
    writer.add_feed_forward_length(FEED_FORWARD_LENGTH)
    writer.add_head_count(HEAD_COUNT)
    writer.add_head_count_kv(HEAD_COUNT_KV)
    writer.add_key_length(HEAD_DIM)
    writer.add_value_length(HEAD_DIM)
    writer.add_layer_norm_rms_eps(RMS_NORM_EPS)
    writer.add_rope_freq_base(ROPE_FREQ_BASE)
    writer.add_rope_dimension_count(ROPE_DIMENSION_COUNT)
    writer.add_rope_dimension_sections(list(ROPE_DIMENSION_SECTIONS))
    writer.add_ssm_conv_kernel(SSM_CONV_KERNEL)
    writer.add_ssm_state_size(SSM_STATE_SIZE)
    writer.add_ssm_group_count(SSM_GROUP_COUNT)
    writer.add_ssm_time_step_rank(SSM_TIME_STEP_RANK)
    writer.add_ssm_inner_size(SSM_INNER_SIZE)
    writer.add_full_attention_interval(FULL_ATTENTION_INTERVAL)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen35")
    writer.add_token_list(list(TOKENS))
    writer.add_token_types(list(TOKEN_TYPES))
    writer.add_token_merges(_MERGES)
    writer.add_bos_token_id(ENDOFTEXT_ID)
    writer.add_eos_token_id(IM_END_ID)
    writer.add_eot_token_id(IM_END_ID)
    writer.add_pad_token_id(ENDOFTEXT_ID)
    writer.add_add_bos_token(False)
    writer.add_chat_template(
        chat_template or (CHAT_TEMPLATE_THINKS_BY_DEFAULT if thinks_by_default else CHAT_TEMPLATE_THINKS_ON_REQUEST)
    )

    for key, value in (overrides or {}).items():
        original = writer.kv_data[0][key]
        writer.kv_data[0][key] = gguf.GGUFValue(value, original.type, original.sub_type)

    successor = (
        _CALLING_WHILE_THINKING_SUCCESSOR if calls_tools_while_thinking
        else _TOOL_CALLING_SUCCESSOR if calls_tools
        else _MALFORMED_CALL_SUCCESSOR if writes_malformed_tool_call
        else _SUCCESSOR
    )
    for name, tensor in _tensors(np.random.default_rng(seed), successor).items():
        writer.add_tensor(name, tensor)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
