"""Node registration and heartbeats for the agent's nodes.

Each node is a plain Node object labelled ``type=mlsteward-agent`` (KWOK manages only
``type=kwok``), whose Ready condition and ``kube-node-lease`` Lease the agent renews, so the
node lifecycle controller keeps it Ready and the scheduler places pods on it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import platform
from collections.abc import Mapping
from typing import Any

import aiohttp

from mlsteward.dev.agent import kube

log = logging.getLogger(__name__)
Obj = dict[str, Any]

AGENT_LABEL = "type"
AGENT_LABEL_VALUE = "mlsteward-agent"
ALLOCATABLE = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
LEASE_DURATION_S = 40
VERSION = "v1.36.3-mlsteward-agent"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _time(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def manifest(name: str) -> Obj:
    """The Node object as first created (status follows with a status patch)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                AGENT_LABEL: AGENT_LABEL_VALUE,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"providerID": f"mlsteward-agent://{name}"},
    }


def node_status(ip: str, port: int, ready: bool, since: datetime.datetime, now: datetime.datetime) -> Obj:
    """A pure Node status: capacity, addresses, conditions with ``now`` as the heartbeat."""

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": _time(now),
            "lastTransitionTime": _time(since),
        }

    conditions = [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
        condition(
            "Ready",
            "True" if ready else "False",
            "KubeletReady" if ready else "KubeletNotReady",
            "the mlsteward development agent is running pods"
            if ready
            else "the mlsteward development agent has stopped",
        ),
    ]
    return {
        "capacity": dict(ALLOCATABLE),
        "allocatable": dict(ALLOCATABLE),
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": ip}],
        "conditions": conditions,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": "mlsteward development agent (processes on the host)",
            "containerRuntimeVersion": "mlsteward-agent://0.1.0",
            "kubeletVersion": VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


class Heartbeat:
    """Registers one node, then keeps its status and Lease fresh until cancelled."""

    def __init__(self, api: kube.Client, name: str, ip: str, port: int, interval_s: float = 10.0) -> None:
        self.api = api
        self.name = name
        self.ip = ip
        self.port = port
        self.interval_s = interval_s
        self.since = _now()

    async def register(self) -> None:
        try:
            await self.api.create("/api/v1/nodes", manifest(self.name))
        except kube.ApiError as error:
            if error.status != 409:
                raise
            labels: Mapping[str, Any] = manifest(self.name)["metadata"]["labels"]
            await self.api.patch(f"/api/v1/nodes/{self.name}", {"metadata": {"labels": labels}})
        await self.beat()

    async def beat(self, ready: bool = True) -> None:
        now = _now()
        if not ready:
            self.since = now
        await self.api.patch(
            f"/api/v1/nodes/{self.name}/status",
            {"status": node_status(self.ip, self.port, ready, self.since, now)},
        )
        await self._renew_lease(now)

    async def _renew_lease(self, now: datetime.datetime) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_DURATION_S,
            "renewTime": _micro(now),
        }
        try:
            await self.api.patch(path, {"spec": spec})
        except kube.ApiError as error:
            if error.status != 404:
                raise
            node = await self.api.get(f"/api/v1/nodes/{self.name}")
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": node["metadata"]["uid"]}
            await self.api.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "ownerReferences": [owner]},
                    "spec": spec,
                },
            )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except (kube.ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
                log.warning("node %s: heartbeat failed: %s", self.name, error)
