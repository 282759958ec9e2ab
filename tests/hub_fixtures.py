"""Fixtures for tests that talk to a Hub or keep a token: a local Hub server and keyrings.

Registered in ``tests/conftest.py`` with ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from app.core.models.hub_access import HubSettings
from tests.hub_server import HubServer

BackendT = TypeVar("BackendT", bound=keyring.backend.KeyringBackend)


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps passwords in a dict, like an OS keyring in miniature."""

    priority = 1  # type: ignore[assignment]  # keyring declares it as a class property

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("No such password")


class LockedKeyring(MemoryKeyring):
    """A keyring that exists but refuses to store anything, like a locked or denied one."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("The keyring is locked")


@pytest.fixture
def hub_server() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture
def hub_settings(hub_server: HubServer) -> HubSettings:
    return HubSettings(endpoint=hub_server.endpoint)


@contextmanager
def _keyring_in_use(backend: BackendT) -> Iterator[BackendT]:
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    with _keyring_in_use(MemoryKeyring()) as backend:
        yield backend


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No usable keyring, as on a Linux system without a Secret Service."""
    with _keyring_in_use(keyring.backends.fail.Keyring()):
        yield


@pytest.fixture
def locked_keyring() -> Iterator[LockedKeyring]:
    with _keyring_in_use(LockedKeyring()) as backend:
        yield backend
