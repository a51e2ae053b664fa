"""A watch whose resourceVersion the API server no longer has lists again.

The API server here is a stand-in (aiohttp on 127.0.0.1): a 410 Gone in the middle of a watch
stream comes from etcd compaction, which cannot be caused on demand on the test control plane
(its watch cache still serves an old resourceVersion). The stand-in speaks the same wire
format: a list with ``metadata.resourceVersion``, a watch stream of one JSON event per line.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from mlsteward.operator import kube, login, watching


def _item(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


async def _stand_in_api_server(requests: list[dict[str, str]]) -> tuple[web.AppRunner, int]:
    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(dict(request.query))
        if request.query.get("watch") != "true":
            listings = sum(1 for r in requests if r.get("watch") != "true")
            items = [_item("a", "5")] if listings == 1 else [_item("a", "5"), _item("b", "9")]
            return web.json_response({"metadata": {"resourceVersion": str(10 * listings)}, "items": items})
        response = web.StreamResponse()
        await response.prepare(request)
        if request.query["resourceVersion"] == "10":
            events = [
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}},
                {"type": "ADDED", "object": {"kind": "ConfigMap", **_item("b", "12")}},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}},
            ]
            for event in events:
                await response.write(orjson.dumps(event) + b"\n")
        else:
            await asyncio.sleep(0.2)  # a quiet stream that the server then ends (its timeout)
        return response

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/configmaps", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, int(port)


def test_a_410_in_the_stream_lists_again_and_watches_from_the_new_list() -> None:
    async def scenario() -> tuple[list[tuple[str | None, str]], list[dict[str, str]], int]:
        requests: list[dict[str, str]] = []
        runner, port = await _stand_in_api_server(requests)

        async def credentials() -> login.Credentials:
            return login.Credentials(server=f"http://127.0.0.1:{port}")

        client = kube.Client(credentials)
        seen: list[tuple[str | None, str]] = []
        kind = watching.Kind("v1", "ConfigMap", "configmaps")
        watch = watching.Watch(client, kind, "ns", lambda t, b: seen.append((t, b["metadata"]["name"])), 60)
        task = asyncio.create_task(watch.run())
        try:
            for _ in range(200):
                if len(requests) >= 4:
                    break
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await client.close()
            await runner.cleanup()
        return seen, requests, watch.restarts

    seen, requests, restarts = asyncio.run(scenario())
    assert seen == [(None, "a"), ("ADDED", "b"), (None, "a"), (None, "b")]
    assert [(r.get("watch"), r.get("resourceVersion")) for r in requests[:4]] == [
        (None, None),
        ("true", "10"),
        (None, None),
        ("true", "20"),
    ]
    assert requests[1]["allowWatchBookmarks"] == "true" and requests[1]["timeoutSeconds"] == "60"
    assert restarts == 1
