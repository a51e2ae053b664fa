"""Pure builders of the operator's child objects: spec + owner + settings -> a complete dict.

No I/O, no clock, no environment, no Kubernetes client: everything a builder needs is an
argument, and nobody patches its result afterwards. Names are deterministic, every child
carries an owner reference and the mlsteward labels, and every pod passes Pod Security
``restricted``.
"""
