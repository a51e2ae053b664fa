"""The operator: watches -> work queue -> reconcilers -> pure builders of child objects.

What belongs here: watching the three kinds (``handlers``), reconciling them level-based
(``reconcilers``), building child manifests (``builders``: no I/O, no clock, no environment,
no Kubernetes client), and the one API client (``kube``). See docs/operator.md.

Must not import the trainer, the server or the monitor: it launches them as programs and
meets them only at the formats of docs/contracts.md. It may import ``mlsteward.api`` and
``mlsteward.store``.
"""
