"""PettingZoo environments as one ``gymnasium.Env`` that Tianshou's ``Collector`` can drive.

:class:`EnhancedPettingZooEnv` wraps an AEC or a parallel PettingZoo environment in one of two
modes. Both share the agent axis ``agents`` (``env.possible_agents`` in order) and one per-agent
layout that the agents' own spaces are padded to (``padded_observation_space``,
``padded_action_space``):

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

    observation = {"agent_id": int index of the agent to act (not its name, so batches stack;
                               ``agent_idx`` maps names to indices),
                   "obs":      its observation in the padded layout,
                   "mask":     bool[A] legal actions (all its actions if the env has no mask);
                               bool[1] True placeholder for continuous actions}
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
gym env).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping
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

__all__ = ["CycleParallelEnv", "EnhancedPettingZooEnv"]

MODES = ("auto", "aec", "parallel")
_STATE_ERRORS = (TypeError, NotImplementedError, AttributeError)


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _resolve_env(env: Any, mode: str) -> tuple[Any, str]:
    """Returns the PettingZoo env to drive and the mode ("aec" or "parallel")."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tianshou_env = sys.modules.get("tianshou.env.pettingzoo_env")
    tianshou_cls = getattr(tianshou_env, "PettingZooEnv", None)
    if tianshou_cls is not None and isinstance(env, tianshou_cls):
        env = env.env  # steps like a gym env, so drive the PettingZoo env it wraps instead
    if type(env) is aec_to_parallel_wrapper:  # the usual ``parallel_env()`` of an AEC env
        env = CycleParallelEnv(env.aec_env)
    if isinstance(env, AECEnv):
        kind = "aec"
    elif isinstance(env, ParallelEnv):
        kind = "parallel"
    else:
        raise TypeError(
            "EnhancedPettingZooEnv needs a pettingzoo.AECEnv or pettingzoo.ParallelEnv, got "
            f"{_type_name(env)} (an env that only looks like one must subclass ParallelEnv)"
        )
    if mode in ("auto", kind):
        return env, kind
    if mode == "aec":
        return parallel_to_aec(env), "aec"
    if getattr(env, "metadata", {}).get("is_parallelizable", False):
        return CycleParallelEnv(env), "parallel"
    return turn_based_aec_to_parallel(env), "parallel"


class CycleParallelEnv(aec_to_parallel_wrapper):
    """PettingZoo's ``aec_to_parallel`` (one parallel step = one full AEC cycle), minus its
    discarded ``last()`` call before each agent's step, which observed every agent twice per
    step. Random-action agent-steps/s vs ``aec_to_parallel``, ``benchmarks/tianshou_manager.py``
    (``raw_env_ceiling``, 2 CPU cores): mpe2 ``simple_spread`` N=20 1.06-1.30x over eight runs,
    ``pistonball`` 20 pistons 1.99x and 2.04x over two.

    Observations, rewards, flags and infos are those of ``aec_to_parallel``; an env whose
    ``observe`` changes its state (which PettingZoo does not allow) could step differently.
    Parallel envs built with PettingZoo's ``parallel_wrapper_fn`` (``mpe2``, ``butterfly``) are
    re-wrapped with this class by :class:`EnhancedPettingZooEnv`.
    """

    def step(self, actions: dict[Any, Any]) -> tuple[dict, dict, dict, dict, dict]:
        env = self.aec_env
        rewards: dict[Any, float] = defaultdict(int)
        for agent in list(env.agents):
            if agent != env.agent_selection:
                raise AssertionError(
                    f"expected agent {agent}, got {env.agent_selection}: converting to a "
                    "parallel env needs agents that act in a fixed cycle and finish only at "
                    "the end of a cycle"
                )
            env.step(actions[agent])
            step_rewards = env.rewards  # read once: every read goes through the wrapper chain
            for other in env.agents:
                rewards[other] += step_rewards[other]
        terminations, truncations = dict(env.terminations), dict(env.truncations)
        infos = dict(env.infos)
        observations = {agent: env.observe(agent) for agent in env.agents}
        while env.agents and (
            env.terminations[env.agent_selection] or env.truncations[env.agent_selection]
        ):
            env.step(None)
        self.agents = env.agents
        return observations, rewards, terminations, truncations, infos


def _inner_space(space: spaces.Space) -> tuple[spaces.Space, str | None]:
    """The observation part of an agent's space and where its action mask is.

    :returns: ``(space, None)`` without a mask; ``(space["observation"], "observation")`` for
        a classic game's ``Dict(observation, action_mask)``; ``(the Dict without the key,
        "rest")`` for any other ``Dict`` with an ``action_mask`` key.
    """
    if not isinstance(space, spaces.Dict) or "action_mask" not in space.spaces:
        return space, None
    if "observation" in space.spaces:
        return space["observation"], "observation"
    return spaces.Dict({k: v for k, v in space.spaces.items() if k != "action_mask"}), "rest"


def _stacked_space(space: spaces.Space, n: int) -> spaces.Space | None:
    """``space`` with a leading agent axis of ``n`` on every leaf (zeros always inside), or
    None if some part can't be stacked into arrays (Tuple, Text, Graph, ...)."""
    if isinstance(space, spaces.Dict):
        parts = {k: _stacked_space(v, n) for k, v in space.spaces.items()}
        if any(p is None for p in parts.values()):
            return None
        return spaces.Dict(parts)  # type: ignore[arg-type]
    if isinstance(space, spaces.Box):
        low, high = np.minimum(space.low, 0), np.maximum(space.high, 0)
        shape = (n, *space.shape)
        return spaces.Box(np.broadcast_to(low, shape), np.broadcast_to(high, shape), shape,
                          space.dtype)  # fmt: skip
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        start, top = _int_range(space)
        shape = (n, *np.shape(start))
        low, high = np.minimum(start, 0), np.maximum(top, 0)
        return spaces.Box(np.broadcast_to(low, shape), np.broadcast_to(high, shape), shape,
                          _leaf_dtype(space))  # fmt: skip
    if isinstance(space, spaces.MultiBinary):
        return spaces.Box(0, 1, (n, *space.shape), _leaf_dtype(space))
    return None


def _int_range(space: spaces.Discrete | spaces.MultiDiscrete) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest value of a (Multi)Discrete space (per dimension)."""
    start = np.asarray(space.start, np.int64)
    size = space.n if isinstance(space, spaces.Discrete) else space.nvec
    return start, start + np.asarray(size) - 1


def _leaf_dtype(space: spaces.Space) -> np.dtype:
    return np.dtype(space.dtype or np.int64)  # gymnasium's Discrete etc. carry a dtype


def _encode_tree(space: spaces.Dict, raw: Any, agent: Any, path: str = "") -> dict[str, Any]:
    """A Dict observation as a dict of arrays with its leaves' dtypes and shapes (checked)."""
    if not isinstance(raw, Mapping) or set(raw) != set(space.spaces):
        got = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
        raise RuntimeError(
            f"agent {agent!r} returned observation{path} with keys {got}, but its observation "
            f"space has keys {sorted(space.spaces)}"
        )
    out: dict[str, Any] = {}
    for key, sub in space.spaces.items():
        where = f"{path}[{key!r}]"
        if isinstance(sub, spaces.Dict):
            out[key] = _encode_tree(sub, raw[key], agent, where)
            continue
        arr = np.asarray(raw[key], dtype=_leaf_dtype(sub))
        if arr.shape != sub.shape:
            raise RuntimeError(
                f"agent {agent!r} returned observation{where} of shape {arr.shape}, but its "
                f"observation space has shape {sub.shape}"
            )
        out[key] = arr
    return out


def _blank_tree(space: spaces.Space, own: spaces.Space) -> Any:
    """Stacked arrays (``space``) filled with the value of ``own`` (one agent's space) nearest
    to zero: 0 where the space allows it, else its lower bound (``Discrete(n, start=1)``: 1)."""
    if isinstance(space, spaces.Dict):
        return {k: _blank_tree(v, own[k]) for k, v in space.spaces.items()}
    if isinstance(own, spaces.Box):
        blank = np.clip(np.zeros(own.shape, own.dtype), own.low, own.high)
    elif isinstance(own, (spaces.Discrete, spaces.MultiDiscrete)):
        start, top = _int_range(own)
        blank = np.broadcast_to(np.clip(0, start, top), space.shape[1:])
    else:
        blank = np.zeros(space.shape[1:])
    return np.broadcast_to(blank.astype(space.dtype), space.shape).copy()


def _put_tree(stacked: Any, k: int, value: Any) -> None:
    """``stacked[...][k] = value`` on every leaf."""
    if isinstance(stacked, dict):
        for key, sub in stacked.items():
            _put_tree(sub, k, value[key])
    else:
        stacked[k] = value


def _is_integral(arr: np.ndarray) -> bool:
    if np.issubdtype(arr.dtype, np.integer):
        return True
    return np.issubdtype(arr.dtype, np.floating) and float(arr.reshape(())).is_integer()


def _pad_bounds(boxes: list[spaces.Box], width: int) -> tuple[np.ndarray, np.ndarray]:
    low = np.zeros((len(boxes), width), np.float32)
    high = np.zeros((len(boxes), width), np.float32)
    for k, box in enumerate(boxes):
        low[k, : box.shape[0]] = box.low
        high[k, : box.shape[0]] = box.high
    return low, high


class _Layout:
    """The agents' own spaces and the common per-agent layout they are padded to."""

    def __init__(self, env: Any, agents: list[Any], keep_dicts: bool) -> None:
        self.agents = agents
        self.obs_spaces = {a: env.observation_space(a) for a in agents}
        self.act_spaces = {a: env.action_space(a) for a in agents}
        inner = [_inner_space(self.obs_spaces[a]) for a in agents]
        self.inner_obs = [space for space, _ in inner]
        self.mask_at = [where for _, where in inner]  # where each agent's action mask is
        self._init_observations(keep_dicts)
        self._init_actions()

    def _init_observations(self, keep_dicts: bool) -> None:
        first = self.inner_obs[0]
        same = all(s == first for s in self.inner_obs)
        self.obs_raw = isinstance(first, spaces.Box) and same
        tree = keep_dicts and same and isinstance(first, spaces.Dict)
        stacked = _stacked_space(first, len(self.agents)) if tree else None
        self.obs_tree = stacked is not None  # a Dict of leaves that stack into arrays
        if self.obs_tree:
            self.obs_space = first
            self.stacked_space = stacked
            return
        if self.obs_raw:
            keep = np.issubdtype(first.dtype, np.integer) or first.dtype == np.bool_
            dtype = first.dtype if keep else np.dtype(np.float32)
            low, high = first.low.astype(dtype), first.high.astype(dtype)
            self.obs_space = spaces.Box(low, high, first.shape, dtype)
            self.stacked_space = _stacked_space(self.obs_space, len(self.agents))
            return
        flat = [spaces.flatten_space(s) for s in self.inner_obs]
        self.obs_dims = [box.shape[0] for box in flat]
        width = max(self.obs_dims)
        low, high = _pad_bounds(flat, width)
        self.obs_space = spaces.Box(low.min(0), high.max(0), (width,), np.float32)
        self.stacked_space = spaces.Box(np.minimum(low, 0), np.maximum(high, 0), low.shape,
                                        np.float32)  # fmt: skip

    def _init_actions(self) -> None:
        acts = [self.act_spaces[a] for a in self.agents]
        if all(isinstance(s, spaces.Discrete) for s in acts):
            self.discrete = True
            self.action_n = np.array([int(s.n) for s in acts])
            self.action_start = [int(s.start) for s in acts]
            self.act_space: spaces.Space = spaces.Discrete(int(self.action_n.max()))
            self.permissive = np.arange(int(self.action_n.max()))[None] < self.action_n[:, None]
        elif all(isinstance(s, spaces.Box) for s in acts):
            self.discrete = False
            self.act_raw = all(s == acts[0] for s in acts)
            if self.act_raw:
                self.act_space = acts[0]
                self.act_low = np.broadcast_to(acts[0].low, (len(acts), *acts[0].shape))
                self.act_high = np.broadcast_to(acts[0].high, self.act_low.shape)
            else:
                flat = [spaces.flatten_space(s) for s in acts]
                self.act_dims = [box.shape[0] for box in flat]
                self.act_low, self.act_high = _pad_bounds(flat, max(self.act_dims))
                self.act_space = spaces.Box(
                    self.act_low.min(0), self.act_high.max(0), (max(self.act_dims),), np.float32
                )
        else:
            found = {str(a): s for a, s in self.act_spaces.items()}
            raise NotImplementedError(
                f"EnhancedPettingZooEnv supports all-Discrete or all-Box action spaces, got {found}"
            )

    # --- per-agent encoding -------------------------------------------------------------

    def encode(self, k: int, raw: Any) -> Any:
        """Agent ``k``'s observation in the padded layout (a dict of arrays if ``obs_tree``)."""
        if self.mask_at[k] == "observation":
            raw = raw["observation"]
        elif self.mask_at[k] == "rest" and isinstance(raw, Mapping):
            raw = {key: value for key, value in raw.items() if key != "action_mask"}
        if self.obs_tree:
            return _encode_tree(self.obs_space, raw, self.agents[k])
        if self.obs_raw:
            obs = np.array(raw, dtype=self.obs_space.dtype)
            if obs.shape != self.obs_space.shape:
                raise RuntimeError(
                    f"agent {self.agents[k]!r} returned an observation of shape {obs.shape}, "
                    f"but its observation space has shape {self.obs_space.shape}"
                )
            return obs
        flat = spaces.flatten(self.inner_obs[k], raw)
        if np.shape(flat) != (self.obs_dims[k],):
            raise RuntimeError(
                f"agent {self.agents[k]!r} returned an observation that flattens to "
                f"{np.shape(flat)}, but its observation space flattens to ({self.obs_dims[k]},)"
            )
        out = np.zeros(self.obs_space.shape, np.float32)
        out[: self.obs_dims[k]] = flat
        return out

    def mask(self, k: int, raw: Any) -> np.ndarray:
        """Agent ``k``'s legal actions, bool[A]; a bool[1] True placeholder for Box actions."""
        if not self.discrete:
            return np.ones(1, bool)
        if self.mask_at[k] is None:
            return self.permissive[k].copy()
        legal = np.asarray(raw["action_mask"]).astype(bool)
        if legal.shape != (self.action_n[k],):
            raise RuntimeError(
                f"agent {self.agents[k]!r} returned an action mask of shape {legal.shape} for "
                f"its action space Discrete({self.action_n[k]})"
            )
        out = np.zeros(self.permissive.shape[1], bool)
        out[: legal.shape[0]] = legal
        return out

    def decode(self, k: int, action: Any) -> Any:
        """Agent ``k``'s action in the padded layout, as its env expects it."""
        agent = self.agents[k]
        arr = np.asarray(action)
        if self.discrete:
            if arr.shape not in ((), (1,)) or not _is_integral(arr):
                raise ValueError(
                    f"agent {agent!r} needs one integer action, got {action!r} (shape {arr.shape})"
                )
            value = int(arr.reshape(()))
            if not 0 <= value < self.action_n[k]:
                raise ValueError(
                    f"action {value} for agent {agent!r} is outside its action space "
                    f"Discrete({self.action_n[k]})"
                )
            return self.action_start[k] + value
        space = self.act_spaces[agent]
        if arr.shape == self.act_space.shape and not self.act_raw:
            arr = arr[: self.act_dims[k]]
        if arr.shape != space.shape and arr.shape != (int(np.prod(space.shape)),):
            raise ValueError(
                f"agent {agent!r} needs an action of shape {space.shape} "
                f"(or {self.act_space.shape} padded), got shape {arr.shape}"
            )
        return arr.reshape(space.shape).astype(space.dtype)

    def check_spaces(self, env: Any, agent: Any) -> None:
        """Raises RuntimeError if ``agent``'s spaces differ from the ones seen at construction."""
        for kind, now, before in (
            ("observation", env.observation_space(agent), self.obs_spaces[agent]),
            ("action", env.action_space(agent), self.act_spaces[agent]),
        ):
            if now is not before and now != before:
                raise RuntimeError(
                    f"agent {agent!r} changed its {kind} space during the episode: "
                    f"{before} -> {now}"
                )


class EnhancedPettingZooEnv(gymnasium.Env):
    """A PettingZoo env (AEC or parallel) as one gymnasium env; see the module docstring.

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
    :param include_state: parallel mode only: put the env's global state in the observation
        where the env has one (default). ``False`` skips ``env.state()`` on every step -- on
        mpe2 it observes every agent once more -- for policies that never read it (DQN, IPPO).

    Attributes: ``env`` (the PettingZoo env driven, after any conversion), ``mode``, ``agents``
    (``possible_agents``, the agent axis), ``num_agents``, ``agent_idx`` (agent -> index),
    ``agent_observation_spaces`` / ``agent_action_spaces`` (the env's own spaces per agent),
    ``padded_observation_space`` / ``padded_action_space`` (one agent in the common layout),
    ``has_action_mask``, ``has_state``, ``state_space`` (or None), ``dict_observations`` (True
    if observations are kept as dicts of arrays).
    """

    def __init__(
        self,
        env: Any,
        mode: str = "auto",
        *,
        include_state: bool = True,
        dict_observations: str = "keep",
    ) -> None:
        if dict_observations not in ("keep", "flatten"):
            raise ValueError(
                f"dict_observations must be 'keep' or 'flatten', got {dict_observations!r}"
            )
        self.env, self.mode = _resolve_env(env, mode)
        self.agents = list(self.env.possible_agents)
        self.num_agents = len(self.agents)
        self.agent_idx = {agent: k for k, agent in enumerate(self.agents)}
        self._layout = _Layout(self.env, self.agents, keep_dicts=dict_observations == "keep")
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
        wants_state = self.mode == "parallel" and include_state
        self.state_space = self._probe_state() if wants_state else None
        self.has_state = self.state_space is not None
        n = self.num_agents
        self._terminated = np.zeros(n, bool)
        self._truncated = np.zeros(n, bool)
        self._alive = np.zeros(n, bool)
        self._running = False
        if self.mode == "aec":
            self._init_aec_spaces()
        else:
            self._init_parallel_spaces()

    # --- construction ---------------------------------------------------------------------

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
        except _STATE_ERRORS:
            return None
        if state.shape == declared.shape:
            return declared
        return spaces.Box(-np.inf, np.inf, state.shape, np.float32)

    def _init_aec_spaces(self) -> None:
        layout = self._layout
        width = self.padded_action_space.n if layout.discrete else 1
        self.observation_space = spaces.Dict(
            {
                "agent_id": spaces.Discrete(self.num_agents),
                "obs": layout.obs_space,
                "mask": spaces.Box(0, 1, (width,), bool),
            }
        )
        self.action_space = layout.act_space
        self._pending = np.zeros(self.num_agents, np.float64)
        self._current = 0
        self._current_final = False
        self._current_obs: dict[str, Any] = {}

    def _init_parallel_spaces(self) -> None:
        layout, n = self._layout, self.num_agents
        entries: dict[str, spaces.Space] = {
            "obs": layout.stacked_space,
            "alive": spaces.Box(0, 1, (n,), bool),
        }
        if self.has_action_mask:
            entries["mask"] = spaces.Box(0, 1, layout.permissive.shape, bool)
        if self.state_space is not None:
            entries["state"] = self.state_space
        self.observation_space = spaces.Dict(entries)
        if layout.discrete:
            self.action_space = spaces.MultiDiscrete(
                np.full(n, self.padded_action_space.n, np.int64)
            )
        else:
            low, high = layout.act_low.astype(np.float32), layout.act_high.astype(np.float32)
            self.action_space = spaces.Box(low, high, low.shape, np.float32)

    # --- gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._terminated[:] = False
        self._truncated[:] = False
        self._running = True
        if self.mode == "aec":
            return self._aec_reset(seed, options)
        return self._parallel_reset(seed, options)

    def step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("call reset() before step() (the episode is over or not started)")
        if self.mode == "aec":
            return self._aec_step(action)
        return self._parallel_step(action)

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

    # --- AEC mode -----------------------------------------------------------------------------

    def _aec_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self.env.reset(seed=seed, options=options)
        if not self.env.agents:
            raise RuntimeError(f"{_type_name(self.env)} has no agents after reset()")
        self._pending[:] = 0.0
        self._collect_aec_rewards()
        obs = self._aec_present()
        info = self._info()
        info["final"] = False
        return obs, info

    def _collect_aec_rewards(self) -> None:
        """Adds the last AEC step's rewards to every agent's pending reward; updates flags."""
        env, idx = self.env, self.agent_idx
        for agent, reward in env.rewards.items():
            self._pending[self._index(agent)] += reward
        self._alive[:] = False
        for agent in env.agents:
            k = idx[agent]
            term, trunc = bool(env.terminations[agent]), bool(env.truncations[agent])
            self._terminated[k] |= term
            self._truncated[k] |= trunc
            self._alive[k] = not (term or trunc)

    def _aec_present(self) -> dict[str, Any]:
        """The observation of the agent to act next (``env.agent_selection``)."""
        agent = self.env.agent_selection
        k = self.agent_idx[agent]
        self._layout.check_spaces(self.env, agent)
        raw, _, term, trunc, _ = self.env.last()
        self._current, self._current_final = k, bool(term or trunc)
        if self._current_final and self._layout.discrete:
            mask = self._layout.permissive[k].copy()  # the action is ignored: allow them all
        else:
            mask = self._layout.mask(k, raw)
        self._current_obs = {"agent_id": k, "obs": self._layout.encode(k, raw), "mask": mask}
        return self._current_obs

    def _aec_step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict]:
        k, final = self._current, self._current_final
        env_action = None if final else self._layout.decode(k, action)
        reward = np.zeros(self.num_agents, np.float32)
        reward[k] = self._pending[k]
        self._pending[k] = 0.0
        self.env.step(env_action)
        self._collect_aec_rewards()
        if self.env.agents:
            obs = self._aec_present()
            terminated = truncated = False
        else:
            reward += self._pending.astype(np.float32)  # nothing should be left; keep sums exact
            self._pending[:] = 0.0
            obs = self._current_obs
            terminated, truncated = self._episode_flags()
        info = self._info()
        info["final"] = final
        return obs, reward, terminated, truncated, info

    # --- parallel mode ------------------------------------------------------------------------

    def _parallel_reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        observations, _ = self.env.reset(seed=seed, options=options)
        self._alive[:] = False
        for agent in self.env.agents:
            self._alive[self.agent_idx[agent]] = True
        return self._parallel_obs(observations, self._alive, episode_over=False), self._info()

    def _parallel_step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict]:
        actions = self._parallel_actions(action)
        observations, rewards, terms, truncs, _ = self.env.step(actions)
        reward = np.zeros(self.num_agents, np.float32)
        idx = self._index
        for agent, value in rewards.items():
            reward[idx(agent)] = value
        reward[~self._alive] = 0.0  # agents that did not act in this step earn nothing
        for agent, flag in terms.items():
            self._terminated[idx(agent)] |= bool(flag)
        for agent, flag in truncs.items():
            self._truncated[idx(agent)] |= bool(flag)
        was_alive = self._alive.copy()
        self._alive[:] = False
        for agent in self.env.agents:
            self._alive[idx(agent)] = True
        self._alive &= ~(self._terminated | self._truncated)
        dropped = was_alive & ~self._alive & ~self._terminated & ~self._truncated
        self._terminated |= dropped  # left env.agents without a flag: counted as terminated
        terminated, truncated = self._episode_flags()
        obs = self._parallel_obs(observations, was_alive, episode_over=not self._running)
        return obs, reward, terminated, truncated, self._info()

    def _index(self, agent: Any) -> int:
        try:
            return self.agent_idx[agent]
        except KeyError:
            raise RuntimeError(
                f"{_type_name(self.env)} reported agent {agent!r}, which is not in "
                f"possible_agents {self.agents}"
            ) from None

    def _parallel_actions(self, action: Any) -> dict[Any, Any]:
        """The live agents' actions as the env expects them; others are dropped."""
        layout, live = self._layout, np.flatnonzero(self._alive)
        if isinstance(action, Mapping):
            unknown = [a for a in action if a not in self.agent_idx]
            if unknown:
                raise ValueError(f"actions for unknown agents {unknown}; agents are {self.agents}")
            missing = [self.agents[k] for k in live if self.agents[k] not in action]
            if missing:
                raise ValueError(f"no action for live agents {missing}")
            return {self.agents[k]: layout.decode(k, action[self.agents[k]]) for k in live}
        arr = np.asarray(action)
        if arr.shape != self.action_space.shape:
            raise ValueError(
                f"expected a joint action of shape {self.action_space.shape} (one row per agent "
                f"in {self.agents}), got shape {arr.shape}"
            )
        return {self.agents[k]: layout.decode(k, arr[k]) for k in live}

    def _parallel_obs(
        self, observations: dict[Any, Any], acted: np.ndarray, episode_over: bool
    ) -> dict[str, Any]:
        """Stacks the observations of agents in ``acted`` (alive before the step); zeros else."""
        layout = self._layout
        if layout.obs_tree:
            stacked = _blank_tree(self.observation_space["obs"], layout.obs_space)
        else:
            stacked = np.zeros(self.observation_space["obs"].shape, layout.obs_space.dtype)
        mask = layout.permissive.copy() if self.has_action_mask else None
        for agent, raw in observations.items():
            k = self._index(agent)
            if not acted[k]:
                continue
            layout.check_spaces(self.env, agent)
            _put_tree(stacked, k, layout.encode(k, raw))
            if mask is not None and self._alive[k]:
                mask[k] = layout.mask(k, raw)
        obs: dict[str, Any] = {"obs": stacked, "alive": self._alive.copy()}
        if mask is not None:
            obs["mask"] = mask
        if self.state_space is not None:
            obs["state"] = self._state(episode_over)
        return obs

    def _state(self, episode_over: bool) -> np.ndarray:
        space = self.state_space
        assert space is not None
        try:
            return np.asarray(self.env.state(), dtype=space.dtype).reshape(space.shape)
        except _STATE_ERRORS:
            if not episode_over:
                raise
            return np.zeros(space.shape, space.dtype)
