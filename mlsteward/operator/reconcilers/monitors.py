"""The Monitor reconciler: inject the drift-monitor sidecar, evaluate its /summary periodically.

The sidecar lives in another object (the target apps/v1 Deployment), so removing it when the
Monitor goes away is real cleanup: this is the one kind that carries a finalizer.
The ``/summary`` document is described in docs/monitoring.md; missing or malformed answers
count as no answer, never as "no drift".
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Literal

import aiohttp
import pydantic

from mlsteward.api import audit as api_audit
from mlsteward.api import deployment as api_deployment
from mlsteward.api import model as api_model
from mlsteward.api import monitor as api_monitor
from mlsteward.operator import conditions, kube, retraining, specs
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.builders import monitoring
from mlsteward.operator.conditions import Reason
from mlsteward.operator.reconcilers import common

API_VERSION = "mlsteward.io/v1alpha1"
FINALIZER = "mlsteward.io/monitor-sidecar"
SUMMARY_SCHEMA = "mlsteward.io/monitor-summary/v1"


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def evaluation_due(body: dict[str, Any], spec: api_monitor.MonitorSpec, now: str) -> float:
    """Seconds until the next evaluation is due (0: now)."""
    status = body.get("status") or {}
    if status.get("observedGeneration") != body["metadata"].get("generation"):
        return 0.0
    last, current = _parse_time(status.get("lastEvaluationTime")), _parse_time(now)
    if last is None or current is None:
        return 0.0
    return max(0.0, spec.evaluation_interval_seconds - (current - last).total_seconds())


def summarize(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the pods' /summary documents: rows summed, each feature's worst score kept."""
    rows = 0
    evaluated = False
    drifting = False
    degraded: list[str] = []
    drifting_features = 0
    consecutive = 0
    features: dict[str, dict[str, Any]] = {}
    for document in summaries:
        evaluation = document.get("evaluation")
        window = document.get("window") or {}
        if not isinstance(evaluation, dict):
            rows += int(window.get("currentPaneRows") or 0)
            continue
        rows += int(evaluation.get("rows") or 0)
        if evaluation.get("state") in {"ok", "drift"}:
            evaluated = True
        drifting = drifting or bool(evaluation.get("drifting"))
        drifting_features = max(drifting_features, int(evaluation.get("driftingFeatures") or 0))
        consecutive = max(consecutive, int(evaluation.get("consecutiveBreaches") or 0))
        for feature in evaluation.get("features") or []:
            score = feature.get("score")
            if not isinstance(score, int | float) or not isinstance(feature.get("name"), str):
                continue
            entry = {
                "name": feature["name"][:128],
                "test": str(feature.get("test", ""))[:32],
                "score": float(score),
                "threshold": float(feature.get("threshold") or 0.0),
                "drifting": feature.get("state") == "drift" or bool(feature.get("drifting")),
            }
            previous = features.get(entry["name"])
            if previous is None or entry["score"] > previous["score"]:
                features[entry["name"]] = entry
        performance = document.get("performance")
        if isinstance(performance, dict) and performance.get("breached"):
            degraded.append("performance below its limits")
        for item in document.get("fairness") or []:
            if isinstance(item, dict) and item.get("breached"):
                degraded.append(f"fairness breached for {item.get('attribute')}")
    ordered = sorted(features.values(), key=lambda f: (not f["drifting"], -f["score"], f["name"]))
    return {
        "rows": rows,
        "evaluated": evaluated,
        "drifting": drifting,
        "driftingFeatures": drifting_features,
        "consecutiveBreaches": consecutive,
        "features": ordered[:520],
        "degraded": sorted(set(degraded)),
    }


def plan(
    body: dict[str, Any],
    spec: api_monitor.MonitorSpec,
    *,
    target: dict[str, Any] | None,
    digest: str | None,
    model: dict[str, Any] | None = None,
    summaries: list[dict[str, Any]] | None,
    settings: settings_module.Settings,
    now: str,
) -> common.Plan:
    """Children and status. ``target`` is the watched mlsteward Deployment, ``digest`` its
    active version's artifact, ``summaries`` the pods' /summary answers (None: not evaluated
    in this pass, keep the previous numbers)."""
    meta = body["metadata"]
    generation = int(meta.get("generation", 1))
    status = body.get("status") or {}
    owner = builders.owner_of(body)
    previous = status.get("conditions") or []
    events: list[common.Event] = []
    apply: list[dict[str, Any]] = []
    patches: list[tuple[dict[str, Any], dict[str, Any]]] = []
    desired: list[conditions.Condition] = []
    new_status: dict[str, Any] = {"observedGeneration": generation}
    ref = spec.deployment_ref.name
    if target is None or digest is None:
        reason = Reason.DEPLOYMENT_NOT_FOUND
        text = (
            f"Deployment {ref} does not exist"
            if target is None
            else f"Deployment {ref} serves no version yet"
        )
        desired += [
            conditions.condition(conditions.READY, False, reason, text),
            conditions.condition(conditions.RECONCILING, True, reason, f"waiting: {text}"),
            conditions.condition(conditions.STALLED, False, Reason.RECONCILED, "no failure"),
        ]
        new_status["phase"] = "Pending"
    else:
        apply.append(monitoring.build_config_map(spec, owner))
        desired += [
            conditions.condition(
                conditions.READY,
                True,
                Reason.SIDECAR_INJECTED,
                f"the drift monitor runs beside Deployment {ref}'s server",
            ),
            conditions.condition(conditions.RECONCILING, False, Reason.RECONCILED, "up to date"),
            conditions.condition(conditions.STALLED, False, Reason.RECONCILED, "no failure"),
        ]
        if summaries is not None:
            combined = summarize(summaries)
            new_status.update(
                lastEvaluationTime=now,
                samples=combined["rows"],
                driftingFeatures=combined["driftingFeatures"],
                consecutiveBreaches=combined["consecutiveBreaches"],
                features=combined["features"],
            )
            if not summaries:
                insufficient = conditions.condition(
                    conditions.INSUFFICIENT_DATA,
                    True,
                    Reason.NO_SUMMARIES,
                    "no monitor sidecar answered /summary",
                )
            elif not combined["evaluated"]:
                insufficient = conditions.condition(
                    conditions.INSUFFICIENT_DATA,
                    True,
                    Reason.BELOW_MIN_SAMPLES,
                    f"{combined['rows']} rows; a window needs {spec.window.min_samples} before a verdict",
                )
            else:
                insufficient = conditions.condition(
                    conditions.INSUFFICIENT_DATA,
                    False,
                    Reason.EVALUATED,
                    f"{combined['rows']} rows evaluated",
                )
            if insufficient["status"] == "True":
                drifting = conditions.condition(
                    conditions.DRIFTING, None, Reason(insufficient["reason"]), "no verdict yet"
                )
            elif combined["drifting"]:
                names = ", ".join(f["name"] for f in combined["features"] if f["drifting"]) or "predictions"
                drifting = conditions.condition(
                    conditions.DRIFTING,
                    True,
                    Reason.DRIFT_DETECTED,
                    f"drift for {combined['consecutiveBreaches']} window(s) in a row: {names}"[:4096],
                )
            else:
                drifting = conditions.condition(conditions.DRIFTING, False, Reason.NO_DRIFT, "no drift")
            if combined["degraded"]:
                degraded = conditions.condition(
                    conditions.DEGRADED,
                    True,
                    Reason.FAIRNESS_BREACHED
                    if all(d.startswith("fairness") for d in combined["degraded"])
                    else Reason.PERFORMANCE_BELOW_LIMIT,
                    "; ".join(combined["degraded"]),
                )
            else:
                degraded = conditions.condition(
                    conditions.DEGRADED, False, Reason.WITHIN_LIMITS, "within limits"
                )
            for item in (drifting, degraded, insufficient):
                before = conditions.find(previous, item["type"])
                if before is None or before.get("status") != item["status"]:
                    kind: Literal["Normal", "Warning"] = (
                        "Warning"
                        if item["status"] == "True" and item["type"] != conditions.INSUFFICIENT_DATA
                        else "Normal"
                    )
                    events.append(
                        common.Event(
                            Reason(item["reason"]),
                            f"{item['type']}={item['status']}: {item['message']}",
                            kind,
                        )
                    )
            desired += [drifting, degraded, insufficient]
            breaching = insufficient["status"] == "False" and "True" in {
                drifting["status"],
                degraded["status"],
            }
            _retrain(
                body,
                spec,
                model=model,
                breaching=breaching,
                new_status=new_status,
                events=events,
                patches=patches,
                now=now,
            )
        else:
            desired += [
                c
                for c in previous
                if c.get("type") in {conditions.DRIFTING, conditions.DEGRADED, conditions.INSUFFICIENT_DATA}
            ]
        kinds = {c["type"]: c for c in desired}
        if conditions.is_true(list(kinds.values()), conditions.DRIFTING):
            new_status["phase"] = "Drifting"
        elif conditions.is_true(list(kinds.values()), conditions.DEGRADED):
            new_status["phase"] = "Degraded"
        elif conditions.is_true(list(kinds.values()), conditions.INSUFFICIENT_DATA):
            new_status["phase"] = "InsufficientData"
        else:
            new_status["phase"] = "Healthy" if kinds.get(conditions.DRIFTING) else "Pending"
    events += common.ready_transition(previous, desired)
    bare: list[conditions.Condition] = [
        {k: c[k] for k in ("type", "status", "reason", "message") if k in c} for c in desired
    ]
    new_status["conditions"] = conditions.merge(previous, bare, generation=generation, now=now)
    return common.Plan(status=new_status, apply=apply, events=events, patches=patches)


def _retrain(
    body: dict[str, Any],
    spec: api_monitor.MonitorSpec,
    *,
    model: dict[str, Any] | None,
    breaching: bool,
    new_status: dict[str, Any],
    events: list[common.Event],
    patches: list[tuple[dict[str, Any], dict[str, Any]]],
    now: str,
) -> None:
    """Count breaching evaluations and, with actions.retrain, ask the Model for a new version
    after drift.consecutiveWindows of them in a row, within the cooldown and the daily cap."""
    status = body.get("status") or {}
    count = int(status.get("breachingEvaluations") or 0) + 1 if breaching else 0
    new_status["breachingEvaluations"] = count
    if not spec.actions.retrain or count < spec.drift.consecutive_windows or model is None:
        return
    current = _parse_time(now)
    if current is None:
        return
    last = _parse_time(status.get("lastRetrainRequestTime"))
    today = int(status.get("retrainRequestsToday") or 0)
    budget = retraining.Budget(
        specs.duration_seconds(spec.actions.cooldown), spec.actions.max_retrains_per_day
    )
    refusal = budget.refusal(last, today, current)
    name = model["metadata"]["name"]
    if refusal is not None:
        if count == spec.drift.consecutive_windows:
            text = f"drift for {count} evaluations in a row; no retraining request to Model {name}: {refusal}"
            events.append(common.Event(Reason.RETRAIN_THROTTLED, text, "Warning"))
        return
    token = f"{retraining.DRIFT_PREFIX}{body['metadata']['name'][:80]}/{retraining.token_time(current)}"
    ref = {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": name, "namespace": model["metadata"]["namespace"]},
    }
    annotations: dict[str, str | None] = {specs.RETRAIN_ANNOTATION: token, "mlsteward.io/requested-by": None}
    patches.append((ref, {"metadata": {"annotations": annotations}}))
    new_status.update(
        breachingEvaluations=0,
        lastRetrainRequestTime=now,
        retrainRequestsToday=retraining.Budget.count_after(last, today, current),
    )
    events.append(
        common.Event(
            Reason.RETRAIN_REQUESTED,
            f"drift for {count} evaluations in a row: asked Model {name} to retrain ({token})",
        )
    )


async def read_summaries(context: common.Context, namespace: str, target_name: str) -> list[dict[str, Any]]:
    """Every running serving pod's monitor /summary, read by pod IP (one that does not answer
    is skipped); the Deployment reconciler reads them too, for the canary analysis."""
    pods = await context.kube.list(
        kube.path("v1", "Pod", namespace),
        label_selector=f"{builders.LABEL_DEPLOYMENT}={builders.label_value(target_name)}",
    )
    addresses = [
        p["status"]["podIP"]
        for p in pods
        if p.get("status", {}).get("phase") == "Running"
        and p["status"].get("podIP")
        and not p["metadata"].get("deletionTimestamp")
    ]
    timeout = aiohttp.ClientTimeout(total=context.settings.summary_timeout_seconds)

    async def fetch(session: aiohttp.ClientSession, address: str) -> dict[str, Any] | None:
        url = f"http://{address}:{context.settings.monitor_port}/summary"
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return None
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        if isinstance(document, dict) and document.get("schema") == SUMMARY_SCHEMA:
            return document
        return None

    async with aiohttp.ClientSession(timeout=timeout) as session:
        answers = await asyncio.gather(*(fetch(session, a) for a in addresses))
    return [a for a in answers if a is not None]


async def _set_finalizers(context: common.Context, body: dict[str, Any], finalizers: list[str]) -> None:
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": body["metadata"]["resourceVersion"]}}
    await context.kube.merge_patch(kube.path_of(body), patch)


async def _remove_sidecar(context: common.Context, namespace: str, target_name: str) -> None:
    for manifest, path in (
        (
            monitoring.build_sidecar_removal(target_name, namespace),
            kube.path("apps/v1", "Deployment", namespace, target_name),
        ),
        (
            monitoring.build_service_port_removal(target_name, namespace),
            kube.path("v1", "Service", namespace, target_name),
        ),
    ):
        if await context.kube.get(path) is not None:
            await context.kube.apply(manifest, monitoring.FIELD_MANAGER)


def _decision_log(target: dict[str, Any] | None) -> api_audit.DecisionLogPolicy | None:
    """The target Deployment's decision-log policy (None: the default policy)."""
    try:
        return api_deployment.DeploymentSpec.model_validate((target or {}).get("spec") or {}).decision_log
    except pydantic.ValidationError:
        return None


def _artifact_store(model: dict[str, Any] | None) -> api_model.ArtifactStoreSpec | None:
    """The Model's artifact store, where the sidecar reads the profile (None: the default PVC)."""
    try:
        return api_model.ModelSpec.model_validate((model or {}).get("spec") or {}).artifact_store
    except pydantic.ValidationError:
        return None


async def reconcile(context: common.Context, namespace: str, name: str, now: str) -> float | None:
    body = await context.kube.get(kube.path(API_VERSION, "Monitor", namespace, name))
    if body is None:
        return None
    spec = api_monitor.MonitorSpec.model_validate(body.get("spec") or {})
    target_name = spec.deployment_ref.name
    finalizers = list(body["metadata"].get("finalizers") or [])
    if body["metadata"].get("deletionTimestamp"):
        if FINALIZER in finalizers:
            await _remove_sidecar(context, namespace, target_name)
            await _set_finalizers(context, body, [f for f in finalizers if f != FINALIZER])
        return None
    if FINALIZER not in finalizers:
        await _set_finalizers(context, body, [*finalizers, FINALIZER])
        return 0.0  # come back with the new resourceVersion
    target = await context.kube.get(kube.path(API_VERSION, "Deployment", namespace, target_name))
    apps = await context.kube.get(kube.path("apps/v1", "Deployment", namespace, target_name))
    digest = None
    model = None
    if target is not None and apps is not None:
        active = (target.get("status") or {}).get("activeVersion")
        model_name = (target.get("spec") or {}).get("modelRef", {}).get("name", "")
        model = await context.kube.get(kube.path(API_VERSION, "Model", namespace, model_name))
        for v in ((model or {}).get("status") or {}).get("versions") or []:
            if v.get("version") == active and v.get("artifact"):
                digest = v["artifact"]["digest"]
    due = evaluation_due(body, spec, now)
    summaries = None
    if digest is not None and due <= 0:
        summaries = await read_summaries(context, namespace, target_name)
    result = plan(
        body,
        spec,
        target=target,
        digest=digest,
        model=model,
        summaries=summaries,
        settings=context.settings,
        now=now,
    )
    if digest is not None:
        await context.kube.apply(
            monitoring.build_sidecar_patch(
                target_name,
                namespace,
                name,
                digest=digest,
                settings=context.settings,
                artifact_store=_artifact_store(model),
                decision_log=_decision_log(target),
            ),
            monitoring.FIELD_MANAGER,
        )
        await context.kube.apply(
            monitoring.build_service_port_patch(target_name, namespace, context.settings),
            monitoring.FIELD_MANAGER,
        )
    await common.write(context, body, result, now)
    if digest is None:
        return min(30.0, context.settings.resync_seconds)
    return float(spec.evaluation_interval_seconds) if summaries is not None else max(due, 1.0)
