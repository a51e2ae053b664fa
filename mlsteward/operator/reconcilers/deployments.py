"""The Deployment reconciler: resolve the model version, apply the serving children, report.

Nothing is applied until a version resolves (a server with nothing to serve is not useful);
afterwards a version that stops resolving leaves the children serving what they serve.
"""

from __future__ import annotations

from typing import Any

import pydantic

from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.operator import conditions, kube
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.builders import serving
from mlsteward.operator.conditions import Reason
from mlsteward.operator.reconcilers import common

API_VERSION = "mlsteward.io/v1alpha1"


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
) -> common.Plan:
    """Children and status from the Model and the observed children (``observed`` by kind:
    ``Deployment`` and ``HorizontalPodAutoscaler``, each None when absent)."""
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
    if target is not None and model is not None:
        if spec.canary is not None:
            canary_version = spec.canary.version
            alias = None if canary_version is not None else "challenger"
            candidate, _ = resolve(model, canary_version, alias)
            if candidate is not None and candidate.version != target.version:
                canary, share = candidate, spec.canary.traffic_percent
        artifact_store = api_model.ModelSpec.model_validate(model["spec"]).artifact_store
        routing = serving.Routing(
            model=spec.model_ref.name,
            champion=target,
            challenger=canary,
            share=share,
            mode=spec.canary.mode if spec.canary is not None else "split",
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
    requeue = settings.resync_seconds if rolled_out or target is None else 30.0
    return common.Plan(status=new_status, apply=apply, delete=delete, events=events, requeue_after=requeue)


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
    uid = body["metadata"]["uid"]
    for kind, child in list(observed.items()):
        refs = (child or {}).get("metadata", {}).get("ownerReferences") or []
        if child is not None and not any(r.get("uid") == uid for r in refs):
            observed[kind] = None  # not ours: never delete or report someone else's object
    result = plan(body, spec, model=model, observed=observed, settings=context.settings, now=now)
    # Apply first, then compute status from what the apply returned (the freshest child).
    for child in result.apply:
        applied = await context.kube.apply(child, common.FIELD_MANAGER)
        if child["kind"] == "Deployment" and child["apiVersion"] == "apps/v1":
            observed["Deployment"] = applied
    result = plan(body, spec, model=model, observed=observed, settings=context.settings, now=now)
    result.apply = []
    result.status = {k: v for k, v in result.status.items()}
    await common.write(context, body, result, now)
    return result.requeue_after
