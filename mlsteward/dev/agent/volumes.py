"""Pod volumes as host directories that the agent manages.

- ``emptyDir``: ``<pod dir>/volumes/<name>``, removed with the pod.
- ``persistentVolumeClaim`` (and generic ``ephemeral`` claims): ``<state>/volumes/pvc/<ns>/<claim>``,
  kept across pods, so a claim's data outlives them as with a real volume.
- ``configMap``, ``secret``, ``downwardAPI`` and ``projected`` (including ``serviceAccountToken``):
  files written like the kubelet's atomic writer: a timestamped ``..<ts>`` directory, a ``..data``
  symlink swapped with one rename, and per-key symlinks through ``..data``, so programs that
  watch mounted files see one consistent change. Re-synced on every pod sync.
- ``hostPath``: the host path itself.

Anything else is refused with a message (the pod waits in ``ContainerCreating``).
"""

from __future__ import annotations

import datetime
import os
import pathlib
import shutil
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from mlsteward.dev.agent import envs

Obj = dict[str, Any]
Files = dict[str, tuple[bytes, int]]


class VolumeError(RuntimeError):
    """A volume cannot be set up (missing source, unsupported type)."""


class Sources(envs.Lookup, Protocol):
    """ConfigMaps, Secrets and service-account tokens."""

    async def token(self, pod: Obj, audience: str | None, expiration_s: int) -> str: ...


def host_dirs(pod: Obj, pod_dir: pathlib.Path, state: pathlib.Path) -> dict[str, pathlib.Path]:
    """Volume name -> host directory, for every volume of ``pod`` (pure: nothing is created)."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, pathlib.Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            dirs[name] = state / "volumes" / "pvc" / namespace / claim
        elif "ephemeral" in volume:
            dirs[name] = state / "volumes" / "pvc" / namespace / f"{pod['metadata']['name']}-{name}"
        elif "hostPath" in volume:
            dirs[name] = pathlib.Path(volume["hostPath"]["path"])
        else:
            dirs[name] = pod_dir / "volumes" / name
    return dirs


def mounts(
    container: Obj, dirs: Mapping[str, pathlib.Path], termination_file: pathlib.Path
) -> list[tuple[str, str]]:
    """(container path, host path) pairs of a container: its mounts and its termination message file."""
    pairs: list[tuple[str, str]] = []
    for mount in container.get("volumeMounts") or []:
        host = dirs.get(mount["name"])
        if host is None:
            continue
        if mount.get("subPath"):
            host = host / mount["subPath"]
        pairs.append((mount["mountPath"], str(host)))
    message_path = container.get("terminationMessagePath", "/dev/termination-log")
    pairs.append((message_path, str(termination_file)))
    return pairs


async def sync(
    pod: Obj,
    pod_dir: pathlib.Path,
    state: pathlib.Path,
    sources: Sources,
    *,
    pod_ip: str,
    host_ip: str,
) -> dict[str, pathlib.Path]:
    """Create every volume's directory and bring projected files up to date."""
    dirs = host_dirs(pod, pod_dir, state)
    for volume in pod["spec"].get("volumes") or []:
        target = dirs[volume["name"]]
        if any(k in volume for k in ("emptyDir", "persistentVolumeClaim", "ephemeral")):
            target.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in volume:
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                target.mkdir(parents=True, exist_ok=True)
        elif any(k in volume for k in ("configMap", "secret", "downwardAPI", "projected")):
            files = await _projected_files(volume, pod, sources, pod_ip=pod_ip, host_ip=host_ip)
            write_atomic(target, files)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise VolumeError(
                f"volume {volume['name']!r}: type {kinds} is not supported by the development agent"
            )
    return dirs


async def _projected_files(volume: Obj, pod: Obj, sources: Sources, *, pod_ip: str, host_ip: str) -> Files:
    if "projected" in volume:
        default_mode = volume["projected"].get("defaultMode", 0o644)
        parts = volume["projected"].get("sources") or []
    else:
        kind = next(k for k in ("configMap", "secret", "downwardAPI") if k in volume)
        default_mode = volume[kind].get("defaultMode", 0o644)
        parts = [{kind: volume[kind]}]
    namespace = pod["metadata"]["namespace"]
    files: Files = {}
    for part in parts:
        if "configMap" in part or "secret" in part:
            is_cm = "configMap" in part
            ref = part["configMap"] if is_cm else part["secret"]
            name = ref.get("name") or ref.get("secretName", "")
            obj = await (sources.configmap if is_cm else sources.secret)(namespace, name)
            if obj is None:
                if ref.get("optional"):
                    continue
                kind_name = "ConfigMap" if is_cm else "Secret"
                raise VolumeError(f"volume {volume['name']!r}: {kind_name} {namespace}/{name} not found")
            data = envs.configmap_data(obj) if is_cm else envs.secret_data(obj)
            files.update(_select(volume["name"], data, ref, default_mode))
        elif "downwardAPI" in part:
            for item in part["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    text = envs.field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
                else:
                    container = _container(pod, item["resourceFieldRef"].get("containerName"))
                    text = envs.resource_value(container, item["resourceFieldRef"], {})
                files[item["path"]] = (text.encode(), item.get("mode", default_mode))
        elif "serviceAccountToken" in part:
            token = part["serviceAccountToken"]
            value = await sources.token(pod, token.get("audience"), int(token.get("expirationSeconds", 3600)))
            files[token["path"]] = (value.encode(), default_mode)
        else:
            raise VolumeError(f"volume {volume['name']!r}: projected source {sorted(part)} is not supported")
    return files


def _container(pod: Obj, name: str | None) -> Obj:
    containers = pod["spec"]["containers"]
    return next((c for c in containers if c["name"] == name), containers[0])


def _select(volume: str, data: Mapping[str, bytes], ref: Obj, default_mode: int) -> Files:
    if not ref.get("items"):
        return {key: (value, default_mode) for key, value in data.items()}
    files: Files = {}
    for item in ref["items"]:
        if item["key"] not in data:
            if ref.get("optional"):
                continue
            raise VolumeError(f"volume {volume!r}: key {item['key']!r} not found")
        files[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return files


def _current(target: pathlib.Path) -> Files | None:
    data = target / "..data"
    if not data.is_dir():
        return None
    files: Files = {}
    for path in sorted(data.rglob("*")):
        if path.is_file():
            files[str(path.relative_to(data))] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def write_atomic(target: pathlib.Path, files: Files) -> bool:
    """Publish ``files`` under ``target`` with one atomic ``..data`` swap; False when unchanged."""
    target.mkdir(parents=True, exist_ok=True)
    if _current(target) == files:
        return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y_%m_%d_%H_%M_%S")
    fresh = target / f"..{stamp}.{uuid.uuid4().hex[:8]}"
    fresh.mkdir()
    for relative, (content, mode) in files.items():
        path = fresh / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    data = target / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    tmp = target / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(fresh.name)
    tmp.rename(data)
    top = {pathlib.PurePath(relative).parts[0] for relative in files}
    for name in top:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in top and entry.is_symlink():
            entry.unlink()
    if old and old != fresh.name:
        shutil.rmtree(target / old, ignore_errors=True)
    return True
