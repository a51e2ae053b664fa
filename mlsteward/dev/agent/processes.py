"""Container processes: spawn in their own process group, watch for exit, stop the whole group.

Each container runs as a session (and process-group) leader, so stopping it signals the group
and children die with it: SIGTERM, then SIGKILL once the grace period is over. When the leader
exits by itself, whatever it left behind in its group is killed too, as a container's PID
namespace would. Every process carries ``MLSTEWARD_AGENT_STATE=<state dir>`` in its environment,
so an agent that was killed outright finds and kills its leftovers on its next start (and tests
can prove that none are left); each leader also asks the kernel for SIGKILL should the agent
die (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import datetime
import os
import pathlib
import signal
import time
from collections.abc import Callable, Mapping, Sequence

_PR_SET_PDEATHSIG = 1


class SpawnError(RuntimeError):
    """The program could not be started (not found, not executable, bad working directory)."""


@dataclasses.dataclass
class Run:
    """One run of a container's process."""

    process: asyncio.subprocess.Process
    started_at: datetime.datetime
    log_path: pathlib.Path
    log_offset: int
    exit_code: int | None = None
    finished_at: datetime.datetime | None = None
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    @property
    def pid(self) -> int:
        return self.process.pid


def _die_with_agent() -> None:
    # Runs in the child between fork and exec. Best effort: only Linux has prctl.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: pathlib.Path,
    log_path: pathlib.Path,
    on_exit: Callable[[Run], None],
) -> Run:
    """Start ``argv`` with output appended to ``log_path``; ``on_exit`` runs once it has ended."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        offset = log.tell()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_agent,
            )
        except OSError as error:
            raise SpawnError(f"cannot start {argv[0]!r}: {error.strerror or error}") from error
    run = Run(
        process=process,
        started_at=datetime.datetime.now(datetime.UTC),
        log_path=log_path,
        log_offset=offset,
    )
    task = asyncio.create_task(_reap(run, on_exit), name=f"reap-{process.pid}")
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return run


_TASKS: set[asyncio.Task[None]] = set()


async def _reap(run: Run, on_exit: Callable[[Run], None]) -> None:
    code = await run.process.wait()
    # Whatever the leader left in its group goes with it, as in a container.
    _signal_group(run.pid, signal.SIGKILL)
    run.exit_code = 128 - code if code < 0 else code  # killed by signal N -> 128 + N
    run.finished_at = datetime.datetime.now(datetime.UTC)
    run.done.set()
    on_exit(run)


async def stop(run: Run, grace_s: float) -> None:
    """SIGTERM the run's process group, SIGKILL it after ``grace_s``; return once all are gone."""
    if run.done.is_set() and not group_alive(run.pid):
        return
    _signal_group(run.pid, signal.SIGTERM)
    deadline = time.monotonic() + max(grace_s, 0)
    while time.monotonic() < deadline and (not run.done.is_set() or group_alive(run.pid)):
        await asyncio.sleep(0.05)
    _signal_group(run.pid, signal.SIGKILL)
    await run.done.wait()
    while group_alive(run.pid):
        await asyncio.sleep(0.02)


def log_tail(run: Run, max_lines: int = 80, max_bytes: int = 2048) -> str:
    """The end of this run's log (for ``FallbackToLogsOnError``)."""
    try:
        with run.log_path.open("rb") as log:
            log.seek(run.log_offset)
            data = log.read()
    except OSError:
        return ""
    lines = data.decode(errors="replace").splitlines()[-max_lines:]
    return "\n".join(lines)[-max_bytes:]


STATE_MARKER = "MLSTEWARD_AGENT_STATE"


def find_strays(state_dir: pathlib.Path) -> list[int]:
    """PIDs of live processes started by an agent whose state directory is ``state_dir``."""
    marker = f"{STATE_MARKER}={state_dir.resolve()}".encode()
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # A zombie (state Z) is already dead; only its parent can reap it.
        if marker in environ and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found.append(int(proc.name))
    return found


def kill_strays(state_dir: pathlib.Path) -> list[int]:
    """SIGKILL every process left by an earlier agent with this state directory."""
    strays = find_strays(state_dir)
    for pid in strays:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return strays
