"""``mlsteward dev agent``: a development stand-in for the kubelet (development and tests only).

KWOK only writes pod status; this agent really runs pods. It registers nodes labelled
``type=mlsteward-agent`` and runs the containers of pods bound to them as local processes:
the real ``command``/``args`` with their environment, images ignored, volumes mapped to host
directories, a loopback pod IP each (127.80.0.0/16), probes, restarts, termination messages
and the status the real controllers read. It enforces no ``securityContext`` and isolates
nothing. See docs/dev-agent.md.

Modules: ``kube`` (API client), ``envs`` (environment, path mapping), ``volumes``,
``processes``, ``probes``, ``containers``, ``status`` (pure), ``ipam``, ``node``, ``sources``,
``pods`` (the per-pod worker), ``agent`` (watch + workers), ``cli``, ``launcher``.
"""

from mlsteward.dev.agent.launcher import AgentError, AgentHandle, start_agent
from mlsteward.dev.agent.node import AGENT_LABEL, AGENT_LABEL_VALUE

__all__ = ["AGENT_LABEL", "AGENT_LABEL_VALUE", "AgentError", "AgentHandle", "start_agent"]
