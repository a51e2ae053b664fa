"""One container of one pod: its runs, probes, restart count, back-off and termination messages.

The pod worker decides *when* to start a container (init order, restart policy); this
module knows *how*: spawn the process, start its probes, record how it ended (exit code,
the termination message read from the host file behind ``terminationMessagePath``, or the
end of its log under ``FallbackToLogsOnError``), and describe itself as a
:class:`status.ContainerView`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlsteward.dev.agent import probes, processes, status

Obj = dict[str, Any]
MAX_MESSAGE = 4096


class Container:
    """The runtime state of one container (regular, init, or sidecar init container)."""

    def __init__(
        self,
        spec: Obj,
        *,
        init: bool,
        log_path: pathlib.Path,
        termination_file: pathlib.Path,
        grace_s: float,
        on_change: Callable[[], None],
        emit: Callable[[str, str, bool], None] = lambda reason, message, warning: None,
    ) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.log_path = log_path
        self.termination_file = termination_file
        self.on_change = on_change
        self.emit = emit  # (reason, message, warning): an Event about this container
        self.grace_s = grace_s
        self.run: processes.Run | None = None
        self.restart_count = 0
        self.ever_ran = False
        self.exit: status.Terminated | None = None  # how the latest run ended
        self.last: status.Terminated | None = None  # how the run before it ended
        self.waiting: tuple[str, str] = ("ContainerCreating", "")
        self.restart_pending = False
        self.backoff_until = 0.0
        self.crashes = 0
        self.stopping = False
        self.probers: dict[str, probes.Prober] = {}
        self.ports: dict[str, int] = {
            p["name"]: int(p["containerPort"]) for p in spec.get("ports") or [] if p.get("name")
        }
        self._target: probes.Target | None = None

    @property
    def running(self) -> bool:
        return self.run is not None and self.run.exit_code is None

    @property
    def started(self) -> bool:
        if not self.running:
            return False
        startup = self.probers.get("startup")
        return startup is None or startup.result or "startupProbe" not in self.spec

    @property
    def ready(self) -> bool:
        if not self.started:
            return False
        readiness = self.probers.get("readiness")
        return readiness.result if readiness else True

    @property
    def succeeded(self) -> bool:
        return not self.running and self.exit is not None and self.exit.exit_code == 0

    async def start(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: pathlib.Path, target: probes.Target
    ) -> None:
        """Start a new run; a program that cannot start counts as a run that ended with 128."""
        if self.ever_ran:
            self.restart_count += 1
            self.last = self.exit
        self.exit = None
        self.restart_pending = False
        self.stopping = False
        self.ever_ran = True
        self.termination_file.parent.mkdir(parents=True, exist_ok=True)
        self.termination_file.write_bytes(b"")
        self._target = target
        try:
            self.run = await processes.spawn(
                argv, env=env, cwd=cwd, log_path=self.log_path, on_exit=self._exited
            )
        except processes.SpawnError as error:
            now = datetime.datetime.now(datetime.UTC)
            self.run = None
            self.exit = status.Terminated(128, "StartError", now, now, str(error))
            self.emit("Failed", f"Error: {error}", True)
            self._count_crash(0)
            self.on_change()
            return
        self.waiting = ("", "")
        self.emit("Started", f"Started container {self.name}", False)
        self._start_probes()

    def _start_probes(self) -> None:
        if "startupProbe" in self.spec:
            self._probe("startup")
        else:
            self._probe("readiness")
            self._probe("liveness")

    def _probe(self, kind: str) -> None:
        spec = self.spec.get(f"{kind}Probe")
        if spec is not None and self._target is not None:
            self.probers[kind] = probes.Prober(kind, spec, self._target, self._probed)

    def _probed(self, prober: probes.Prober) -> None:
        if not self.running or self.probers.get(prober.kind) is not prober:
            return
        if not prober.result:
            self.emit("Unhealthy", f"{prober.kind.capitalize()} probe failed: {prober.message}", True)
        if prober.kind == "startup":
            if prober.failed:
                self._kill_unhealthy("startup", prober.message)
            else:
                self._probe("readiness")
                self._probe("liveness")
        elif prober.kind == "liveness" and not prober.result:
            self._kill_unhealthy("liveness", prober.message)
        self.on_change()

    def _kill_unhealthy(self, kind: str, message: str) -> None:
        """The kubelet kills a container whose liveness (or startup) probe fails; restarts follow policy."""
        grace = self.grace_s
        if self.run is not None:
            self.emit("Killing", f"Container {self.name} failed {kind} probe, will be restarted", False)
            task = asyncio.create_task(processes.stop(self.run, grace))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    def _stop_probes(self) -> None:
        for prober in self.probers.values():
            prober.cancel()
        self.probers.clear()

    def _exited(self, run: processes.Run) -> None:
        self._stop_probes()
        code = run.exit_code if run.exit_code is not None else 137
        message = self._termination_message(run, code)
        finished = run.finished_at or datetime.datetime.now(datetime.UTC)
        reason = "Completed" if code == 0 else "Error"
        self.exit = status.Terminated(
            code, reason, run.started_at, finished, message, container_id=self.container_id(run)
        )
        self._count_crash((finished - run.started_at).total_seconds())
        self.on_change()

    def _count_crash(self, ran_s: float) -> None:
        # Like the kubelet, forget earlier crashes once a run has lasted a while.
        self.crashes = 1 if ran_s > 600 else self.crashes + 1

    def schedule_restart(self, initial_s: float, max_s: float) -> None:
        """Wait out the back-off before the next start (CrashLoopBackOff meanwhile)."""
        if self.restart_pending:
            return
        delay = min(initial_s * 2 ** max(self.crashes - 1, 0), max_s)
        self.restart_pending = True
        self.backoff_until = time.monotonic() + delay
        self.emit("BackOff", f"Back-off restarting failed container {self.name}", True)
        self.waiting = (
            "CrashLoopBackOff",
            f"back-off {delay:g}s restarting failed container={self.name}",
        )

    def _termination_message(self, run: processes.Run, code: int) -> str:
        try:
            with self.termination_file.open("rb") as handle:
                message = handle.read(MAX_MESSAGE).decode(errors="replace")
        except OSError:
            message = ""
        policy = self.spec.get("terminationMessagePolicy", "File")
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            message = processes.log_tail(run)
        return message

    async def stop(self, grace_s: float) -> None:
        """Stop the current run (if any) and keep it stopped."""
        self.stopping = True
        self.restart_pending = False
        self._stop_probes()
        if self.run is not None:
            if self.running:
                self.emit("Killing", f"Stopping container {self.name}", False)
            await processes.stop(self.run, grace_s)

    @staticmethod
    def container_id(run: processes.Run) -> str:
        return f"mlsteward-agent://{run.pid}"

    def view(self) -> status.ContainerView:
        image = str(self.spec.get("image", ""))
        if self.running and self.run is not None:
            return status.ContainerView(
                name=self.name,
                image=image,
                restart_count=self.restart_count,
                running_since=self.run.started_at,
                last=self.last,
                ready=self.ready,
                started=self.started,
                container_id=self.container_id(self.run),
            )
        if self.exit is not None and self.restart_pending:
            return status.ContainerView(
                name=self.name,
                image=image,
                restart_count=self.restart_count,
                last=self.exit,
                waiting_reason=self.waiting[0],
                waiting_message=self.waiting[1],
            )
        if self.exit is not None:
            return status.ContainerView(
                name=self.name,
                image=image,
                restart_count=self.restart_count,
                terminated=self.exit,
                last=self.last,
                container_id=self.exit.container_id,
            )
        return status.ContainerView(
            name=self.name,
            image=image,
            restart_count=self.restart_count,
            last=self.last,
            waiting_reason=self.waiting[0] or "ContainerCreating",
            waiting_message=self.waiting[1],
        )


_BACKGROUND: set[asyncio.Task[None]] = set()


def cancel_background() -> None:
    for task in list(_BACKGROUND):
        with contextlib.suppress(Exception):
            task.cancel()
