"""Tianshou algorithms for the agents of a PettingZoo env: :class:`FlexibleMultiAgentPolicyManager`.

The manager is itself a Tianshou ``Algorithm``: Tianshou's unmodified ``Collector``,
``OnPolicyTrainer`` and ``OffPolicyTrainer`` drive it over envs wrapped in
:class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` (AEC or parallel mode). It maps every
agent to a policy id and every policy id to a Tianshou ``Algorithm`` (torch DQN, PPO, SAC, ...,
or a jmarl ``JaxPolicy``-backed one); sub-algorithms are only used through Tianshou's
``Algorithm`` / ``Policy`` interface.

Modes (``policy_map`` is agent id -> policy id):

* ``independent``: one algorithm per agent (a list in ``env.agents`` order, or a dict keyed by
  agent id); policy ids are the agent ids. This is what Tianshou's
  ``MultiAgentOffPolicyAlgorithm`` / ``MultiAgentOnPolicyAlgorithm`` do.
* ``shared``: one algorithm for all agents (policy id ``"shared"``).
* ``grouped``: one algorithm per group of ``agent_groups={"team": [agent ids], ...}`` (a dict
  keyed by group name, or a list in group order); policy ids are the group names.
* ``custom``: ``policy_mapping_fn(agent_id) -> policy id`` and a dict policy id -> algorithm.

An algorithm object that several agents (or policy ids) map to is one *distinct* algorithm.

**Acting.** Per step, each distinct algorithm's policy is called once, on a batch of all of its
agents' rows: in parallel mode the ``[R, N, ...]`` joint observation of ``R`` envs is sliced to
its agents and flattened to ``R * n`` rows (agent-minor), in AEC mode the rows whose acting agent
it serves are selected. The results are scattered back into the joint action. A sub-policy sees
its agents in their own spaces, cut out of the env's padded layout: the observation in the
agent's own shape (or ``Batch(obs=..., mask=..., agent_id=...)`` when the env has action masks,
so Tianshou's DQN and masked random policy work unchanged; the mask covers the agent's own
actions), ``info`` ``Batch(agent_id=...)``, and actions in the agent's own action space. So a
sub-algorithm is built for ``env.agent_observation_spaces[a]`` / ``agent_action_spaces[a]``
(for classic games, the ``"observation"`` part) of the agents it serves. Exploration
noise and action mapping (``map_action`` for action scaling/bounding) are dispatched the same
way, and the "within training step" flag set on the manager's policy is passed on to every
sub-policy (so DQN explores with ``eps_training`` while collecting for training).

**Learning.** ``update`` turns the collector's buffer into per-agent transitions, routes them to
their algorithms, and calls each distinct algorithm's own ``update`` exactly once, on a replay
buffer that holds all of its agents' trajectories (one sub-buffer per env x agent), so n-step
returns, GAE, prioritized replay and LR schedulers of the sub-algorithms work as they do in
single-agent Tianshou.

* Parallel mode: row ``j`` gives every agent alive in it the transition
  ``(obs[j][i], act[j][i], rew[j][i], obs_next[j][i])``; it is terminal or truncated by the
  agent's own flags in ``info``. Agents that are not alive in a row have no transition.
* AEC mode (re-stitching): agent ``i``'s transition from its row ``j`` is completed by its next
  own row ``j'`` of the same episode: reward ``rew[j'][i]`` (everything ``i`` received since its
  action, credited by the env), next observation ``obs[j']`` (its own), terminal if ``j'`` is
  its final row and it terminated, truncated if it was truncated. A transition whose ``j'`` has
  not been collected yet is carried over to the next update (if the next rows continue the
  episode; otherwise, e.g. after a collector reset, it is dropped).

On-policy updates consume the whole buffer (the on-policy trainer clears it after each update);
off-policy updates copy the rows added since the previous update into the manager's own replay
buffers (about the size of the collector's buffer in total; prioritized if it is prioritized),
from which every distinct algorithm samples ``sample_size`` transitions of its agents.

**Centralized critics.** An algorithm with a true ``enable_global_info`` attribute (e.g.
:class:`~bridge.tianshou.ctde.CTDEPolicy`) gets on each of its transitions ``info.global_obs``
and ``info.global_obs_next``: the global info (``float32[G]``, see
:mod:`bridge.tianshou.global_info`) of the rows of the transition's observation and next
observation -- the env's state, else every agent's observation of the same step. Its policy
still acts on the agent's own observation. An algorithm with a ``check_env(env, agent)`` method
has it called once at construction (for one agent it serves), to refuse an env it cannot
learn from before any data is collected.

**Joint algorithms.** In parallel mode, an algorithm whose policy's action space is the env's
joint action space (e.g. jmarl's ``JaxPPO`` with a ``JaxPolicy``, which shares parameters across
agents inside one jitted call) acts for all agents at once: it must be the only algorithm, its
policy gets the Collector's batches unchanged, and its ``update`` gets the Collector's buffer.

Not supported: recurrent sub-policies (hidden state), sub-policies' ``policy`` entries in the
buffer, wrapping the manager in a Tianshou wrapper algorithm (ICM), and more rows per env
between two off-policy updates than the collector's buffer holds per env.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from tianshou.algorithm.algorithm_base import (
    Algorithm,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    TrainingStats,
)
from tianshou.data import ReplayBuffer
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.tianshou.buffers import ReplayStore, latest, streams, trajectory_buffer
from bridge.tianshou.dispatch import MultiAgentDispatchPolicy
from bridge.tianshou.restitch import Restitcher, Stitched, buffer_rows
from jmarl.agents.sharing import SHARING_MODES, assign_policies, check_shared_spaces

__all__ = [
    "SHARING_MODES",
    "FlexibleMultiAgentOffPolicyManager",
    "FlexibleMultiAgentOnPolicyManager",
    "FlexibleMultiAgentPolicyManager",
    "MultiAgentDispatchPolicy",
    "MultiAgentTrainingStats",
    "build_policy_map",
]

_ALGORITHMS_KEY = "algorithms"
# one algorithm's own update on a buffer, with the arguments of the manager's update
_Update = Callable[[Algorithm, ReplayBuffer], TrainingStats]

# --- configuration ------------------------------------------------------------------------------


def build_policy_map(
    agents: Sequence[Hashable],
    mode: str,
    agent_groups: Mapping[str, Sequence[Hashable]] | None = None,
    policy_mapping_fn: Callable[[Any], str] | None = None,
) -> dict[Any, Any]:
    """Agent id -> policy id for a sharing mode (the rules of ``jmarl.agents.sharing``).

    :param agents: the agent ids, in env order.
    :param mode: one of :data:`SHARING_MODES`.
    :param agent_groups: for ``grouped``: group name -> its agent ids (every agent in one group).
    :param policy_mapping_fn: for ``custom``: agent id -> policy id (a ``str``).
    :raises ValueError: unknown mode, an option that the mode does not use, bad groups, or a
        mapping function that returns something other than ``str``.
    """
    if mode not in SHARING_MODES:
        raise ValueError(f"unknown sharing mode {mode!r}; expected one of {SHARING_MODES}")
    if agent_groups is not None and mode != "grouped":
        raise ValueError(f"agent_groups is only used by mode 'grouped', not {mode!r}")
    if policy_mapping_fn is not None and mode != "custom":
        raise ValueError(f"policy_mapping_fn is only used by mode 'custom', not {mode!r}")
    return dict(zip(agents, assign_policies(agents, mode, agent_groups, policy_mapping_fn)))


def _policies_by_id(
    policies: Any, mode: str, policy_map: dict[Any, Any], agents: list[Any]
) -> dict[Any, Algorithm]:
    """Policy id -> algorithm, from the single algorithm, list or dict the user passed."""
    ids = list(dict.fromkeys(policy_map.values()))
    if isinstance(policies, Algorithm):
        if mode != "shared":
            raise ValueError(
                f"mode {mode!r} needs one algorithm per policy (a list or a dict), got a single "
                "algorithm; pass mode='shared' to use one algorithm for all agents"
            )
        return {"shared": policies}
    if isinstance(policies, Mapping):
        return _from_dict(dict(policies), ids, policy_map)
    if isinstance(policies, Sequence) and not isinstance(policies, str):
        return _from_list(list(policies), mode, ids, agents)
    raise TypeError(
        "policies must be a tianshou Algorithm, a list or a dict of them, got "
        f"{type(policies).__name__}"
    )


def _from_list(policies: list[Any], mode: str, ids: list[Any], agents: list[Any]) -> dict:
    if mode == "custom":
        raise ValueError("mode 'custom' needs a dict policy id -> Algorithm, got a list")
    what = {"independent": "agent", "shared": "shared policy", "grouped": "group"}[mode]
    if len(policies) != len(ids):
        names = agents if mode == "independent" else ids
        raise ValueError(
            f"a list of algorithms needs one per {what}: got {len(policies)} for "
            f"{len(ids)} ({names})"
        )
    return dict(zip(ids, policies))


def _from_dict(policies: dict[Any, Any], ids: list[Any], policy_map: dict[Any, Any]) -> dict:
    if ids == ["shared"] and len(policies) == 1:
        return dict(policies)  # mode 'shared' with one named algorithm: its name is the id
    missing = [p for p in ids if p not in policies]
    if missing:
        users = {p: [a for a, q in policy_map.items() if q == p] for p in missing}
        raise ValueError(
            f"agents are mapped to unknown policies {users} (policy -> agents); "
            f"policies has {list(policies)}"
        )
    unused = [p for p in policies if p not in ids]
    if unused:
        raise ValueError(f"policies {unused} are not used by any agent; policy ids are {ids}")
    return {p: policies[p] for p in ids}


def _check_algorithms(by_id: dict[Any, Any]) -> None:
    for pid, algorithm in by_id.items():
        if not isinstance(algorithm, Algorithm):
            raise TypeError(
                f"policy {pid!r} must be a tianshou Algorithm (e.g. DQN(policy=...)), got "
                f"{type(algorithm).__name__}"
            )
    kinds = {pid: _kind(a) for pid, a in by_id.items()}
    other = [pid for pid, k in kinds.items() if k is None]
    if other:
        raise ValueError(
            f"policies {other} are neither on-policy nor off-policy algorithms; the manager "
            "trains OnPolicyAlgorithm or OffPolicyAlgorithm subclasses"
        )
    if len(set(kinds.values())) > 1:
        raise ValueError(
            "cannot mix on-policy and off-policy algorithms in one manager (they need "
            f"different trainers): {kinds}"
        )


def _kind(algorithm: Algorithm) -> str | None:
    if isinstance(algorithm, OnPolicyAlgorithm):
        return "on-policy"
    if isinstance(algorithm, OffPolicyAlgorithm):
        return "off-policy"
    return None


def _is_joint(algorithm: Algorithm, env: EnhancedPettingZooEnv) -> bool:
    """Whether the algorithm acts for all agents at once (its actions are the env's joint ones,
    as for a jmarl ``JaxPolicy``): parallel mode only."""
    return env.mode == "parallel" and algorithm.policy.action_space == env.action_space


def _check_joint(env: EnhancedPettingZooEnv, by_id: dict[Any, Algorithm]) -> bool:
    """A joint-action algorithm must be the only one; returns whether there is one."""
    joint = [pid for pid, a in by_id.items() if _is_joint(a, env)]
    if joint and len({id(a) for a in by_id.values()}) > 1:
        raise ValueError(
            f"policy {joint[0]!r} acts for all agents at once (its action space is the env's "
            f"joint action space {env.action_space}), so it must be the only algorithm"
        )
    return bool(joint)


def _check_shared_spaces(
    env: EnhancedPettingZooEnv, policy_map: dict[Any, Any], by_id: dict[Any, Algorithm]
) -> None:
    """One algorithm (network) may only serve agents whose own spaces are equal."""
    agents = env.agents
    check_shared_spaces(
        agents,
        [policy_map[a] for a in agents],
        [env.agent_observation_spaces[a] for a in agents],
        [env.agent_action_spaces[a] for a in agents],
        owners=[id(by_id[policy_map[a]]) for a in agents],
    )


TIANSHOU_ROWS_WARNING = (
    "FlexibleMultiAgentPolicyManager: the collector's envs are tianshou.env.PettingZooEnv, "
    "whose rewards are the instantaneous env.rewards and whose episodes end when the first agent "
    "finishes. The manager credits each agent the sum of its rewards from its action to its "
    "next one (not Tianshou's per-row reward), and ends every agent's last transition where "
    "the episode ends. Collect with bridge.EnhancedPettingZooEnv(env, mode='aec') for exact "
    "per-agent transitions (final rows, per-agent flags)."
)
# keyword arguments of the wrapped env, which the manager builds from a PettingZoo env
_ENV_KWARGS = ("include_state", "dict_observations", "agent_id")
# Tianshou 1.x's MultiAgentPolicyManager passed these on to BasePolicy; in Tianshou 2 each
# sub-algorithm owns them, so the manager accepts and ignores them with a warning
_TIANSHOU1_KWARGS = (
    "action_scaling",
    "action_bound_method",
    "action_space",
    "observation_space",
    "lr_scheduler",
)


def _one_of(policies: Any, algorithms: Any) -> Any:
    """The algorithms given as ``policies`` (jmarl's keyword) or ``algorithms`` (Tianshou's)."""
    if policies is not None and algorithms is not None:
        raise TypeError("pass the algorithms as policies= or as algorithms=, not both")
    if policies is None and algorithms is None:
        raise TypeError("FlexibleMultiAgentPolicyManager needs policies= (or algorithms=)")
    return algorithms if policies is None else policies


def _wrapped_env(env: Any, kwargs: dict[str, Any]) -> EnhancedPettingZooEnv:
    """``env`` as an :class:`EnhancedPettingZooEnv` (wrapping a PettingZoo env or a Tianshou
    ``PettingZooEnv`` with the env keyword arguments among ``kwargs``).

    :raises TypeError: an unknown keyword, or env keywords for an env that is already wrapped.
    """
    unknown = [k for k in kwargs if k not in _ENV_KWARGS + _TIANSHOU1_KWARGS]
    if unknown:
        raise TypeError(
            f"FlexibleMultiAgentPolicyManager got unexpected keyword arguments {unknown}; it "
            f"takes the env's {list(_ENV_KWARGS)} (when env is not wrapped yet)"
        )
    ignored = [k for k in kwargs if k in _TIANSHOU1_KWARGS]
    if ignored:
        warnings.warn(
            f"FlexibleMultiAgentPolicyManager ignores {ignored}: Tianshou 1.x's "
            "MultiAgentPolicyManager passed them to BasePolicy; in Tianshou 2 each "
            "sub-algorithm's policy owns its action scaling, bounds, spaces and LR schedule",
            DeprecationWarning,
            stacklevel=4,
        )
    env_kwargs = {k: v for k, v in kwargs.items() if k in _ENV_KWARGS}
    if isinstance(env, EnhancedPettingZooEnv):
        if env_kwargs:
            raise TypeError(
                f"env is already an EnhancedPettingZooEnv: set {list(env_kwargs)} when "
                "wrapping it, not on the manager"
            )
        return env
    return EnhancedPettingZooEnv(env, **env_kwargs)


class _Config(NamedTuple):
    """A checked configuration: the maps and the distinct algorithms with their agents."""

    mode: str
    policy_map: dict[Any, Any]
    by_id: dict[Any, Algorithm]
    keys: list[str]  # module key of each distinct algorithm
    distinct: list[Algorithm]
    agents_of: list[np.ndarray]  # agent indices served by each distinct algorithm
    first_id: list[Any]  # first policy id of each distinct algorithm
    joint: bool  # the only algorithm acts on joint observations and actions


def _configure(
    policies: Any,
    env: EnhancedPettingZooEnv,
    mode: str,
    agent_groups: Mapping[str, Sequence[Hashable]] | None,
    policy_mapping_fn: Callable[[Any], str] | None,
) -> _Config:
    """Checks a configuration; raises ``ValueError`` / ``TypeError`` naming what is wrong."""
    policy_map = build_policy_map(env.agents, mode, agent_groups, policy_mapping_fn)
    by_id = _policies_by_id(policies, mode, policy_map, list(env.agents))
    if mode == "shared":
        policy_map = dict.fromkeys(env.agents, next(iter(by_id)))
    _check_algorithms(by_id)
    joint = _check_joint(env, by_id)
    if not joint:
        _check_shared_spaces(env, policy_map, by_id)
    distinct: dict[int, list[Any]] = {}
    for k, agent in enumerate(env.agents):
        pid = policy_map[agent]
        distinct.setdefault(id(by_id[pid]), [pid, []])[1].append(k)
    entries = list(distinct.values())
    return _Config(
        mode=mode,
        policy_map=policy_map,
        by_id=by_id,
        keys=_module_keys([pid for pid, _ in entries]),
        distinct=[by_id[pid] for pid, _ in entries],
        agents_of=[np.asarray(idx, np.int64) for _, idx in entries],
        first_id=[pid for pid, _ in entries],
        joint=joint,
    )


def _global_info(env: EnhancedPettingZooEnv, config: _Config) -> list[bool]:
    """Which distinct algorithms get the global info; each one's ``check_env`` is called."""
    wants = []
    for algorithm, agents in zip(config.distinct, config.agents_of):
        check = getattr(algorithm, "check_env", None)
        if callable(check) and not config.joint:
            check(env, env.agents[int(agents[0])])
        wants.append(bool(getattr(algorithm, "enable_global_info", False)))
    return wants


def _module_keys(pids: list[Any]) -> list[str]:
    """``ModuleDict`` keys for policy ids: their own names where torch allows them."""
    keys: list[str] = []
    for n, pid in enumerate(pids):
        name = str(pid)
        bad = name in dir(nn.ModuleDict) or not name or "." in name or name in keys
        keys.append(f"_policy_{n}" if bad else name)
    return keys


# --- the manager --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class MultiAgentTrainingStats(TrainingStats):
    """Stats of one manager update: each distinct algorithm's own stats by its policy id."""

    per_policy: dict[str, TrainingStats] = field(default_factory=dict)

    def get_loss_stats_dict(self) -> dict[str, float]:
        """Every sub-algorithm's loss stats, keys prefixed by ``"<policy id>/"``."""
        return {
            f"{pid}/{key}": value
            for pid, stats in self.per_policy.items()
            for key, value in stats.get_loss_stats_dict().items()
        }


def _manager_class(policies: Any) -> type:
    """The on- or off-policy manager class for the algorithms in ``policies``."""
    if isinstance(policies, Mapping):
        values = list(policies.values())
    elif isinstance(policies, Algorithm):
        values = [policies]
    elif isinstance(policies, Sequence) and not isinstance(policies, str):
        values = list(policies)
    else:
        values = []
    kinds = {_kind(a) for a in values if isinstance(a, Algorithm)}
    if kinds == {"on-policy"}:
        return FlexibleMultiAgentOnPolicyManager
    return FlexibleMultiAgentOffPolicyManager  # mixed or bad input: __init__ raises


class FlexibleMultiAgentPolicyManager(Algorithm):
    """Tianshou algorithms for the agents of one PettingZoo env, as one Tianshou ``Algorithm``.

    Constructing it returns a :class:`FlexibleMultiAgentOnPolicyManager` (an
    ``OnPolicyAlgorithm``) or a :class:`FlexibleMultiAgentOffPolicyManager` (an
    ``OffPolicyAlgorithm``), whichever the sub-algorithms are, so Tianshou's trainers and
    ``run_training`` accept it. See the module docstring for how it acts and learns.

    :param policies: a Tianshou ``Algorithm`` (with ``mode="shared"``), a list (one per agent
        in ``env.agents`` order for ``independent``, one per group in ``agent_groups`` order for
        ``grouped``) or a dict policy id -> ``Algorithm``. The same algorithm object may appear
        under several agents or ids: it is then shared, and updated once per update step.
    :param env: the :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` the Collector's envs
        are copies of (a PettingZoo env is wrapped with ``mode="auto"``). Only its agents,
        spaces and mode are read.
    :param mode: ``"independent"``, ``"shared"``, ``"grouped"`` or ``"custom"``.
    :param agent_groups: for ``grouped``: group name -> agent ids; every agent in one group.
    :param policy_mapping_fn: for ``custom``: agent id -> policy id (a key of ``policies``).
    :param algorithms: Tianshou's keyword for ``policies`` (``MultiAgentOffPolicyAlgorithm(
        algorithms=[...], env=env)`` works with the class name swapped); give one of the two.
    :param kwargs: keyword arguments of the :class:`EnhancedPettingZooEnv` the manager wraps a
        PettingZoo env in (``include_state``, ``dict_observations``, ``agent_id``); Tianshou
        1.x's ``action_scaling``, ``action_bound_method``, ``action_space``,
        ``observation_space`` and ``lr_scheduler`` are ignored with a ``DeprecationWarning``
        (each sub-algorithm owns them in Tianshou 2). Anything else raises ``TypeError``.
    :raises ValueError: a bad configuration: unknown mode, agents missing from or unknown to
        ``agent_groups``, a mapping to an unknown policy, a policy no agent uses, a list of the
        wrong length, one algorithm for agents with different spaces, or a mix of on- and
        off-policy algorithms.
    :raises TypeError: ``policies`` holds something that is not a Tianshou ``Algorithm``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> FlexibleMultiAgentPolicyManager:
        if cls is FlexibleMultiAgentPolicyManager:
            given = kwargs.get("policies", args[0] if args else None)
            cls = _manager_class(kwargs.get("algorithms") if given is None else given)
        return super().__new__(cls)

    def __init__(
        self,
        policies: Algorithm | Sequence[Algorithm] | Mapping[str, Algorithm] | None = None,
        env: Any = None,
        mode: str = "independent",
        agent_groups: Mapping[str, Sequence[Hashable]] | None = None,
        policy_mapping_fn: Callable[[Any], str] | None = None,
        *,
        algorithms: Algorithm | Sequence[Algorithm] | Mapping[str, Algorithm] | None = None,
        **kwargs: Any,
    ) -> None:
        policies = _one_of(policies, algorithms)
        if env is None:
            raise TypeError("FlexibleMultiAgentPolicyManager needs env= (the wrapped env)")
        penv = _wrapped_env(env, kwargs)
        config = _configure(policies, penv, mode, agent_groups, policy_mapping_fn)
        self._check_kind(config)
        sub_policies = [a.policy for a in config.distinct]
        policy = MultiAgentDispatchPolicy(
            penv, sub_policies, config.agents_of, config.joint, _global_info(penv, config)
        )
        super().__init__(policy=policy)
        self.sub_algorithms = nn.ModuleDict(dict(zip(config.keys, config.distinct)))
        self.mode = config.mode
        self.env_mode = penv.mode
        self.agents = list(penv.agents)
        self.agent_idx = dict(penv.agent_idx)
        self.policy_map = dict(config.policy_map)
        self._by_id = dict(config.by_id)
        self._first_id = list(config.first_id)
        self._restitcher = Restitcher(self.policy.layout.parallel)
        self._warned_tianshou_rows = False

    def _warn_if_tianshou_rows(self, rows: Any) -> None:
        """Names, once, how transitions from ``tianshou.env.PettingZooEnv`` rows differ."""
        if self._warned_tianshou_rows or "tianshou" not in rows.get_keys():
            return
        if not bool(np.asarray(rows.tianshou).any()):
            return
        self._warned_tianshou_rows = True
        warnings.warn(TIANSHOU_ROWS_WARNING, FutureWarning, stacklevel=3)

    def _check_kind(self, config: _Config) -> None:
        expected = getattr(type(self), "_KIND", None)
        found = _kind(config.distinct[0])
        if expected is not None and found != expected:
            raise ValueError(
                f"{type(self).__name__} trains {expected} algorithms, got {found} ones; "
                "construct FlexibleMultiAgentPolicyManager to pick the right kind"
            )

    @property
    def algorithms(self) -> dict[Any, Algorithm]:
        """Policy id -> its algorithm."""
        return dict(self._by_id)

    def get_algorithm(self, agent_id: Any) -> Algorithm:
        """The algorithm that acts and learns for ``agent_id`` (as Tianshou's MARL classes)."""
        return self._by_id[self.policy_map[agent_id]]

    def _distinct(self) -> list[tuple[str, Algorithm]]:
        """``(policy id, algorithm)`` of every distinct algorithm, in agent order."""
        return list(zip(self._first_id, self.sub_algorithms.values()))

    def _require_training_step(self) -> None:
        if not self.policy.is_within_training_step:
            raise RuntimeError(
                "update() was called outside of a training step: run it from a Tianshou "
                "trainer or inside tianshou.utils.torch_utils.policy_within_training_step("
                "manager.policy)"
            )

    def _stats(self, per_policy: dict[str, TrainingStats], start: float) -> TrainingStats:
        stats = MultiAgentTrainingStats(per_policy=per_policy)
        stats.train_time = time.time() - start
        return stats

    def _update_all(self, buffer: ReplayBuffer | None, update: _Update) -> TrainingStats:
        """The update both kinds share: checks that a training step is running, then updates
        nothing (no buffer), the joint algorithm on the collector's buffer, or every distinct
        algorithm on its agents' transitions (:meth:`_update_routed`).

        :param update: ``update(algorithm, buffer)`` calls one algorithm's own ``update`` with
            the kind's arguments (minibatch size and passes, or sample size).
        """
        self._require_training_step()
        start = time.time()
        if buffer is None:
            return self._stats({}, start)
        if self.policy.joint:
            (pid, algorithm), *_ = self._distinct()
            return self._stats({pid: update(algorithm, buffer)}, start)
        return self._stats(self._update_routed(buffer, update), start)

    def _update_routed(self, buffer: ReplayBuffer, update: _Update) -> dict[str, TrainingStats]:
        """Each distinct algorithm's stats after ``update`` on its agents' transitions."""
        raise NotImplementedError

    # --- state -------------------------------------------------------------------------------

    def state_dict(  # type: ignore[override]
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Any]:
        """Every distinct sub-algorithm's own ``state_dict`` (optimizers included).

        Keys are ``"algorithms.<policy id>.<key>"``.
        """
        out = destination if destination is not None else {}
        for key, algorithm in self.sub_algorithms.items():
            for name, value in algorithm.state_dict(keep_vars=keep_vars).items():
                out[f"{prefix}{_ALGORITHMS_KEY}.{key}.{name}"] = value
        return out

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        """Loads what :meth:`state_dict` returned, through each sub-algorithm's own loader."""
        rest = dict(state_dict)
        rest.pop(self._STATE_DICT_KEY_OPTIMIZERS, None)
        missing: list[str] = []
        for key, algorithm in self.sub_algorithms.items():
            head = f"{_ALGORITHMS_KEY}.{key}."
            own = {k[len(head) :]: rest.pop(k) for k in list(rest) if k.startswith(head)}
            result = algorithm.load_state_dict(own, strict=strict, assign=assign)
            missing += [head + k for k in result.missing_keys]
        unexpected = list(rest)
        if strict and unexpected:
            raise RuntimeError(f"unexpected keys in the manager's state_dict: {unexpected[:5]}")
        return _IncompatibleKeys(missing, unexpected)

    # --- data ---------------------------------------------------------------------------------

    def _restitch(self, buffer: ReplayBuffer, rows_of: Callable) -> list[Stitched]:
        """Per-agent transitions in each env sub-buffer's rows ``rows_of(stream, sub)``."""
        aec = not self.policy.layout.parallel
        parts = []
        for stream, (offset, sub) in enumerate(streams(buffer)):
            idx = rows_of(stream, sub)
            if len(idx):
                rows = buffer_rows(buffer, idx + offset, aec, self.policy.layout.agent_indices)
                self._warn_if_tianshou_rows(rows)
                parts.append(self._restitcher(stream, rows))
        return parts


class FlexibleMultiAgentOnPolicyManager(FlexibleMultiAgentPolicyManager, OnPolicyAlgorithm):
    """The manager for on-policy sub-algorithms (PPO, A2C, ...); see the base class."""

    _KIND = "on-policy"

    def update(
        self, buffer: ReplayBuffer | None, batch_size: int | None, repeat: int
    ) -> TrainingStats:
        """One update of every distinct algorithm, on all of its agents' transitions.

        :param buffer: the collector's buffer; all of its rows are new (the on-policy trainer
            clears it after every update).
        :param batch_size: passed on to each sub-algorithm (its minibatch size).
        :param repeat: passed on to each sub-algorithm (passes over the data).
        """

        def update(algorithm: Algorithm, data: ReplayBuffer) -> TrainingStats:
            return algorithm.update(buffer=data, batch_size=batch_size, repeat=repeat)

        return self._update_all(buffer, update)

    def _update_routed(self, buffer: ReplayBuffer, update: _Update) -> dict[str, TrainingStats]:
        parts = self._restitch(buffer, lambda _, sub: latest(sub, len(sub)))
        per_policy = {}
        for (pid, algorithm), route in zip(self._distinct(), self.policy.routes):
            found = route.transitions(parts)
            if found is None:
                continue
            data, stream, agent = found
            per_policy[pid] = update(
                algorithm, trajectory_buffer(data, stream * len(self.agents) + agent)
            )
        return per_policy

    def _update_with_batch(self, batch: Any, batch_size: int | None, repeat: int) -> Any:
        raise NotImplementedError("the manager updates its sub-algorithms through update()")


class FlexibleMultiAgentOffPolicyManager(FlexibleMultiAgentPolicyManager, OffPolicyAlgorithm):
    """The manager for off-policy sub-algorithms (DQN, SAC, ...); see the base class."""

    _KIND = "off-policy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._store = ReplayStore(self.policy.routes, self.policy.layout.parallel)

    @property
    def replay_buffers(self) -> dict[str, ReplayBuffer]:
        """Policy id -> the replay its algorithm samples from (empty before the first update)."""
        return dict(zip(self._first_id, self._store.buffers))

    def update(self, buffer: ReplayBuffer | None, sample_size: int | None) -> TrainingStats:
        """One update of every distinct algorithm, on a sample of its agents' transitions.

        :param buffer: the collector's buffer; rows added since the last update are re-stitched
            into the manager's replay first.
        :param sample_size: transitions each distinct algorithm samples (None or 0: all).
        """

        def update(algorithm: Algorithm, data: ReplayBuffer) -> TrainingStats:
            return algorithm.update(buffer=data, sample_size=sample_size)

        return self._update_all(buffer, update)

    def _update_routed(self, buffer: ReplayBuffer, update: _Update) -> dict[str, TrainingStats]:
        self._sync(buffer)
        per_policy = {}
        for (pid, algorithm), own in zip(self._distinct(), self._store.buffers):
            if len(own):
                per_policy[pid] = update(algorithm, own)
        return per_policy

    def _sync(self, buffer: ReplayBuffer) -> None:
        if self._store.source is not buffer:
            self._store.attach(buffer)
            self._restitcher.reset()
        self._store.add(self._restitch(buffer, self._store.new_rows))

    def _update_with_batch(self, batch: Any) -> Any:
        raise NotImplementedError("the manager updates its sub-algorithms through update()")
