"""Evidence for audits, built from what the other roles recorded: ``mlsteward verify`` (retrain a
version from its lineage and compare), ``mlsteward lineage`` (which versions and Deployments used
a dataset) and ``mlsteward docs`` (a documentation bundle for one version).

These are tools a person runs: they read the cluster (through the caller's kubeconfig, so RBAC
decides what they see) and the artifact store, and write only to their own output. They may use
the trainer's modules (to retrain exactly as a training Job does); no role imports this package.
"""
