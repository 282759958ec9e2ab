"""Shared fixtures: Qt runs offscreen, and a real tiny qwen35 GGUF is written once per session."""

from __future__ import annotations

import os
import tempfile

# Set before any Qt or huggingface_hub import, which read them once: tests never need a screen
# and never see the developer's Hugging Face cache.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="qwen-local-chat-hf-home-")

from pathlib import Path  # noqa: E402

import keyring  # noqa: E402
import keyring.backends.null  # noqa: E402
import pytest  # noqa: E402

from app.core.engines.llama.self_test_model import write_tiny_qwen35_gguf  # noqa: E402

pytest_plugins = ["tests.hub_fixtures", "tests.api_fixtures", "tests.vision_fixtures", "tests.tool_fixtures", "tests.model_server_fixtures"]

# This process never touches the developer's real keyring (tests that need one install their own).
# Set in-process, not through the environment, so the installed-app smoke test run as a child
# process still exercises a real keyring backend where the system has one.
keyring.set_keyring(keyring.backends.null.Keyring())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A qwen35 GGUF whose template thinks by default, like Qwen3.5 4B/9B."""
    return write_tiny_qwen35_gguf(tmp_path_factory.mktemp("models") / "tiny-thinking.gguf", thinks_by_default=True)


@pytest.fixture(scope="session")
def tiny_model_quiet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A qwen35 GGUF whose template does not think unless asked, like Qwen3.5 0.8B/2B."""
    return write_tiny_qwen35_gguf(tmp_path_factory.mktemp("models") / "tiny-quiet.gguf", thinks_by_default=False)
