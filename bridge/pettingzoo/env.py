"""PettingZoo environments as one ``gymnasium.Env`` that Tianshou's ``Collector`` can drive.

:class:`EnhancedPettingZooEnv` wraps an AEC or a parallel PettingZoo environment in one of two
modes, each a small subclass over the same :class:`~bridge.pettingzoo.layout.PaddedLayout`:
:class:`~bridge.pettingzoo.aec.EnhancedAECEnv` and
:class:`~bridge.pettingzoo.parallel.EnhancedParallelEnv` (constructing
``EnhancedPettingZooEnv(env, mode)`` returns one of them). Both share the agent axis
``agents`` (``env.possible_agents`` in order) and one per-agent layout that the agents' own
spaces are padded to (``padded_observation_space``, ``padded_action_space``):

* Observations: if every agent has the same ``Box`` observation space, an observation keeps its
  shape (integer and bool dtypes are kept, floating dtypes become ``float32``). If every agent
  has the same ``Dict`` space (nested Dicts of Box, Discrete, MultiDiscrete, MultiBinary), an
  observation stays a dict of arrays, each with its space's dtype (``Discrete`` as an integer
  scalar; ``dict_observations="flatten"`` turns this off). Otherwise each agent's observation is
  flattened with ``gymnasium.spaces.flatten`` (``Discrete`` becomes one-hot) to ``float32`` and
  zero-padded at the end to the longest flat length ``D``. An ``"action_mask"`` key of a
  ``Dict`` observation becomes the mask: for the classic games' ``Dict(observation,
  action_mask)`` the ``"observation"`` entry is the observation; any other Dict keeps its
  other keys.
* Actions: all ``Discrete`` spaces become ``Discrete(A)`` with ``A`` the largest ``n``; actions an
  agent does not have are masked out, and a policy's index ``k`` is sent to the env as
  ``space.start + k``. All ``Box`` spaces keep their shape when identical and are otherwise
  flattened and padded to the longest length (padded entries have bounds ``[0, 0]`` and are
  dropped before the env sees them). Other action spaces raise ``NotImplementedError``.

**Parallel mode** -- one joint step of all agents per ``step()``::

    observation = {"obs":   [N, *obs] per-agent observations (zeros where no observation came;
                            a dict of such arrays for Dict observations, where a leaf
                            whose space excludes 0 gets its lower bound instead),
                   "alive": bool[N]   agents that act in the next step,
                   "mask":  bool[N, A] legal actions (only if ``has_action_mask``),
                   "state": the env's global state (only if ``has_state``)}
    action      = MultiDiscrete([A] * N) or Box[N, *act]; a dict {agent: action} works too
    reward      = float32[N] (0 for agents that are absent or dead)
    terminated / truncated: episode level; the episode ends when no agent is alive. It counts as
                   truncated if any agent finished by truncation (so values bootstrap), else
                   terminated.
    info        = {"terminated": bool[N], "truncated": bool[N], "alive": bool[N]}; the per-agent
                   flags are sticky within an episode.

An agent that finishes in a step still reports the observation the env returned for it in that
step (its final observation) with ``alive`` False; afterwards it gets zeros, reward 0, the
permissive mask (every action it has) and its actions are ignored (never passed to the env). An
agent that drops out of ``env.agents`` without a termination or truncation flag counts as
terminated. An AEC env is converted with :class:`CycleParallelEnv` (``aec_to_parallel`` without
its redundant observations; ``parallel_env()``s built by PettingZoo's ``parallel_wrapper_fn`` are
re-wrapped with it too) when its metadata says ``is_parallelizable`` (one step per full cycle)
and with ``turn_based_aec_to_parallel`` otherwise
(one step per turn; agents not on turn get the env's mask, which is all False in the classic
games, and their actions are ignored by the env).

**AEC mode** -- one agent's turn per ``step()``, a drop-in for ``tianshou.env.PettingZooEnv``::

    observation = {"agent_id": the name of the agent to act, as Tianshou's (with
                               ``agent_id="index"``: its int index, ``agent_idx[name]``, which
                               stacks into arrays that PPO's batches accept),
                   "obs":      its observation in the padded layout,
                   "mask":     bool[A] legal actions (all its actions if the env has no mask);
                               absent for continuous actions, as in Tianshou (with
                               ``agent_id="index"``: a bool[1] True placeholder),
                   "state":    with ``include_state=True`` only: the global state at this
                               turn -- the env's ``state()``, or all agents' current
                               observations where it has none (``state_space``)}
    observation_space: Tianshou's -- the first agent's own space if all agents' are equal (for
                   the classic games ``Dict(observation, action_mask)``, so a script's
                   ``env.observation_space["observation"]`` works); with ``agent_id="index"``
                   ``Dict(agent_id=Discrete(N), obs=<padded>, mask=bool[A])``.
    action      = one agent's action in ``padded_action_space``
    reward      = float32[N], see below
    terminated / truncated: episode level, as in parallel mode (the episode ends when
                   ``env.agents`` is empty)
    info        = {"terminated", "truncated": bool[N] sticky per-agent flags, "alive": bool[N],
                   "final": bool -- this row's agent had already finished; its action was ignored}

Reward credit (the fix for Tianshou's copy of the instantaneous ``env.rewards``, which leaves
e.g. every piston but the last with zero reward in its own rows): a row's reward vector is zero
except at the acting agent ``i``, where it holds everything agent ``i`` received since its
previous action -- the sum of ``env.rewards[i]`` over all AEC steps in between, which is what
PettingZoo's ``env.last()`` reports to ``i`` at its turn. So the reward *earned by* an action
arrives in the agent's next own row. When an agent finishes, PettingZoo yields it once more; that
turn becomes the agent's final row: its final observation, its last reward, ``info["final"]``
True, and whatever action the policy chooses is replaced by ``None`` (the mask then allows all
its actions). Every agent gets exactly one final row per episode, so summing an episode's reward
vectors gives each agent's exact return (the episode's last row also carries any reward still
pending for other agents; with well-behaved envs there is none). Agent ``i``'s transition from
its row ``j`` is completed by its next own row ``j'``: reward ``reward[j'][i]``, next observation
``obs[j']``, done if ``j'`` is final and ``info[j']["terminated"][i]`` (bootstrap if truncated).
A row's ``obs_next`` is the next agent's observation, as in Tianshou.

``mode="aec"`` converts a parallel env with ``parallel_to_aec``. A ``tianshou.env.PettingZooEnv``
passed in is unwrapped to the PettingZoo env it holds (it subclasses ``AECEnv`` but steps like a
gym env). An AEC-mode env is an instance of ``tianshou.env.PettingZooEnv`` (registered as a
virtual subclass when Tianshou is installed), so Tianshou's ``MultiAgentOffPolicyAlgorithm`` /
``MultiAgentOnPolicyAlgorithm`` and scripts that check the type take it; they then learn from
the per-agent reward credit described above.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import (
    aec_to_parallel_wrapper,
    parallel_to_aec,
    turn_based_aec_to_parallel,
)

from bridge.pettingzoo.cycle import CycleParallelEnv
from bridge.pettingzoo.layout import PaddedLayout

__all__ = ["AGENT_ID_FORMS", "MODES", "STATE_ERRORS", "EnhancedPettingZooEnv"]

MODES = ("auto", "aec", "parallel")
STATE_ERRORS = (TypeError, NotImplementedError, AttributeError)  # of a state() that fails
AGENT_ID_FORMS = ("name", "index")


def type_name(obj: Any) -> str:
    """``module.QualifiedName`` of ``obj``'s type (for messages)."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _unwrap(env: Any) -> Any:
    """The PettingZoo env to drive: a ``tianshou.env.PettingZooEnv``'s inner env (it steps like
    a gym env), and ``aec_to_parallel``'s usual ``parallel_env()`` re-wrapped by
    :class:`CycleParallelEnv`."""
    tianshou_env = sys.modules.get("tianshou.env.pettingzoo_env")
    tianshou_cls = getattr(tianshou_env, "PettingZooEnv", None)
    if tianshou_cls is not None and isinstance(env, tianshou_cls):
        env = env.env
    if type(env) is aec_to_parallel_wrapper:
        env = CycleParallelEnv(env.aec_env)
    return env


def _api_of(env: Any) -> str:
    """``"aec"`` or ``"parallel"``: the API the (unwrapped) env implements."""
    if isinstance(env, AECEnv):
        return "aec"
    if isinstance(env, ParallelEnv):
        return "parallel"
    raise TypeError(
        "EnhancedPettingZooEnv needs a pettingzoo.AECEnv or pettingzoo.ParallelEnv, got "
        f"{type_name(env)} (an env that only looks like one must subclass ParallelEnv)"
    )


def resolve_mode(env: Any, mode: str) -> str:
    """The mode (``"aec"`` or ``"parallel"``) that ``mode`` picks for ``env``.

    :raises ValueError: ``mode`` is not one of :data:`MODES`.
    :raises TypeError: ``env`` is neither an AEC nor a parallel PettingZoo env.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    api = _api_of(_unwrap(env))
    return api if mode == "auto" else mode


def convert_env(env: Any, mode: str) -> Any:
    """``env`` (unwrapped) converted to the API of ``mode`` (``"aec"`` or ``"parallel"``)."""
    env = _unwrap(env)
    api = _api_of(env)
    if api == mode:
        return env
    if mode == "aec":
        return parallel_to_aec(env)
    if getattr(env, "metadata", {}).get("is_parallelizable", False):
        return CycleParallelEnv(env)
    return turn_based_aec_to_parallel(env)


class EnhancedPettingZooEnv(gymnasium.Env):
    """A PettingZoo env (AEC or parallel) as one gymnasium env; see the module docstring.

    ``EnhancedPettingZooEnv(env, mode)`` returns an
    :class:`~bridge.pettingzoo.aec.EnhancedAECEnv` or an
    :class:`~bridge.pettingzoo.parallel.EnhancedParallelEnv`; both are instances of this class.

    :param env: a ``pettingzoo.AECEnv`` or ``pettingzoo.ParallelEnv`` (wrappers included), or a
        ``tianshou.env.PettingZooEnv`` (its inner env is used).
    :param mode: ``"auto"`` keeps the env's own API; ``"aec"`` steps one agent per ``step()``
        (drop-in for Tianshou's ``PettingZooEnv``, turn-based games); ``"parallel"`` steps all
        agents at once with stacked arrays (parameter sharing, centralized critics, fewer
        Python calls per agent-step).
    :param dict_observations: ``"keep"`` (default): if every agent observes the same ``Dict``
        space (nested Dicts of Box, Discrete, MultiDiscrete and MultiBinary), observations stay
        dicts of arrays, e.g. for ``bridge.DictObservationWrapper``; ``"flatten"``: flatten
        them to one ``float32`` vector per agent like any other non-Box space.
    :param include_state: put a global state in the observation (key ``"state"``), for
        centralized critics. Parallel mode: the env's ``state()`` where it has one (default);
        ``False`` skips ``env.state()`` on every step -- on mpe2 it observes every agent once
        more -- for policies that never read it (DQN, IPPO). AEC mode (default ``False``, as
        Tianshou's observation has no state): the env's ``state()`` where it has one, otherwise
        every agent's current observation (``env.observe``), flattened to ``float32`` and
        concatenated in agent order (zeros for agents that are gone); see ``state_space``.
    :param agent_id: AEC mode only: ``"name"`` (default, Tianshou's) or ``"index"``; see
        :class:`~bridge.pettingzoo.aec.EnhancedAECEnv`.

    Attributes: ``env`` (the PettingZoo env driven, after any conversion), ``mode``, ``agents``
    (``possible_agents``, the agent axis), ``num_agents``, ``agent_idx`` (agent -> index),
    ``agent_observation_spaces`` / ``agent_action_spaces`` (the env's own spaces per agent),
    ``padded_observation_space`` / ``padded_action_space`` (one agent in the common layout),
    ``has_action_mask``, ``has_state`` (the observation holds the env's own ``state()``),
    ``state_space`` (the space of the observation's ``"state"``, or None if it has none),
    ``dict_observations`` (True if observations are kept as dicts of arrays).
    """

    mode: str = "auto"  # the subclass's mode

    def __new__(cls, env: Any = None, mode: str = "auto", **kwargs: Any) -> EnhancedPettingZooEnv:
        if cls is EnhancedPettingZooEnv:
            from bridge.pettingzoo.aec import EnhancedAECEnv
            from bridge.pettingzoo.parallel import EnhancedParallelEnv

            chosen = resolve_mode(env, mode)
            cls = EnhancedAECEnv if chosen == "aec" else EnhancedParallelEnv
        return super().__new__(cls)

    def __init__(
        self,
        env: Any,
        mode: str = "auto",
        *,
        include_state: bool | None = None,
        dict_observations: str = "keep",
        agent_id: str = "name",
    ) -> None:
        if dict_observations not in ("keep", "flatten"):
            raise ValueError(
                f"dict_observations must be 'keep' or 'flatten', got {dict_observations!r}"
            )
        if agent_id not in AGENT_ID_FORMS:
            raise ValueError(f"agent_id must be one of {AGENT_ID_FORMS}, got {agent_id!r}")
        self.agent_id_form = agent_id
        if mode not in ("auto", self.mode):
            resolve_mode(env, mode)  # a bad mode or env raises its own error first
            raise ValueError(f"{type(self).__name__} steps in mode {self.mode!r}, not {mode!r}")
        self.env = convert_env(env, self.mode)
        self.agents = list(self.env.possible_agents)
        self.num_agents = len(self.agents)
        self.agent_idx = {agent: k for k, agent in enumerate(self.agents)}
        self._layout = PaddedLayout(self.env, self.agents, keep_dicts=dict_observations == "keep")
        self.dict_observations = self._layout.obs_tree
        self.agent_observation_spaces = dict(self._layout.obs_spaces)
        self.agent_action_spaces = dict(self._layout.act_spaces)
        self.padded_observation_space = self._layout.obs_space
        self.padded_action_space = self._layout.act_space
        self.has_action_mask = self._layout.discrete and (
            any(where is not None for where in self._layout.mask_at)
            or len(set(self._layout.action_n.tolist())) > 1
        )
        self.metadata = dict(getattr(self.env, "metadata", {}) or {})
        self.render_mode = getattr(self.env, "render_mode", None)
        self.state_space: spaces.Box | None = None
        self.has_state = False
        n = self.num_agents
        self._terminated = np.zeros(n, bool)
        self._truncated = np.zeros(n, bool)
        self._alive = np.zeros(n, bool)
        self._running = False
        self._init_spaces(include_state)

    def _init_spaces(self, include_state: bool | None) -> None:
        raise NotImplementedError

    def _probe_state(self) -> spaces.Box | None:
        """The state space if the env declares a Box ``state_space`` and ``state()`` works."""
        try:
            declared = self.env.state_space
        except AttributeError:
            return None
        if not isinstance(declared, spaces.Box):
            return None
        self.env.reset()  # state() needs a reset; the user resets again before stepping
        try:
            state = np.asarray(self.env.state())
        except STATE_ERRORS:
            return None
        if state.shape == declared.shape:
            return declared
        return spaces.Box(-np.inf, np.inf, state.shape, np.float32)

    # --- gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._terminated[:] = False
        self._truncated[:] = False
        self._running = True
        return self._reset(seed, options)

    def step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("call reset() before step() (the episode is over or not started)")
        return self._step(action)

    def _reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        raise NotImplementedError

    def _step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict]:
        raise NotImplementedError

    def policy_observation_space(self, agent: Any = None) -> spaces.Space:
        """What a sub-policy of ``bridge.FlexibleMultiAgentPolicyManager`` receives for one
        ``agent`` (default: the first), e.g. to build a ``bridge.DictObservationWrapper``.

        The agent's own observation (its own shape; a Dict stays a Dict), and if the env has
        action masks ``Dict(agent_id=Discrete(N), obs=..., mask=bool[its actions])``.
        """
        agent = self.agents[0] if agent is None else agent
        k = self._index(agent)
        layout = self._layout
        inner = layout.inner_obs[k]
        own: spaces.Space
        if layout.obs_tree or layout.obs_raw:
            own = layout.obs_space
        elif isinstance(inner, spaces.Box):
            own = spaces.Box(-np.inf, np.inf, inner.shape, np.float32)
        else:
            own = spaces.Box(-np.inf, np.inf, (spaces.flatdim(inner),), np.float32)
        if not self.has_action_mask:
            return own
        width = int(layout.action_n[k]) if layout.discrete else 1
        mask = spaces.Box(0, 1, (width,), bool)
        return spaces.Dict({"agent_id": spaces.Discrete(self.num_agents), "obs": own, "mask": mask})

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    def _info(self) -> dict[str, Any]:
        return {
            "terminated": self._terminated.copy(),
            "truncated": self._truncated.copy(),
            "alive": self._alive.copy(),
        }

    def _episode_flags(self) -> tuple[bool, bool]:
        """Episode-level (terminated, truncated) once no agent is alive."""
        if self._alive.any():
            return False, False
        self._running = False
        truncated = bool((self._truncated & ~self._terminated).any())
        return not truncated, truncated

    def _index(self, agent: Any) -> int:
        try:
            return self.agent_idx[agent]
        except KeyError:
            raise RuntimeError(
                f"{type_name(self.env)} reported agent {agent!r}, which is not in "
                f"possible_agents {self.agents}"
            ) from None
