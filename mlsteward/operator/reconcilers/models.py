"""The Model reconciler: versions, training Jobs, the cache, aliases and conditions.

A version is wanted when the newest version was not started for the current
``metadata.generation`` and ``mlsteward.io/retrain`` annotation. At most one version trains at
a time. Version N's Job is always named ``<model>-v<N>``; a Job found without a version record
(the operator died between creating it and writing status) is adopted, never duplicated.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from typing import Any

import pydantic
import yaml

from mlsteward.api import model as api_model
from mlsteward.operator import challenges, conditions, kube, outcomes, retraining, specs
from mlsteward.operator import settings as settings_module
from mlsteward.operator.builders import common as builders
from mlsteward.operator.builders import training
from mlsteward.operator.conditions import Reason
from mlsteward.operator.reconcilers import common
from mlsteward.store import artifacts

MAX_VERSIONS = 20
CHAMPION_ANNOTATION = "mlsteward.io/champion"
Version = dict[str, Any]


def _job_finished(job: dict[str, Any]) -> tuple[str, str, str] | None:
    """("Complete" | "Failed", reason, message) once the Job has finished, else None."""
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in {"Complete", "Failed"}:
            return cond["type"], cond.get("reason", ""), cond.get("message", "")
    return None


def jobs_needing_outcomes(body: dict[str, Any], jobs: list[dict[str, Any]]) -> list[str]:
    """Names of finished Jobs whose version is not final yet: their pods' messages are needed."""
    final = {
        v.get("jobName")
        for v in (body.get("status") or {}).get("versions") or []
        if v.get("phase") in {"Succeeded", "Failed"}
    }
    return [j["metadata"]["name"] for j in jobs if _job_finished(j) and j["metadata"]["name"] not in final]


def jobs_to_read(body: dict[str, Any], *, next_version: bool = True) -> list[str]:
    """The Jobs a pass must see: those of versions still training, and (``next_version``) the
    next version's, which exists without a record only if the operator died between creating
    it and writing status. Reading them by name keeps a pass O(1), where a label-selected list
    would cost every Job in the namespace on the API server."""
    status = body.get("status") or {}
    versions = status.get("versions") or []
    names = [v["jobName"] for v in versions if v.get("phase") == "Training" and v.get("jobName")]
    if next_version:
        latest = max([int(status.get("latestVersion") or 0), *(int(v["version"]) for v in versions)])
        names.append(training.job_name(body["metadata"]["name"], latest + 1))
    return sorted(set(names))


def cache_candidates(body: dict[str, Any], spec: api_model.ModelSpec) -> list[str]:
    """Digests of earlier versions that a new version could reuse (pinned data only)."""
    pinned = spec.dataset.sha256
    if pinned is None:
        return []
    wanted_hash = specs.spec_hash(spec)
    return [
        v["artifact"]["digest"]
        for v in (body.get("status") or {}).get("versions") or []
        if v.get("phase") == "Succeeded"
        and v.get("artifact")
        and v.get("specHash") == wanted_hash
        and v.get("datasetSha256") == pinned
    ]


def s3_reuse_candidate(body: dict[str, Any], spec: api_model.ModelSpec) -> str | None:
    """For an S3 store, the newest cached digest the training Job checks and reuses itself:
    the operator never reads the bucket's credentials, so it cannot verify the artifact."""
    if spec.artifact_store.s3 is None:
        return None
    candidates = cache_candidates(body, spec)
    return candidates[-1] if candidates else None


def _champion_digest(status: dict[str, Any], by_number: dict[int, Version]) -> str | None:
    """The current champion's artifact digest, which a new version's Job scores on its holdout."""
    champion = (status.get("aliases") or {}).get("champion")
    digest = ((by_number.get(champion) or {}).get("artifact") or {}).get("digest") if champion else None
    return digest if isinstance(digest, str) else None


def _lineage_complete(v: Version) -> bool:
    artifact = v.get("artifact") or {}
    return bool(
        artifact.get("digest") and artifact.get("uri") and v.get("datasetSha256") and v.get("specHash")
    )


def _promotable(v: Version) -> bool:
    return (
        v.get("phase") == "Succeeded"
        and bool((v.get("gates") or {}).get("promotable"))
        and _lineage_complete(v)
        and not v.get("documentationMissing")
    )


def documentation_message(v: Version) -> str:
    """Why a version with empty required documentation may not be promoted, naming the fields."""
    fields = ", ".join(f"spec.{f}" for f in v.get("documentationMissing") or [])
    return f"version {v['version']} is not promotable: required documentation is empty ({fields})"


def _finish(v: Version, job: dict[str, Any], message: str | None, versions: list[Version]) -> common.Event:
    """Turn a finished Job (and its pod's termination message) into the version's outcome."""
    state, job_reason, job_message = _job_finished(job) or ("Failed", "", "")
    name = job["metadata"]["name"]
    try:
        outcome = outcomes.parse(message)
    except outcomes.OutcomeError as error:
        if state == "Failed" and job_reason == "DeadlineExceeded":
            reason, text = (
                Reason.DEADLINE_EXCEEDED,
                f"training Job {name} ran past its deadline: {job_message}",
            )
        elif state == "Failed":
            reason, text = Reason.JOB_FAILED, f"training Job {name} failed ({job_reason}): {job_message}"
        else:
            reason = (
                Reason.OUTCOME_MISSING if message is None or not message.strip() else Reason.OUTCOME_INVALID
            )
            text = (
                f"training Job {name} completed but left no readable outcome (docs/contracts.md §3): {error}"
            )
        v.update(phase="Failed", reason=str(reason), message=text[:4096])
        return common.Event(reason, f"version {v['version']} failed: {text}", "Warning")
    v.update(
        artifact=outcome.artifact,
        datasetSha256=outcome.dataset_sha256,
        specHash=outcome.spec_hash or v.get("specHash"),
        metrics=outcome.metrics,
        gates=outcome.gates,
        message=outcome.message or None,
    )
    if outcome.champion_comparison is not None:
        v["championComparison"] = outcome.champion_comparison
    if outcome.succeeded and outcome.gates is not None and outcome.gates["promotable"]:
        v.update(phase="Succeeded", reason=None)
        if not _lineage_complete(v):
            v.update(phase="Failed", reason=str(Reason.LINEAGE_INCOMPLETE))
            text = f"version {v['version']} has an artifact but no dataset digest or spec hash"
            v["message"] = text
            return common.Event(Reason.LINEAGE_INCOMPLETE, text, "Warning")
        digest = (outcome.artifact or {}).get("digest", "")
        if outcome.reused:
            return _reused(v, digest, versions)
        return common.Event(
            Reason.VERSION_SUCCEEDED, f"version {v['version']} passed its gates: sha256:{digest}"
        )
    default = Reason.GATE_FAILED if outcome.succeeded else Reason.INTERNAL_ERROR
    reason = conditions.to_reason(outcome.reason, default)
    v.update(phase="Failed", reason=str(reason))
    return common.Event(
        reason, f"version {v['version']} failed ({reason}): {outcome.message}"[:1024], "Warning"
    )


def _reused(v: Version, digest: str, versions: list[Version]) -> common.Event:
    """A cache hit the training Job confirmed (S3 stores, --reuse-artifact): recorded and
    announced like one the operator verified itself, though a short Job ran."""
    v["cached"] = True
    earlier = next(
        (
            o["version"]
            for o in reversed(versions)
            if o is not v
            and o.get("phase") == "Succeeded"
            and (o.get("artifact") or {}).get("digest") == digest
        ),
        None,
    )
    whose = f"version {earlier}'s" if earlier is not None else "an earlier version's"
    return common.Event(
        Reason.CACHE_HIT,
        f"version {v['version']} reuses {whose} verified artifact sha256:{digest}; "
        "its training Job verified it in the store and did not train",
    )


def _adopt(job: dict[str, Any]) -> Version:
    meta = job["metadata"]
    annotations = meta.get("annotations") or {}
    generation = annotations.get(builders.ANNOTATION_GENERATION, "")
    version: Version = {
        "version": int(meta["labels"][builders.LABEL_VERSION]),
        "phase": "Training",
        "jobName": meta["name"],
        "createdAt": meta.get("creationTimestamp"),
        "cached": False,
        "metrics": {},
    }
    if generation.isdigit():
        version["generation"] = int(generation)
    if annotations.get(builders.ANNOTATION_RETRAIN):
        version["retrainToken"] = annotations[builders.ANNOTATION_RETRAIN]
    if annotations.get(builders.ANNOTATION_SPEC_HASH):
        version["specHash"] = annotations[builders.ANNOTATION_SPEC_HASH]
    return version


def plan(
    body: dict[str, Any],
    spec: api_model.ModelSpec,
    *,
    jobs: list[dict[str, Any]],
    messages: dict[str, str | None],
    verified: dict[str, bool],
    settings: settings_module.Settings,
    now: str,
) -> common.Plan:
    """The Model's next status, the Job to create (if any) and the Events, from observed state.

    ``jobs`` are the training Jobs this Model owns; ``messages`` the termination messages of
    finished Jobs' pods (None: none readable); ``verified`` says which cached digests verify.
    """
    meta = body["metadata"]
    generation = int(meta.get("generation", 1))
    status = body.get("status") or {}
    owner = builders.owner_of(body)
    events: list[common.Event] = []
    versions: list[Version] = [dict(v) for v in status.get("versions") or []]
    by_number = {v["version"]: v for v in versions}
    jobs_by_name = {j["metadata"]["name"]: j for j in jobs}

    for job in jobs:
        labels = job["metadata"].get("labels") or {}
        if not labels.get(builders.LABEL_VERSION, "").isdigit():
            continue
        number = int(labels[builders.LABEL_VERSION])
        if number not in by_number and number > max(by_number, default=0) - MAX_VERSIONS:
            by_number[number] = _adopt(job)
            versions.append(by_number[number])
    versions.sort(key=lambda v: int(v["version"]))

    for v in versions:
        if v.get("phase") != "Training":
            continue
        found = jobs_by_name.get(v.get("jobName") or "")
        if found is None:
            text = f"training Job {v.get('jobName')} disappeared before its outcome was read"
            v.update(phase="Failed", reason=str(Reason.JOB_MISSING), message=text)
            events.append(
                common.Event(Reason.JOB_MISSING, f"version {v['version']} failed: {text}", "Warning")
            )
        elif _job_finished(found):
            events.append(_finish(v, found, messages.get(found["metadata"]["name"]), versions))

    token = specs.retrain_token(body)
    newest = versions[-1] if versions else None
    training_now = [v for v in versions if v.get("phase") == "Training"]
    auto = dict(status.get("retraining") or {})
    handled = token is not None and token == auto.get("lastRequest")
    wanted = (
        newest is None
        or newest.get("generation") != generation
        or (newest.get("retrainToken") != token and not handled)
    )
    only_token = newest is not None and newest.get("generation") == generation
    if wanted and not training_now and only_token and token is not None and retraining.is_automatic(token):
        wanted = _admit_automatic(token, spec, versions=versions, auto=auto, events=events, now=now)
    annotate: dict[str, str | None] = {}
    schedule_delay = _schedule(body, spec, token=token, auto=auto, annotate=annotate, events=events, now=now)
    apply: list[dict[str, Any]] = []
    if wanted and not training_now:
        number = max([int(status.get("latestVersion") or 0), *by_number]) + 1
        spec_hash = specs.spec_hash(spec)
        record: Version = {
            "version": number,
            "generation": generation,
            "specHash": spec_hash,
            "createdAt": now,
            "cached": False,
            "metrics": {},
        }
        if token is not None:
            record["retrainToken"] = token
        # The card the version is trained with, not a later edit, decides (spec.card.required).
        if spec.card.missing_required():
            record["documentationMissing"] = spec.card.missing_required()
        hit = next(
            (
                v
                for v in reversed(versions)
                if v.get("phase") == "Succeeded"
                and v.get("specHash") == spec_hash
                and spec.dataset.sha256 is not None
                and v.get("datasetSha256") == spec.dataset.sha256
                and verified.get((v.get("artifact") or {}).get("digest", ""), False)
            ),
            None,
        )
        if hit is not None:
            record.update(
                phase="Succeeded",
                cached=True,
                artifact=hit["artifact"],
                datasetSha256=hit["datasetSha256"],
                metrics=hit.get("metrics") or {},
                gates=hit.get("gates"),
                message=f"reused the artifact of version {hit['version']}: same spec hash and pinned dataset",
            )
            events.append(
                common.Event(
                    Reason.CACHE_HIT,
                    f"version {number} reuses version {hit['version']}'s verified artifact "
                    f"sha256:{hit['artifact']['digest']}; no training Job ran",
                )
            )
        else:
            job = training.build_job(
                spec,
                owner,
                number,
                generation=generation,
                retrain_token=token,
                spec_hash=spec_hash,
                settings=settings,
                reuse_digest=s3_reuse_candidate(body, spec),
                champion_digest=_champion_digest(status, by_number),
            )
            record.update(phase="Training", jobName=job["metadata"]["name"])
            apply.append(job)
            events.append(
                common.Event(
                    Reason.TRAINING_STARTED, f"version {number} is training in Job {record['jobName']}"
                )
            )
        versions.append(record)
        by_number[number] = record
        training_now = [v for v in versions if v.get("phase") == "Training"]

    for v in versions:
        if v.get("documentationMissing") and v.get("phase") == "Succeeded":
            v.update(reason="DocumentationMissing", message=documentation_message(v))
    aliases = dict(status.get("aliases") or {})
    promotable = [v for v in versions if _promotable(v)]
    champion = aliases.get("champion")
    pinned = str((meta.get("annotations") or {}).get(CHAMPION_ANNOTATION, ""))
    if pinned.isdigit() and int(pinned) != champion and int(pinned) in {v["version"] for v in promotable}:
        # A Deployment promoted (or rolled back to) this version: it is the champion now.
        champion = int(pinned)
        events.append(common.Event(Reason.CHAMPION_SET, f"version {champion} is now the champion (promoted)"))
    if champion not in {v["version"] for v in promotable}:
        champion = None
    if champion is None and promotable:
        champion = promotable[0]["version"]
        events.append(common.Event(Reason.CHAMPION_SET, f"version {champion} is now the champion"))
    # The challenger: the newest promotable version after the champion with a different artifact.
    champion_digest = (by_number[champion].get("artifact") or {}).get("digest") if champion else None
    for v in promotable:
        if champion is None or v["version"] <= champion or v.get("challenge") is not None:
            continue
        if v["artifact"]["digest"] == champion_digest:
            continue
        v["challenge"] = challenges.compare(by_number[champion], v, spec.retraining.challenger_gates)
        if not v["challenge"]["passed"]:
            v.update(reason=str(Reason.CHALLENGER_REJECTED), message=v["challenge"]["message"])
            events.append(
                common.Event(
                    Reason.CHALLENGER_REJECTED,
                    f"version {v['version']}: {v['challenge']['message']}"[:1024],
                    "Warning",
                )
            )
    challengers = [
        v["version"]
        for v in promotable
        if champion is not None
        and v["version"] > champion
        and v["artifact"]["digest"] != champion_digest
        and (v.get("challenge") or {}).get("passed", True)
    ]
    challenger = challengers[-1] if challengers else None
    if challenger is not None and challenger != aliases.get("challenger"):
        events.append(common.Event(Reason.CHALLENGER_SET, f"version {challenger} is now the challenger"))
    aliases = {k: v for k, v in (("champion", champion), ("challenger", challenger)) if v is not None}

    keep = {champion, challenger}
    while len(versions) > MAX_VERSIONS:
        drop = next((v for v in versions if v["version"] not in keep), versions[0])
        versions.remove(drop)

    latest_number = max([int(status.get("latestVersion") or 0), *(int(v["version"]) for v in versions)])
    newest = versions[-1] if versions else None
    failed = newest is not None and newest.get("phase") == "Failed"
    desired: list[conditions.Condition] = []
    if champion is not None:
        desired.append(
            conditions.condition(
                conditions.READY,
                True,
                Reason.VERSION_READY,
                f"version {champion} passed its gates, has complete lineage and is the champion",
            )
        )
    elif training_now:
        desired.append(
            conditions.condition(
                conditions.READY,
                False,
                Reason.TRAINING,
                f"no promotable version yet; version {training_now[0]['version']} is training",
            )
        )
    else:
        detail = (
            f": version {newest['version']} failed ({newest.get('reason')}): {newest.get('message')}"
            if failed and newest
            else (
                f"; {documentation_message(newest)}" if newest and newest.get("documentationMissing") else ""
            )
        )
        desired.append(
            conditions.condition(
                conditions.READY, False, Reason.NO_PROMOTABLE_VERSION, f"no version passed its gates{detail}"
            )
        )
    if training_now:
        v = training_now[0]
        desired.append(
            conditions.condition(
                conditions.RECONCILING,
                True,
                Reason.TRAINING,
                f"version {v['version']} is training in Job {v.get('jobName')}",
            )
        )
    else:
        desired.append(conditions.condition(conditions.RECONCILING, False, Reason.RECONCILED, "up to date"))
    if failed and newest is not None:
        reason = conditions.to_reason(newest.get("reason"), Reason.VERSION_FAILED)
        kept = f"; version {champion} stays the champion" if champion is not None else ""
        desired.append(
            conditions.condition(
                conditions.STALLED,
                True,
                reason,
                f"version {newest['version']} failed: {newest.get('message') or reason}{kept}"[:4096],
            )
        )
    else:
        desired.append(conditions.condition(conditions.STALLED, False, Reason.RECONCILED, "no failure"))

    phase = "Training" if training_now else ("Failed" if failed else ("Ready" if champion else "Pending"))
    new_status = {
        "observedGeneration": generation,
        "phase": phase,
        "latestVersion": latest_number or None,
        "versions": [_clean(v) for v in versions],
        "aliases": aliases,
        "conditions": conditions.merge(
            status.get("conditions") or [], desired, generation=generation, now=now
        ),
    }
    if auto:
        new_status["retraining"] = auto
    requeue = settings.training_poll_seconds if training_now else settings.resync_seconds
    if schedule_delay is not None:
        requeue = min(requeue, schedule_delay)
    return common.Plan(
        status=new_status, apply=apply, events=events, requeue_after=requeue, annotate=annotate
    )


def _time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        value = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _admit_automatic(
    token: str,
    spec: api_model.ModelSpec,
    *,
    versions: list[Version],
    auto: dict[str, Any],
    events: list[common.Event],
    now: str,
) -> bool:
    """Whether an automatic request (drift or schedule) may start a version; records the answer
    in ``auto`` (status.retraining) and says why in an Event."""
    current = _time(now) or datetime.datetime.now(datetime.UTC)
    auto["lastRequest"] = token
    if token.startswith(retraining.SCHEDULE_PREFIX):
        auto["lastScheduleTime"] = now
    policy = spec.retraining
    budget = retraining.Budget(specs.duration_seconds(policy.cooldown), policy.max_per_day)
    last = _time(auto.get("lastRetrainTime"))
    refusal = budget.refusal(last, int(auto.get("retrainsToday") or 0), current)
    if token.startswith(retraining.DRIFT_PREFIX) and not policy.on_drift:
        refusal = "spec.retraining.onDrift is false"
    if refusal is not None:
        auto["message"] = f"request {token} refused: {refusal}"[:1024]
        events.append(common.Event(Reason.RETRAIN_REFUSED, auto["message"], "Warning"))
        return False
    pinned = spec.dataset.sha256
    trained = next((v for v in reversed(versions) if v.get("phase") == "Succeeded"), None)
    if pinned is not None and trained is not None and trained.get("datasetSha256") == pinned:
        auto["message"] = (
            f"request {token}: nothing to retrain, the dataset digest sha256:{pinned} is the one "
            f"version {trained['version']} learned from"
        )
        events.append(common.Event(Reason.NOTHING_TO_RETRAIN, auto["message"]))
        return False
    auto["retrainsToday"] = retraining.Budget.count_after(last, int(auto.get("retrainsToday") or 0), current)
    auto["lastRetrainTime"] = now
    auto["message"] = f"request {token} started a new version"
    events.append(common.Event(Reason.RETRAIN_STARTED, auto["message"]))
    return True


def _schedule(
    body: dict[str, Any],
    spec: api_model.ModelSpec,
    *,
    token: str | None,
    auto: dict[str, Any],
    annotate: dict[str, str | None],
    events: list[common.Event],
    now: str,
) -> float | None:
    """Ask for a scheduled retrain (through the annotation) when a cron time passed; the
    seconds until the next cron time."""
    schedule = spec.retraining.schedule
    current = _time(now)
    if schedule is None or current is None:
        return None
    created = _time(body["metadata"].get("creationTimestamp")) or current
    after = max(created, _time(auto.get("lastScheduleTime")) or created)
    try:
        fired = retraining.last_fire(schedule, after, current)
        upcoming = retraining.next_fire(schedule, current)
    except retraining.CronError as error:
        auto["message"] = str(error)[:1024]
        return None
    if fired is not None:
        wanted = retraining.SCHEDULE_PREFIX + retraining.token_time(fired)
        if token != wanted and auto.get("lastRequest") != wanted:
            annotate[specs.RETRAIN_ANNOTATION] = wanted
            events.append(common.Event(Reason.SCHEDULED_RETRAIN, f"schedule {schedule!r} fired at {wanted}"))
    return None if upcoming is None else max((upcoming - current).total_seconds(), 1.0)


def _clean(v: Version) -> Version:
    """A version record as the schema accepts it (no nulls)."""
    return {k: value for k, value in v.items() if value is not None}


def _owned(items: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [i for i in items if any(r.get("uid") == uid for r in i["metadata"].get("ownerReferences") or [])]


async def _termination_message(context: common.Context, namespace: str, job_name: str) -> str | None:
    pods = await context.kube.list(
        kube.path("v1", "Pod", namespace), label_selector=f"batch.kubernetes.io/job-name={job_name}"
    )
    pods.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            if status.get("name") != training.CONTAINER:
                continue
            for key in ("state", "lastState"):
                message = ((status.get(key) or {}).get("terminated") or {}).get("message")
                if message:
                    return str(message)
    return None


def _verify(root: pathlib.Path, digest: str) -> bool:
    try:
        artifacts.open_artifact(artifacts.artifact_dir(root, digest), digest)
    except (artifacts.ArtifactError, OSError):
        return False
    return True


async def _resolve_schema(
    context: common.Context, namespace: str, spec: api_model.ModelSpec
) -> api_model.ModelSpec:
    """A shared schema (spec.schema.configMapRef) copied into the spec the Job gets, so the trainer,
    the spec hash and the lineage see one declaration. Left unresolved when the ConfigMap cannot
    be read or parsed: the trainer then refuses it as DataInvalid, naming the ConfigMap."""
    schema = spec.feature_schema
    if schema is None or schema.config_map_ref is None or schema.columns is not None:
        return spec
    ref = schema.config_map_ref
    found = await context.kube.get(kube.path("v1", "ConfigMap", namespace, ref.name))
    text = ((found or {}).get("data") or {}).get(ref.key)
    if text is None:
        return spec
    try:
        return api_model.resolve_feature_schema(spec, yaml.safe_load(text))
    except (yaml.YAMLError, ValueError):
        return spec


async def reconcile(context: common.Context, namespace: str, name: str, now: str) -> float | None:
    """One level-based pass over the Model ``namespace/name``; returns when to come back.

    The pass starts from the cached body and Jobs when they are recent (no reads at all for a
    Model with nothing to do, and the new version's Job is the pass's first request). A stale
    start cannot do harm (see cache.py): the 409 of a taken Job name or of a changed Model
    sends it back to a fresh pass, which also reads the next version's Job to adopt it.
    """
    body = context.bodies.get("Model", namespace, name)
    if body is not None:
        try:
            return await _pass(context, body, now, fresh=False)
        except kube.ConflictError:
            pass
    body = await context.kube.get(kube.path("mlsteward.io/v1alpha1", "Model", namespace, name))
    if body is None:
        return None
    context.bodies.put(body)
    return await _pass(context, body, now, fresh=True)


async def _read_job(
    context: common.Context, namespace: str, job_name: str, fresh: bool
) -> dict[str, Any] | None:
    cached = None if fresh else context.bodies.get("Job", namespace, job_name)
    if cached is not None:
        return cached
    found = await context.kube.get(kube.path("batch/v1", "Job", namespace, job_name))
    if found is not None:
        context.bodies.put(found)
    return found


async def _pass(context: common.Context, body: dict[str, Any], now: str, *, fresh: bool) -> float | None:
    if body["metadata"].get("deletionTimestamp"):
        return None
    namespace = body["metadata"]["namespace"]
    try:
        spec = api_model.ModelSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        generation = int(body["metadata"].get("generation", 1))
        status = body.get("status") or {}
        message = f"spec does not validate: {str(error)[:2000]}"
        desired = [
            conditions.condition(conditions.READY, False, Reason.SPEC_INVALID, message),
            conditions.condition(conditions.RECONCILING, False, Reason.SPEC_INVALID, message),
            conditions.condition(conditions.STALLED, True, Reason.SPEC_INVALID, message),
        ]
        merged = conditions.merge(status.get("conditions") or [], desired, generation=generation, now=now)
        bad = common.Plan(status={"observedGeneration": generation, "phase": "Failed", "conditions": merged})
        _remember(context, body, await common.write(context, body, bad, now))
        return None
    spec = await _resolve_schema(context, namespace, spec)
    uid = body["metadata"]["uid"]
    training_jobs = jobs_to_read(body, next_version=False)
    found = [
        await _read_job(context, namespace, job_name, fresh)
        if fresh or job_name in training_jobs
        else context.bodies.get("Job", namespace, job_name)  # the next version's, if seen
        for job_name in jobs_to_read(body)
    ]
    jobs = _owned([j for j in found if j is not None], uid)
    messages = {
        job_name: await _termination_message(context, namespace, job_name)
        for job_name in jobs_needing_outcomes(body, jobs)
    }
    verified: dict[str, bool] = {}
    if context.settings.store_root:
        root = pathlib.Path(context.settings.store_root) / spec.artifact_store.claim_name
        for digest in cache_candidates(body, spec):
            verified[digest] = await asyncio.to_thread(_verify, root, digest)
    result = plan(
        body, spec, jobs=jobs, messages=messages, verified=verified, settings=context.settings, now=now
    )
    # The Job first, created (never applied) under its deterministic name: a 409 means it is
    # there already, which only a fresh pass may conclude anything from.
    created = bool(result.apply)
    for job in result.apply:
        context.bodies.wrote(await context.kube.create(job))
    result.apply = []

    async def write() -> None:
        _remember(context, body, await common.write(context, body, result, now))

    if created and context.defer is not None:
        # Creations first: the status write (and its Events) waits until the queue is idle.
        # Should the operator die meanwhile, the next pass adopts the Job (409 -> fresh pass).
        context.defer(("Model", namespace, body["metadata"]["name"]), write)
    else:
        await write()
    return result.requeue_after


def _remember(context: common.Context, body: dict[str, Any], written: dict[str, Any] | None) -> None:
    if written is not None:
        context.bodies.wrote(written, superseded=body["metadata"].get("resourceVersion"))
