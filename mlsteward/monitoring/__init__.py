"""Drift, performance and fairness statistics and the sidecar that exports them.

The statistics modules are pure (no I/O, no clock, no environment); the sidecar wraps them.
Must not import the operator, the trainer or the server.
"""
