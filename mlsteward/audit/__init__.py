"""The decision log: durable, hash-chained evidence of every scored request (docs/audit.md).

``records`` (the canonical digest of a row's inputs), ``segments`` (the compressed,
chained segment format, contracts §7), ``locations`` (where segments live: a local/PVC
directory or an S3 bucket), ``chains`` (verification), ``retention`` (deleting whole expired
segments, with a ledger), ``reader`` (decisions in a time range, verified) and ``cli``
(``mlsteward audit decisions``).

Sits beside ``mlsteward.store`` and may import only it and ``mlsteward.api``; the monitor
sidecar writes segments through ``mlsteward.monitoring.decisions``. ``records`` and
``segments`` are pure (no I/O, no clock); ``chains``, ``reader`` and ``retention`` read and
delete through a ``locations.Location`` and take the time as an argument.
"""
