"""``mlsteward dev``: build, start and stop the local control plane; run the demo."""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

from mlsteward.dev import controlplane, toolchain

DEFAULT_DIR = pathlib.Path(".cluster")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _cmd_build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    tools = toolchain.build(args.cache)
    print(f"control-plane tools ready under {tools.cache / 'bin'} ({time.monotonic() - started:.0f} s)")
    return 0


def _print_usage(cp: controlplane.ControlPlane) -> None:
    kubectl_dir = cp.toolchain.kubernetes_dir
    helm_dir = cp.toolchain.helm_dir
    print(
        f"""
The local control plane is running (API server {cp.server}).

  export KUBECONFIG={cp.kubeconfig}
  export PATH={kubectl_dir}:{helm_dir}:$PATH
  kubectl get nodes
  kubectl get crds -l app.kubernetes.io/part-of=mlsteward
  kubectl explain models.spec.dataset
  kubectl get mlsteward -A

Logs of every component: {cp.directory / "logs"}/
Stop it with: mlsteward dev down --dir {cp.directory}
"""
    )


def _cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cp = controlplane.up(args.dir, fake_nodes=args.nodes, tools=toolchain.build(args.cache))
    if args.crds:
        cp.kubectl("apply", "--server-side", "--field-manager=mlsteward-dev", "-f", str(REPO_ROOT / "crds"))
        cp.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=mlsteward",
        )
    print(f"control plane up in {time.monotonic() - started:.1f} s")
    _print_usage(cp)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = controlplane.down(args.dir)
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    cp = controlplane.load(args.dir)
    if cp is None:
        print(f"no control plane recorded in {args.dir}")
        return 1
    states = controlplane.status(cp)
    for component in controlplane.COMPONENTS:
        print(f"{component:<24} {'running' if states.get(component) else 'stopped'}")
    return 0 if states and all(states.values()) else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    """The main job: the model's life on a local stack, narrated; runs until Ctrl-C."""
    from mlsteward.dev import demo

    return demo.run(args.dir.resolve() / "demo", exit_when_done=args.exit)


def main(argv: list[str]) -> int:
    if argv[:1] == ["agent"]:  # the agent parses its own flags
        from mlsteward.dev.agent import cli as agent_cli

        return agent_cli.main(argv[1:])
    if argv[:1] == ["chart"]:
        from mlsteward.dev import chart

        return chart.main(argv[1:])
    parser = argparse.ArgumentParser(prog="mlsteward dev", description=__doc__)
    parser.add_argument(
        "--cache",
        type=pathlib.Path,
        default=None,
        help="toolchain cache (default: $MLSTEWARD_CACHE or ~/.cache/mlsteward)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build etcd, Kubernetes, kubectl, KWOK and Helm (cached)").set_defaults(
        func=_cmd_build
    )
    for name, func, text in (
        ("up", _cmd_up, "start the control plane"),
        ("down", _cmd_down, "stop what `up` started"),
        ("status", _cmd_status, "show which components run"),
        ("demo", _cmd_demo, "the main job: train, serve and monitor the example model; runs until Ctrl-C"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument(
            "--dir", type=pathlib.Path, default=DEFAULT_DIR, help="state directory (default .cluster)"
        )
        if name == "up":
            command.add_argument("--nodes", type=int, default=2, help="KWOK fake nodes (default 2)")
        if name == "up":
            command.add_argument("--crds", action="store_true", help="also install the CRDs from crds/")
        if name == "demo":
            command.add_argument(
                "--exit", action="store_true", help="stop and clean up after the story instead of waiting"
            )
        command.set_defaults(func=func)
    sub.add_parser("agent", help="run the development node agent (see `mlsteward dev agent --help`)")
    sub.add_parser("chart", help="copy charts/mlsteward/files/ from their sources (or --check them)")
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (toolchain.BuildError, controlplane.ControlPlaneError) as error:
        print(f"mlsteward dev {args.command}: {error}", file=sys.stderr)
        return 1
    return result
