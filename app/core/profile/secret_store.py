"""Secrets (the Hugging Face token, the local API's key), kept in the operating system's keyring
and nowhere else.

The keyring is the system's password store (macOS Keychain, Windows Credential Manager, the
Secret Service on Linux), reached through the ``keyring`` package. Where there is none, or it
refuses access, the token is kept in memory until the app quits, and ``keyring_problem`` says so
in a sentence the UI can show. A secret is never written to settings files and never logged.
"""

from __future__ import annotations

import logging
import threading

import keyring
import keyring.backends.fail
import keyring.backends.null
import keyring.errors

from app.core.profile.app_paths import APP_NAME

logger = logging.getLogger(__name__)

KEYRING_SERVICE = APP_NAME
KEYRING_USERNAME = "huggingface-token"
API_KEY_USERNAME = "local-api-key"

_NO_KEYRING = "This computer has no system keyring, so your {label} is kept only until you quit the app."
_KEYRING_REFUSED = "The system keyring could not be used, so your {label} is kept only until you quit the app."


class SecretStore:
    """One secret: by default the Hub token, whose ``token`` is what the download manager's
    ``token_provider`` calls. Thread-safe."""

    def __init__(self, username: str = KEYRING_USERNAME, label: str = "Hugging Face token") -> None:
        self._username = username
        self._label = label
        self._lock = threading.Lock()
        self._token: str | None = None
        self._loaded = False  # the keyring was read once; later reads come from memory
        self._problem: str | None = None
        self._checked_backend = False

    @property
    def keyring_problem(self) -> str | None:
        """None while the token is kept in the keyring; otherwise why it lasts only this session."""
        with self._lock:
            self._check_backend()
            return self._problem

    def token(self) -> str | None:
        with self._lock:
            self._check_backend()
            if not self._loaded and self._problem is None:
                try:
                    self._token = keyring.get_password(KEYRING_SERVICE, self._username)
                except keyring.errors.KeyringError as error:
                    self._keyring_failed(error)
            self._loaded = True
            return self._token

    def set_token(self, token: str | None) -> None:
        """Saves the token (surrounding spaces removed); an empty one removes it."""
        token = (token or "").strip() or None
        with self._lock:
            self._check_backend()
            self._token, self._loaded = token, True
            if self._problem is not None:
                return
            try:
                if token is None:
                    keyring.delete_password(KEYRING_SERVICE, self._username)
                else:
                    keyring.set_password(KEYRING_SERVICE, self._username, token)
            except keyring.errors.PasswordDeleteError:
                pass  # there was none to remove
            except keyring.errors.KeyringError as error:
                self._keyring_failed(error)

    def _check_backend(self) -> None:
        # Looking up the backend loads every keyring plugin, so it waits until a token is needed.
        if self._checked_backend:
            return
        self._checked_backend = True
        if isinstance(keyring.get_keyring(), (keyring.backends.fail.Keyring, keyring.backends.null.Keyring)):
            self._problem = _NO_KEYRING.format(label=self._label)

    def _keyring_failed(self, error: keyring.errors.KeyringError) -> None:
        # The error's type only: its message might quote what was being stored.
        logger.warning("The system keyring failed (%s); the %s is kept in memory", type(error).__name__, self._label)
        self._problem = _KEYRING_REFUSED.format(label=self._label)
