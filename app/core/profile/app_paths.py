"""Where the app keeps its files, from platformdirs unless the caller says otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

_APP_PACKAGE = Path(__file__).resolve().parents[2]  # this file is app/core/profile/app_paths.py


def _find_resources() -> Path:
    # An installed wheel carries them as app/resources (see pyproject's package-dir); a source
    # checkout or editable install has them beside the package, at the repository's top level.
    for candidate in (_APP_PACKAGE / "resources", _APP_PACKAGE.parent / "resources"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("The app's resources folder is missing; reinstall Qwen Local Chat.")


RESOURCES_DIR = _find_resources()
APP_NAME = "Qwen Local Chat"
APP_AUTHOR = "QwenLocalChat"


@dataclass(frozen=True)
class AppPaths:
    """The data folder (conversations), config folder (settings) and cache folder (what can be
    made again: saved model states) of one app profile."""

    data_dir: Path
    config_dir: Path
    cache_dir: Path

    @classmethod
    def default(cls) -> "AppPaths":
        return cls(
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, APP_AUTHOR)),
            config_dir=Path(platformdirs.user_config_dir(APP_NAME, APP_AUTHOR)),
            cache_dir=Path(platformdirs.user_cache_dir(APP_NAME, APP_AUTHOR)),
        )

    @classmethod
    def under(cls, root: Path) -> "AppPaths":
        """A self-contained profile below ``root`` (portable installs, tests)."""
        return cls(data_dir=root / "data", config_dir=root / "config", cache_dir=root / "cache")

    @property
    def database(self) -> Path:
        return self.data_dir / "conversations.sqlite3"

    @property
    def default_models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def catalog_cache(self) -> Path:
        return self.data_dir / "catalog-cache.json"

    @property
    def model_checks(self) -> Path:
        """The first-use checks' verdicts on model files (see ``ModelGate``)."""
        return self.data_dir / "model-checks.json"

    @property
    def saved_states(self) -> Path:
        """Model states saved for conversations resumed later (``StateFiles``)."""
        return self.cache_dir / "saved-states"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"
