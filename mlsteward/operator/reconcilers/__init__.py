"""One reconciler per kind: read the observed state, plan (pure), then write.

Each module has a pure ``plan(...)`` (observed state in, a :class:`common.Plan` out, unit-tested
without a cluster) and an async ``reconcile(context, namespace, name)`` that gathers what the
plan needs, applies its children with server-side apply, writes status with one explicit
patch, and emits the plan's Events. Reconciling is level-based: any pass repairs whatever an
earlier, interrupted pass left undone.
"""
