"""The Hub token lives in the OS keyring (real keyring backends registered for each test)."""

from __future__ import annotations

import logging

from app.core.profile.secret_store import KEYRING_SERVICE, KEYRING_USERNAME, SecretStore
from tests.hub_fixtures import LockedKeyring, MemoryKeyring

TOKEN = "hf_secret_store_token_42"


def test_the_token_is_kept_in_the_keyring_across_restarts(memory_keyring: MemoryKeyring) -> None:
    store = SecretStore()
    assert store.token() is None and store.keyring_problem is None
    store.set_token(f"  {TOKEN}\n")  # pasted with stray whitespace
    assert memory_keyring.passwords == {(KEYRING_SERVICE, KEYRING_USERNAME): TOKEN}
    assert SecretStore().token() == TOKEN  # the next start of the app


def test_an_empty_token_removes_the_saved_one(memory_keyring: MemoryKeyring) -> None:
    SecretStore().set_token(TOKEN)
    store = SecretStore()
    store.set_token("")
    assert store.token() is None and memory_keyring.passwords == {}
    store.set_token(None)  # removing twice is fine
    assert SecretStore().token() is None


def test_without_a_keyring_the_token_lasts_only_this_session(no_keyring: None) -> None:
    store = SecretStore()
    assert "no system keyring" in store.keyring_problem
    store.set_token(TOKEN)
    assert store.token() == TOKEN
    assert SecretStore().token() is None


def test_a_keyring_that_refuses_keeps_the_token_for_this_session_and_says_so(
    locked_keyring: LockedKeyring, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    store = SecretStore()
    assert store.keyring_problem is None
    store.set_token(TOKEN)
    assert store.token() == TOKEN
    assert "could not be used" in store.keyring_problem
    assert locked_keyring.passwords == {} and TOKEN not in caplog.text
