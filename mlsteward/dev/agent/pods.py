"""The pod worker: brings one pod's processes to what its spec and state call for.

Each sync reads the latest pod object and the observed processes and acts on the level,
not the event: set up the pod IP and volumes, run init containers in order (sidecar init
containers keep running), start or restart the containers by the restart policy with
back-off, write the status when it changed, and on deletion stop everything (SIGTERM,
SIGKILL after the grace period), write the final status and confirm the deletion with grace
period 0, as the kubelet does. Process exits, probe flips and pod updates wake the worker;
otherwise it syncs every ``sync_s`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import pathlib
import shutil
import time
from collections.abc import Mapping
from typing import Any

from mlsteward.dev.agent import containers, envs, events, ipam, kube, probes, status, volumes

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclasses.dataclass
class Context:
    """What every pod worker shares."""

    api: kube.Client
    sources: volumes.Sources
    recorder: events.Recorder
    ipam: ipam.Ipam
    state: pathlib.Path
    node_ips: Mapping[str, str]
    base_env: Mapping[str, str]
    allocatable: Mapping[str, str]
    backoff_initial_s: float = 10.0
    backoff_max_s: float = 300.0
    sync_s: float = 1.0
    volume_sync_s: float = 2.0


class PodWorker:
    """Runs one pod; ``update`` hands it a newer pod object, ``vanish`` says it is gone."""

    def __init__(self, ctx: Context, pod: Obj) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = ctx.state / "pods" / self.uid
        self.grace_s = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.gone = False
        self.wake = asyncio.Event()
        self.init = [self._container(spec, True) for spec in pod["spec"].get("initContainers") or []]
        self.main = [self._container(spec, False) for spec in pod["spec"]["containers"]]
        self.pod_ip: str | None = None
        self.start_time: datetime.datetime | None = None
        self.volumes_ready = False
        self.volume_error = ""
        self.next_volume_sync = 0.0
        self.phase: str | None = None
        self.adopted_terminal = False
        self.initialized = not self.init
        self.init_failed = False
        self.delete_sent = False
        self.reason = ("", "")
        self.pushed: Obj | None = None
        self._adopt(pod.get("status") or {})
        self.task = asyncio.create_task(self._loop(), name=f"pod-{self.namespace}/{self.name}")

    def _container(self, spec: Obj, init: bool) -> containers.Container:
        return containers.Container(
            spec,
            init=init,
            log_path=self.ctx.state / "logs" / f"{self.namespace}_{self.name}_{spec['name']}.log",
            termination_file=self.dir / "containers" / spec["name"] / "termination-log",
            grace_s=self.grace_s,
            on_change=self.wake.set,
            emit=lambda reason, message, warning: self.ctx.recorder.record(
                self.pod, reason, message, container=spec["name"], init=init, warning=warning
            ),
        )

    def _adopt(self, existing: Obj) -> None:
        """Continue from the status an earlier agent wrote (its processes did not survive it)."""
        if existing.get("phase") in status.TERMINAL:
            self.phase = existing["phase"]
            self.adopted_terminal = True
            return
        now = datetime.datetime.now(datetime.UTC)
        if existing.get("podIP"):
            self.start_time = status.parse_time(existing.get("startTime"), now)
        statuses = (existing.get("initContainerStatuses") or []) + (existing.get("containerStatuses") or [])
        by_name = {c.name: c for c in self.init + self.main}
        for seen in statuses:
            container = by_name.get(seen.get("name", ""))
            state = seen.get("state") or {}
            if container is None or not (state.get("running") or state.get("terminated")):
                continue
            container.restart_count = int(seen.get("restartCount", 0))
            container.ever_ran = True
            if "terminated" in state:
                container.exit = status.terminated_from(state["terminated"], now)
            else:
                started = status.parse_time(state["running"].get("startedAt"), now)
                container.exit = status.Terminated(
                    137, "Error", started, now, "the development agent restarted"
                )

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake.set()

    def vanish(self) -> None:
        self.gone = True
        self.wake.set()

    async def _loop(self) -> None:
        while True:
            self.wake.clear()
            try:
                if await self.sync():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s/%s: sync failed", self.namespace, self.name)
            pending = [c.backoff_until for c in self.init + self.main if c.restart_pending]
            timeout = self.ctx.sync_s
            if pending:
                timeout = min(timeout, max(min(pending) - time.monotonic(), 0.05))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def sync(self) -> bool:
        """One level-based pass; True once the pod is gone and cleaned up."""
        pod = self.pod
        meta = pod["metadata"]
        if self.gone:
            await self.stop_all(float(meta.get("deletionGracePeriodSeconds", self.grace_s)))
            self._cleanup()
            return True
        if meta.get("deletionTimestamp"):
            await self.stop_all(float(meta.get("deletionGracePeriodSeconds", self.grace_s)))
            if self.phase is None:
                self.phase = status.phase(self._policy, self.init_failed, True, self._views(), deleted=True)
            await self._push()
            await self._confirm_deletion()
            return False
        if self.phase in status.TERMINAL:
            await self._push()
            return False
        if self._past_deadline():
            # The kubelet's activeDeadlineSeconds: stop everything, fail the pod.
            self.reason = (
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            )
            await self.stop_all(self.grace_s)
            self.phase = status.FAILED
            await self._push()
            return False
        if await self._setup():
            if self.initialized:
                # Once initialized, a pod stays so; only sidecars are kept running.
                for container in self.init:
                    if container.sidecar:
                        await self._keep_running(container)
            else:
                self.initialized = await self._run_init()
            initialized = self.initialized
            if initialized and not self.init_failed:
                await self._run_main()
            else:
                for container in self.main:
                    if not container.ever_ran:
                        container.waiting = ("PodInitializing", "")
            phase = status.phase(self._policy, self.init_failed, initialized, self._views())
            if phase in status.TERMINAL:
                self.phase = phase
                await asyncio.gather(*(c.stop(self.grace_s) for c in self.init if c.sidecar))
        await self._push()
        return False

    def _past_deadline(self) -> bool:
        deadline = self.pod["spec"].get("activeDeadlineSeconds")
        if deadline is None or self.start_time is None:
            return False
        elapsed = datetime.datetime.now(datetime.UTC) - self.start_time
        return elapsed.total_seconds() > float(deadline)

    @property
    def _policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    @property
    def host_ip(self) -> str:
        return self.ctx.node_ips.get(self.pod["spec"].get("nodeName", ""), "127.0.0.1")

    def _views(self) -> list[status.ContainerView]:
        return [c.view() for c in self.main]

    async def _setup(self) -> bool:
        """The pod IP and the volumes; False while the volumes cannot be set up."""
        if self.pod_ip is None:
            self.pod_ip = self.ctx.ipam.allocate(self.uid)
            self.start_time = self.start_time or datetime.datetime.now(datetime.UTC)
        if time.monotonic() >= self.next_volume_sync:
            self.next_volume_sync = time.monotonic() + self.ctx.volume_sync_s
            try:
                await volumes.sync(
                    self.pod,
                    self.dir,
                    self.ctx.state,
                    self.ctx.sources,
                    pod_ip=self.pod_ip,
                    host_ip=self.host_ip,
                )
                self.volumes_ready = True
                self.volume_error = ""
            except (volumes.VolumeError, envs.ConfigError, kube.ApiError) as error:
                if str(error) != self.volume_error:
                    self.ctx.recorder.record(self.pod, "FailedMount", str(error), warning=True)
                self.volume_error = str(error)
                for container in self.init + self.main:
                    if not container.ever_ran:
                        container.waiting = ("ContainerCreating", str(error))
                if not self.volumes_ready:
                    return False
                log.warning("pod %s/%s: volume refresh failed: %s", self.namespace, self.name, error)
        return self.volumes_ready

    async def _run_init(self) -> bool:
        """Advance the init containers; True once all have finished (sidecars: started)."""
        for container in self.init:
            if container.sidecar:
                await self._keep_running(container)
                if not container.started:
                    return False
                continue
            if container.succeeded:
                continue
            if container.running or container.stopping:
                return False
            if container.exit is not None and self._policy == "Never":
                self.init_failed = True
                return False
            await self._keep_running(container)
            return False
        return True

    async def _run_main(self) -> None:
        for container in self.main:
            if container.running or container.stopping:
                continue
            exit_code = container.exit.exit_code if container.exit else None
            if (
                exit_code is None
                or self._policy == "Always"
                or (self._policy == "OnFailure" and exit_code != 0)
            ):
                await self._keep_running(container)

    async def _keep_running(self, container: containers.Container) -> None:
        """Start a container that never ran; restart an exited one once its back-off is over."""
        if container.running or container.stopping:
            return
        if container.exit is not None:
            container.schedule_restart(self.ctx.backoff_initial_s, self.ctx.backoff_max_s)
            if time.monotonic() < container.backoff_until:
                return
        await self._start(container)

    async def _start(self, container: containers.Container) -> None:
        assert self.pod_ip is not None
        mapper = self._mapper(container)
        base = dict(self.ctx.base_env)
        base.update(POD_IP=self.pod_ip, HOSTNAME=self.name)
        try:
            env = await envs.resolve(
                container.spec,
                self.pod,
                self.ctx.sources,
                pod_ip=self.pod_ip,
                host_ip=self.host_ip,
                base=base,
                mapper=mapper,
                node_allocatable=self.ctx.allocatable,
            )
            argv = envs.command_line(container.spec, env, mapper)
        except (envs.ConfigError, kube.ApiError) as error:
            if container.waiting != ("CreateContainerConfigError", str(error)):
                container.emit("Failed", f"Error: {error}", True)
            container.waiting = ("CreateContainerConfigError", str(error))
            return
        cwd = self._working_dir(container, mapper)

        def map_command(command: Any) -> list[str]:
            return [envs.expand(mapper.value(str(part)), env) for part in command]

        target = probes.Target(self.pod_ip, container.ports, env, str(cwd), map_command)
        await container.start(argv, env, cwd, target)

    def _mapper(self, container: containers.Container) -> envs.PathMapper:
        dirs = volumes.host_dirs(self.pod, self.dir, self.ctx.state)
        return envs.PathMapper(volumes.mounts(container.spec, dirs, container.termination_file))

    def _working_dir(self, container: containers.Container, mapper: envs.PathMapper) -> pathlib.Path:
        wanted = container.spec.get("workingDir")
        if wanted and mapper.path(wanted) != wanted:
            path = pathlib.Path(mapper.path(wanted))
        else:
            # An image's file system does not exist here: unmapped working directories get a
            # private directory per container.
            path = self.dir / "containers" / container.name / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def stop_all(self, grace_s: float) -> None:
        """Stop the containers, then the sidecar init containers, as the kubelet orders it."""
        await asyncio.gather(*(c.stop(grace_s) for c in self.main))
        await asyncio.gather(*(c.stop(grace_s) for c in self.init))

    async def _push(self) -> None:
        if self.adopted_terminal:
            return
        existing = self.pod.get("status") or {}
        gates = [g["conditionType"] for g in self.pod["spec"].get("readinessGates") or []]
        views = self._views()
        new = status.pod_status(
            existing=existing,
            pod_phase=self.phase or status.phase(self._policy, self.init_failed, self.initialized, views),
            init=[c.view() for c in self.init],
            containers=views,
            initialized=self.initialized,
            sandbox_ready=self.pod_ip is not None,
            readiness_gates=gates,
            pod_ip=self.pod_ip,
            host_ip=self.host_ip,
            start_time=self.start_time or datetime.datetime.now(datetime.UTC),
            now=datetime.datetime.now(datetime.UTC),
            reason=self.reason[0],
            message=self.reason[1],
        )
        if new == self.pushed:
            return
        try:
            await self.ctx.api.patch(
                f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status", {"status": new}
            )
            self.pushed = new
        except kube.ApiError as error:
            if error.status != 404:
                log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name, error)

    async def _confirm_deletion(self) -> None:
        if self.delete_sent:
            return
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        try:
            await self.ctx.api.delete(f"/api/v1/namespaces/{self.namespace}/pods/{self.name}", body)
            self.delete_sent = True
        except kube.ApiError as error:
            if error.status in {404, 409}:
                self.delete_sent = True
            else:
                log.warning("pod %s/%s: delete failed: %s", self.namespace, self.name, error)

    def _cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.ctx.ipam.release(self.uid)
