"""The operator's watches against the real API server: the listing first (with each item's
apiVersion and kind, which a list's items lack), then every change of the selected objects in
order. (The 410 Gone path: tests/unit/operator/test_watching.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

from mlsteward.dev import controlplane
from mlsteward.operator import kube, login, watching

CONFIG_MAPS = watching.Kind("v1", "ConfigMap", "configmaps", "purpose=watch-test")


def _client(cp: controlplane.ControlPlane) -> kube.Client:
    async def credentials() -> login.Credentials:
        return login.kubeconfig(str(cp.kubeconfig))

    return kube.Client(credentials)


def _config_map(namespace: str, name: str, purpose: str = "watch-test") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"purpose": purpose}},
        "data": {"k": "v"},
    }


async def _wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_a_watch_delivers_the_listing_then_every_change_of_the_selected_objects(
    control_plane: controlplane.ControlPlane, namespace: str
) -> None:
    async def scenario() -> list[tuple[str | None, str]]:
        client = _client(control_plane)
        seen: list[tuple[str | None, str]] = []
        bodies: list[dict[str, Any]] = []

        def record(event_type: str | None, body: dict[str, Any]) -> None:
            seen.append((event_type, body["metadata"]["name"]))
            bodies.append(body)

        try:
            for name in ("a", "b"):
                await client.create(_config_map(namespace, name))
            await client.create(_config_map(namespace, "other", purpose="something-else"))
            watch = watching.Watch(client, CONFIG_MAPS, namespace, record, 30)
            task = asyncio.create_task(watch.run())
            await asyncio.wait_for(watch.listed.wait(), 20)
            assert all(b["kind"] == "ConfigMap" and b["apiVersion"] == "v1" for b in bodies)
            await client.create(_config_map(namespace, "c"))
            await client.delete(_config_map(namespace, "a"))
            await _wait_for(lambda: ("DELETED", "a") in seen, "the deletion of a")
            task.cancel()
            return seen
        finally:
            await client.close()

    seen = asyncio.run(scenario())
    assert sorted(seen[:2]) == [(None, "a"), (None, "b")], seen
    assert seen[2:] == [("ADDED", "c"), ("DELETED", "a")], seen
