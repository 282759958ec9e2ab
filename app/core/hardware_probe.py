"""What this computer offers for running a model: memory, CPU, llama.cpp's backend and GPUs, disk.

Cheap to call: it loads no model. GPUs are the devices llama.cpp itself would use, found through
ggml's backend device registry, so the numbers match what a load will see.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import llama_cpp
import psutil

from app.core.inference_engine import compiled_backend

logger = logging.getLogger(__name__)

# enum ggml_backend_dev_type in ggml-backend.h: CPU, GPU, IGPU (shares system memory), ACCEL, META.
_DEVICE_TYPE_GPU = 1
_DEVICE_TYPE_IGPU = 2

# Entries of the CPU backend's feature report that are build options, not instruction sets.
_CPU_BUILD_OPTIONS = frozenset({"LLAMAFILE", "ACCELERATE", "CPU_HBM", "OPENMP", "KLEIDIAI", "REPACK"})


@dataclass(frozen=True)
class GpuDevice:
    name: str  # ggml's device name: "CUDA0", "MTL0", "Vulkan0"…
    description: str  # e.g. "NVIDIA GeForce RTX 4070"
    free_bytes: int
    total_bytes: int
    unified_memory: bool  # its memory is the system RAM (Apple silicon, integrated GPUs)


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


def probe_hardware(models_dir: Path | None = None) -> HardwareInfo:
    """Measures this computer now; ``models_dir`` is the folder whose free disk space to report."""
    memory = psutil.virtual_memory()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return HardwareInfo(
        total_ram_bytes=memory.total,
        available_ram_bytes=memory.available,
        physical_cores=psutil.cpu_count(logical=False) or logical,
        logical_cores=logical,
        cpu_features=_cpu_features(),
        backend=compiled_backend(),
        gpus=_gpu_devices(),
        models_dir_free_bytes=_free_disk_bytes(models_dir),
    )


def _cpu_features() -> tuple[str, ...]:
    """The CPU backend's enabled features from llama.cpp's report.

    The report reads "CPU : SSE3 = 1 | AVX = 1 | … | CUDA : ARCHS = 890 | …": each backend's name
    precedes its first entry.
    """
    report = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    features: list[str] = []
    backend = ""
    for entry in report.split("|"):
        if " : " in entry:
            backend, _, entry = entry.partition(" : ")
            backend = backend.strip()
        name, _, value = entry.partition(" = ")
        name = name.strip()
        if backend == "CPU" and value.strip() == "1" and name not in _CPU_BUILD_OPTIONS:
            features.append(name)
    return tuple(features)


def _free_disk_bytes(folder: Path | None) -> int | None:
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _gpu_devices() -> tuple[GpuDevice, ...]:
    api = _device_api()
    if api is None:
        return ()
    devices = []
    for index in range(api.count()):
        device = api.get(index)
        if not device:
            continue
        kind = api.type(device)
        if kind not in (_DEVICE_TYPE_GPU, _DEVICE_TYPE_IGPU):
            continue
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        api.memory(device, ctypes.byref(free), ctypes.byref(total))
        name = (api.name(device) or b"").decode("utf-8", "replace")
        # On Apple silicon a Metal device's memory is the system RAM.
        unified = kind == _DEVICE_TYPE_IGPU or (sys.platform == "darwin" and name.startswith("MTL"))
        description = (api.description(device) or b"").decode("utf-8", "replace")
        devices.append(GpuDevice(name, description, free.value, total.value, unified))
    return tuple(devices)


# (name, result type, argument types) of the ggml device functions used above.
_DEVICE_FUNCTIONS = (
    ("ggml_backend_dev_count", ctypes.c_size_t, []),
    ("ggml_backend_dev_get", ctypes.c_void_p, [ctypes.c_size_t]),
    ("ggml_backend_dev_name", ctypes.c_char_p, [ctypes.c_void_p]),
    ("ggml_backend_dev_description", ctypes.c_char_p, [ctypes.c_void_p]),
    ("ggml_backend_dev_type", ctypes.c_int, [ctypes.c_void_p]),
    (
        "ggml_backend_dev_memory",
        None,
        [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)],
    ),
)


@functools.cache
def _device_api() -> SimpleNamespace | None:
    """ggml's device functions, bound with ctypes; None if this build does not export them.

    llama-cpp-python binds llama.h only, not ggml-backend.h, so these are bound here.
    """
    functions = {}
    for name, result_type, argument_types in _DEVICE_FUNCTIONS:
        function = _ggml_function(name)
        if function is None:
            logger.info("llama.cpp exports no %s; GPUs are not listed", name)
            return None
        function.restype = result_type
        function.argtypes = argument_types
        functions[name.removeprefix("ggml_backend_dev_")] = function
    return SimpleNamespace(**functions)


def _ggml_function(name: str):
    """A ggml function from the very ggml copy libllama uses.

    The wheel ships ``libggml.so`` and ``libggml.so.0`` as separate files, and opening the one
    libllama does not use would load a second ggml, with a device registry of its own. So
    the name is looked up through libllama's handle first (on Linux and macOS that search covers
    the libraries it links); ggml's own libraries are opened only if that fails (Windows looks
    only inside the library asked).
    """
    for base_name in ("llama", "ggml", "ggml-base"):
        library = _llama_cpp_library(base_name)
        try:
            if library is not None:
                return library[name]  # a fresh function object: llama_cpp's bindings stay untouched
        except AttributeError:
            continue
    return None


@functools.cache
def _llama_cpp_library(base_name: str) -> ctypes.CDLL | None:
    """One of llama-cpp-python's libraries, opened by the same path it uses, so handles are shared."""
    try:
        from llama_cpp._ctypes_extensions import load_shared_library

        folder = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")
        return load_shared_library(base_name, folder)
    except (ImportError, OSError, RuntimeError) as error:  # FileNotFoundError is an OSError
        logger.debug("cannot open llama.cpp's %s library: %s", base_name, error)
        return None
