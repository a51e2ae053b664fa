"""Container probes: httpGet, tcpSocket and exec, on the kubelet's schedule.

A :class:`Prober` runs one probe (startup, readiness or liveness) for one container run:
it waits ``initialDelaySeconds``, then probes every ``periodSeconds`` with
``timeoutSeconds``, and flips its result after ``successThreshold`` successes or
``failureThreshold`` failures in a row, calling back on every flip. gRPC probes are not
supported by the development agent and always fail, so a pod that relies on one never
looks healthy by mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp

Obj = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Target:
    """What a probe needs to know about the container it checks."""

    pod_ip: str
    ports: Mapping[str, int]
    env: Mapping[str, str]
    cwd: str
    map_command: Callable[[Sequence[str]], list[str]]


def _port(value: object, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    if text in ports:
        return ports[text]
    raise ValueError(f"named port {text!r} is not declared by the container")


def _host(spec: Obj, target: Target) -> str:
    """The probe's host: the pod IP unless set; the agent only ever probes loopback addresses."""
    host = str(spec.get("host") or target.pod_ip)
    if host == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"probe host {host!r} is not a loopback address; the development agent probes only those"
        )
    return host


async def check(spec: Obj, target: Target) -> tuple[bool, str]:
    """Run the probe once: (success, a message for failures)."""
    timeout = float(spec.get("timeoutSeconds", 1))
    try:
        if "httpGet" in spec:
            return await asyncio.wait_for(_http(spec["httpGet"], target, timeout), timeout)
        if "tcpSocket" in spec:
            return await asyncio.wait_for(_tcp(spec["tcpSocket"], target), timeout)
        if "exec" in spec:
            return await _exec(spec["exec"], target, timeout)
    except TimeoutError:
        return False, f"probe timed out after {timeout:g} s"
    except (OSError, ValueError, aiohttp.ClientError) as error:
        return False, f"{type(error).__name__}: {error}"
    return False, "probe type not supported by the development agent (httpGet, tcpSocket and exec are)"


async def _http(spec: Obj, target: Target, timeout: float) -> tuple[bool, str]:
    host = _host(spec, target)
    port = _port(spec["port"], target.ports)
    scheme = str(spec.get("scheme", "HTTP")).lower()
    path = spec.get("path", "/")
    if not path.startswith("/"):
        path = "/" + path
    headers = {h["name"]: h["value"] for h in spec.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/mlsteward-agent")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    connector = aiohttp.TCPConnector(ssl=insecure if scheme == "https" else False, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(f"{scheme}://{host}:{port}{path}", headers=headers, allow_redirects=False) as response,
    ):
        if 200 <= response.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {response.status}"


async def _tcp(spec: Obj, target: Target) -> tuple[bool, str]:
    host = _host(spec, target)
    _, writer = await asyncio.open_connection(host, _port(spec["port"], target.ports))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, ""


async def _exec(spec: Obj, target: Target, timeout: float) -> tuple[bool, str]:
    argv = target.map_command(spec.get("command") or [])
    if not argv:
        return False, "exec probe without a command"
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(target.env),
        cwd=target.cwd,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    if process.returncode == 0:
        return True, ""
    return False, f"command exited {process.returncode}: {output.decode(errors='replace')[-500:]}"


class Prober:
    """Runs one probe until cancelled; ``result`` is the current verdict."""

    def __init__(self, kind: str, spec: Obj, target: Target, on_change: Callable[[Prober], None]) -> None:
        self.kind = kind
        self.spec = spec
        self.target = target
        self.on_change = on_change
        # Readiness and startup start out failing; liveness starts out passing.
        self.result = kind == "liveness"
        self.message = ""
        self.failed = False
        self._successes = 0
        self._failures = 0
        self.task: asyncio.Task[None] = asyncio.create_task(self._loop(), name=f"probe-{kind}")

    def cancel(self) -> None:
        self.task.cancel()

    async def _loop(self) -> None:
        await asyncio.sleep(float(self.spec.get("initialDelaySeconds", 0)))
        period = max(float(self.spec.get("periodSeconds", 10)), 0.1)
        success_threshold = int(self.spec.get("successThreshold", 1))
        failure_threshold = int(self.spec.get("failureThreshold", 3))
        while True:
            ok, message = await check(self.spec, self.target)
            if ok:
                self._successes, self._failures = self._successes + 1, 0
                flip = not self.result and self._successes >= success_threshold
            else:
                self._successes, self._failures = 0, self._failures + 1
                flip = self.result and self._failures >= failure_threshold
                self.message = message
            if flip:
                self.result = not self.result
                if self.kind != "startup":
                    self.on_change(self)
            if self.kind == "startup" and (self.result or self._failures >= failure_threshold):
                # A startup probe ends at its first verdict: started, or failed for good.
                self.failed = not self.result
                self.on_change(self)
                return
            await asyncio.sleep(period)
