"""Fixtures for the development agent's tests: the session's control plane plus a real agent.

The agent's nodes are labelled ``type=mlsteward-agent``; every pod here is pinned to them with a
nodeSelector, so KWOK's fake nodes (which run nothing) never get these pods. The agent lives
for one module and its nodes are deleted afterwards, so the other cluster tests' pods (which
have no nodeSelector) land on KWOK's nodes as they expect. When a test fails, the end of the
agent's log is printed with the report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from mlsteward.dev import controlplane
from mlsteward.dev.agent import AgentHandle, start_agent


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="module")
def agent(
    control_plane: controlplane.ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentHandle]:
    """``mlsteward dev agent`` with two nodes, ``agent-0`` and ``agent-1``, and a 1 s first back-off."""
    state = tmp_path_factory.mktemp("agent-state")
    handle = start_agent(control_plane, state, nodes=2, name_prefix="agent", backoff_s=1.0)
    try:
        yield handle
    finally:
        handle.stop()
        # Later tests in the session create pods without a nodeSelector; they must not land on
        # (NotReady, soon tainted) agent nodes.
        control_plane.kubectl("delete", "node", *handle.node_names, "--wait=false", check=False)
        print(f"\nagent state and logs kept in {state}")


@pytest.fixture(autouse=True)
def _agent_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if request.node.stash.get(_FAILED, False) and "agent" in request.fixturenames:
        handle: AgentHandle = request.getfixturevalue("agent")
        print(f"\n--- the end of the agent's log ({handle.log}) ---\n{handle.log_tail()}")
