"""A container's environment and the rewriting of container paths to host paths.

Environment: ``env`` (``value``, ``valueFrom`` ConfigMap/Secret keys, downward API fields and
resource fields), ``envFrom`` (ConfigMaps and Secrets, with prefixes) and ``$(VAR)``
expansion, the way the kubelet builds them.

Paths: a container's mount paths do not exist on the host, so every command, argument and
environment value that starts with a volume's ``mountPath`` (or the container's
``terminationMessagePath``) is rewritten to the host directory or file that the agent
manages; so is the part after ``=`` of a ``--flag=VALUE`` argument. Matching is by whole
path components (``/data`` maps ``/data`` and ``/data/x``, never ``/database``), longest
mount path first.
"""

from __future__ import annotations

import base64
import decimal
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

Obj = dict[str, Any]


class ConfigError(RuntimeError):
    """A referenced ConfigMap, Secret or key is missing (the kubelet's CreateContainerConfigError)."""


class Lookup(Protocol):
    """Where ConfigMaps and Secrets come from (the API server; a dict in unit tests)."""

    async def configmap(self, namespace: str, name: str) -> Obj | None: ...

    async def secret(self, namespace: str, name: str) -> Obj | None: ...


def configmap_data(configmap: Obj) -> dict[str, bytes]:
    data = {k: v.encode() for k, v in (configmap.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (configmap.get("binaryData") or {}).items()})
    return data


def secret_data(secret: Obj) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_value(pod: Obj, field_path: str, pod_ip: str, host_ip: str) -> str:
    """The downward API value of ``field_path`` for ``pod``."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    match = _SUBSCRIPT.match(field_path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path in {"metadata.labels", "metadata.annotations"}:
        values = meta.get(field_path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise ConfigError(f"downward API field {field_path!r} is not supported by the development agent")


_SUFFIXES = {
    "m": decimal.Decimal("0.001"),
    "k": decimal.Decimal(10**3),
    "M": decimal.Decimal(10**6),
    "G": decimal.Decimal(10**9),
    "T": decimal.Decimal(10**12),
    "Ki": decimal.Decimal(2**10),
    "Mi": decimal.Decimal(2**20),
    "Gi": decimal.Decimal(2**30),
    "Ti": decimal.Decimal(2**40),
}


def quantity(text: str) -> decimal.Decimal:
    """A Kubernetes quantity (``500m``, ``2Gi``, ``1e3``) as a number."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return decimal.Decimal(text[: -len(suffix)]) * _SUFFIXES[suffix]
    return decimal.Decimal(text)


def resource_value(container: Obj, ref: Obj, node_allocatable: Mapping[str, str]) -> str:
    """A ``resourceFieldRef`` value: the container's limit (else request, else the node's)."""
    kind, _, resource = str(ref["resource"]).partition(".")
    resources = container.get("resources") or {}
    amount = (resources.get(kind) or {}).get(resource)
    if amount is None and kind == "requests":
        amount = (resources.get("limits") or {}).get(resource)
    if amount is None:
        amount = node_allocatable.get(resource, "0")
    divisor = quantity(str(ref.get("divisor", "1")))
    return str(math.ceil(quantity(str(amount)) / divisor))


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and ")" in text[i + 2 :]:
            end = text.index(")", i + 2)
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class PathMapper:
    """Rewrites container paths (mount paths, the termination message path) to host paths."""

    def __init__(self, mounts: Sequence[tuple[str, str]]) -> None:
        cleaned = [(c.rstrip("/") or "/", h) for c, h in mounts]
        self.mounts = sorted(cleaned, key=lambda m: len(m[0]), reverse=True)

    def path(self, value: str) -> str:
        for container_path, host_path in self.mounts:
            if value == container_path:
                return host_path
            prefix = container_path if container_path.endswith("/") else container_path + "/"
            if value.startswith(prefix):
                return host_path.rstrip("/") + "/" + value[len(prefix) :]
        return value

    def value(self, value: str) -> str:
        """Map a whole value, or the VALUE of a ``--flag=VALUE`` argument."""
        mapped = self.path(value)
        if mapped != value:
            return mapped
        if value.startswith("-") and "=" in value:
            flag, _, rest = value.partition("=")
            return f"{flag}={self.path(rest)}"
        return value


async def resolve(
    container: Obj,
    pod: Obj,
    lookup: Lookup,
    *,
    pod_ip: str,
    host_ip: str,
    base: Mapping[str, str],
    mapper: PathMapper,
    node_allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment on top of ``base``; raises ConfigError for missing sources."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    decode: Callable[[Obj], dict[str, bytes]]
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, getter, decode = source["configMapRef"], lookup.configmap, configmap_data
        else:
            ref, getter, decode = source["secretRef"], lookup.secret, secret_data
        obj = await getter(namespace, ref["name"])
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f"envFrom: {namespace}/{ref['name']} not found")
        for key, raw in decode(obj).items():
            env[prefix + key] = mapper.value(raw.decode(errors="replace"))
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(mapper.value(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in source:
            env[name] = resource_value(container, source["resourceFieldRef"], node_allocatable)
        else:
            is_cm = "configMapKeyRef" in source
            ref = source["configMapKeyRef"] if is_cm else source["secretKeyRef"]
            obj = await (lookup.configmap if is_cm else lookup.secret)(namespace, ref["name"])
            data = None if obj is None else (configmap_data(obj) if is_cm else secret_data(obj))
            if data is None or ref["key"] not in data:
                if ref.get("optional"):
                    continue
                kind = "ConfigMap" if is_cm else "Secret"
                raise ConfigError(
                    f"env {name}: key {ref['key']!r} of {kind} {namespace}/{ref['name']} not found"
                )
            env[name] = mapper.value(data[ref["key"]].decode(errors="replace"))
    return env


def command_line(container: Obj, env: Mapping[str, str], mapper: PathMapper) -> list[str]:
    """``command`` + ``args`` with paths mapped and ``$(VAR)`` expanded; images have no entrypoint here."""
    parts = [*(container.get("command") or []), *(container.get("args") or [])]
    if not parts:
        raise ConfigError(
            f"container {container['name']!r} has no command: the development agent ignores images, "
            "so command (or args) must name the program"
        )
    return [expand(mapper.value(str(part)), env) for part in parts]
