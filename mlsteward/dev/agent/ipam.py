"""Pod IP allocation from a loopback range (127.80.0.0/16 by default), persisted in the state dir.

Linux routes all of 127.0.0.0/8 to ``lo``, so a process can bind any of these addresses
without configuration: each pod gets its own address, as in a cluster. The first /24 is
kept for the agent's nodes. Allocation is round robin from a cursor that starts at a random
offset, so a freed address is not handed out again at once and two agents with separate
state directories rarely collide.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import random

DEFAULT_POD_CIDR = "127.80.0.0/16"


class IpamError(RuntimeError):
    """The range is exhausted or is not a loopback range."""


def validate(cidr: str) -> ipaddress.IPv4Network:
    """The network of ``cidr``; only loopback ranges of at least /23 will do."""
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError as error:
        raise IpamError(f"pod CIDR {cidr!r} is not an IPv4 network: {error}") from error
    if not network.is_loopback or network.prefixlen > 23:
        raise IpamError(f"pod CIDR {cidr} must be a loopback range of at least /23 (e.g. 127.80.0.0/16)")
    return network


class Ipam:
    """Pod key (uid) -> IP address, saved to ``path`` after every change."""

    def __init__(self, path: pathlib.Path, cidr: str = DEFAULT_POD_CIDR) -> None:
        self.path = path
        self.network = validate(cidr)
        self._first = int(self.network.network_address) + 256
        self._size = self.network.num_addresses - 256 - 1
        self.assigned: dict[str, str] = {}
        self.cursor = random.randrange(self._size)
        if path.is_file():
            saved = json.loads(path.read_text())
            if saved.get("cidr") == cidr:
                self.assigned = dict(saved["assigned"])
                self.cursor = int(saved["cursor"]) % self._size

    def node_ip(self, index: int) -> str:
        """The address of the agent's ``index``-th node (from the reserved first /24)."""
        return str(ipaddress.IPv4Address(int(self.network.network_address) + 1 + index % 254))

    def allocate(self, key: str) -> str:
        if key in self.assigned:
            return self.assigned[key]
        used = set(self.assigned.values())
        for step in range(self._size):
            candidate = str(ipaddress.IPv4Address(self._first + (self.cursor + step) % self._size))
            if candidate not in used:
                self.cursor = (self.cursor + step + 1) % self._size
                self.assigned[key] = candidate
                self._save()
                return candidate
        raise IpamError(f"no free pod address left in {self.network}")

    def release(self, key: str) -> None:
        if self.assigned.pop(key, None) is not None:
            self._save()

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"cidr": str(self.network), "cursor": self.cursor, "assigned": self.assigned}, indent=1
            )
        )
        os.replace(tmp, self.path)
