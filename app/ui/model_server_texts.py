"""What the window says about model servers and the models on them: how a server stands, and
for a loaded model where its replies come from and whether messages leave this computer.

Texts only: every fact in them is the services' (``ModelServers``, ``ModelFacts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QCoreApplication

from app.core.domain.generation import ModelFacts
from app.core.engines.remote.model_servers import ModelServer, ModelServers
from app.core.engines.remote.server_connection import ServerModel

SHOWN_MODEL_IDS = 3  # a status line names this many of a server's models; the rest are counted


def _tr(text: str) -> str:
    return QCoreApplication.translate("ModelServers", text)


def server_status(servers: ModelServers, server: ModelServer) -> tuple[str, bool]:
    """One line on how ``server`` stands now, and whether it is trouble (it cannot be used as
    it is) rather than information."""
    if servers.blocked_offline(server):
        return _tr("Not contacted in offline mode"), True
    listing = servers.listing(server.name)
    if listing.checking or not listing.answered:
        return _tr("Checking…"), False
    if listing.problem:
        return listing.problem, True
    return models_summary(listing.models), not listing.models


def models_summary(models: Sequence[ServerModel]) -> str:
    """"2 models: big-model, small-model", or that there are none."""
    if not models:
        return _tr("Lists no models: load or pull one on the server first.")
    count = _tr("1 model") if len(models) == 1 else _tr("%1 models").replace("%1", str(len(models)))
    names = ", ".join(model.id for model in models[:SHOWN_MODEL_IDS])
    more = len(models) - SHOWN_MODEL_IDS
    if more > 0:
        names += _tr(" and %1 more").replace("%1", str(more))
    return f"{count}: {names}"


def where_it_runs(server: ModelServer) -> str:
    """The tooltip of a server's models in the model list."""
    address = server.address
    if server.on_this_computer:
        return _tr("Runs on %1 at %2, on this computer").replace("%1", server.name).replace("%2", address)
    return _tr("Runs on %1 at %2; your messages are sent there").replace("%1", server.name).replace("%2", address)


def model_label(facts: ModelFacts) -> str:
    """The loaded model as the status bar names it: its file's name, or its id and server."""
    if facts.remote is not None:
        return _tr("%1 on %2").replace("%1", facts.remote.model_id).replace("%2", facts.remote.server)
    return Path(facts.path).stem if facts.path is not None else facts.name


def replies_from(facts: ModelFacts) -> tuple[str, str]:
    """Where replies are computed, for the status bar: its short text and its tooltip."""
    if facts.remote is None:
        return (
            _tr("%1 · %2 threads").replace("%1", facts.backend).replace("%2", str(facts.threads)),
            _tr("Replies are computed on this computer by llama.cpp (%1 backend).").replace("%1", facts.backend),
        )
    server, address = facts.remote.server, facts.server_address
    if facts.leaves_this_computer:
        return (
            _tr("Remote · %1").replace("%1", address),
            _tr("Replies come from the model server %1 at %2: your messages are sent there.")
            .replace("%1", server).replace("%2", address),
        )
    return (
        _tr("This computer · %1").replace("%1", server),
        _tr("Replies come from the model server %1 at %2, on this computer: nothing leaves it.")
        .replace("%1", server).replace("%2", address),
    )


def privacy_notice(facts: ModelFacts | None) -> str:
    """What the chat must say while ``facts`` is loaded: that messages leave this computer, or
    "" when they do not."""
    if facts is None or facts.remote is None or not facts.leaves_this_computer:
        return ""
    return (
        _tr("Messages in this chat are sent to %1 (%2) and answered there: they leave this computer.")
        .replace("%1", facts.remote.server).replace("%2", facts.server_address)
    )
