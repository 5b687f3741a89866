"""The global info that :class:`~bridge.tianshou.manager.FlexibleMultiAgentPolicyManager` puts
on the transitions of algorithms with centralized critics (``enable_global_info``), e.g.
:class:`~bridge.tianshou.ctde.CTDEPolicy`.

For a row of the Collector's buffer it is a ``float32`` vector, the first of these the env has:

* the observation's ``"state"`` (``env.state_space``): the env's own ``state()``, or in AEC
  mode with ``include_state=True`` and no ``state()``, every agent's current observation;
* parallel mode: every agent's observation of the row (``obs["obs"]``, the padded layout),
  each flattened, concatenated in agent order (``N * D`` entries).

AEC mode without ``include_state=True`` has neither: its rows hold one agent's observation.
"""

from __future__ import annotations

import numpy as np
from tianshou.data import Batch

from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.pettingzoo.layout import flat_width, flatten_rows

__all__ = ["global_info_width", "global_rows", "local_width"]


def _name(env: EnhancedPettingZooEnv) -> str:
    return str(env.metadata.get("name", type(env.env).__name__))


def global_info_width(env: EnhancedPettingZooEnv) -> tuple[int, str]:
    """``(width, what)``: the length of the global info of ``env``'s rows and what it is.

    :raises ValueError: an AEC-mode env without ``include_state=True`` (no global info).
    """
    n = env.num_agents
    if env.state_space is not None:
        if env.has_state:
            return flat_width(env.state_space), f"the global state of {_name(env)} (env.state())"
        what = f"the {n} agents' current observations of {_name(env)} (its AEC 'state')"
        return flat_width(env.state_space), what
    if env.mode == "aec":
        raise ValueError(
            f"a centralized critic needs the global state, which AEC rows of {_name(env)} do "
            "not carry: wrap the env (the manager's and the Collector's) as "
            "EnhancedPettingZooEnv(env, mode='aec', include_state=True)"
        )
    width = n * flat_width(env.padded_observation_space)
    return width, f"the {n} agents' observations of {_name(env)}, concatenated"


def local_width(env: EnhancedPettingZooEnv, agent: object) -> tuple[int, str]:
    """``(width, what)``: the length of ``agent``'s own observation, flattened."""
    own = env.policy_observation_space(agent)
    if env.has_action_mask:
        own = own["obs"]
    return flat_width(own), f"the own observation of agent {agent!r} in {_name(env)}"


def global_rows(obs: Batch, j: np.ndarray, use_state: bool, num_agents: int) -> np.ndarray:
    """``float32[len(j), G]``: the global info of the rows ``j`` of a batch of env
    observations (``obs["state"]`` if ``use_state``, else every agent's ``obs["obs"]``).

    :raises RuntimeError: ``use_state`` but the observations have no ``"state"``.
    """
    if not use_state:
        return flatten_rows(obs.obs[j], len(j), num_agents)
    if "state" not in obs.get_keys():
        raise RuntimeError(
            "the collector's observations have no 'state', which the manager's env has: wrap "
            "the Collector's envs like the manager's (include_state=True in AEC mode)"
        )
    return flatten_rows(obs.state[j], len(j))
