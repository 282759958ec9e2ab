"""The model servers the person adds: kept, checked, asked for their models, and never
contacted when offline mode says so; TLS always verified."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import trustme

from app.core.domain.generation import RemoteModel
from app.core.engines.engine_events import GenerationFailed, GenerationFinished, ModelLoaded, ModelLoadFailed
from app.core.engines.remote.model_servers import CONFIG_FILE, ModelServer, ModelServers, ServerListed, ServerListing
from app.core.engines.remote.server_connection import ServerProblem
from app.core.engines.llama.self_test_model import THINKING_ANSWER
from app.core.profile.settings import Settings, load_settings, save_settings
from tests.event_recorder import TIMEOUT_S, EventRecorder
from tests.model_server_fixtures import RemoteHost, ScriptedModelServer, lan_address, llama_cpp_server, serve_process


def _tested(servers: ModelServers, server: ModelServer, key: str | None = None) -> ServerListing:
    answered: list[ServerListing] = []
    done = threading.Event()
    servers.test(server, key, lambda listing: (answered.append(listing), done.set()))
    assert done.wait(TIMEOUT_S)
    return answered[0]


def test_a_saved_server_keeps_its_key_in_the_keyring_and_only_its_address_in_its_file(
    model_servers: ModelServers, memory_keyring, tmp_path: Path
) -> None:
    model_servers.save(ModelServer("Desktop", "http://192.168.1.20:8080/v1"), key="sk-very-secret")
    text = (tmp_path / "config" / CONFIG_FILE).read_text()
    assert "sk-very-secret" not in text and "192.168.1.20" in text
    assert "sk-very-secret" in memory_keyring.passwords.values()
    again = ModelServers(tmp_path / "config")  # the app started anew
    assert again.servers == (ModelServer("Desktop", "http://192.168.1.20:8080/v1"),)
    assert again.connection_for("Desktop").api_key == "sk-very-secret"
    assert "sk-very-secret" not in repr(again.connection_for("Desktop"))


def test_renaming_a_server_takes_its_key_along_and_removing_it_forgets_the_key(model_servers: ModelServers, memory_keyring) -> None:
    model_servers.save(ModelServer("Desktop", "http://127.0.0.1:8080"), key="sk-1")
    model_servers.save(ModelServer("Workstation", "http://127.0.0.1:8080"), replacing="Desktop")
    assert [server.name for server in model_servers.servers] == ["Workstation"]
    assert model_servers.connection_for("Workstation").api_key == "sk-1" and not model_servers.has_key("Desktop")
    model_servers.save(ModelServer("Workstation", "http://127.0.0.1:8080"), key="", replacing="Workstation")
    assert not model_servers.has_key("Workstation")
    model_servers.save(ModelServer("Workstation", "http://127.0.0.1:8080"), key="sk-2", replacing="Workstation")
    model_servers.remove("Workstation")
    assert model_servers.servers == () and not memory_keyring.passwords
    with pytest.raises(ServerProblem, match="no model server named 'Workstation'"):
        model_servers.connection_for("Workstation")


@pytest.mark.parametrize(
    ("name", "url", "ca_file", "refusal"),
    [
        ("", "http://127.0.0.1:8080", "", "Give the server a name"),
        ("Box", "192.168.1.20:8080", "", "must start with http:// or https://"),
        ("Box", "ftp://192.168.1.20", "", "must start with http:// or https://"),
        ("Box", "http://me:secret@192.168.1.20", "", "Put the key in the Key field"),
        ("Box", "http://192.168.1.20:port", "", "port in the address is not a number"),
        ("Box", "https://192.168.1.20", "not-a-certificate.pem", "cannot be read as PEM certificates"),
        ("desktop", "http://127.0.0.1:1", "", "already a server named 'desktop'"),
    ],
)
def test_a_mistake_in_a_server_is_refused_with_a_sentence_and_nothing_saved(
    model_servers: ModelServers, tmp_path: Path, name: str, url: str, ca_file: str, refusal: str
) -> None:
    model_servers.save(ModelServer("Desktop", "http://127.0.0.1:8080"))
    if ca_file:
        ca_file = str(tmp_path / ca_file)
        Path(ca_file).write_text("hello")
    with pytest.raises(ServerProblem, match=refusal):
        model_servers.save(ModelServer(name, url, ca_file))
    assert [server.name for server in model_servers.servers] == ["Desktop"]


def test_a_damaged_server_file_counts_as_no_servers(tmp_path: Path, memory_keyring) -> None:
    (tmp_path / CONFIG_FILE).write_text('{"servers": [{"name": "Box", "url": "ftp://x"}, {"name": 3}, "text"')
    assert ModelServers(tmp_path).servers == ()
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"servers": [{"name": "Box", "url": "ftp://x"}, {"name": 3}, {"name": "Ok", "url": "http://127.0.0.1"}]}))
    assert [server.name for server in ModelServers(tmp_path).servers] == ["Ok"]


def test_testing_a_connection_lists_its_models_before_anything_is_saved(
    model_servers: ModelServers, scripted_server: ScriptedModelServer
) -> None:
    listing = _tested(model_servers, ModelServer("Desktop", scripted_server.url))
    assert [model.id for model in listing.models] == ["big-model"] and not listing.problem
    assert listing.models[0].context_length == 32768 and model_servers.servers == ()


@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        ("not_an_api", "does not answer as an OpenAI-compatible API at http://127.0.0.1:"),
        ("no_such_path", "does not answer as an OpenAI-compatible API"),
        ("unreachable", "cannot be reached at 127.0.0.1:9: check that the server runs and that the address is right."),
    ],
)
def test_testing_a_connection_says_what_is_wrong(
    model_servers: ModelServers, scripted_server: ScriptedModelServer, fault: str, problem: str
) -> None:
    url = scripted_server.url
    if fault == "not_an_api":
        scripted_server.script.not_an_api = True
    elif fault == "no_such_path":
        url = url.removesuffix("/v1") + "/api"
    else:
        url = "http://127.0.0.1:9/v1"
    listing = _tested(model_servers, ModelServer("Desktop", url))
    assert listing.problem.startswith("Desktop ") and problem in listing.problem and not listing.models


def test_a_wrong_key_is_refused_in_one_sentence_and_the_right_one_lists_models(
    model_servers: ModelServers, tiny_model: Path, tmp_path: Path
) -> None:
    with serve_process(tiny_model, tmp_path / "server-profile", "--api-key", "the-right-key") as (_process, url):
        server = ModelServer("Home server", url)
        assert _tested(model_servers, server, "a-wrong-key").problem == "Home server refused the key: check the key set for this server."
        assert _tested(model_servers, server).problem.startswith("Home server refused the key")  # no key at all
        model_servers.save(server, key="the-right-key")
        assert [model.id for model in _tested(model_servers, server).models] == ["tiny-thinking"]  # the saved key


def test_refreshing_says_it_is_checking_then_gives_each_servers_answer(
    model_servers: ModelServers, scripted_server: ScriptedModelServer
) -> None:
    model_servers.save(ModelServer("Desktop", scripted_server.url))
    model_servers.save(ModelServer("Gone", "http://127.0.0.1:9/v1"))
    events = EventRecorder()
    model_servers.subscribe(events)
    model_servers.refresh()
    events.wait_for(ServerListed, lambda event: not event.listing.checking, count=2)
    assert {event.listing.server for event in events.of(ServerListed) if event.listing.checking} == {"Desktop", "Gone"}
    assert [model.id for model in model_servers.listing("Desktop").models] == ["big-model"]
    assert model_servers.listing("Gone").problem.startswith("Gone cannot be reached")


def test_offline_mode_contacts_no_server_on_another_computer(remote_host: RemoteHost) -> None:
    listener = socket.create_server((lan_address(), 0))
    listener.settimeout(0)
    url = f"http://{lan_address()}:{listener.getsockname()[1]}/v1"
    servers = remote_host.servers
    servers.set_offline(True)
    try:
        server = remote_host.add("Desktop", url)
        assert servers.blocked_offline(server)
        assert "Offline mode is on, and Desktop is not on this computer" in _tested(servers, server).problem
        events = EventRecorder()
        servers.subscribe(events)
        servers.refresh()
        assert "Offline mode is on" in events.wait_for(ServerListed).listing.problem
        failed = remote_host.load(RemoteModel("Desktop", "big-model"))
        assert isinstance(failed, ModelLoadFailed) and "Offline mode is on" in failed.message
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing tried to connect
        servers.set_offline(False)  # the same server, online: it is tried (so the check above means something)
        servers.test(server, None, lambda _listing: None)
        listener.settimeout(TIMEOUT_S)
        listener.accept()[0].close()
    finally:
        listener.close()


def test_a_reply_from_a_server_elsewhere_stops_once_offline_mode_is_on(remote_host: RemoteHost) -> None:
    elsewhere = ScriptedModelServer(lan_address())
    try:
        remote_host.add("Desktop", elsewhere.url)
        loaded = remote_host.load(RemoteModel("Desktop", "big-model"))
        assert isinstance(loaded, ModelLoaded) and loaded.facts.leaves_this_computer
        remote_host.servers.set_offline(True)
        failed, _events = remote_host.ask()
        assert isinstance(failed, GenerationFailed) and failed.message.startswith("Offline mode is on, and Desktop")
        assert not elsewhere.requests
    finally:
        elsewhere.close()


def test_a_server_on_this_computer_still_answers_in_offline_mode(remote_host: RemoteHost, scripted_server: ScriptedModelServer) -> None:
    remote_host.servers.set_offline(True)
    remote_host.add("Local", scripted_server.url)
    loaded = remote_host.load(RemoteModel("Local", "big-model"))
    assert isinstance(loaded, ModelLoaded) and not loaded.facts.leaves_this_computer
    finished, _events = remote_host.ask()
    assert isinstance(finished, GenerationFinished)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


def test_a_certificate_from_an_unknown_authority_is_refused_unless_its_ca_file_is_set(
    remote_host: RemoteHost, tiny_model: Path, tmp_path: Path, certificate_authority: trustme.CA
) -> None:
    issued = certificate_authority.issue_cert("127.0.0.1", "localhost")
    certificate, key = tmp_path / "server.pem", tmp_path / "server.key"
    issued.cert_chain_pems[0].write_to_path(str(certificate))
    issued.private_key_pem.write_to_path(str(key))
    ca_file = tmp_path / "home-ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    servers = remote_host.servers
    with llama_cpp_server(tiny_model, alias="tiny", certificate=(certificate, key)) as (_process, url):
        refused = _tested(servers, ModelServer("Secure box", url))
        assert refused.problem.startswith("Secure box's TLS certificate cannot be verified (")
        assert "choose its CA file" in refused.problem
        assert [model.id for model in _tested(servers, ModelServer("Secure box", url, str(ca_file))).models] == ["tiny"]
        remote_host.add("Secure box", url, ca_file=str(ca_file))
        assert isinstance(remote_host.load(RemoteModel("Secure box", "tiny")), ModelLoaded)
        finished, _events = remote_host.ask("Why?")
    assert finished.result.answer == THINKING_ANSWER


def test_the_model_on_a_server_used_last_is_remembered_and_a_damaged_entry_forgotten(tmp_path: Path) -> None:
    settings = Settings()
    settings.remember_remote_model(RemoteModel("Desktop", "qwen3.5-9b"))
    save_settings(settings, tmp_path / "settings.json")
    assert load_settings(tmp_path / "settings.json").remote_model_to_reopen == RemoteModel("Desktop", "qwen3.5-9b")
    settings.remember_remote_model(None)  # a model file was opened since
    assert settings.remote_model_to_reopen is None
    (tmp_path / "settings.json").write_text(json.dumps({"last_remote_model": ["Desktop", 9]}))
    assert load_settings(tmp_path / "settings.json").remote_model_to_reopen is None
