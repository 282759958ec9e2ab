"""The release variants of ``variants.toml``, for the build scripts and the PyInstaller spec."""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

INSTALLERS_DIR = Path(__file__).resolve().parent
REPO_ROOT = INSTALLERS_DIR.parent
BUILD_DIR = REPO_ROOT / "build" / "installers"  # every build output goes here (gitignored)


@dataclass(frozen=True)
class Variant:
    name: str
    platform: str  # "linux", "windows" or "macos": the only platform that can build it
    backend: str  # as the app shows it: "CPU", "CUDA" or "Metal"
    cpu_baseline: str
    cpu_features: tuple[str, ...]  # instruction sets llama.cpp must report as compiled in
    cmake_args: tuple[str, ...]

    def build_info(self) -> dict[str, object]:
        """What the bundle records about its llama.cpp (read by ``app.core.engines.llama.build_info``)."""
        return {
            "variant": self.name,
            "backend": self.backend,
            "cpu_baseline": self.cpu_baseline,
            "cpu_features": list(self.cpu_features),
        }


def load_variant(name: str) -> Variant:
    with (INSTALLERS_DIR / "variants.toml").open("rb") as file:
        config = tomllib.load(file)
    if name not in config["variants"]:
        raise SystemExit(f"Unknown variant {name!r}; known: {', '.join(config['variants'])}")
    entry = config["variants"][name]
    baseline = config["baselines"][entry["baseline"]]
    return Variant(
        name=name,
        platform=entry["platform"],
        backend=entry["backend"],
        cpu_baseline=baseline["description"],
        cpu_features=tuple(baseline["cpu_features"]),
        cmake_args=tuple(baseline["cmake_args"]) + tuple(entry["cmake_args"]),
    )


def host_platform() -> str:
    return {"linux": "linux", "win32": "windows", "darwin": "macos"}[sys.platform]


def app_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]["version"]


def llama_cpp_python_requirement() -> str:
    """The exact ``llama-cpp-python==X`` pin of pyproject.toml: the wheel must match the app's."""
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    for dependency in dependencies:
        if re.fullmatch(r"llama-cpp-python==[\w.]+", dependency.replace(" ", "")):
            return dependency.replace(" ", "")
    raise SystemExit("pyproject.toml does not pin llama-cpp-python to one version")
