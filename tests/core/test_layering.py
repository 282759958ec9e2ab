"""The core layer stays Qt-free, so it can be tested and reused without a GUI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import app.core

CORE_DIR = Path(app.core.__file__).parent
FORBIDDEN = ("PySide6", "shiboken6", "app.ui")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_core_module_imports_qt_or_the_ui_layer() -> None:
    offenders = {
        f"{path.name}: {name}"
        for path in CORE_DIR.glob("*.py")
        for name in _imported_modules(path)
        if any(name == forbidden or name.startswith(forbidden + ".") for forbidden in FORBIDDEN)
    }
    assert not offenders


def test_importing_every_core_module_loads_no_qt() -> None:
    modules = [f"app.core.{path.stem}" for path in CORE_DIR.glob("*.py") if path.stem != "__init__"]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6') or m.startswith('app.ui')]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=CORE_DIR.parent.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
