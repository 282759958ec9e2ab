"""The memory-bandwidth bound on decoding: bytes read per token against measured bandwidth.

Generating one token reads every weight the token passes through once (all of them, except
that only one row of the input embeddings is looked up, unless they double as the output
matrix), the recurrent layers' state (read and written) and the attention layers' KV cache so
far. A CPU cannot decode faster than its memory delivers those bytes, so bandwidth divided by
bytes per token is the ceiling that raw llama.cpp's speed is compared with.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gguf
import numpy as np

from app.core.models.fit_estimate import ModelShape


def bytes_read_per_token(path: Path, position: int) -> int:
    """Bytes one decode step reads at context ``position`` (weights, state, KV cache)."""
    reader = gguf.GGUFReader(path)
    sizes = {tensor.name: int(tensor.n_bytes) for tensor in reader.tensors}
    weights = sum(sizes.values())
    if "output.weight" in sizes:  # untied: of the input embeddings only one row is read
        weights -= sizes["token_embd.weight"]
    shape = ModelShape.from_gguf(path)
    return weights + 2 * shape.recurrent_state_bytes + shape.kv_bytes_per_token * position


def read_bandwidth(threads: int, buffer_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes per second that ``threads`` threads read together from a buffer far larger than the
    caches (best of ``repeats``). numpy releases the GIL while it reduces, so they run at once."""
    words = np.ones(buffer_bytes // 8, dtype=np.uint64)  # written once, so every page is real
    parts = np.array_split(words, threads)

    def read(part: np.ndarray) -> None:
        np.bitwise_or.reduce(part)  # the cheapest reduction: the loop waits on memory, not math

    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=read, args=(part,)) for part in parts]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.perf_counter() - started)
    return words.nbytes / best
