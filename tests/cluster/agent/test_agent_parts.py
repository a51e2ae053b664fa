"""The agent's pure parts, without a control plane: path mapping, expansion, phases, files, IPs."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import pathlib
from typing import Any

import pytest

from mlsteward.dev.agent import envs, ipam, probes, processes, status, volumes

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_mount_paths_map_by_whole_components_longest_first_and_inside_flag_values() -> None:
    mapper = envs.PathMapper(
        [("/data", "/host/d"), ("/data/models", "/host/m"), ("/dev/termination-log", "/h/t")]
    )
    assert mapper.value("/data") == "/host/d"
    assert mapper.value("/data/x.csv") == "/host/d/x.csv"
    assert mapper.value("/data/models/a.onnx") == "/host/m/a.onnx"
    assert mapper.value("/database") == "/database"
    assert mapper.value("--out=/data/models") == "--out=/host/m"
    assert mapper.value("/dev/termination-log") == "/h/t"
    assert mapper.value("echo > /data/x") == "echo > /data/x"


def test_resource_fields_read_limits_with_their_divisor_and_fall_back_to_the_node() -> None:
    container = {"resources": {"limits": {"memory": "512Mi", "cpu": "250m"}}}
    assert envs.resource_value(container, {"resource": "limits.memory", "divisor": "1Mi"}, {}) == "512"
    assert (
        envs.resource_value(container, {"resource": "limits.cpu"}, {}) == "1"
    )  # rounded up, as the kubelet does
    assert envs.resource_value(container, {"resource": "limits.cpu", "divisor": "1m"}, {}) == "250"
    assert envs.resource_value({}, {"resource": "limits.cpu"}, {"cpu": "32"}) == "32"


def test_variable_references_expand_like_the_kubelets() -> None:
    env = {"A": "1", "B": "two"}
    assert envs.expand("$(A)-$(B)", env) == "1-two"
    assert envs.expand("$$(A) $(MISSING)", env) == "$(A) $(MISSING)"


class _Objects:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    async def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(f"cm/{name}")

    async def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(f"secret/{name}")


def test_a_missing_configmap_key_is_a_config_error_unless_optional() -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {}}
    lookup = _Objects({"cm/c": {"data": {"k": "v"}}})

    def resolve(optional: bool) -> dict[str, str]:
        container = {
            "name": "main",
            "env": [
                {
                    "name": "X",
                    "valueFrom": {"configMapKeyRef": {"name": "c", "key": "nope", "optional": optional}},
                }
            ],
        }
        return asyncio.run(
            envs.resolve(
                container,
                pod,
                lookup,
                pod_ip="127.80.1.1",
                host_ip="127.80.0.1",
                base={},
                mapper=envs.PathMapper([]),
                node_allocatable={},
            )
        )

    assert "X" not in resolve(True)
    with pytest.raises(envs.ConfigError, match="'nope'"):
        resolve(False)


def _view(name: str, **state: Any) -> status.ContainerView:
    return status.ContainerView(name=name, image="i", **state)


def _ended(code: int) -> status.Terminated:
    return status.Terminated(code, "Error" if code else "Completed", NOW, NOW)


def test_probes_only_ever_reach_loopback_addresses() -> None:
    target = probes.Target("127.80.1.9", {}, {}, "/", list)
    ok, message = asyncio.run(probes.check({"tcpSocket": {"host": "192.0.2.1", "port": 80}}, target))
    assert not ok
    assert "not a loopback address" in message


def test_the_pod_phase_follows_the_restart_policy() -> None:
    failed, done = _view("a", terminated=_ended(3)), _view("a", terminated=_ended(0))
    backing_off = _view("a", last=_ended(1), waiting_reason="CrashLoopBackOff")
    assert status.phase("Never", False, True, [failed]) == status.FAILED
    assert status.phase("Never", False, True, [done]) == status.SUCCEEDED
    assert status.phase("OnFailure", False, True, [backing_off]) == status.RUNNING
    assert status.phase("Always", False, True, [backing_off]) == status.RUNNING
    assert status.phase("Never", False, False, [_view("a")]) == status.PENDING
    assert status.phase("Never", True, False, [_view("a")]) == status.FAILED
    assert (
        status.phase("Always", False, True, [_view("a", running_since=NOW)], deleted=True) == status.RUNNING
    )
    assert (
        status.phase("Always", False, True, [_view("a", terminated=_ended(143))], deleted=True)
        == status.FAILED
    )


def test_pod_status_keeps_the_schedulers_condition_and_unchanged_transition_times() -> None:
    earlier = "2026-01-01T00:00:00Z"
    existing = {
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": earlier},
            {"type": "Initialized", "status": "True", "lastTransitionTime": earlier},
        ]
    }
    built = status.pod_status(
        existing=existing,
        pod_phase=status.RUNNING,
        init=[],
        containers=[_view("a", running_since=NOW, ready=True, started=True)],
        initialized=True,
        sandbox_ready=True,
        readiness_gates=[],
        pod_ip="127.80.1.2",
        host_ip="127.80.0.1",
        start_time=NOW,
        now=NOW,
    )
    conditions = {c["type"]: c for c in built["conditions"]}
    assert conditions["PodScheduled"]["lastTransitionTime"] == earlier
    assert conditions["Initialized"]["lastTransitionTime"] == earlier
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert built["podIPs"] == [{"ip": "127.80.1.2"}]


def test_projected_files_change_with_one_atomic_swap(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "vol"
    assert volumes.write_atomic(target, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert not volumes.write_atomic(target, {"a": (b"1", 0o644), "b": (b"2", 0o600)})
    assert volumes.write_atomic(target, {"a": (b"one", 0o644)})
    assert os.readlink(target / "..data") != first
    assert not (target / first).exists()
    assert (target / "a").read_text() == "one"
    assert not (target / "b").exists()
    assert os.readlink(target / "a") == "..data/a"


def test_pod_ips_are_loopback_distinct_released_and_remembered(tmp_path: pathlib.Path) -> None:
    pool = ipam.Ipam(tmp_path / "ipam.json")
    first, second = pool.allocate("uid-1"), pool.allocate("uid-2")
    assert first != second
    assert pool.allocate("uid-1") == first
    address = ipaddress.ip_address(first)
    assert address in ipaddress.ip_network("127.80.0.0/16")
    assert address not in ipaddress.ip_network("127.80.0.0/24")  # kept for nodes
    pool.release("uid-1")
    again = ipam.Ipam(tmp_path / "ipam.json")
    assert again.assigned == {"uid-2": second}
    assert again.allocate("uid-3") not in {second, first}
    with pytest.raises(ipam.IpamError, match="loopback"):
        ipam.validate("10.0.0.0/16")


class _Sources(_Objects):
    async def token(self, pod: dict[str, Any], audience: str | None, expiration_s: int) -> str:
        return f"token-for-{pod['metadata']['name']}-{audience}"


def test_projected_volumes_combine_items_paths_modes_the_downward_api_and_tokens(
    tmp_path: pathlib.Path,
) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n", "uid": "u1", "labels": {"app": "x", "tier": "web"}},
        "spec": {
            "containers": [{"name": "main"}],
            "volumes": [
                {
                    "name": "bundle",
                    "projected": {
                        "defaultMode": 0o640,
                        "sources": [
                            {
                                "configMap": {
                                    "name": "c",
                                    "items": [{"key": "k", "path": "deep/file", "mode": 0o600}],
                                }
                            },
                            {"secret": {"name": "absent", "optional": True}},
                            {
                                "downwardAPI": {
                                    "items": [
                                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
                                    ]
                                }
                            },
                            {"serviceAccountToken": {"path": "token", "audience": "store"}},
                        ],
                    },
                },
                {"name": "scratch", "emptyDir": {}},
                {"name": "claim", "persistentVolumeClaim": {"claimName": "data"}},
            ],
        },
    }
    sources = _Sources({"cm/c": {"data": {"k": "v", "other": "ignored"}}})
    dirs = asyncio.run(
        volumes.sync(
            pod, tmp_path / "pod", tmp_path / "state", sources, pod_ip="127.80.1.1", host_ip="127.80.0.1"
        )
    )
    bundle = dirs["bundle"]
    assert (bundle / "deep" / "file").read_text() == "v"
    assert (bundle / "deep" / "file").stat().st_mode & 0o777 == 0o600
    assert (bundle / "labels").read_text() == 'app="x"\ntier="web"'
    assert (bundle / "labels").stat().st_mode & 0o777 == 0o640
    assert (bundle / "token").read_text() == "token-for-p-store"
    assert not (bundle / "other").exists()
    assert dirs["scratch"] == tmp_path / "pod" / "volumes" / "scratch"
    assert dirs["claim"] == tmp_path / "state" / "volumes" / "pvc" / "n" / "data"
    assert dirs["claim"].is_dir()


def test_an_unsupported_volume_type_is_refused_by_name(tmp_path: pathlib.Path) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"volumes": [{"name": "v", "nfs": {"server": "x"}}]},
    }
    with pytest.raises(volumes.VolumeError, match=r"volume 'v': type \['nfs'\]"):
        asyncio.run(
            volumes.sync(pod, tmp_path, tmp_path, _Sources({}), pod_ip="127.80.1.1", host_ip="127.80.0.1")
        )


def test_stopping_a_run_kills_its_whole_process_group_and_records_the_signal(tmp_path: pathlib.Path) -> None:
    async def scenario() -> tuple[int | None, list[int], str]:
        ended: list[processes.Run] = []
        run = await processes.spawn(
            ["sh", "-c", "echo started; sleep 100 & sleep 100 & wait"],
            env={"PATH": os.environ["PATH"]},
            cwd=tmp_path,
            log_path=tmp_path / "log",
            on_exit=ended.append,
        )
        await asyncio.sleep(0.5)
        await processes.stop(run, grace_s=2)
        survivors = [p for p in _members(run.pid)]
        return run.exit_code, survivors, processes.log_tail(run)

    code, survivors, log = asyncio.run(scenario())
    assert code == 128 + 15
    assert survivors == []
    assert log == "started"


def test_a_program_that_cannot_start_is_a_spawn_error(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        await processes.spawn(
            ["/nonexistent/program"],
            env={},
            cwd=tmp_path,
            log_path=tmp_path / "log",
            on_exit=lambda run: None,
        )

    with pytest.raises(processes.SpawnError, match="/nonexistent/program"):
        asyncio.run(scenario())


def _members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members
