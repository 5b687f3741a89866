"""Conformance checks for the jmarl environment protocol (``jmarl.env.base``).

``check_env`` plays the role of PettingZoo's ``parallel_api_test`` for pure JAX environments::

    from jmarl.testing import check_env
    check_env(jmarl.make("simple_spread", num_agents=3), jax.random.key(0))

Every failure raises ``AssertionError`` with a message that names the environment and the
check that failed.
"""

from __future__ import annotations

import functools
from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, ResetFn, StepFn, TimeStep, step_batch
from jmarl.types import Array, PRNGKey, PyTree


def check_env(env: Env, key: PRNGKey, num_steps: int = 50) -> None:
    """Checks that ``env`` follows the jmarl environment protocol.

    Checks, in order: the spec is consistent; ``reset`` and ``step`` jit and return
    ``TimeStep`` fields whose shapes and dtypes match the spec (``obs [N, ...]``,
    ``state [S]``, ``reward f32[N]``, flags ``bool[N]``, ``done bool[]``); observations lie in
    the observation space; ``step`` keeps the carry's structure, shapes, dtypes and weak types
    (so it can sit in a ``lax.scan``) and compiles once; a random-action rollout of
    ``num_steps`` steps under ``lax.scan`` has finite rewards and no NaN, and is reproducible
    from the same key; episodes never run past ``spec.max_steps`` and, after auto-reset, start
    again (an episode that ends by truncation alone lasts exactly ``spec.max_steps`` steps);
    ``vmap(reset)`` and ``vmap(step)`` agree with unbatched calls. Where the env lists its
    ``chance_outcomes``: their probabilities sum to 1, their TimeSteps are well formed and
    ``reset`` returns one of them.

    :param env: the environment under test.
    :param key: PRNG key for resets, actions and steps.
    :param num_steps: rollout length; use more than ``spec.max_steps`` to cover auto-reset.
    :raises AssertionError: on the first violated check.
    """
    spec = env.spec
    _check_spec(spec)
    key_reset, key_act, key_step, key_roll = jax.random.split(key, 4)
    reset = jax.jit(env.reset)
    state, ts = reset(key_reset)
    _check_timestep(spec, ts, "reset")
    _check_obs_in_space(spec, ts.obs, "reset")
    _check_chance_outcomes(env, state, ts)
    actions = sample_actions(key_act, spec, ts.action_mask)
    _check_step_carry(env, key_step, state, ts, actions)
    step = _check_single_trace(env, key_step, state, actions)
    traj = _check_rollout(env, key_roll, num_steps)
    _check_obs_in_space(spec, traj.obs, "rollout")
    _check_episodes(spec, traj)
    _check_vmap(env, key, reset, step)


def sample_actions(key: PRNGKey, spec: EnvSpec, action_mask: Array | None = None) -> PyTree:
    """Uniform random joint action ``[N, ...]``, restricted to ``action_mask`` when given.

    Only ``Discrete`` action spaces honour the mask (``bool[N, n]``); an agent whose row is
    all False draws uniformly.
    """
    n = spec.num_agents
    space = spec.action_space
    if action_mask is None or not isinstance(space, spaces.Discrete):
        return spaces.sample(key, space, (n,))
    allowed = action_mask | ~jnp.any(action_mask, axis=-1, keepdims=True)
    logits = jnp.where(allowed, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(space.dtype)


def _fail(spec: EnvSpec, msg: str) -> NoReturn:
    raise AssertionError(f"check_env({spec.name!r}): {msg}")


def _check_spec(spec: EnvSpec) -> None:
    if spec.num_agents < 1:
        _fail(spec, "spec.agent_ids is empty")
    if len(set(spec.agent_ids)) != spec.num_agents:
        _fail(spec, f"spec.agent_ids has duplicates: {spec.agent_ids}")
    if not isinstance(spec.max_steps, int) or spec.max_steps < 1:
        _fail(spec, f"spec.max_steps must be a positive int, got {spec.max_steps!r}")
    if not isinstance(spec.state_space, spaces.Box):
        _fail(spec, f"spec.state_space must be a Box, got {spec.state_space!r}")


def _signature(tree: PyTree) -> list[str]:
    """One ``path: dtype[shape]`` line per leaf (``~`` marks weak types), then the structure."""
    shapes = jax.eval_shape(lambda t: t, tree)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    lines = []
    for path, x in leaves:
        weak = "~" if getattr(x, "weak_type", False) else ""
        lines.append(f"{jax.tree_util.keystr(path)}: {weak}{x.dtype}{list(x.shape)}")
    return [*lines, f"structure: {treedef}"]


def _mismatch(before: list[str], after: list[str]) -> str:
    """The signature lines that differ (``~`` marks weak types)."""
    gone = [f"\n  before: {line}" for line in before if line not in after]
    new = [f"\n  after:  {line}" for line in after if line not in before]
    return "".join(gone + new)


def _same_structure(a: PyTree, b: PyTree) -> bool:
    return bool(jax.tree.structure(a) == jax.tree.structure(b))  # type: ignore[operator]


def _check_array(spec: EnvSpec, x: Any, shape: tuple, dtype: Any, what: str) -> None:
    if x is None or not hasattr(x, "shape"):
        _fail(spec, f"{what} should be an array of shape {shape}, got {type(x).__name__}")
    if tuple(x.shape) != tuple(shape):
        _fail(spec, f"{what} has shape {tuple(x.shape)}, expected {tuple(shape)}")
    if jnp.dtype(x.dtype) != jnp.dtype(dtype):
        _fail(spec, f"{what} has dtype {x.dtype}, expected {jnp.dtype(dtype)}")


def _check_timestep(spec: EnvSpec, ts: TimeStep, where: str, batch: tuple = ()) -> None:
    """Shapes and dtypes of every ``TimeStep`` field, with optional leading ``batch`` dims."""
    if not isinstance(ts, TimeStep):
        _fail(spec, f"{where} must return a TimeStep, got {type(ts).__name__}")
    n = spec.num_agents
    expected_obs = spaces.zeros(spec.observation_space, (*batch, n))
    if not _same_structure(ts.obs, expected_obs):
        _fail(
            spec,
            f"{where} obs structure {jax.tree.structure(ts.obs)} does not match "
            f"the observation space {jax.tree.structure(expected_obs)}",
        )
    for x, e in zip(jax.tree.leaves(ts.obs), jax.tree.leaves(expected_obs), strict=True):
        _check_array(spec, x, e.shape, e.dtype, f"{where} obs")
    _check_array(
        spec, ts.state, batch + spec.state_space.shape, spec.state_space.dtype, f"{where} state"
    )
    _check_array(spec, ts.reward, (*batch, n), jnp.float32, f"{where} reward")
    for name in ("terminated", "truncated", "alive"):
        _check_array(spec, getattr(ts, name), (*batch, n), bool, f"{where} {name}")
    _check_array(spec, ts.done, batch, bool, f"{where} done")
    if ts.action_mask is not None:
        mask = ts.action_mask
        if mask.shape[: len(batch) + 1] != (*batch, n) or mask.dtype != jnp.bool_:
            _fail(
                spec,
                f"{where} action_mask must be bool{[*batch, n, 'A']}, "
                f"got {mask.dtype}{list(mask.shape)}",
            )
        space = spec.action_space
        if isinstance(space, spaces.Discrete) and mask.shape[-1] != space.n:
            _fail(spec, f"{where} action_mask has {mask.shape[-1]} actions, expected {space.n}")


def _in_space(space: spaces.Space, x: PyTree) -> bool:
    """Whether every element of ``x`` (any leading batch dims) lies in ``space``; NaN fails."""
    if isinstance(space, spaces.Dict):
        return all(_in_space(s, x[k]) for k, s in space.spaces)
    if isinstance(space, spaces.Tuple):
        return all(_in_space(s, v) for s, v in zip(space.spaces, x, strict=True))
    a = np.asarray(x)
    if isinstance(space, spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float64).reshape(-1), (space.size,))
        high = np.broadcast_to(np.asarray(space.high, np.float64).reshape(-1), (space.size,))
        flat = a.reshape(-1, space.size)
        return bool(np.all((flat >= low) & (flat <= high)))
    if isinstance(space, spaces.Discrete):
        return bool(np.all((a >= 0) & (a < space.n)))
    if isinstance(space, spaces.MultiDiscrete):
        return bool(np.all((a >= 0) & (a < np.asarray(space.nvec))))
    if isinstance(space, spaces.MultiBinary):
        return bool(np.all((a == 0) | (a == 1)))
    raise TypeError(f"unknown space {space!r}")


def _check_obs_in_space(spec: EnvSpec, obs: PyTree, where: str) -> None:
    if not _in_space(spec.observation_space, obs):
        _fail(spec, f"{where} obs lie outside the observation space (or are NaN)")


def _check_chance_outcomes(env: Env, state: PyTree, ts: TimeStep) -> None:
    """``env.chance_outcomes()``: probabilities ``[C]`` summing to 1, TimeSteps ``[C]``, and
    the reset ``(state, ts)`` is one of the outcomes."""
    if env.chance_outcomes is None:
        return
    spec = env.spec
    states, tss, probs = jax.device_get(env.chance_outcomes())
    p = np.asarray(probs, np.float64)
    if p.ndim != 1 or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-5):
        _fail(spec, f"chance_outcomes probabilities must be [C], >= 0, sum 1; got {p}")
    _check_timestep(spec, tss, "chance_outcomes", batch=(len(p),))
    same = np.ones(len(p), bool)
    for c, r in zip(jax.tree.leaves((states, tss)), jax.tree.leaves((state, ts)), strict=True):
        same &= np.all(np.asarray(c).reshape(len(p), -1) == np.asarray(r).reshape(1, -1), axis=1)
    if not same.any():
        _fail(spec, "reset returned a (state, TimeStep) that is not among env.chance_outcomes()")


def _check_step_carry(env: Env, key: PRNGKey, state: PyTree, ts: TimeStep, actions: PyTree) -> None:
    """``step`` must return a state and a TimeStep shaped exactly like its inputs (scan-safe)."""
    spec = env.spec
    new_state, new_ts = jax.eval_shape(env.step, key, state, actions)
    before, after = _signature(state), _signature(new_state)
    if before != after:
        _fail(
            spec,
            "step changes the state's structure, shapes, dtypes or weak types "
            f"(not scan-safe; before = reset, after = step):{_mismatch(before, after)}",
        )
    before, after = _signature(ts), _signature(new_ts)
    if before != after:
        _fail(
            spec,
            "step returns a TimeStep whose structure, shapes, dtypes or weak types "
            f"differ from reset's (before = reset, after = step):{_mismatch(before, after)}",
        )
    _check_timestep(spec, new_ts, "step")


def _check_single_trace(env: Env, key: PRNGKey, state: PyTree, actions: PyTree) -> StepFn:
    """A jitted ``step`` fed its own output must not retrace.

    :returns: the jitted step, for reuse (it fails if it is ever traced again).
    """
    traces: list[None] = []

    def counted(k: PRNGKey, s: PyTree, a: PyTree) -> tuple[PyTree, TimeStep]:
        traces.append(None)
        if len(traces) > 1:
            _fail(env.spec, "jit(step) retraced for inputs of unchanged shapes and dtypes")
        return env.step(k, s, a)

    step = jax.jit(counted)
    next_state, _ = step(key, state, actions)
    step(jax.random.fold_in(key, 1), next_state, actions)
    return step


def _rollout(env: Env, key: PRNGKey, num_steps: int) -> tuple[TimeStep, TimeStep]:
    """Random-action rollout: the reset ``TimeStep`` and the stacked ``[T]`` step ones."""

    def body(
        carry: tuple[PyTree, TimeStep], k: PRNGKey
    ) -> tuple[tuple[PyTree, TimeStep], TimeStep]:
        state, ts = carry
        k_act, k_step = jax.random.split(k)
        actions = sample_actions(k_act, env.spec, ts.action_mask)
        state, ts = env.step(k_step, state, actions)
        return (state, ts), ts

    key_reset, key_steps = jax.random.split(key)
    state, ts = env.reset(key_reset)
    _, traj = jax.lax.scan(body, (state, ts), jax.random.split(key_steps, num_steps))
    return ts, traj


def _trees_equal(a: PyTree, b: PyTree, exact: bool) -> bool:
    if not _same_structure(a, b):
        return False
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if exact or not np.issubdtype(x.dtype, np.inexact):
            same = np.array_equal(x, y, equal_nan=np.issubdtype(x.dtype, np.inexact))
        else:
            same = np.allclose(x, y, rtol=1e-5, atol=1e-6, equal_nan=True)
        if not same:
            return False
    return True


def _check_rollout(env: Env, key: PRNGKey, num_steps: int) -> TimeStep:
    """Scans ``num_steps`` random steps twice (two traces); checks values and determinism.

    :returns: the ``[T]``-stacked step ``TimeStep``s.
    """
    spec = env.spec
    first, traj = jax.jit(functools.partial(_rollout, env, num_steps=num_steps))(key)
    again = jax.jit(functools.partial(_rollout, env, num_steps=num_steps))(key)
    if not _trees_equal((first, traj), again, exact=True):
        _fail(spec, "two rollouts from the same key differ (reset/step are not deterministic)")
    _check_timestep(spec, traj, "scan(step)", batch=(num_steps,))
    reward = np.asarray(traj.reward)
    if not np.all(np.isfinite(reward)):
        t, i = np.argwhere(~np.isfinite(reward))[0]
        _fail(spec, f"non-finite reward {reward[t, i]} at step {t} for agent {i}")
    if np.any(np.isnan(np.asarray(traj.state))):
        _fail(spec, f"NaN in the global state at step {np.argwhere(np.isnan(traj.state))[0, 0]}")
    return traj


def _check_episodes(spec: EnvSpec, traj: TimeStep) -> None:
    """Episode bookkeeping of a ``[T]`` rollout: done flags, truncation and auto-reset."""
    done, term, trunc = (np.asarray(x) for x in (traj.done, traj.terminated, traj.truncated))
    length = 0
    for t in range(done.shape[0]):
        length += 1
        if length > spec.max_steps:
            _fail(
                spec,
                f"an episode ran past max_steps={spec.max_steps} without done (rollout step {t})",
            )
        ended = term[t] | trunc[t]
        if done[t] and not ended.any():
            _fail(spec, f"done at rollout step {t} with no terminated or truncated agent")
        if not done[t] and ended.all():
            _fail(
                spec, f"every agent terminated or truncated at rollout step {t} but done is False"
            )
        if done[t] and trunc[t].any() and not term[t].any() and length != spec.max_steps:
            _fail(
                spec,
                f"an episode was truncated after {length} steps, expected max_steps="
                f"{spec.max_steps} (does auto-reset restart the step counter?)",
            )
        if done[t]:
            length = 0


def _check_vmap(env: Env, key: PRNGKey, reset: ResetFn, step: StepFn) -> None:
    """``vmap(reset)`` and ``vmap(step)`` agree with the unbatched ``reset`` and ``step``."""
    spec = env.spec
    keys = jax.random.split(jax.random.fold_in(key, 1), 2)
    states, tss = jax.jit(jax.vmap(env.reset))(keys)
    _check_timestep(spec, tss, "vmap(reset)", batch=(2,))
    act_keys = jax.random.split(jax.random.fold_in(key, 2), 2)
    sample = lambda k, mask: sample_actions(k, spec, mask)
    actions = jax.vmap(sample)(act_keys, tss.action_mask)
    step_keys = jax.random.split(jax.random.fold_in(key, 3), 2)
    next_states, next_tss = jax.jit(jax.vmap(env.step))(step_keys, states, actions)
    _check_timestep(spec, next_tss, "vmap(step)", batch=(2,))
    for i in range(2):
        if not _trees_equal(reset(keys[i]), _index((states, tss), i), exact=False):
            _fail(spec, f"vmap(reset) element {i} differs from reset(key)")
        stepped = step(step_keys[i], _index(states, i), _index(actions, i))
        if not _trees_equal(stepped, _index((next_states, next_tss), i), exact=False):
            _fail(spec, f"vmap(step) element {i} differs from an unbatched step")
    if env.batch_step is not None:
        _check_batch_step(env, jax.random.fold_in(key, 4), states, tss)


def _check_batch_step(env: Env, key: PRNGKey, states: PyTree, tss: TimeStep) -> None:
    """``env.batch_step`` agrees with ``vmap(env.step)`` over ``split(key, E)`` for
    ``max_steps + 2`` steps (across an episode end)."""
    spec = env.spec
    batched, vmapped = jax.jit(step_batch(env)), jax.jit(step_batch(env._replace(batch_step=None)))
    num_envs = tss.reward.shape[0]
    sample = jax.vmap(lambda k, mask: sample_actions(k, spec, mask))
    for t in range(min((spec.max_steps or 1) + 2, 200)):
        k_act, k_step = jax.random.split(jax.random.fold_in(key, t))
        actions = sample(jax.random.split(k_act, num_envs), tss.action_mask)
        expected = vmapped(k_step, states, actions)
        got = batched(k_step, states, actions)
        if not _trees_equal(got, expected, exact=False):  # structure, shapes, values
            _fail(spec, f"batch_step differs from vmap(step) at step {t}")
        states, tss = expected


def _index(tree: PyTree, i: int) -> PyTree:
    return jax.tree.map(lambda x: x[i], tree)
