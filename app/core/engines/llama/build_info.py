"""What this build of the app runs on: llama.cpp's backend and the CPU baseline it was compiled for.

Installer builds carry ``build_info.json`` beside the ``app`` package, written from
``installers/variants.toml`` when the bundle is made; it states the variant, its backend and its
CPU baseline. An install from source has no such file: pip compiled llama.cpp with its defaults,
which optimise for the computer it was built on. Either way llama.cpp itself reports what was
compiled in, and :func:`build_mismatches` compares the two so a bundle that carries the wrong
llama.cpp build fails its smoke test instead of crashing on a user's CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.core.engines.llama.llama_runtime import compiled_backend, compiled_cpu_features

# In the ``app`` package's folder (this file is app/core/engines/llama/build_info.py).
BUILD_INFO_FILE = Path(__file__).resolve().parents[3] / "build_info.json"


@dataclass(frozen=True)
class BuildInfo:
    variant: str  # an installer variant such as "linux-cpu", or "source"
    backend: str  # "CPU", "CUDA", "Metal", …
    cpu_baseline: str
    cpu_features: tuple[str, ...] = ()  # the instruction sets the variant promises; none for "source"

    def describe(self) -> str:
        """One line for the About box, e.g. "CUDA backend, compiled for x86-64-v3 (AVX2, …)"."""
        return f"{self.backend} backend, compiled for {self.cpu_baseline}"


def build_info() -> BuildInfo:
    """The installer's recorded build facts, or what llama.cpp reports for a source install."""
    if BUILD_INFO_FILE.is_file():
        data = json.loads(BUILD_INFO_FILE.read_text(encoding="utf-8"))
        return BuildInfo(
            variant=data["variant"],
            backend=data["backend"],
            cpu_baseline=data["cpu_baseline"],
            cpu_features=tuple(data["cpu_features"]),
        )
    features = ", ".join(sorted(compiled_cpu_features())) or "no SIMD"
    return BuildInfo(
        variant="source",
        backend=compiled_backend(),
        cpu_baseline=f"the CPU it was built on ({features})",
    )


def build_mismatches(info: BuildInfo) -> list[str]:
    """How the llama.cpp that is loaded differs from what ``info`` promises (empty: it matches)."""
    problems = []
    if compiled_backend() != info.backend:
        problems.append(f"llama.cpp was compiled for {compiled_backend()}, not {info.backend}")
    if info.cpu_features:
        compiled = set(compiled_cpu_features())
        if missing := sorted(set(info.cpu_features) - compiled):
            problems.append(f"instruction sets of the baseline not compiled in: {', '.join(missing)}")
        if extra := sorted(compiled - set(info.cpu_features)):
            problems.append(f"instruction sets beyond the baseline compiled in: {', '.join(extra)}")
    return problems
