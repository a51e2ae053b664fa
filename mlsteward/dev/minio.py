"""Start and stop a real MinIO server on 127.0.0.1 for the object-store tests and the demo."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request

from mlsteward.dev import controlplane, toolchain


class MinioError(RuntimeError):
    """MinIO could not start; the message carries the end of its log."""


@dataclasses.dataclass
class MinioServer:
    """A running MinIO process and how to reach it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    directory: pathlib.Path
    process: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The environment variables our programs read to reach this server."""
        return {
            "MLSTEWARD_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }

    def stop(self, grace_s: float = 10) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(grace_s)


def start(
    directory: pathlib.Path, tools: toolchain.Toolchain | None = None, timeout_s: float = 60
) -> MinioServer:
    """Start MinIO with its data in ``directory``; return once ``/minio/health/live`` answers."""
    tools = tools or toolchain.build()
    directory.mkdir(parents=True, exist_ok=True)
    port, console_port = controlplane.free_port(), controlplane.free_port()
    access_key, secret_key = "mlsteward", secrets.token_hex(16)
    log = (directory / "minio.log").open("ab")
    env = dict(
        os.environ,
        MINIO_ROOT_USER=access_key,
        MINIO_ROOT_PASSWORD=secret_key,
        MINIO_BROWSER="off",
        MINIO_UPDATE="off",
    )
    process = subprocess.Popen(
        [
            str(tools.binary("minio")),
            "server",
            str(directory / "data"),
            "--address",
            f"127.0.0.1:{port}",
            "--console-address",
            f"127.0.0.1:{console_port}",
            "--quiet",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    server = MinioServer(f"http://127.0.0.1:{port}", access_key, secret_key, directory, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (directory / "minio.log").read_text(errors="replace")[-3000:]
            raise MinioError(f"minio exited with {process.returncode} during start-up:\n{tail}")
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/minio/health/live", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise MinioError(
        f"minio did not answer /minio/health/live within {timeout_s:.0f} s; log: {directory / 'minio.log'}"
    )
