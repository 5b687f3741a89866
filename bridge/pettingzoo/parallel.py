"""Parallel mode of :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv`: one joint step of
all agents per ``step()`` (see the env module's docstring for the observation and the flags)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from bridge.pettingzoo.env import STATE_ERRORS, EnhancedPettingZooEnv
from bridge.pettingzoo.layout import blank_tree, put_tree

__all__ = ["EnhancedParallelEnv"]


class EnhancedParallelEnv(EnhancedPettingZooEnv):
    """One joint step of all agents per ``step()``, agents stacked on a leading axis."""

    mode = "parallel"

    def _init_spaces(self, include_state: bool | None) -> None:
        if self.agent_id_form != "name":
            raise ValueError(
                "agent_id is an AEC-mode option: parallel observations stack every agent "
                f"(in the order of env.agents) and carry no agent_id; got {self.agent_id_form!r}"
            )
        self.state_space = None if include_state is False else self._probe_state()
        self.has_state = self.state_space is not None
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

    def _reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        observations, _ = self.env.reset(seed=seed, options=options)
        self._alive[:] = False
        for agent in self.env.agents:
            self._alive[self.agent_idx[agent]] = True
        return self._observation(observations, self._alive, episode_over=False), self._info()

    def _step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict]:
        actions = self._actions(action)
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
        obs = self._observation(observations, was_alive, episode_over=not self._running)
        return obs, reward, terminated, truncated, self._info()

    def _actions(self, action: Any) -> dict[Any, Any]:
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

    def _observation(
        self, observations: dict[Any, Any], acted: np.ndarray, episode_over: bool
    ) -> dict[str, Any]:
        """Stacks the observations of agents in ``acted`` (alive before the step); zeros else."""
        layout = self._layout
        if layout.obs_tree:
            stacked = blank_tree(self.observation_space["obs"], layout.obs_space)
        else:
            stacked = np.zeros(self.observation_space["obs"].shape, layout.obs_space.dtype)
        mask = layout.permissive.copy() if self.has_action_mask else None
        for agent, raw in observations.items():
            k = self._index(agent)
            if not acted[k]:
                continue
            layout.check_spaces(self.env, agent)
            put_tree(stacked, k, layout.encode(k, raw))
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
        except STATE_ERRORS:
            if not episode_over:
                raise
            return np.zeros(space.shape, space.dtype)
