"""Train on JaxMARL-style environments without copying their code.

A JaxMARL-style env has ``agents`` (names), ``observation_space(agent)``,
``action_space(agent)``, ``reset(key) -> (obs_dict, state)`` and an auto-resetting
``step(key, state, actions_dict) -> (obs_dict, state, rewards, dones, infos)`` with
``dones["__all__"]``. :func:`from_jaxmarl` turns it into a jmarl :class:`Env`:

* observations are stacked on the agent axis in ``env.agents`` order; agents whose flat
  observations are shorter are zero-padded to the longest (their own spaces stay in
  ``spec.agent_observation_spaces``, so a policy cannot be shared across them by mistake);
* discrete actions of different sizes are padded to the largest ``n`` and the extra actions
  are masked out; ``get_avail_actions(state)``, when the env has it, gives the action mask;
* the global state is ``obs["world_state"]`` when present, else all observations concatenated.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep
from jmarl.types import Array, PRNGKey


def convert_space(space: Any) -> spaces.Space:
    """A JaxMARL / gymnax-style space (duck-typed) as a jmarl space."""
    name = type(space).__name__
    if name == "Discrete" or (hasattr(space, "n") and not hasattr(space, "low")):
        return spaces.Discrete(int(space.n))
    if hasattr(space, "low") and hasattr(space, "shape"):
        low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
        as_bound = lambda b: float(b) if b.size == 1 else tuple(float(x) for x in b.ravel())
        return spaces.Box(as_bound(low), as_bound(high), tuple(int(s) for s in space.shape))
    raise TypeError(f"cannot convert space {space!r} ({name}) to a jmarl space")


def _stack_spaces(own: list[spaces.Space], kind: str) -> spaces.Space:
    """The common stacked space of agents' own spaces (padding where they differ)."""
    if all(s == own[0] for s in own):
        return own[0]
    if all(isinstance(s, spaces.Discrete) for s in own):
        return spaces.Discrete(max(s.n for s in own))  # type: ignore[union-attr]
    if all(isinstance(s, spaces.Box) for s in own):
        size = max(math.prod(s.shape) for s in own)  # type: ignore[union-attr]
        return spaces.Box(-np.inf, np.inf, (size,))
    raise ValueError(f"agents' {kind} spaces cannot be stacked: {own}")


def _pad_flat(x: Array, size: int) -> Array:
    flat = jnp.ravel(x).astype(jnp.float32)
    return jnp.pad(flat, (0, size - flat.shape[0]))


class _Layout(NamedTuple):
    """How a JaxMARL env's per-agent dicts map onto jmarl's stacked layout."""

    env: Any
    agents: tuple[str, ...]
    obs_dim: int | None  # pad flat observations to this size (None: stack as they are)
    pad_mask: Array | None  # bool[N, A]: actions each agent really has


def _layout(
    env: Any, obs_space: spaces.Space, own_obs: list, act_space: spaces.Space, own_act: list
) -> _Layout:
    padded = any(s != obs_space for s in own_obs)
    obs_dim = obs_space.shape[0] if padded else None  # type: ignore[union-attr]
    pad_mask = None
    if isinstance(act_space, spaces.Discrete) and any(s != act_space for s in own_act):
        pad_mask = jnp.asarray([[j < s.n for j in range(act_space.n)] for s in own_act])
    return _Layout(env, tuple(env.agents), obs_dim, pad_mask)


def _stack(lay: _Layout, obs: dict[str, Array]) -> Array:
    if lay.obs_dim is not None:
        return jnp.stack([_pad_flat(obs[a], lay.obs_dim) for a in lay.agents])
    return jnp.stack([obs[a] for a in lay.agents])


def _global_state(lay: _Layout, obs: dict[str, Array]) -> Array:
    if "world_state" in obs:
        return jnp.ravel(obs["world_state"]).astype(jnp.float32)
    return jnp.concatenate([jnp.ravel(obs[a]).astype(jnp.float32) for a in lay.agents])


def _mask(lay: _Layout, state: Any) -> Array | None:
    m = lay.pad_mask
    if hasattr(lay.env, "get_avail_actions"):
        avail = lay.env.get_avail_actions(state)
        m2 = jnp.stack([jnp.asarray(avail[a], bool) for a in lay.agents])
        m = m2 if m is None else (m & m2)
    return m


def _timestep(
    lay: _Layout, obs: dict, state: Any, reward: Array, term: Array, done: Array
) -> TimeStep:
    n = len(lay.agents)
    return TimeStep(
        obs=_stack(lay, obs),
        state=_global_state(lay, obs),
        reward=reward,
        terminated=term,
        truncated=jnp.zeros((n,), bool),
        done=done,
        alive=jnp.ones((n,), bool),
        action_mask=_mask(lay, state),
    )


def from_jaxmarl(env: Any, max_steps: int | None = None, name: str | None = None) -> Env:
    """Wraps a JaxMARL-style env as a jmarl :class:`Env` (see the module docstring)."""
    agents = tuple(env.agents)
    own_obs = [convert_space(env.observation_space(a)) for a in agents]
    own_act = [convert_space(env.action_space(a)) for a in agents]
    obs_space = _stack_spaces(own_obs, "observation")
    act_space = _stack_spaces(own_act, "action")
    lay = _layout(env, obs_space, own_obs, act_space, own_act)
    steps = int(max_steps if max_steps is not None else getattr(env, "max_steps", 0) or 0)
    if steps < 1:
        raise ValueError("from_jaxmarl: the env has no max_steps attribute; pass max_steps=")
    n = len(agents)

    def reset(key: PRNGKey) -> tuple[Any, TimeStep]:
        obs, state = env.reset(key)
        zeros = jnp.zeros((n,), bool)
        return state, _timestep(
            lay, obs, state, jnp.zeros((n,), jnp.float32), zeros, jnp.array(False)
        )

    def step(key: PRNGKey, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        obs, state, rew, dones, _ = env.step(
            key, state, {a: actions[i] for i, a in enumerate(agents)}
        )
        reward = jnp.stack([jnp.asarray(rew[a], jnp.float32) for a in agents])
        term = jnp.stack([jnp.asarray(dones[a], bool) for a in agents])
        return state, _timestep(lay, obs, state, reward, term, jnp.asarray(dones["__all__"], bool))

    state_dim = jax.eval_shape(lambda k: _global_state(lay, env.reset(k)[0]), jax.random.key(0))
    spec = EnvSpec(
        name=name or f"jaxmarl:{type(env).__name__}",
        agent_ids=agents,
        observation_space=obs_space,
        action_space=act_space,
        state_space=spaces.Box(-np.inf, np.inf, (int(state_dim.size),)),
        max_steps=steps,
        agent_observation_spaces=tuple(own_obs),
        agent_action_spaces=tuple(own_act),
    )
    return Env(spec, reset, step)
