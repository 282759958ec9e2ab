"""The app's local API service: on and off as the settings say, on the app's own engine and
never in the user's chat history."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from app.composition import CoreServices
from app.core.api.local_api_service import LocalApiState, api_config, network_addresses, new_api_key
from app.core.conversations import conversation_events
from app.core.domain.generation import LoadSettings
from app.core.engines.engine_events import ModelLoaded
from app.core.profile.app_paths import AppPaths
from app.core.engines.llama.self_test_model import THINKING_ANSWER
from app.core.profile.settings import Settings
from tests.event_recorder import EventRecorder


@pytest.fixture
def core(tmp_path: Path, tiny_model: Path) -> Iterator[CoreServices]:
    services = CoreServices.start(AppPaths.under(tmp_path / "profile"), Settings())
    loaded = EventRecorder()
    services.engine.subscribe(loaded)
    services.engine.load_model(tiny_model, LoadSettings(context_size=2048))
    loaded.wait_for(ModelLoaded)
    try:
        yield services
    finally:
        services.shutdown()


def _states(core: CoreServices) -> EventRecorder:
    recorder = EventRecorder()
    core.api.subscribe(recorder)
    return recorder


def _local(port: int = 0, **overrides) -> dict:
    return {"enabled": True, "port": port, "allow_network": False, "api_key": "", "allowed_origins": (), **overrides}


def test_api_requests_use_the_window_s_model_and_never_enter_the_chat_history(core: CoreServices) -> None:
    states = _states(core)
    core.api.apply(api_config(**_local()))
    running = states.wait_for(LocalApiState, lambda state: state.running)
    client = openai.OpenAI(base_url=running.url, api_key="none", max_retries=0)
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=16)
    assert reply.choices[0].message.content == THINKING_ANSWER
    listed = EventRecorder()
    core.library.subscribe(listed)  # it hears the conversation list as it is now
    assert listed.wait_for(conversation_events.ConversationsChanged).conversations == ()
    assert [record.status for record in core.api.log.records()] == [200]


def test_switching_the_api_off_stops_listening(core: CoreServices) -> None:
    states = _states(core)
    core.api.apply(api_config(**_local()))
    url = states.wait_for(LocalApiState, lambda state: state.running).url
    core.api.apply(api_config(**_local(enabled=False)))
    states.wait_for(LocalApiState, lambda state: not state.running)
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="none", max_retries=0).models.list()


def test_a_port_in_use_leaves_the_api_off_with_the_reason(core: CoreServices) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        states = _states(core)
        core.api.apply(api_config(**_local(taken.getsockname()[1])))
        state = states.wait_for(LocalApiState)
    finally:
        taken.close()
    assert not state.running and "already used by another program" in state.problem


def test_other_computers_are_served_only_with_a_key(core: CoreServices) -> None:
    states = _states(core)
    core.api.apply(api_config(**_local(allow_network=True)))
    refused = states.wait_for(LocalApiState)
    assert not refused.running and "needs an API key" in refused.problem
    key = new_api_key()
    core.api.apply(api_config(**_local(allow_network=True, api_key=key)))
    served = states.wait_for(LocalApiState, lambda state: state.running)
    assert served.needs_key
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served.url, api_key="guess", max_retries=0).models.list()
    assert openai.OpenAI(base_url=served.url, api_key=key, max_retries=0).models.list().data


def test_closing_the_app_stops_the_api(tmp_path: Path) -> None:
    services = CoreServices.start(AppPaths.under(tmp_path / "profile"), Settings())
    states = _states(services)
    services.api.apply(api_config(**_local()))
    url = states.wait_for(LocalApiState, lambda state: state.running).url
    assert services.shutdown()
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="none", max_retries=0).models.list()


def test_the_addresses_offered_to_other_computers_are_never_this_computer_s_own_loopback() -> None:
    addresses = [ipaddress.ip_address(address) for address in network_addresses()]
    assert all(address.version == 4 and not address.is_loopback and not address.is_link_local for address in addresses)


def test_new_keys_are_long_and_never_repeat() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100 and all(len(key) >= 40 for key in keys)
