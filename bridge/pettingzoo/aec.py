"""AEC mode of :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv`: one agent's turn per
``step()``, a drop-in for ``tianshou.env.PettingZooEnv`` (see the env module's docstring for the
observation, reward credit and final rows)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

from bridge.pettingzoo.env import EnhancedPettingZooEnv, type_name
from bridge.pettingzoo.layout import flat_width, flatten_rows

__all__ = ["EnhancedAECEnv"]


def _register_as_tianshou_env() -> None:
    """Makes ``isinstance(env, tianshou.env.PettingZooEnv)`` hold for :class:`EnhancedAECEnv`
    (a virtual subclass of Tianshou's ABC: nothing of its AEC machinery is inherited)."""
    try:
        from tianshou.env.pettingzoo_env import PettingZooEnv
    except ImportError:  # Tianshou is optional for the PettingZoo side
        return
    if not issubclass(EnhancedAECEnv, PettingZooEnv):
        PettingZooEnv.register(EnhancedAECEnv)


class EnhancedAECEnv(EnhancedPettingZooEnv):
    """One agent's turn per ``step()``; the observation names the agent to act.

    A drop-in for ``tianshou.env.PettingZooEnv`` (``isinstance`` holds when Tianshou is
    installed): the same ``agent_id`` values, ``observation_space`` and ``action_space``, but
    each agent's reward is credited to its own rows and every agent gets a final row (see the
    module docstring of :mod:`bridge.pettingzoo.env`).

    :param agent_id: ``"name"`` (default, Tianshou's): the observation's ``agent_id`` is the
        agent's name, ``observation_space`` is the first agent's own space (for the classic
        games ``Dict(observation, action_mask)``), and continuous actions come without a
        ``mask``. ``"index"``: ``agent_id`` is the agent's index (integers stack into Tianshou
        ``Batch`` arrays that PPO's batch arithmetic accepts, where names do not), and
        ``observation_space`` is ``Dict(agent_id=Discrete(N), obs=padded, mask=bool[A])``,
        with a ``bool[1]`` True mask for continuous actions.
    """

    mode = "aec"

    def _init_spaces(self, include_state: bool | None) -> None:
        _register_as_tianshou_env()
        layout = self._layout
        width = self.padded_action_space.n if layout.discrete else 1
        if include_state:
            self.state_space = self._probe_state()
            self.has_state = self.state_space is not None
            if self.state_space is None:  # every agent's observation instead
                joint = self.num_agents * flat_width(layout.obs_space)
                self.state_space = spaces.Box(-np.inf, np.inf, (joint,), np.float32)
        if self.agent_id_form == "index":
            entries = {
                "agent_id": spaces.Discrete(self.num_agents),
                "obs": layout.obs_space,
                "mask": spaces.Box(0, 1, (width,), bool),
            }
            if self.state_space is not None:
                entries["state"] = self.state_space
            self.observation_space = spaces.Dict(entries)
        else:
            self.observation_space = self._tianshou_observation_space()
            self._warn_if_flattened()
        self.action_space = layout.act_space
        self._ids: list[Any] = list(range(self.num_agents))
        if self.agent_id_form == "name":
            self._ids = list(self.agents)
        self._with_mask = self.agent_id_form == "index" or layout.discrete
        self._pending = np.zeros(self.num_agents, np.float64)
        self._current = 0
        self._current_final = False
        self._current_obs: dict[str, Any] = {}

    def _tianshou_observation_space(self) -> spaces.Space:
        """Tianshou's ``observation_space``: the first agent's own space where all agents'
        are equal (Tianshou requires that); otherwise the padded layout, in a
        ``Dict(observation, action_mask)`` where the agents' spaces hold their masks that way."""
        layout = self._layout
        first = layout.obs_spaces[self.agents[0]]
        if all(space == first for space in layout.obs_spaces.values()):
            return first
        if all(where == "observation" for where in layout.mask_at):
            mask = spaces.Box(0, 1, (int(self.padded_action_space.n),), np.int8)
            return spaces.Dict({"observation": layout.obs_space, "action_mask": mask})
        return layout.obs_space

    def _warn_if_flattened(self) -> None:
        """Names the one observation difference from Tianshou that remains (equal spaces only:
        Tianshou refuses unequal ones): spaces other than Box and Dict arrive flattened."""
        layout = self._layout
        first = layout.obs_spaces[self.agents[0]]
        same = all(space == first for space in layout.obs_spaces.values())
        if same and not (layout.obs_raw or layout.obs_tree):
            warnings.warn(
                f"EnhancedPettingZooEnv(mode='aec'): observations of {layout.inner_obs[0]} "
                f"arrive flattened to float32 vectors of shape {layout.obs_space.shape} "
                "(tianshou.env.PettingZooEnv passes them unchanged)",
                FutureWarning,
                stacklevel=4,
            )

    def _reset(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self.env.reset(seed=seed, options=options)
        if not self.env.agents:
            raise RuntimeError(f"{type_name(self.env)} has no agents after reset()")
        self._pending[:] = 0.0
        self._collect_rewards()
        obs = self._present()
        info = self._info()
        info["final"] = False
        return obs, info

    def _collect_rewards(self) -> None:
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

    def _present(self) -> dict[str, Any]:
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
        self._current_obs = {"agent_id": self._ids[k], "obs": self._layout.encode(k, raw)}
        if self._with_mask:
            self._current_obs["mask"] = mask
        if self.state_space is not None:
            self._current_obs["state"] = self._state()
        return self._current_obs

    def _state(self) -> np.ndarray:
        """The env's state, or every agent's current observation (flattened, agent order)."""
        space = self.state_space
        assert space is not None
        if self.has_state:
            return np.asarray(self.env.state(), dtype=space.dtype).reshape(space.shape)
        layout, live = self._layout, set(self.env.agents)
        width = flat_width(layout.obs_space)
        out = np.zeros((self.num_agents, width), np.float32)
        for k, agent in enumerate(self.agents):
            if agent in live:
                out[k] = flatten_rows(layout.encode(k, self.env.observe(agent)), 1)[0]
        return out.reshape(space.shape)

    def _step(self, action: Any) -> tuple[dict[str, Any], np.ndarray, bool, bool, dict]:
        k, final = self._current, self._current_final
        env_action = None if final else self._layout.decode(k, action)
        reward = np.zeros(self.num_agents, np.float32)
        reward[k] = self._pending[k]
        self._pending[k] = 0.0
        self.env.step(env_action)
        self._collect_rewards()
        if self.env.agents:
            obs = self._present()
            terminated = truncated = False
        else:
            reward += self._pending.astype(np.float32)  # nothing should be left; keep sums exact
            self._pending[:] = 0.0
            obs = self._current_obs
            terminated, truncated = self._episode_flags()
        info = self._info()
        info["final"] = final
        return obs, reward, terminated, truncated, info
