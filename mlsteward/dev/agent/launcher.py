"""Start the agent as a subprocess for tests and the demo: ``start_agent(cp, state_dir)``.

::

    handle = start_agent(cp, tmp_path / "agent", nodes=1)
    try:
        ...  # pods with nodeSelector type=mlsteward-agent now really run
    finally:
        handle.stop()
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time
from types import TracebackType

from mlsteward.dev import controlplane
from mlsteward.dev.agent import node, processes


class AgentError(RuntimeError):
    """The agent did not start or its nodes did not become Ready; the message ends with its log."""


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclasses.dataclass
class AgentHandle:
    """A running ``mlsteward dev agent`` process."""

    process: subprocess.Popen[bytes]
    state_dir: pathlib.Path
    node_names: list[str]

    @property
    def log(self) -> pathlib.Path:
        return self.state_dir / "agent.log"

    def log_tail(self, size: int = 6000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def container_log(self, namespace: str, pod: str, container: str) -> pathlib.Path:
        return self.state_dir / "logs" / f"{namespace}_{pod}_{container}.log"

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM the agent (it stops its pods' processes), SIGKILL if it hangs; no strays remain."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        processes.kill_strays(self.state_dir)
        return self.process.returncode

    def __enter__(self) -> AgentHandle:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def start_agent(
    cp: controlplane.ControlPlane,
    state_dir: pathlib.Path,
    nodes: int = 1,
    *,
    name_prefix: str = "agent",
    backoff_s: float = 10.0,
    extra_args: tuple[str, ...] = (),
    timeout_s: float = 60,
) -> AgentHandle:
    """Start the agent against ``cp`` and return once its nodes are Ready."""
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    names = [f"{name_prefix}-{i}" for i in range(nodes)]
    argv = [
        sys.executable,
        "-m",
        "mlsteward",
        "dev",
        "agent",
        f"--kubeconfig={cp.kubeconfig}",
        f"--state={state_dir}",
        f"--nodes={nodes}",
        f"--name-prefix={name_prefix}",
        f"--backoff-seconds={backoff_s}",
        *extra_args,
    ]
    with (state_dir / "agent.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # Called from the test's main thread; PDEATHSIG keeps an agent from outliving pytest.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    handle = AgentHandle(process=process, state_dir=state_dir, node_names=names)
    deadline = time.monotonic() + timeout_s
    jsonpath = "{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status} {end}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AgentError(f"the agent exited with {process.returncode}:\n{handle.log_tail()}")
        out = cp.kubectl(
            "get",
            "nodes",
            "-l",
            f"{node.AGENT_LABEL}={node.AGENT_LABEL_VALUE}",
            "-o",
            f"jsonpath={jsonpath}",
            check=False,
        )
        ready = {item.split("=")[0] for item in out.stdout.split() if item.endswith("=True")}
        if set(names) <= ready:
            return handle
        time.sleep(0.3)
    handle.stop()
    raise AgentError(
        f"the agent's nodes {names} were not Ready within {timeout_s:.0f} s:\n{handle.log_tail()}"
    )
