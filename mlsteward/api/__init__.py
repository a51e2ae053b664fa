"""The API of mlsteward's three resources: pydantic models of spec and status.

These models are the one source of the CRD schemas in ``crds/`` (``mlsteward crds``) and of
what the operator, the trainer and the CLI accept. No I/O, no clock, no environment, and no
Kubernetes client here: attribute docstrings become the descriptions ``kubectl explain`` prints.
"""

GROUP = "mlsteward.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "mlsteward"
