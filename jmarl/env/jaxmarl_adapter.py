"""Train on JaxMARL environments (and JaxMARL-style ones) without copying their code.

A JaxMARL-style env has ``agents`` (names), ``observation_space(agent)``,
``action_space(agent)``, ``reset(key) -> (obs_dict, state)`` and an auto-resetting
``step(key, state, actions_dict) -> (obs_dict, state, rewards, dones, infos)`` with
``dones["__all__"]``. :func:`from_jaxmarl` turns it into a jmarl :class:`Env`:

* spaces are read by duck typing (JaxMARL's and gymnax's ``Discrete``, ``MultiDiscrete``,
  ``Box``, ``Dict`` — also a plain dict of spaces — and ``Tuple``); numpy integer sizes and
  a bare-integer ``Box`` shape are accepted;
* observations are stacked on the agent axis in ``env.agents`` order and cast to their
  space's dtype; agents whose flat ``Box`` observations are shorter are zero-padded to the
  longest (their own spaces stay in ``spec.agent_observation_spaces``, so a policy cannot be
  shared across them by mistake);
* discrete actions of different sizes are padded to the largest ``n`` and the extra actions
  masked out; continuous (``Box``) actions of different sizes are padded to the longest and
  each agent's env gets its own leading part; continuous actions are clipped to the agent's
  bounds before the env sees them (the env's job in jmarl, as mpe2's ``ClipOutOfBoundsWrapper``);
* the action mask is ``get_avail_actions(state)`` (or Hanabi's ``get_legal_moves``) where the
  env implements it — JaxMARL's base class defines ``get_avail_actions`` only to raise
  ``NotImplementedError``, which here means "every action is available";
* an agent is alive until its own ``dones[agent]`` (agents missing from ``dones`` follow
  ``dones["__all__"]``);
* the global state is ``obs["world_state"]`` when present, else all observations flattened
  and concatenated;
* ``spec.max_steps`` is ``max_steps=`` when given, else the env's ``max_steps``, else
  ``num_inner_steps * num_outer_steps`` (JaxMARL's repeated games: STORM, coin game). The
  adapter counts steps and truncates (``truncated``, not ``terminated``) an episode that
  reaches it without ending: JaxMARL's MPE envs end only after ``max_steps + 1`` steps (they
  test the count before incrementing it), so through the adapter they last ``max_steps``
  steps, as in mpe2 (25 cycles);
* where ``env.step`` is JaxMARL's ``MultiAgentEnv.step`` the adapter calls ``env.step_env``
  and auto-resets itself (one reset per step, as JaxMARL); other envs' ``step`` is called as
  it is, with one more reset for truncation.

Envs that cannot fit (spaces that cannot be stacked, no episode bound, an action mask of the
wrong shape) raise ``ValueError`` here, naming the agents and spaces.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, TimeStep
from jmarl.types import Array, PRNGKey, PyTree


def _shape(shape: Any) -> tuple[int, ...]:
    """A shape as a tuple of ints (JaxMARL's Hanabi gives a bare ``numpy.int64``)."""
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)


def _bound(b: Any, size: int) -> float | tuple[float, ...]:
    flat = np.broadcast_to(np.asarray(b, np.float64).reshape(-1), (size,))
    return float(flat[0]) if np.all(flat == flat[0]) else tuple(float(x) for x in flat)


def convert_space(space: Any) -> spaces.Space:
    """A JaxMARL / gymnax-style space (duck-typed) as a jmarl space.

    :raises TypeError: for a space of no known kind.
    """
    name = type(space).__name__
    if isinstance(space, Mapping) or (name == "Dict" and hasattr(space, "spaces")):
        items = space.items() if isinstance(space, Mapping) else space.spaces.items()
        return spaces.Dict(tuple((str(k), convert_space(s)) for k, s in items))
    if name == "Tuple" and hasattr(space, "spaces"):
        return spaces.Tuple(tuple(convert_space(s) for s in space.spaces))
    if hasattr(space, "num_categories") or hasattr(space, "nvec"):
        nvec = getattr(space, "nvec", None)
        nvec = np.asarray(space.num_categories if nvec is None else nvec).reshape(-1)
        return spaces.MultiDiscrete(tuple(int(k) for k in nvec))
    if name == "Discrete" or (hasattr(space, "n") and not hasattr(space, "low")):
        return spaces.Discrete(int(space.n))
    if hasattr(space, "low") and hasattr(space, "shape"):
        shape = _shape(space.shape)
        size = math.prod(shape)
        dtype = np.dtype(getattr(space, "dtype", None) or np.float32).name
        return spaces.Box(_bound(space.low, size), _bound(space.high, size), shape, dtype)
    raise TypeError(f"cannot convert space {space!r} ({name}) to a jmarl space")


def _stack_spaces(agents: tuple[str, ...], own: list[spaces.Space], kind: str) -> spaces.Space:
    """The common stacked space of agents' own spaces (padding where they differ).

    :raises ValueError: naming the agents, where the spaces cannot share one layout.
    """
    if all(s == own[0] for s in own):
        return own[0]
    if all(isinstance(s, spaces.Discrete) for s in own):
        return spaces.Discrete(max(s.n for s in own))  # type: ignore[union-attr]
    if all(isinstance(s, spaces.Box) for s in own):
        boxes: list[spaces.Box] = own  # type: ignore[assignment]
        size = max(s.size for s in boxes)
        if kind == "action":
            if any(len(s.shape) != 1 for s in boxes):
                raise ValueError(f"from_jaxmarl: {kind} spaces are not 1-D Boxes: {own}")
            lows, highs = {s.low for s in boxes}, {s.high for s in boxes}
            if len(lows) == 1 and len(highs) == 1 and all(np.ndim(b) == 0 for b in lows | highs):
                return spaces.Box(boxes[0].low, boxes[0].high, (size,))
        return spaces.Box(-np.inf, np.inf, (size,))
    detail = ", ".join(f"{a}: {s}" for a, s in zip(agents, own))
    raise ValueError(
        f"from_jaxmarl: the agents' {kind} spaces differ and cannot be padded to one layout "
        f"(only Discrete-with-Discrete and Box-with-Box can): {detail}"
    )


class _Layout(NamedTuple):
    """How a JaxMARL env's per-agent dicts map onto jmarl's stacked layout."""

    env: Any
    keys: tuple[Any, ...]  # the env's own agent keys (JaxMARL's STORM uses ints)
    obs_space: spaces.Space
    own_obs: tuple[spaces.Space, ...]
    act_space: spaces.Space
    own_act: tuple[spaces.Space, ...]
    mask_fn: Any  # state -> dict of bool[n_agent], or None: every action is available

    @property
    def padded_obs(self) -> bool:
        return any(s != self.obs_space for s in self.own_obs)


def _cast(space: spaces.Space, x: PyTree, where: str) -> PyTree:
    """``x`` (one agent's observation) in ``space``'s dtypes and shapes.

    :raises ValueError: where ``x`` does not have the space's size (``where`` names it).
    """
    if isinstance(space, spaces.Dict):
        return {k: _cast(s, x[k], f"{where}[{k!r}]") for k, s in space.spaces}
    if isinstance(space, spaces.Tuple):
        return tuple(_cast(s, v, f"{where}[{i}]") for i, (s, v) in enumerate(zip(space.spaces, x)))
    x = jnp.asarray(x)
    if x.size != math.prod(space.shape):
        raise ValueError(
            f"from_jaxmarl: the env's {where} has shape {x.shape}, but its space says "
            f"{space.shape} ({space})"
        )
    return jnp.reshape(x.astype(space.dtype), space.shape)


def _entry(tree: Any, key: Any, what: str) -> Any:
    """``tree[key]``: one agent's entry of the env's per-agent ``what``.

    :raises ValueError: where ``what`` is not keyed by the agents (at wrap time: the adapter
        traces ``reset`` and ``step`` once in :func:`from_jaxmarl`).
    """
    try:
        return tree[key]
    except (KeyError, IndexError, TypeError):
        has = sorted(map(repr, tree)) if isinstance(tree, Mapping) else type(tree).__name__
        raise ValueError(
            f"from_jaxmarl: the env's {what} is not keyed by agent: no entry for agent {key!r} "
            f"(it has {has}); the adapter needs one entry per agent of env.agents"
        ) from None


def _stack(lay: _Layout, obs: dict) -> PyTree:
    def own(k: Any, space: spaces.Space) -> PyTree:
        return _cast(space, _entry(obs, k, "observation"), f"observation of agent {k!r}")

    if lay.padded_obs:
        size = lay.obs_space.shape[0]  # type: ignore[union-attr]
        flat = [jnp.ravel(own(k, s)).astype(jnp.float32) for k, s in zip(lay.keys, lay.own_obs)]
        return jnp.stack([jnp.pad(x, (0, size - x.shape[0])) for x in flat])
    per_agent = [own(k, lay.obs_space) for k in lay.keys]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per_agent)


def _global_state(lay: _Layout, obs: dict) -> Array:
    if isinstance(obs, Mapping) and "world_state" in obs:
        return jnp.ravel(obs["world_state"]).astype(jnp.float32)
    leaves = jax.tree.leaves([_entry(obs, k, "observation") for k in lay.keys])
    return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves])


def _find_mask_fn(env: Any, keys: tuple[Any, ...], own_act: tuple, state: Any) -> Any:
    """The env's action-mask function, checked against the action spaces, or None."""
    if not all(isinstance(s, spaces.Discrete) for s in own_act):
        return None
    for attr in ("get_avail_actions", "get_legal_moves"):
        fn = getattr(env, attr, None)
        if fn is None:
            continue
        try:
            avail = jax.eval_shape(fn, state)
        except NotImplementedError:  # JaxMARL's base class: no masks
            continue
        for k, s in zip(keys, own_act):
            got = tuple(avail[k].shape) if k in avail else None
            if got != (s.n,):
                raise ValueError(
                    f"from_jaxmarl: {attr}(state)[{k!r}] has shape {got}, expected ({s.n},) "
                    f"for the action space {s}"
                )
        return fn
    return None


def _mask(lay: _Layout, state: Any) -> Array | None:
    if not isinstance(lay.act_space, spaces.Discrete):
        return None
    n = lay.act_space.n
    sizes = [s.n for s in lay.own_act]  # type: ignore[union-attr]
    if lay.mask_fn is None:
        if all(k == n for k in sizes):
            return None
        return jnp.asarray([[j < k for j in range(n)] for k in sizes])
    avail = lay.mask_fn(state)
    rows = [jnp.asarray(avail[k]).astype(bool) for k in lay.keys]
    return jnp.stack([jnp.pad(r, (0, n - r.shape[0])) for r in rows])


def _bounds(b: float | tuple[float, ...], space: spaces.Box) -> Array:
    return jnp.reshape(jnp.broadcast_to(jnp.asarray(b, jnp.float32), (space.size,)), space.shape)


def _env_actions(lay: _Layout, actions: Array) -> dict:
    """The stacked joint action as the env's dict (continuous actions cut and clipped)."""
    out = {}
    for i, (k, s) in enumerate(zip(lay.keys, lay.own_act)):
        a = actions[i]
        if isinstance(s, spaces.Box):
            a = jnp.clip(jnp.reshape(a[: s.size], s.shape), _bounds(s.low, s), _bounds(s.high, s))
        out[k] = a
    return out


def _timestep(
    lay: _Layout,
    obs: dict,
    state: Any,
    reward: Array,
    term: Array,
    trunc: Array,
    done: Array,
    alive: Array,
) -> TimeStep:
    return TimeStep(
        obs=_stack(lay, obs),
        state=_global_state(lay, obs),
        reward=reward,
        terminated=term,
        truncated=trunc,
        done=done,
        alive=alive,
        action_mask=_mask(lay, state),
    )


class AdapterState(NamedTuple):
    """The wrapped env's state, the step count of its episode, and who is still alive."""

    env_state: Any
    t: Array  # int32[]
    alive: Array  # bool[N]


def _strong(tree: PyTree) -> PyTree:
    """``tree`` without weak types (JaxMARL's Hanabi resets to weakly typed scalars that its
    step makes strong; a ``lax.scan`` carry must keep its types)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.asarray(x).dtype), tree)


def _max_steps(env: Any, max_steps: int | None) -> int:
    if max_steps is not None:
        return int(max_steps)
    if getattr(env, "max_steps", None):
        return int(env.max_steps)
    inner, outer = getattr(env, "num_inner_steps", None), getattr(env, "num_outer_steps", None)
    if inner and outer:
        return int(inner) * int(outer)
    raise ValueError(
        f"from_jaxmarl: {type(env).__name__} has no episode bound (no max_steps, "
        "num_inner_steps * num_outer_steps); pass max_steps= (episodes are truncated there)"
    )


def _uses_base_step(env: Any) -> bool:
    """Whether ``env.step`` is JaxMARL's ``MultiAgentEnv.step`` (``step_env``, then reset
    where done): the adapter then calls ``step_env`` and resets once itself."""
    own = getattr(type(env).step, "__qualname__", "")
    return own == "MultiAgentEnv.step" and callable(getattr(env, "step_env", None))


def from_jaxmarl(env: Any, max_steps: int | None = None, name: str | None = None) -> Env:
    """Wraps a JaxMARL-style env as a jmarl :class:`Env` (see the module docstring).

    :param env: the JaxMARL env, e.g. ``jaxmarl.make("MPE_simple_spread_v3")``.
    :param max_steps: episode bound; needed where the env has none (e.g. Hanabi). Episodes
        that reach it without ending are truncated by the adapter.
    :param name: ``spec.name``; default ``"jaxmarl:<class name>"``.
    :raises ValueError: where the env cannot fit the protocol, saying why.
    """
    keys = tuple(env.agents)
    agents = tuple(str(k) for k in keys)
    own_obs = tuple(convert_space(env.observation_space(k)) for k in keys)
    own_act = tuple(convert_space(env.action_space(k)) for k in keys)
    obs_space = _stack_spaces(agents, list(own_obs), "observation")
    act_space = _stack_spaces(agents, list(own_act), "action")
    steps = _max_steps(env, max_steps)
    if steps < 1:
        raise ValueError(f"from_jaxmarl: max_steps must be >= 1, got {steps}")
    obs0, state0 = jax.eval_shape(env.reset, jax.random.key(0))
    mask_fn = _find_mask_fn(env, keys, own_act, state0)
    lay = _Layout(env, keys, obs_space, own_obs, act_space, own_act, mask_fn)
    n = len(keys)
    base_step = _uses_base_step(env)

    def reset(key: PRNGKey) -> tuple[AdapterState, TimeStep]:
        obs, state = env.reset(key)
        zeros, alive = jnp.zeros((n,), bool), jnp.ones((n,), bool)
        reward, done = jnp.zeros((n,), jnp.float32), jnp.array(False)
        ts = _timestep(lay, obs, state, reward, zeros, zeros, done, alive)
        return AdapterState(_strong(state), jnp.zeros((), jnp.int32), alive), ts

    def step(key: PRNGKey, state: AdapterState, actions: Array) -> tuple[AdapterState, TimeStep]:
        key_step, key_reset = jax.random.split(key)
        acts = _env_actions(lay, actions)
        if base_step:  # JaxMARL's own step, with the reset also on truncation
            obs, env_state, rew, dones, _ = env.step_env(key_step, state.env_state, acts)
        else:
            obs, env_state, rew, dones, _ = env.step(key, state.env_state, acts)
        ended = jnp.asarray(dones["__all__"], bool)
        term = jnp.stack([jnp.asarray(dones.get(k, ended), bool) for k in keys])
        t = state.t + 1
        cut = (t >= steps) & ~ended
        done = ended | cut
        reset_now = done if base_step else cut
        obs_r, state_r = env.reset(key_reset)
        pick = lambda a, b: jax.lax.select(reset_now, a, b)
        obs, env_state = jax.tree.map(pick, (obs_r, state_r), (obs, env_state))
        alive = jnp.where(done, True, state.alive & ~term)
        reward = jnp.stack([jnp.asarray(_entry(rew, k, "reward"), jnp.float32) for k in keys])
        trunc = jnp.broadcast_to(cut, (n,)) & ~term
        ts = _timestep(lay, obs, env_state, reward, term, trunc, done, alive)
        return AdapterState(_strong(env_state), jnp.where(done, 0, t), alive), ts

    state_dim = jax.eval_shape(lambda o: _global_state(lay, o), obs0)
    # trace both once, so that an env that does not fit fails here, not inside a training jit
    key0 = jax.random.key(0)
    state_shape, _ = jax.eval_shape(reset, key0)
    jax.eval_shape(step, key0, state_shape, spaces.zeros(act_space, (n,)))
    spec = EnvSpec(
        name=name or f"jaxmarl:{type(env).__name__}",
        agent_ids=agents,
        observation_space=obs_space,
        action_space=act_space,
        state_space=spaces.Box(-np.inf, np.inf, (int(state_dim.size),)),
        max_steps=steps,
        agent_observation_spaces=own_obs,
        agent_action_spaces=own_act,
    )
    return Env(spec, reset, step)
