"""Whether an address is this computer: what offline mode allows for MCP and model servers."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this computer, decided from the text alone (no DNS lookup: offline
    mode must not ask the network what a name means)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
