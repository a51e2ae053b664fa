"""The ONNX Runtime inference server speaking the Open Inference Protocol v2 (``mlsteward serve``).

Loads only ONNX artifacts: scikit-learn, joblib and pickle never enter this package.
Must not import the operator, the trainer or the monitor.

Layers, top to bottom: ``cli`` → ``server`` (process lifecycle) → ``transport`` (HTTP/1.1) and
``app`` (routes; one place turns errors into bodies) → ``service`` (what is served, routing,
shadow) → ``models`` / ``batching`` / ``runtime`` (load, batch, score) and ``feed`` (the monitor
channel). ``protocol``, ``tensors``, ``signatures`` and ``openapi`` are pure: no I/O, no clock, no
environment (``routing`` too, except its ``FileWatch``). ``settings`` is the one settings object; ``metrics``
registers on a registry it is given. Nothing here does anything at import.
"""
