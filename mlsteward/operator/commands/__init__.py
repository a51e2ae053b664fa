"""People's commands for the safe model loop: ``mlsteward approve``, ``rollback`` and ``history``.

Each module has ``main(argv) -> int`` and talks to the API server with the current kubeconfig
(``$KUBECONFIG`` or ``~/.kube/config``), as the person running it. Installed as
``kubectl-mlsteward`` too, so ``kubectl mlsteward approve ...`` works as a kubectl plugin.
"""
