"""The Deployment reconciler: resolve the model version, apply the serving children, report.

Nothing is applied until a version resolves (a server with nothing to serve is not useful);
afterwards a version that stops resolving leaves the children serving what they serve.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiohttp
import pydantic

from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.operator import conditions, history, kube, rollouts
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.builders import serving
from mlsteward.operator.conditions import Reason
from mlsteward.operator.reconcilers import common
from mlsteward.operator.reconcilers import monitors as monitors_reconciler

API_VERSION = "mlsteward.io/v1alpha1"
REQUESTED_BY_ANNOTATION = "mlsteward.io/requested-by"
CHAMPION_ANNOTATION = "mlsteward.io/champion"


def resolve(
    model: dict[str, Any] | None, version: int | None, alias: str | None
) -> tuple[serving.Target | None, str]:
    """The promotable version a reference names, or None and a sentence saying why not."""
    if model is None:
        return None, "the Model does not exist"
    status = model.get("status") or {}
    versions = {v["version"]: v for v in status.get("versions") or []}
    promotable = [
        v
        for v in versions.values()
        if v.get("phase") == "Succeeded" and (v.get("gates") or {}).get("promotable") and v.get("artifact")
    ]
    if version is not None:
        number: int | None = version
        what = f"version {version}"
    elif alias == "latest":
        number = max((v["version"] for v in promotable), default=None)
        what = "the newest promotable version"
    else:
        name = alias or "champion"
        number = (status.get("aliases") or {}).get(name)
        what = f"alias {name}"
    if number is None:
        return None, f"{what} points to no version yet"
    chosen = versions.get(number)
    if chosen is None or chosen not in promotable:
        return None, f"{what} (version {number}) is not a promotable version with an artifact"
    return serving.Target(version=number, digest=chosen["artifact"]["digest"]), ""


def plan(
    body: dict[str, Any],
    spec: api_deployment.DeploymentSpec,
    *,
    model: dict[str, Any] | None,
    observed: dict[str, dict[str, Any] | None],
    settings: settings_module.Settings,
    now: str,
    approvals: Sequence[dict[str, Any]] = (),
    monitor_requires_approval: bool = False,
    pages: Sequence[str] | None = None,
    summaries: Sequence[dict[str, Any]] | None = None,
) -> common.Plan:
    """Children and status from the Model and the observed children (``observed`` by kind:
    ``Deployment`` and ``HorizontalPodAutoscaler``, each None when absent), the Approvals in
    the namespace, the serving pods' /metrics pages (None: not read) and their monitor
    sidecars' /summary documents (None: the Deployment has no Monitor)."""
    meta = body["metadata"]
    generation = int(meta.get("generation", 1))
    status = body.get("status") or {}
    owner = builders.owner_of(body)
    events: list[common.Event] = []
    target, why = resolve(model, spec.model_ref.version, spec.model_ref.alias)
    apply: list[dict[str, Any]] = []
    delete: list[dict[str, Any]] = []
    canary: serving.Target | None = None
    share = 0
    mode = "split"
    served: list[dict[str, Any]] = list(status.get("history") or [])
    rollout_status = status.get("rollout")
    rejected: list[int] = list(status.get("rejectedVersions") or [])
    kill_switch = status.get("killSwitch")
    requeue_rollout: float | None = None
    if target is not None and model is not None:
        step = _rollout(
            body,
            spec,
            model,
            target,
            served=served,
            rejected=rejected,
            approvals=approvals,
            monitor_requires_approval=monitor_requires_approval,
            pages=pages,
            summaries=summaries,
            now=now,
        )
        target, canary, share, mode = step.stable, step.canary, step.share, step.mode
        rollout_status, requeue_rollout = step.rollout, step.requeue_after
        kill_switch = step.kill_switch or kill_switch
        rejected = sorted(set(rejected) | set(step.rejected))[-100:]
        events += [common.Event(n.reason, n.message[:1024], n.type) for n in step.notes]
        records = list(step.history)
        last = served[-1] if served else None
        if not records and (last is None or last.get("version") != target.version):
            reason = "first version served" if last is None else "the spec or the Model's alias changed"
            records.append(
                {"version": target.version, "digest": target.digest, "action": "started", "reason": reason}
            )
        broken = history.verify(served) if records else []
        if broken:
            # The chain goes on from the stored last hash; the break stays visible to --verify.
            text = f"the serving history was altered: {broken[0]}"
            events.append(common.Event(Reason.HISTORY_BROKEN, text[:1024], "Warning"))
        served = rollouts.stamp(served, records, now)
        artifact_store = api_model.ModelSpec.model_validate(model["spec"]).artifact_store
        routing = serving.Routing(
            model=spec.model_ref.name,
            champion=target,
            challenger=canary,
            share=share,
            mode=mode,
        )
        apply.append(serving.build_routing_config_map(routing, owner))
        apply.append(
            serving.build_deployment(
                spec,
                owner,
                claim_name=artifact_store.claim_name,
                settings=settings,
                artifact_store=artifact_store,
            )
        )
        apply.append(serving.build_service(owner, settings))
        if spec.autoscaling is not None:
            apply.append(serving.build_autoscaler(spec.autoscaling, owner))
        elif observed.get("HorizontalPodAutoscaler") is not None:
            delete.append(
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": owner["name"], "namespace": owner["namespace"]},
                }
            )
        if status.get("activeVersion") != target.version:
            events.append(
                common.Event(
                    Reason.VERSION_CHANGED, f"serving version {target.version} (sha256:{target.digest})"
                )
            )
        canary_now = canary.version if canary is not None else None
        if status.get("canaryVersion") != canary_now and canary_now is not None:
            events.append(common.Event(Reason.CANARY_CHANGED, f"canary version {canary_now} takes {share}%"))

    child = observed.get("Deployment")
    child_status = (child or {}).get("status") or {}
    desired_replicas = (
        spec.autoscaling.min_replicas if spec.autoscaling else (1 if spec.replicas is None else spec.replicas)
    )
    ready_replicas = int(child_status.get("readyReplicas") or 0)
    rolled_out = (
        child is not None
        and int(child_status.get("observedGeneration") or 0) >= int(child["metadata"].get("generation", 1))
        and int(child_status.get("updatedReplicas") or 0) >= desired_replicas
        and ready_replicas >= desired_replicas
    )
    desired: list[conditions.Condition] = []
    if target is None:
        reason = Reason.MODEL_NOT_FOUND if model is None else Reason.VERSION_NOT_AVAILABLE
        text = f"Model {spec.model_ref.name}: {why}"
        desired += [
            conditions.condition(conditions.READY, False, reason, text),
            conditions.condition(conditions.RECONCILING, True, reason, f"waiting: {text}"),
        ]
    elif rolled_out:
        desired += [
            conditions.condition(
                conditions.READY,
                True,
                Reason.AVAILABLE,
                f"{ready_replicas}/{desired_replicas} serving pods ready with version {target.version}",
            ),
            conditions.condition(conditions.RECONCILING, False, Reason.RECONCILED, "up to date"),
        ]
    else:
        text = f"{ready_replicas}/{desired_replicas} serving pods ready"
        desired += [
            conditions.condition(conditions.READY, False, Reason.ROLLING_OUT, text),
            conditions.condition(conditions.RECONCILING, True, Reason.ROLLING_OUT, text),
        ]
    desired.append(conditions.condition(conditions.STALLED, False, Reason.RECONCILED, "no failure"))
    events += common.ready_transition(status.get("conditions") or [], desired)
    new_status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": "Pending" if target is None else ("Ready" if rolled_out else "RollingOut"),
        "conditions": conditions.merge(
            status.get("conditions") or [], desired, generation=generation, now=now
        ),
        "replicas": int(child_status.get("replicas") or 0) if child is not None else None,
        "readyReplicas": ready_replicas if child is not None else None,
    }
    if target is not None:
        new_status["endpoint"] = serving.endpoint(owner, settings)
        new_status["activeVersion"] = target.version
        new_status["canaryVersion"] = canary.version if canary is not None else None
        new_status["canaryTrafficPercent"] = share if canary is not None else None
        new_status["history"] = served
        new_status["rejectedVersions"] = rejected
        if rollout_status is not None:
            new_status["rollout"] = {k: v for k, v in rollout_status.items() if v is not None}
        if kill_switch is not None:
            new_status["killSwitch"] = kill_switch
    requeue = settings.resync_seconds if rolled_out or target is None else 30.0
    if requeue_rollout is not None:
        requeue = min(requeue, requeue_rollout)
    return common.Plan(status=new_status, apply=apply, delete=delete, events=events, requeue_after=requeue)


def _rollout(
    body: dict[str, Any],
    spec: api_deployment.DeploymentSpec,
    model: dict[str, Any],
    stable: serving.Target,
    *,
    served: list[dict[str, Any]],
    rejected: list[int],
    approvals: Sequence[dict[str, Any]],
    monitor_requires_approval: bool,
    pages: Sequence[str] | None,
    summaries: Sequence[dict[str, Any]] | None,
    now: str,
) -> rollouts.Outcome:
    """The rollout part of a pass: the stable version the Deployment decided on (a promotion or
    a kill switch holds even before the Model's alias follows), the candidate, the kill switch,
    then :func:`rollouts.advance`."""
    status = body.get("status") or {}
    current = status.get("rollout")
    if spec.model_ref.version is None and current and current.get("phase") in {"Promoted", "KillSwitch"}:
        decided, _ = resolve(model, int(current.get("stableVersion") or 0), None)
        if decided is not None:
            stable = decided
    candidate = None
    if spec.canary is not None:
        version = spec.canary.version
        candidate, _ = resolve(model, version, None if version is not None else "challenger")
        if candidate is not None and (candidate.version == stable.version or candidate.version in rejected):
            candidate = None
    annotations = body["metadata"].get("annotations") or {}
    token = annotations.get(rollouts.ROLLBACK_ANNOTATION)
    kill: tuple[str, int | None] | None = None
    kill_target = None
    if token and token != status.get("killSwitch"):
        wanted = str(annotations.get(rollouts.ROLLBACK_VERSION_ANNOTATION, ""))
        kill = (str(token)[:128], int(wanted) if wanted.isdigit() else None)
        if kill[1] is not None:
            kill_target, _ = resolve(model, kill[1], None)
        else:
            before = history.last_served_before(served, stable.version)
            if before is not None:
                kill_target, _ = resolve(model, int(before["version"]), None)
    requested_by = ((model.get("metadata") or {}).get("annotations") or {}).get(REQUESTED_BY_ANNOTATION)
    return rollouts.advance(
        deployment=body["metadata"]["name"],
        rollout=current,
        stable=stable,
        candidate=candidate,
        canary=spec.canary or api_deployment.Canary(),
        approval_required=spec.approval.required or monitor_requires_approval,
        approvals=approvals,
        requested_by=requested_by,
        kill=kill,
        kill_target=kill_target,
        served=served,
        pages=pages,
        summaries=summaries,
        now=now,
    )


async def _metrics_pages(context: common.Context, namespace: str, name: str) -> list[str]:
    """Every running serving pod's /metrics, read by pod IP (a pod that does not answer is skipped)."""
    pods = await context.kube.list(
        kube.path("v1", "Pod", namespace),
        label_selector=f"{builders.LABEL_DEPLOYMENT}={builders.label_value(name)}",
    )
    addresses = [
        p["status"]["podIP"]
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
        and p["status"].get("podIP")
        and not p["metadata"].get("deletionTimestamp")
    ]
    timeout = aiohttp.ClientTimeout(total=context.settings.summary_timeout_seconds)

    async def fetch(session: aiohttp.ClientSession, address: str) -> str | None:
        url = f"http://{address}:{context.settings.server_port}/metrics"
        try:
            async with session.get(url) as response:
                return await response.text() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            return None

    async with aiohttp.ClientSession(timeout=timeout) as session:
        answers = await asyncio.gather(*(fetch(session, a) for a in addresses))
    return [a for a in answers if a is not None]


async def reconcile(context: common.Context, namespace: str, name: str, now: str) -> float | None:
    body = await context.kube.get(kube.path(API_VERSION, "Deployment", namespace, name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    try:
        spec = api_deployment.DeploymentSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError:
        return None  # the CRD's schema makes this unreachable; nothing sensible to serve
    model = await context.kube.get(kube.path(API_VERSION, "Model", namespace, spec.model_ref.name))
    observed: dict[str, dict[str, Any] | None] = {
        "Deployment": await context.kube.get(kube.path("apps/v1", "Deployment", namespace, name)),
        "HorizontalPodAutoscaler": await context.kube.get(
            kube.path("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
        ),
    }
    approvals: list[dict[str, Any]] = []
    monitor_requires_approval = False
    pages: list[str] | None = None
    summaries: list[dict[str, Any]] | None = None
    annotations = body["metadata"].get("annotations") or {}
    if spec.canary is not None or annotations.get(rollouts.ROLLBACK_ANNOTATION):
        approvals = await context.kube.list(kube.path(API_VERSION, "Approval", namespace))
        monitors = await context.kube.list(kube.path(API_VERSION, "Monitor", namespace))
        watching = [m for m in monitors if (m.get("spec") or {}).get("deploymentRef", {}).get("name") == name]
        monitor_requires_approval = any(
            ((m.get("spec") or {}).get("actions") or {}).get("requireApproval") for m in watching
        )
        if spec.canary is not None and observed["Deployment"] is not None:
            pages = await _metrics_pages(context, namespace, name)
            if watching:  # labelled performance per version, for the canary analysis
                summaries = await monitors_reconciler.read_summaries(context, namespace, name)
    uid = body["metadata"]["uid"]
    for kind, child in list(observed.items()):
        refs = (child or {}).get("metadata", {}).get("ownerReferences") or []
        if child is not None and not any(r.get("uid") == uid for r in refs):
            observed[kind] = None  # not ours: never delete or report someone else's object
    extra: dict[str, Any] = {
        "approvals": approvals,
        "monitor_requires_approval": monitor_requires_approval,
        "pages": pages,
        "summaries": summaries,
    }
    result = plan(body, spec, model=model, observed=observed, settings=context.settings, now=now, **extra)
    # Apply first, then compute status from what the apply returned (the freshest child).
    for child in result.apply:
        applied = await context.kube.apply(child, common.FIELD_MANAGER)
        if child["kind"] == "Deployment" and child["apiVersion"] == "apps/v1":
            observed["Deployment"] = applied
    result = plan(body, spec, model=model, observed=observed, settings=context.settings, now=now, **extra)
    result.apply = []
    await common.write(context, body, result, now)
    await _sync_champion(context, model, result.status)
    return result.requeue_after


async def _sync_champion(
    context: common.Context, model: dict[str, Any] | None, status: dict[str, Any]
) -> None:
    """After a promotion or a kill switch, make the Model's champion alias follow (through its
    mlsteward.io/champion annotation, which the Model reconciler honours)."""
    rollout = status.get("rollout") or {}
    if model is None or rollout.get("phase") not in {"Promoted", "KillSwitch"}:
        return
    decided = rollout.get("stableVersion")
    if decided != status.get("activeVersion"):
        return
    annotations = (model.get("metadata") or {}).get("annotations") or {}
    champion = ((model.get("status") or {}).get("aliases") or {}).get("champion")
    if champion == decided or annotations.get(CHAMPION_ANNOTATION) == str(decided):
        return
    patch = {"metadata": {"annotations": {CHAMPION_ANNOTATION: str(decided)}}}
    await context.kube.merge_patch(kube.path_of(model), patch)
