"""Developer tooling: build and run a real local Kubernetes control plane.

Nothing here is used by the operator, the trainer, the server or the monitor at run time.
Modules in this package may shell out and touch the file system; they must not be imported
by production code.
"""
