"""What a computer offers for running a model, as values the fit estimate reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuDevice:
    name: str  # ggml's device name: "CUDA0", "MTL0", "Vulkan0"…
    description: str  # e.g. "NVIDIA GeForce RTX 4070"
    free_bytes: int
    total_bytes: int
    unified_memory: bool  # its memory is the system RAM (Apple silicon, integrated GPUs)


@dataclass(frozen=True)
class AcceleratorReport:
    """What the inference runtime can compute with, as it reports itself."""

    backend: str  # the accelerator it was compiled with: "CUDA", "Metal"… or "CPU"
    cpu_features: tuple[str, ...]  # instruction sets its CPU code uses: "AVX2", "NEON"…
    gpus: tuple[GpuDevice, ...]


@dataclass(frozen=True)
class HardwareInfo:
    total_ram_bytes: int
    available_ram_bytes: int  # what programs can still get without swapping (psutil's "available")
    physical_cores: int
    logical_cores: int
    cpu_features: tuple[str, ...]  # instruction sets llama.cpp's CPU backend uses: "AVX2", "NEON"…
    backend: str  # the accelerator llama.cpp was compiled with: "CUDA", "Metal"… or "CPU"
    gpus: tuple[GpuDevice, ...]
    models_dir_free_bytes: int | None  # free disk space where models are kept; None if unknown
    # How fast generating reads the weights, measured on this computer (bytes a second): from
    # its own replies, else a memory-bandwidth probe; None: not measured (a rule of thumb is used).
    decode_bytes_per_second: float | None = None
    decode_speed_source: str = ""  # how it was measured, for the user: "your replies", "a memory test"
