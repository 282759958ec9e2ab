"""User settings kept as a small JSON file in the config folder.

Secrets never go here (the Hub token lives in the OS keyring). A damaged or unreadable file
falls back to defaults instead of stopping the app: settings are a convenience, not data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app.core.atomic_file import write_text_atomically
from app.core.domain.generation import DEFAULT_IMAGE_DETAIL, LoadSettings, RemoteModel

logger = logging.getLogger(__name__)

MAX_RECENT_MODELS = 8


@dataclass
class Settings:
    recent_models: list[str] = field(default_factory=list)
    context_size: int = 8192
    last_conversation_id: int | None = None
    window_geometry: str = ""  # hex of Qt's saveGeometry(); opaque to the core
    enable_thinking: bool | None = None  # None: follow the model's template default
    models_dir: str = ""  # empty: the default folder inside the data folder
    imported_models: list[str] = field(default_factory=list)
    hub_endpoint: str = ""  # empty: HF_ENDPOINT or huggingface.co
    hub_proxy: str = ""
    offline_mode: bool = False  # no network request of any kind
    user_presets: list[dict] = field(default_factory=list)  # SamplingPreset fields, by name
    theme: str = "system"  # "system", "light" or "dark"
    font_size: int = 0  # points; 0: the system's size
    threads: int = 0  # llama.cpp compute threads; 0: as many as the CPU has performance cores
    gpu_layers: int = -1  # layers offloaded to the GPU; -1: all of them, 0: none
    gpu_device: int = -1  # the one GPU to use (ggml's index); -1: spread over every GPU
    decode_bytes_per_second: float = 0.0  # measured speed calibration (fit_estimate); 0: not yet
    decode_speed_source: str = ""  # what measured it: replies, or the memory test
    api_server_enabled: bool = False  # the local OpenAI-compatible API (its key is in the keyring)
    api_server_port: int = 8080
    api_allow_network: bool = False  # listen on every address, not only 127.0.0.1 (needs a key)
    api_allowed_origins: list[str] = field(default_factory=list)  # web pages that may call it
    image_detail: str = DEFAULT_IMAGE_DETAIL  # a key of IMAGE_DETAIL_TOKENS: image tokens per picture
    # The user's choice of vision projector per model: model path → projector path, or "" for
    # text only; models without an entry find theirs by themselves (models.projector_pairing).
    projector_pairings: dict[str, str] = field(default_factory=dict)
    # The disk space saved model states may take (conversations resumed without reading them again).
    saved_states_budget_bytes: int = 2 * 1024**3
    read_while_typing: bool = True  # the engine reads the next message during pauses in typing
    read_while_typing_on_battery: bool = False  # ... also while the computer runs on its battery
    # [server name, model id] when the model used last runs on a model server; empty otherwise.
    last_remote_model: list[str] = field(default_factory=list)

    def remember_model(self, path: Path) -> None:
        """Moves ``path`` to the front of the recent-models list."""
        text = str(path)
        self.recent_models = [text] + [item for item in self.recent_models if item != text]
        del self.recent_models[MAX_RECENT_MODELS:]

    def remember_remote_model(self, model: RemoteModel | None) -> None:
        """The model on a model server to open again next time (None: the last local one)."""
        self.last_remote_model = [model.server, model.model_id] if model is not None else []

    @property
    def remote_model_to_reopen(self) -> RemoteModel | None:
        return RemoteModel(*self.last_remote_model) if self.last_remote_model else None

    def remember_import(self, path: Path) -> None:
        text = str(path)
        if text not in self.imported_models:
            self.imported_models.append(text)

    def load_settings(self, context_size: int, projector: Path | None = None) -> LoadSettings:
        """How to load a model with these settings and ``context_size``, with the vision
        ``projector`` found for it (None: text only)."""
        return LoadSettings(
            context_size=context_size,
            gpu_layers=None if self.gpu_layers < 0 else self.gpu_layers,
            threads=self.threads or None,
            main_gpu=None if self.gpu_device < 0 else self.gpu_device,
            projector=projector,
        )

    @property
    def last_model(self) -> Path | None:
        return Path(self.recent_models[0]) if self.recent_models else None


def load_settings(path: Path) -> Settings:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as error:
        logger.warning("Ignoring unreadable settings file %s: %s", path, error)
        return Settings()
    known = {item.name for item in fields(Settings)}
    settings = Settings()
    for key, value in raw.items() if isinstance(raw, dict) else ():
        if key in known:
            setattr(settings, key, value)
    pairings = settings.projector_pairings
    if not isinstance(pairings, dict) or not all(isinstance(item, str) for pair in pairings.items() for item in pair):
        settings.projector_pairings = {}  # a hand-edited file: pairings are found again by themselves
    remote = settings.last_remote_model
    if not (isinstance(remote, list) and len(remote) == 2 and all(isinstance(item, str) and item for item in remote)):
        settings.last_remote_model = []
    return settings


def save_settings(settings: Settings, path: Path) -> None:
    """Writes atomically, so a crash mid-write never leaves a half file."""
    write_text_atomically(path, json.dumps(asdict(settings), indent=2))
