"""Pod Events, as the kubelet records them: Started, Killing, BackOff, Unhealthy, Failed, FailedMount.

They show up in ``kubectl describe pod`` and ``kubectl get events``. Recording is fire and
forget: a failure to record an Event never holds up a pod.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from mlsteward.dev.agent import kube

log = logging.getLogger(__name__)
Obj = dict[str, Any]
COMPONENT = "mlsteward-agent"


def event(pod: Obj, reason: str, message: str, *, container: str, init: bool, warning: bool, now: str) -> Obj:
    """A core/v1 Event about ``pod`` (and one of its containers when ``container`` is set)."""
    meta = pod["metadata"]
    involved: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    if container:
        involved["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": involved,
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT, "host": pod["spec"].get("nodeName", "")},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class Recorder:
    """Creates Events in the background."""

    def __init__(self, api: kube.Client) -> None:
        self.api = api
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self,
        pod: Obj,
        reason: str,
        message: str,
        *,
        container: str = "",
        init: bool = False,
        warning: bool = False,
    ) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = event(pod, reason, message, container=container, init=init, warning=warning, now=now)
        task = asyncio.create_task(self._create(pod["metadata"]["namespace"], body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _create(self, namespace: str, body: Obj) -> None:
        try:
            await self.api.create(f"/api/v1/namespaces/{namespace}/events", body)
        except kube.ApiError as error:
            # A namespace being deleted refuses new Events; nothing worth reporting then.
            level = logging.DEBUG if error.status == 403 else logging.WARNING
            log.log(level, "could not record event %s: %s", body["reason"], error)
        except Exception as error:  # an Event is never worth failing a pod for
            log.warning("could not record event %s: %s", body["reason"], error)
