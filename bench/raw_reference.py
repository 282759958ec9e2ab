"""The yardstick: llama.cpp's C API driven directly, with nothing else per token.

Each speed ratio in the benchmark divides the app's figure by this one, measured in the same run
on the same file with the same context settings and threads, so the ratio is what the app's own
layers (Python, the worker thread, signals, templates, state snapshots) cost on top of llama.cpp.
"""

from __future__ import annotations

import ctypes
import re
import time
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

_ALL_LAYERS = 999  # as the engine: llama.cpp clamps it to the model's layer count


@dataclass(frozen=True)
class ContextSettings:
    """What a llama.cpp context is created with; ``flash_attention`` is llama.cpp's enum
    (-1 auto, 0 off, 1 on)."""

    context_size: int
    threads: int
    batch_size: int
    flash_attention: int = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO


class RawLlama:
    """One model and context on the bare C API (the ``llama_cpp`` ctypes bindings)."""

    def __init__(self, path: Path, settings: ContextSettings) -> None:
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = _ALL_LAYERS if llama_cpp.llama_supports_gpu_offload() else 0
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = settings.context_size
        params.n_batch = params.n_ubatch = settings.batch_size
        params.n_threads = params.n_threads_batch = settings.threads
        params.flash_attn_type = settings.flash_attention
        params.n_outputs_max = 1  # as the engine: logits for the last token only, not a whole batch
        params.no_perf = True
        self._context = llama_cpp.llama_init_from_model(self._model, params)
        if not self._context:
            llama_cpp.llama_model_free(self._model)
            raise RuntimeError(f"llama.cpp could not create a context for {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.batch_size = settings.batch_size

    def close(self) -> None:
        llama_cpp.llama_free(self._context)
        llama_cpp.llama_model_free(self._model)

    def __enter__(self) -> RawLlama:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` with special tokens parsed, no BOS: as the engine tokenizes."""
        data = text.encode("utf-8")
        buffer = (llama_cpp.llama_token * (len(data) + 16))()
        count = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, len(buffer), False, True)
        return list(buffer[:count])

    def forget(self) -> None:
        """Empties the context: the next evaluation starts at position 0."""
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._context), True)

    def evaluate(self, tokens: list[int]) -> float:
        """Evaluates ``tokens`` in batches of the context's batch size; returns the seconds."""
        arrays = [
            (llama_cpp.llama_token * len(chunk))(*chunk)
            for chunk in (tokens[start:start + self.batch_size] for start in range(0, len(tokens), self.batch_size))
        ]
        started = time.perf_counter()
        for array in arrays:
            if llama_cpp.llama_decode(self._context, llama_cpp.llama_batch_get_one(array, len(array))) != 0:
                raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(self._context)
        return time.perf_counter() - started

    def decode_one_at_a_time(self, count: int, token: int) -> float:
        """Decodes ``count`` single tokens after what the context holds; returns the seconds."""
        array = (llama_cpp.llama_token * 1)(token)
        batch = llama_cpp.llama_batch_get_one(array, 1)
        context, decode = self._context, llama_cpp.llama_decode
        started = time.perf_counter()
        for _ in range(count):
            if decode(context, batch) != 0:
                raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(context)
        return time.perf_counter() - started


class ComputeBufferLog:
    """Takes over llama.cpp's log (in a process without the engine, which routes it otherwise),
    drops it, but keeps the compute buffer sizes that contexts report when they are created."""

    _PATTERN = re.compile(rb"(\w+) compute buffer size = +([\d.]+) MiB")

    def __init__(self) -> None:
        self.mebibytes: dict[str, float] = {}
        self._callback = llama_cpp.llama_log_callback(self._on_log)  # referenced while installed
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, _level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        match = self._PATTERN.search(text)
        if match:
            self.mebibytes[match.group(1).decode()] = float(match.group(2))
