"""The agent: registers its nodes, watches the pods bound to them and runs a worker per pod.

One list-then-watch stream per node (field selector ``spec.nodeName=<node>``) keeps the
latest object of every pod; a relist after each watch ends (or fails) catches anything a
lost event would have hidden, and pods missing from a relist count as deleted. Workers act
on levels, so a missed event only delays them until their next periodic sync.

On SIGTERM or SIGINT the agent stops every process it started (SIGTERM, then SIGKILL
after at most ``shutdown_grace_s``), marks its nodes NotReady and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import shutil
import signal
import sys
import urllib.parse
from typing import Any

import aiohttp

from mlsteward.dev.agent import containers, events, ipam, kube, kubelet_api, node, pods, processes, sources

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


@dataclasses.dataclass(frozen=True)
class Settings:
    """``mlsteward dev agent`` flags, one to one."""

    kubeconfig: pathlib.Path
    state: pathlib.Path
    nodes: int = 1
    name_prefix: str = "agent"
    pod_cidr: str = ipam.DEFAULT_POD_CIDR
    backoff_s: float = 10.0
    max_backoff_s: float = 300.0
    sync_s: float = 1.0
    heartbeat_s: float = 10.0
    shutdown_grace_s: float = 10.0

    @property
    def node_names(self) -> list[str]:
        return [f"{self.name_prefix}-{i}" for i in range(self.nodes)]


def base_environment(state: pathlib.Path, server: str) -> dict[str, str]:
    """What every container process starts from: the project's venv first on PATH, the API server."""
    venv_bin = os.path.dirname(sys.executable)
    env = {k: os.environ[k] for k in _PASSED_THROUGH if k in os.environ}
    env["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    url = urllib.parse.urlsplit(server)
    # In-cluster clients find the API server through these, as they would the `kubernetes` Service.
    env["KUBERNETES_SERVICE_HOST"] = url.hostname or "127.0.0.1"
    env["KUBERNETES_SERVICE_PORT"] = str(url.port or 443)
    env[processes.STATE_MARKER] = str(state.resolve())
    return env


class Agent:
    """Run with ``await Agent(settings).run(stop_event)``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workers: dict[str, pods.PodWorker] = {}
        self.ctx: pods.Context
        self.sources: sources.ApiSources

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        state = settings.state.resolve()
        for sub in ("pods", "logs", "volumes"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        strays = processes.kill_strays(state)
        if strays:
            log.warning("killed %d processes left by an earlier agent: %s", len(strays), strays)
        addresses = ipam.Ipam(state / "ipam.json", settings.pod_cidr)
        config = kube.Kubeconfig(settings.kubeconfig)
        async with kube.Client(config) as api:
            node_ips = {name: addresses.node_ip(i) for i, name in enumerate(settings.node_names)}
            self.sources = sources.ApiSources(api)
            self.ctx = pods.Context(
                api=api,
                sources=self.sources,
                recorder=events.Recorder(api),
                ipam=addresses,
                state=state,
                node_ips=node_ips,
                base_env=base_environment(state, config.server),
                allocatable=node.ALLOCATABLE,
                backoff_initial_s=settings.backoff_s,
                backoff_max_s=settings.max_backoff_s,
                sync_s=settings.sync_s,
            )
            log_server = kubelet_api.LogServer(state, self._is_running)
            ports = await log_server.start(sorted(set(node_ips.values())))
            beats = [
                node.Heartbeat(api, name, ip, ports[ip], settings.heartbeat_s)
                for name, ip in node_ips.items()
            ]
            for beat in beats:
                await beat.register()
            log.info("nodes registered: %s (state %s)", ", ".join(node_ips), state)
            await self._prune(api)
            tasks = [asyncio.create_task(b.run()) for b in beats]
            tasks += [asyncio.create_task(self._watch(api, name)) for name in node_ips]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self._shutdown()
                for beat in beats:
                    with contextlib.suppress(Exception):
                        await beat.beat(ready=False)
                await log_server.stop()
        leftovers = processes.kill_strays(state)
        log.info("agent stopped; %d leftover processes killed", len(leftovers))

    async def _prune(self, api: kube.Client) -> None:
        """Forget the directories and addresses of pods deleted while no agent was running."""
        alive: set[str] = set()
        for name in self.settings.node_names:
            listing = await api.get("/api/v1/pods", {"fieldSelector": f"spec.nodeName={name}"})
            alive.update(pod["metadata"]["uid"] for pod in listing.get("items") or [])
        for uid in set(self.ctx.ipam.assigned) - alive:
            self.ctx.ipam.release(uid)
        for directory in (self.ctx.state / "pods").iterdir():
            if directory.name not in alive:
                shutil.rmtree(directory, ignore_errors=True)

    async def _shutdown(self) -> None:
        workers = list(self.workers.values())
        for worker in workers:
            worker.task.cancel()
        await asyncio.gather(*(w.task for w in workers), return_exceptions=True)
        grace = self.settings.shutdown_grace_s
        await asyncio.gather(*(w.stop_all(min(w.grace_s, grace)) for w in workers), return_exceptions=True)
        containers.cancel_background()

    def _is_running(self, namespace: str, pod: str, container: str) -> bool:
        for worker in self.workers.values():
            if (worker.namespace, worker.name) == (namespace, pod):
                return any(c.running for c in worker.init + worker.main if c.name == container)
        return False

    def _observe(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        worker = pods.PodWorker(self.ctx, pod)
        self.workers[uid] = worker

        def _finished(_: object) -> None:
            if self.workers.get(uid) is worker:
                del self.workers[uid]
                self.sources.forget(uid)

        worker.task.add_done_callback(_finished)

    def _vanish(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.vanish()

    async def _watch(self, api: kube.Client, node_name: str) -> None:
        selector = {"fieldSelector": f"spec.nodeName={node_name}"}
        while True:
            try:
                listing = await api.get("/api/v1/pods", selector)
                seen = set()
                for pod in listing.get("items") or []:
                    seen.add(pod["metadata"]["uid"])
                    self._observe(pod)
                for uid, worker in list(self.workers.items()):
                    if worker.pod["spec"].get("nodeName") == node_name and uid not in seen:
                        worker.vanish()
                version = listing["metadata"]["resourceVersion"]
                params = dict(selector, resourceVersion=version, timeoutSeconds="300")
                async for event in api.watch("/api/v1/pods", params):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        break  # most likely 410 Gone: relist
                    if event.get("type") in {"ADDED", "MODIFIED"}:
                        self._observe(obj)
                    elif event.get("type") == "DELETED":
                        self._vanish(obj["metadata"]["uid"])
            except asyncio.CancelledError:
                raise
            except (kube.ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
                log.warning("watch of pods on %s failed (%s); relisting", node_name, error)
                await asyncio.sleep(1)


def run(settings: Settings) -> int:
    """Run the agent until SIGTERM or SIGINT."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(_main())
    return 0
