"""The ``mlsteward`` command: one entry point, one sub-command per role.

Each role keeps its own argument parser in ``<role>/cli.py`` with a ``main(argv) -> int``;
this module only dispatches, importing the role lazily so that, for example, the serving
container never imports scikit-learn.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("mlsteward.training.cli", "train a Model spec into a verified ONNX artifact"),
    "serve": ("mlsteward.serving.cli", "serve ONNX artifacts over the Open Inference Protocol v2"),
    "monitor": ("mlsteward.monitoring.cli", "the drift-monitor sidecar"),
    "audit": ("mlsteward.audit.cli", "audit evidence: read and verify decision logs"),
    "operator": ("mlsteward.operator.cli", "run the Kubernetes operator"),
    "crds": ("mlsteward.api.cli", "write (or --check) crds/ from the API models"),
    "approve": ("mlsteward.operator.commands.approve", "approve a model version for a Deployment's rollout"),
    "rollback": ("mlsteward.operator.commands.rollback", "kill switch: back to the last approved version"),
    "history": ("mlsteward.operator.commands.history", "which version served when; verify the hash chain"),
    "verify": ("mlsteward.evidence.cli_verify", "retrain a version from its lineage and compare"),
    "lineage": ("mlsteward.evidence.cli_lineage", "which versions and Deployments used a dataset"),
    "docs": ("mlsteward.evidence.cli_docs", "write a version's documentation bundle (HTML, Markdown)"),
    "dev": ("mlsteward.dev.cli", "developer tools: build, up, down, demo"),
}


def _usage() -> str:
    lines = ["usage: mlsteward COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    lines += ["", "Run `mlsteward COMMAND --help` for a command's flags."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"--version", "version"}:
        from mlsteward import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"mlsteward: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(command[0])
    result: int = module.main(args[1:])
    return result


if __name__ == "__main__":
    raise SystemExit(main())
