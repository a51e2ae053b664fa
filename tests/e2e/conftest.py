"""The whole stack for real: control plane, local node agent, the chart's operator pod, trainer,
server, monitor.

One stack per session. If any part cannot start, the tests fail and say why; they never skip.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from mlsteward.dev import controlplane, stack, toolchain
from mlsteward.dev.agent import launcher


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    directory = tmp_path_factory.mktemp("stack")
    try:
        # The operator as shipped: installed by the Helm chart, its pod run by the agent.
        running = stack.start(directory, tools=toolchain.build(), operator_from_chart=True)
    except (toolchain.BuildError, controlplane.ControlPlaneError, launcher.AgentError) as error:
        pytest.fail(f"the local stack could not start: {error}", pytrace=False)
    yield running
    running.stop()
    print(f"\nstack logs kept in {directory} (agent/agent.log, agent/logs/ with the operator pod's)")


@pytest.fixture(scope="session")
def datasets(local_stack: stack.Stack) -> dict[str, pathlib.Path]:
    """Normal and drifted credit data, served over HTTP from the stack's data directory."""
    from mlsteward.training import datasets as generator

    directory = local_stack.data.directory
    paths = {
        "normal": directory / "credit.parquet",
        "shifted": directory / "credit-shifted.parquet",
        "corrupt": directory / "corrupt.parquet",
    }
    generator.write(generator.generate(6000, seed=0), paths["normal"])
    generator.write(generator.generate(3000, seed=1, shift=True), paths["shifted"])
    paths["corrupt"].write_bytes(b"PAR1 this is not a parquet file at all")
    return paths
