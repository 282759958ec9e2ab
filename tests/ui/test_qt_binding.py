"""Guards the pinned PySide6 against a bug that crashes the app while it generates.

PySide6 6.12.0 touches Python reference counts without holding the GIL, which races with
llama.cpp's ctypes callbacks (log, progress, abort) running on the inference thread: on Python
3.11 the interpreter dies with "none_dealloc: deallocating None". This test reproduces the race
cheaply (Qt calls on one thread, ctypes callbacks on another) so a version bump that brings the
bug back fails here instead of in users' hands.
"""

from __future__ import annotations

import subprocess
import sys

RACE = """
import ctypes, ctypes.util, sys, threading
from PySide6.QtCore import QObject
sys.setswitchinterval(1e-4)
libc = ctypes.CDLL(ctypes.util.find_library("c"))
callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(lambda a, b: None)
stop = threading.Event()
def sort_with_python_callbacks():
    values = (ctypes.c_int * 1000)(*range(1000))
    while not stop.is_set():
        libc.qsort(values, len(values), ctypes.sizeof(ctypes.c_int), callback)
thread = threading.Thread(target=sort_with_python_callbacks)
thread.start()
holder = QObject()
for _ in range(200_000):
    holder.setObjectName("busy")
stop.set()
thread.join()
"""


def test_qt_calls_racing_ctypes_callbacks_on_another_thread_do_not_crash_python() -> None:
    result = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
