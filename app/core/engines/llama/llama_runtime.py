"""The llama.cpp library itself: starting its backend, its log, and what it was built to run on.

Everything here reads llama.cpp's own reports (``llama_print_system_info`` and ggml's device
registry), so the figures match what a model load will see. None of it loads a model.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import llama_cpp
import psutil
from llama_cpp import mtmd_cpp

from app.core.domain.hardware import AcceleratorReport, GpuDevice

logger = logging.getLogger(__name__)

# llama.cpp's report names that differ from the backend's usual name.
_BACKEND_NAMES = {"MTL": "Metal"}

# Entries of the CPU backend's feature report that are build options, not instruction sets.
_CPU_BUILD_OPTIONS = frozenset({"LLAMAFILE", "ACCELERATE", "CPU_HBM", "OPENMP", "KLEIDIAI", "REPACK"})

# enum ggml_backend_dev_type in ggml-backend.h: CPU, GPU, IGPU (shares system memory), ACCEL, META.
_DEVICE_TYPE_GPU = 1
_DEVICE_TYPE_IGPU = 2


def _system_report() -> list[tuple[str, str, str]]:
    """llama.cpp's system report as (backend, entry, value) triples.

    The report reads "CPU : SSE3 = 1 | AVX = 1 | … | CUDA : ARCHS = 890 | …": each backend's
    name precedes its first entry, and its entries run until the next entry that names one.
    """
    report = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    triples = []
    backend = ""
    for entry in report.split("|"):
        if " : " in entry:
            backend, _, entry = entry.partition(" : ")
            backend = backend.strip()
        name, _, value = entry.partition(" = ")
        triples.append((backend, name.strip(), value.strip()))
    return triples


def compiled_backend() -> str:
    """The accelerator llama.cpp was compiled with: "CUDA", "Metal", … or "CPU"."""
    backends = dict.fromkeys(backend for backend, _, _ in _system_report() if backend)
    accelerators = [name for name in backends if name != "CPU"]
    if not accelerators:
        return "CPU"
    return _BACKEND_NAMES.get(accelerators[0], accelerators[0])


def compiled_cpu_features() -> tuple[str, ...]:
    """The instruction sets llama.cpp's CPU backend was compiled with, e.g. ("AVX2", "FMA", …)."""
    return tuple(
        name
        for backend, name, value in _system_report()
        if backend == "CPU" and value == "1" and name not in _CPU_BUILD_OPTIONS
    )


def accelerator_report() -> AcceleratorReport:
    """The backend, CPU instruction sets and GPUs (with their free memory now) llama.cpp has."""
    return AcceleratorReport(compiled_backend(), compiled_cpu_features(), _gpu_devices())


def default_thread_count() -> int:
    # Decoding is memory-bound: hyper-threads add contention, not speed.
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


# Warnings that are expected in normal use: with M-RoPE, text after an image jumps ahead in
# position by design; libmtmd advises 1,024 image tokens for grounding (boxes), at every load,
# where this app lets the user choose the detail.
_EXPECTED_WARNINGS = (
    b"find_slot: non-consecutive token position",
    b"load_hparams: Qwen-VL models require",
    b"load_hparams: if you encounter problems with accuracy",
    b"load_hparams: more info: https://github.com/ggml-org/llama.cpp/issues/16842",
)


class LlamaLog:
    """Routes llama.cpp's log lines to Python logging and keeps recent errors for messages."""

    # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line. llama.cpp's
    # info lines are a chatty load report, so they go to DEBUG here.
    _LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
    _CONTINUATION = 5

    def __init__(self) -> None:
        self.recent_errors: list[str] = []
        self._previous_level = logging.DEBUG
        # Set while a decode is being aborted on purpose: llama.cpp reports that as errors.
        self.aborting = False
        self._callback = llama_cpp.llama_log_callback(self._on_log)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        # libmtmd (the vision projector) logs through a logger of its own.
        mtmd_cpp.mtmd_helper_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        python_level = self._previous_level if level == self._CONTINUATION else self._LEVELS.get(level, logging.DEBUG)
        self._previous_level = python_level
        if self.aborting or text.startswith(_EXPECTED_WARNINGS):
            python_level = logging.DEBUG
        line = text.decode("utf-8", "replace").strip()
        if not line:
            return
        logger.log(python_level, "llama.cpp: %s", line)
        if python_level >= logging.ERROR:
            self.recent_errors = (self.recent_errors + [line])[-5:]

    def first_error(self, fallback: str) -> str:
        """The earliest recent error, the most specific one, without its C function prefix."""
        if not self.recent_errors:
            return fallback
        function, _, message = self.recent_errors[0].partition(": ")
        return message if message and " " not in function else self.recent_errors[0]


_log: LlamaLog | None = None
_backend_lock = threading.Lock()


def init_llama_backend() -> LlamaLog:
    """Starts llama.cpp's backend once per process and returns its log."""
    global _log
    with _backend_lock:
        if _log is None:
            llama_cpp.llama_backend_init()
            _log = LlamaLog()
        return _log


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


@functools.cache
def _tensor_name_function():
    function = _ggml_function("ggml_get_name")
    if function is not None:
        function.restype = ctypes.c_char_p
        function.argtypes = [ctypes.c_void_p]
    return function


def ggml_tensor_name(tensor: int) -> bytes:
    """The name of a ggml tensor given by address (as evaluation callbacks receive it); b""
    when this build does not export ``ggml_get_name``."""
    function = _tensor_name_function()
    return (function(tensor) or b"") if function is not None and tensor else b""
