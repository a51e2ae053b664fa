"""Drift, performance and fairness statistics and the sidecar that exports them.

Pure modules (no I/O, no clock, no environment; time is passed in as ``now``):
``profiles`` (the reference profile, docs/contracts.md §2), ``profiling`` (building one from
data), ``summaries`` (mergeable bucket counts), ``statistics`` (PSI, KS, Jensen-Shannon,
Wasserstein, chi-square on binned counts), ``windows``, ``verdicts``, ``labels`` (delayed
ground truth), ``fairness``, ``batches`` (validating the server's batches), ``monitors``
(the state tying them together), ``views`` (/summary) and ``report`` (/report).

The sidecar around them: ``references`` (reads and verifies the artifact), ``metrics`` (the
Prometheus collector), ``app`` (ASGI), ``decisions`` (the decision-log writer, a thread off the
event loop), ``settings`` and ``cli`` (``mlsteward monitor``).

Must not import the operator, the trainer or the server; only ``mlsteward.api``,
``mlsteward.audit`` and ``mlsteward.store`` below it. Nothing here is re-exported: import the modules.
"""
