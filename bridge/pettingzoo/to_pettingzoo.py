"""A jmarl environment as a PettingZoo ``ParallelEnv``.

:func:`to_pettingzoo` wraps any jmarl :class:`~jmarl.env.base.Env` (pure ``reset`` /
auto-resetting ``step`` over stacked agents) in a stateful :class:`JaxParallelEnv` that
PettingZoo tools, Tianshou wrappers or hand-written loops can drive::

    env = to_pettingzoo(jmarl.make("simple_spread", num_agents=3), seed=0)
    obs, infos = env.reset()
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)

Episodes follow PettingZoo's parallel semantics: an agent that dies (``alive`` False) or
whose episode ends appears in the dicts of the step that ended it, flagged terminated or
truncated, and is gone from ``env.agents`` afterwards; when the jmarl episode ends
(``ts.done``) every remaining agent is flagged and ``env.agents`` becomes ``[]`` until the
next ``reset()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import jax
import numpy as np
from pettingzoo import ParallelEnv

from bridge.pettingzoo.convert import to_gymnasium_space, tree_to_numpy
from jmarl.env import spaces
from jmarl.env.base import Env, EnvState, TimeStep
from jmarl.types import PRNGKey, PyTree

# The attribute through which an auto-resetting ``env.step`` may expose the step it wraps.


def _random_seed() -> int:
    return int(np.random.SeedSequence().generate_state(1)[0])


def _check_paddable(own: spaces.Space, stacked: spaces.Space, what: str, agent: str) -> None:
    """Agents' own spaces must equal the stacked layout or be a padded Discrete / Box of it."""
    if own == stacked:
        return
    if isinstance(own, spaces.Discrete) and isinstance(stacked, spaces.Discrete):
        if own.n <= stacked.n:
            return
    if isinstance(own, spaces.Box) and isinstance(stacked, spaces.Box):
        if own.size <= stacked.size:
            return
    raise NotImplementedError(
        f"agent {agent!r}: its {what} space {own!r} is neither the stacked space "
        f"{stacked!r} nor a padded part of it"
    )


class JaxParallelEnv(ParallelEnv):
    """A pure jmarl environment behind PettingZoo's stateful parallel API.

    Randomness: the wrapper holds one JAX PRNG key. ``reset(seed=s)`` sets it to
    ``jax.random.key(s)`` (for ``0 <= s < 2**32``; larger seeds are folded in, not
    truncated); ``reset()`` goes on from the current key, which the constructor seeds from
    ``seed`` (or from fresh OS entropy when ``seed`` is None). Every ``reset`` and ``step``
    does ``key, sub = jax.random.split(key)`` and passes ``sub`` to the jmarl function, so
    ``reset(seed=s)`` followed by ``k`` steps reproduces, call for call::

        key = jax.random.key(s)
        key, sub = jax.random.split(key); state, ts = env.reset(sub)
        key, sub = jax.random.split(key); state, ts = env.step(sub, state, actions)  # k times

    End of an episode: jmarl's ``step`` auto-resets, so the observations it returns on the
    last step of an episode already belong to the next episode. If the env has a
    ``step_without_reset`` (same signature, no auto-reset), the wrapper steps through that
    instead and the last step's observations, ``state()`` and action masks
    are the true terminal ones. Otherwise they are the fresh episode's (valid members of the
    observation space, but not the terminal observation); rewards, terminations and
    truncations are always those of the transition that ended. Either way the wrapper
    discards the finished episode: ``env.agents`` is ``[]`` until ``reset()``.

    Actions: a dict over the live agents, each a member of ``action_space(agent)`` given as a
    Python / numpy / JAX value; it is converted to the space's dtype explicitly (float to int
    is refused). Actions for agents that have left the episode are ignored, as in
    PettingZoo's own envs with deaths. Action masks are not enforced here (the jmarl env
    decides what an illegal action does); when the env has them they are in
    ``infos[agent]["action_mask"]`` as ``int8`` vectors, the form gymnasium's
    ``Discrete.sample(mask)`` takes.

    :param env: the jmarl environment.
    :param seed: seed of the first ``reset()`` without a seed (None: random).
    :param render_mode: must be None; jmarl environments do not render.
    """

    def __init__(self, env: Env, seed: int | None = None, render_mode: str | None = None):
        if render_mode is not None:
            raise ValueError(f"jmarl environments do not render; got render_mode={render_mode!r}")
        spec = env.spec
        self.env = env
        self.render_mode = render_mode
        self.metadata = {"name": spec.name, "render_modes": [], "is_parallelizable": True}
        self.possible_agents: list[str] = list(spec.agent_ids)
        self.agents: list[str] = []
        self._index = {a: i for i, a in enumerate(spec.agent_ids)}
        self._own_obs = spec.agent_observation_spaces
        self._own_act = spec.agent_action_spaces
        for a, own_obs, own_act in zip(spec.agent_ids, self._own_obs, self._own_act):
            _check_paddable(own_obs, spec.observation_space, "observation", a)
            _check_paddable(own_act, spec.action_space, "action", a)
        self.observation_spaces = {
            a: to_gymnasium_space(s) for a, s in zip(spec.agent_ids, self._own_obs)
        }
        self.action_spaces = {
            a: to_gymnasium_space(s) for a, s in zip(spec.agent_ids, self._own_act)
        }
        self._noop = tree_to_numpy(spaces.zeros(spec.action_space), spec.action_space)
        self._terminal_obs_exact = env.step_without_reset is not None
        step = env.step_without_reset if env.step_without_reset is not None else env.step

        def reset(key: PRNGKey) -> tuple[PRNGKey, EnvState, TimeStep]:
            key, sub = jax.random.split(key)
            return (key, *env.reset(sub))

        def step_(key: PRNGKey, state: EnvState, actions: PyTree) -> tuple:
            key, sub = jax.random.split(key)
            return (key, *step(sub, state, actions))

        self._reset_fn = jax.jit(reset)
        self._step_fn = jax.jit(step_)
        self._key = self._make_key(_random_seed() if seed is None else seed)
        self._state: EnvState | None = None
        self._ts: TimeStep | None = None

    # --- spaces -----------------------------------------------------------------------------

    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        """This agent's observation space (the same object on every call)."""
        return self.observation_spaces[self._agent(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        """This agent's action space (the same object on every call)."""
        return self.action_spaces[self._agent(agent)]

    def _agent(self, agent: str) -> str:
        if agent not in self._index:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    # --- episode ----------------------------------------------------------------------------

    @staticmethod
    def _make_key(seed: Any) -> PRNGKey:
        """``jax.random.key(seed)`` for seeds below 2**32; larger seeds fold in their upper
        32-bit words (JAX alone would keep only the lowest word, so 0 and 2**32 would collide).
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be a non-negative int or None, got {seed!r}")
        seed = int(seed)
        if seed < 0:
            raise ValueError(f"seed must be a non-negative int or None, got {seed}")
        key = jax.random.key(seed & 0xFFFFFFFF)
        seed >>= 32
        while seed:
            key = jax.random.fold_in(key, seed & 0xFFFFFFFF)
            seed >>= 32
        return key

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Starts an episode; ``options`` are accepted and ignored.

        :returns: observations and infos of the agents alive at the start.
        """
        if seed is not None:
            self._key = self._make_key(seed)
        self._key, self._state, ts = self._reset_fn(self._key)
        self._ts = ts = self._fetch(ts)
        self.agents = [a for a in self.possible_agents if ts.alive[self._index[a]]]
        return (
            {a: self._obs(ts, a) for a in self.agents},
            {a: self._info(ts, a) for a in self.agents},
        )

    def step(self, actions: Mapping[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """One joint step of the live agents.

        :param actions: agent -> action for every agent in ``self.agents``.
        :returns: ``(observations, rewards, terminations, truncations, infos)`` over the agents
            that were live before the step.
        :raises ValueError: an action is missing for a live agent, given for an unknown agent,
            or not in the agent's action space (the message names the agent and the space).
        :raises RuntimeError: called before ``reset()`` or after the episode ended.
        """
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.agents:
            raise RuntimeError("the episode is over (no agents left); call reset()")
        stacked = self._stack_actions(actions)
        self._key, self._state, ts = self._step_fn(self._key, self._state, stacked)
        self._ts = ts = self._fetch(ts)
        done = bool(ts.done)
        alive_valid = self._terminal_obs_exact or not done  # else alive is the next episode's
        obs, rewards, terms, truncs, infos = {}, {}, {}, {}, {}
        for a in self.agents:
            i = self._index[a]
            died = alive_valid and not ts.alive[i]
            terms[a] = bool(ts.terminated[i]) or died
            # An agent still running when the episode ends was cut off: truncated.
            truncs[a] = bool(ts.truncated[i]) or (done and not terms[a])
            obs[a], rewards[a], infos[a] = self._obs(ts, a), float(ts.reward[i]), self._info(ts, a)
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos

    def state(self) -> np.ndarray:
        """The global state of the last ``reset``/``step`` (see the class doc at episode end)."""
        if self._ts is None:
            raise RuntimeError("call reset() before state()")
        return np.array(self._ts.state)

    def render(self) -> None:
        """jmarl environments do not render (``render_mode`` is always None)."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    # --- conversions ------------------------------------------------------------------------

    @staticmethod
    def _fetch(ts: TimeStep) -> TimeStep:
        """The time step as writable numpy arrays (one device transfer)."""
        return jax.tree.map(np.array, jax.device_get(ts))

    def _obs(self, ts: TimeStep, agent: str) -> Any:
        i = self._index[agent]
        own, stacked = self._own_obs[i], self.env.spec.observation_space
        row = jax.tree.map(lambda x: x[i], ts.obs)
        if isinstance(own, spaces.Box) and own != stacked:  # padded: own elements come first
            row = row.reshape(-1)[: own.size].reshape(own.shape)
        return tree_to_numpy(row, own)

    def _info(self, ts: TimeStep, agent: str) -> dict[str, Any]:
        if ts.action_mask is None:
            return {}
        i = self._index[agent]
        own = self._own_act[i]
        mask = ts.action_mask[i]
        if isinstance(own, spaces.Discrete):
            mask = mask[: own.n]
        return {"action_mask": mask.astype(np.int8)}

    def _stack_actions(self, actions: Mapping[str, Any]) -> PyTree:
        """Validates ``actions`` and stacks them in the env's layout (no-ops for absent agents)."""
        if not isinstance(actions, Mapping):
            raise TypeError(f"actions must be a dict agent -> action, got {type(actions).__name__}")
        unknown = [a for a in actions if a not in self._index]
        if unknown:
            raise ValueError(
                f"actions for unknown agents {unknown}; agents are {self.possible_agents}"
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for live agents {missing}")
        live = set(self.agents)
        rows = [
            self._action(a, actions[a]) if a in live else self._noop for a in self.possible_agents
        ]
        return jax.tree.map(lambda *xs: np.stack(xs), *rows)

    def _action(self, agent: str, action: Any) -> PyTree:
        i = self._index[agent]
        own, stacked = self._own_act[i], self.env.spec.action_space
        bad = ValueError(
            f"action {action!r} of agent {agent!r} is not in its action space "
            f"{self.action_spaces[agent]}"
        )
        try:
            value = tree_to_numpy(action, own)
        except (TypeError, ValueError, OverflowError):
            raise bad from None
        if not spaces.contains(own, value):
            raise bad
        if own == stacked:
            return value
        if isinstance(stacked, spaces.Discrete):
            return value.astype(stacked.dtype)
        assert isinstance(stacked, spaces.Box)  # _check_paddable allows nothing else
        flat = np.zeros(stacked.size, stacked.dtype)  # a padded Box: own elements first
        flat[: value.size] = value.reshape(-1)
        return flat.reshape(stacked.shape)


def to_pettingzoo(
    env: Env, seed: int | None = None, render_mode: str | None = None
) -> JaxParallelEnv:
    """Wraps a jmarl environment as a PettingZoo ``ParallelEnv`` (see :class:`JaxParallelEnv`).

    >>> import jmarl
    >>> penv = to_pettingzoo(jmarl.make("simple_spread", num_agents=2), seed=0)
    >>> obs, infos = penv.reset()
    >>> penv.agents, obs["agent_0"].shape, obs["agent_0"].dtype
    (['agent_0', 'agent_1'], (12,), dtype('float32'))
    """
    return JaxParallelEnv(env, seed=seed, render_mode=render_mode)


__all__ = ["JaxParallelEnv", "to_pettingzoo"]
