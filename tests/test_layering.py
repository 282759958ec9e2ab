"""The layers hold: import-linter's contracts (pyproject.toml) pass, and fail when one is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The ``lint-imports`` command, run by this interpreter (importlinter.cli has no __main__).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # ``app`` is found on PYTHONPATH first, so a copy of the tree is checked as itself.
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 kept, 0 broken" in result.stdout


def _copy_of_the_app(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    shutil.copytree(ROOT / "app", copy / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    return copy


def test_a_core_module_that_imports_qt_breaks_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_app(tmp_path)
    prompts = copy / "app" / "core" / "chat" / "prompt_assembly.py"
    prompts.write_text(prompts.read_text() + "\nfrom PySide6.QtCore import QObject  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "The core is plain Python" in result.stdout and "BROKEN" in result.stdout
    assert "app.core.chat.prompt_assembly -> PySide6" in result.stdout


def test_the_fit_estimate_reaching_llama_cpp_even_indirectly_breaks_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_app(tmp_path)
    fit = copy / "app" / "core" / "models" / "fit_estimate.py"
    fit.write_text(fit.read_text() + "\nfrom app.core.engines.llama.llama_runtime import compiled_backend  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "Only the llama.cpp engine imports llama_cpp BROKEN" in " ".join(result.stdout.split())


def test_the_api_request_rules_reaching_the_web_framework_break_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_app(tmp_path)
    requests = copy / "app" / "core" / "api" / "chat_request.py"
    requests.write_text(requests.read_text() + "\nfrom starlette.requests import Request  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "Only the API server speaks HTTP" in result.stdout and "BROKEN" in result.stdout


def test_the_window_opening_the_store_itself_breaks_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_app(tmp_path)
    window = copy / "app" / "ui" / "main_window.py"
    window.write_text(window.read_text() + "\nfrom app.core.conversations.conversation_store import ConversationStore  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "The UI does not use the store or an engine directly" in result.stdout


def test_the_core_and_its_value_types_load_neither_qt_nor_llama_cpp_where_they_must_not() -> None:
    script = (
        "import sys\n"
        "import app.core.models.fit_estimate, app.core.profile.settings, app.core.chat.chat_session\n"
        "import app.core.conversations.conversation_library\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'llama_cpp'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
