"""The trainer run inside training Jobs (and on a laptop with the same flags).

Loads and verifies data, enforces the protected-attribute policy, fits, converts to ONNX,
proves parity, measures quality and fairness, profiles, and writes the artifact.
Must not import the operator, the server or the monitor.
"""
