"""When the control plane cannot start, the error names the component and shows its log."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from mlsteward.dev import controlplane, toolchain


def _toolchain_with_broken_etcd(tmp_path: pathlib.Path) -> toolchain.Toolchain:
    """A real toolchain except etcd, which fails the way a corrupt binary or bad flag would."""
    real = toolchain.build()
    broken = toolchain.Toolchain(tmp_path / "cache")
    for source, target in (
        (real.kubernetes_dir, broken.kubernetes_dir),
        (real.kwok_dir, broken.kwok_dir),
        (real.helm_dir, broken.helm_dir),
        (real.minio_dir, broken.minio_dir),
    ):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    broken.etcd_dir.mkdir(parents=True)
    etcd = broken.binary("etcd")
    etcd.write_text("#!/bin/sh\necho 'etcd: cannot listen: address already in use' >&2\nexit 1\n")
    etcd.chmod(0o755)
    (broken.etcd_dir / ".complete").write_text("0s\n")
    return broken


def test_a_component_that_dies_at_start_up_is_named_with_its_log(tmp_path: pathlib.Path) -> None:
    tools = _toolchain_with_broken_etcd(tmp_path)
    directory = tmp_path / "cluster"
    with pytest.raises(controlplane.ControlPlaneError) as raised:
        controlplane.up(directory, tools=tools, timeout_s=30)
    message = str(raised.value)
    assert "etcd exited during start-up" in message
    assert "address already in use" in message
    controlplane.down(directory)
    assert controlplane.status(controlplane.load(directory)) == {}  # type: ignore[arg-type]


def test_dev_up_reports_the_failure_and_exits_non_zero(tmp_path: pathlib.Path) -> None:
    tools = _toolchain_with_broken_etcd(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlsteward",
            "dev",
            "--cache",
            str(tools.cache),
            "up",
            "--dir",
            str(tmp_path / "c"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "mlsteward dev up: etcd exited during start-up" in result.stderr
    subprocess.run(
        [sys.executable, "-m", "mlsteward", "dev", "down", "--dir", str(tmp_path / "c")],
        check=True,
        capture_output=True,
    )


def test_up_down_leaves_no_process_behind(tmp_path: pathlib.Path) -> None:
    cp = controlplane.up(tmp_path / "cluster", fake_nodes=1)
    pids = [int(p.read_text()) for p in (cp.directory / "pids").glob("*.pid")]
    assert len(pids) == len(controlplane.COMPONENTS)
    stopped = controlplane.down(cp.directory)
    assert sorted(stopped) == sorted(controlplane.COMPONENTS)

    def running(pid: int) -> bool:
        state = subprocess.run(
            ["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True, check=False
        )
        # Gone, or a zombie (Z, Zs) that only waits for its parent to reap it.
        return state.stdout.strip()[:1] not in ("", "Z")

    alive = [pid for pid in pids if running(pid)]
    assert alive == []
