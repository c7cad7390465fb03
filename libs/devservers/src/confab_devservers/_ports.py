"""Loopback port allocation."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"

_lock = threading.Lock()
# Ports handed out by this process. A released probe socket makes the port
# look free again until the server actually binds it, so without this two
# servers started back-to-back could be given the same port.
_handed_out: dict[int, str] = {}

# Below the kernel's ephemeral range (see _ephemeral_range) so that outgoing
# client connections can never be assigned one of our server ports as their
# local port -- which matters most while a server is stopped and its port must
# still be free when it restarts.
_FLOOR = 10000


def _ephemeral_range() -> tuple[int, int]:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        low, high = (int(part) for part in text.split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def port_is_free(port: int) -> bool:
    """True when nothing listens on (or lingers in TIME_WAIT at) 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Deliberately no SO_REUSEADDR: a port with lingering TIME_WAIT
        # connections is rejected too, as some servers cannot bind it.
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, owner: str = "") -> int:
    """Return a currently free TCP port on 127.0.0.1, never the same twice per process.

    Ports are picked outside the kernel's ephemeral range, so they cannot be
    stolen by outgoing connections between a server's stop and its restart.
    """
    low, _high = _ephemeral_range()
    ceiling = low - 1 if low - 1 > _FLOOR + 1000 else 32767
    rng = random.SystemRandom()
    with _lock:
        for _ in range(1000):
            port = rng.randint(_FLOOR, ceiling)
            if port in _handed_out:
                continue
            if port_is_free(port):
                _handed_out[port] = owner
                return port
        # Pathological: fall back to letting the kernel choose.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        _handed_out[port] = owner
        return port


def stable_ports(state_file: Path, names: tuple[str, ...]) -> dict[str, int]:
    """Ports for ``names``, reusing those recorded in ``state_file`` when still free.

    Reusing a workdir (e.g. ``make run`` twice) then keeps the same URLs, and
    Kafka keeps the controller address it was formatted with.
    """
    previous: dict[str, int] = {}
    try:
        raw = json.loads(state_file.read_text())
        if isinstance(raw, dict):
            previous = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, int)}
    except (OSError, ValueError):
        pass

    ports: dict[str, int] = {}
    for name in names:
        owner = f"{state_file.resolve()}#{name}"
        old = previous.get(name)
        if old is not None:
            with _lock:
                # The same owner may take its port back: a second server object
                # on the same workdir after the first one stopped.
                if _handed_out.get(old, owner) == owner and port_is_free(old):
                    _handed_out[old] = owner
                    ports[name] = old
                    continue
            log.info("port %d from %s is taken; allocating a new one for %s", old, state_file, name)
        ports[name] = free_port(owner=owner)

    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(ports, indent=2, sort_keys=True) + "\n")
    return ports
