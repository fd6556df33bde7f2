"""A DogStatsD server for tests: a UDP socket on a free loopback port that keeps every metric line.

Speaks the DogStatsD datagram format the agent reads: ``name:value|type[|@rate][|#tag:value,…]``,
several lines per datagram. ``metrics()`` returns what arrived, parsed; ``packets`` the raw text.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

__all__ = ["DogStatsdServer", "StatsdMetric"]


@dataclass(frozen=True)
class StatsdMetric:
    """One received metric line."""

    name: str
    value: float
    kind: str  # c, g, d, h, ms, s
    tags: dict[str, str]


def _parse(line: str) -> StatsdMetric | None:
    head, _, rest = line.partition("|")
    name, _, value = head.rpartition(":")
    if not name or not rest:
        return None
    fields = rest.split("|")
    tags: dict[str, str] = {}
    for field in fields[1:]:
        if field.startswith("#"):
            for tag in field[1:].split(","):
                key, _, tag_value = tag.partition(":")
                tags[key] = tag_value
    return StatsdMetric(name, float(value), fields[0], tags)


class DogStatsdServer:
    """Receives DogStatsD datagrams on ``127.0.0.1:<port>`` in a background thread."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self.packets: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dogstatsd-test-server", daemon=True)

    def __enter__(self) -> DogStatsdServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._socket.recv(65535)
            except TimeoutError:
                continue
            self.packets.append(data.decode("utf-8", "replace"))

    def metrics(self) -> list[StatsdMetric]:
        """Every metric line received so far, parsed."""
        parsed = (_parse(line) for packet in list(self.packets) for line in packet.splitlines())
        return [metric for metric in parsed if metric is not None]
