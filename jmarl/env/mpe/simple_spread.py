"""MPE ``simple_spread`` as a pure JAX environment.

``N`` agents and ``N`` landmarks live on the plane; agents are rewarded for covering every
landmark and penalised for bumping into each other. Dynamics, rewards and observations follow
``mpe2.simple_spread_v3`` (v1.1) step for step, in float32 instead of float64::

    env = make_simple_spread(num_agents=3)
    state, ts = env.reset(key)               # ts.obs: f32[3, 18], ts.state: f32[18]
    state, ts = env.step(key, state, acts)   # acts: int32[3] in 0..4

One step (``dt = 0.1``, damping ``0.25``, unit mass, no speed limit):

* action force ``u * 5`` with ``u`` from the action (discrete ``0..4`` = no-op, ``-x``, ``+x``,
  ``-y``, ``+y``; continuous ``a`` in ``[0, 1]^5`` is clipped and ``u = [a2 - a1, a4 - a3]``);
* a soft contact force between every pair of agents (radius 0.15 each, landmarks do not
  collide): ``f_ab = 100 * (p_a - p_b) / d * k * log(1 + exp(-(d - 0.3) / k))``, ``k = 1e-3``;
* explicit integration in mpe2's order: ``p += v dt``, then ``v = v (1 - damping) + f dt``.

Each agent's reward, computed after the move, is
``(1 - local_ratio) * global + local_ratio * local`` with ``global = -sum_l min_a |p_a - l|``
and ``local = -#{other agents closer than 0.3}``.

Unlike mpe2, the global state ``ts.state`` is the compact ``[agent_pos, agent_vel,
landmark_pos]`` (``6N`` floats) instead of the concatenation of all observations (``6N^2``),
so that centralised critics stay small with hundreds of agents. Two agents at exactly the same
point feel no contact force here (mpe2 divides by zero).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env.base import Env, EnvSpec, TimeStep
from jmarl.env.spaces import Box, Discrete
from jmarl.types import Array, PRNGKey

DT = 0.1
DAMPING = 0.25
SENSITIVITY = 5.0  # action force per unit of ``u``
CONTACT_FORCE = 100.0
CONTACT_MARGIN = 1e-3
AGENT_SIZE = 0.15
COLLISION_DISTANCE = 2 * AGENT_SIZE
NUM_ACTIONS = 5

# Unit move direction of each discrete action: no-op, -x, +x, -y, +y.
_DIRECTIONS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float32)


class SimpleSpreadState(NamedTuple):
    """Physical state of one simple_spread episode (N agents, N landmarks).

    :param agent_pos: ``f32[N, 2]`` agent positions.
    :param agent_vel: ``f32[N, 2]`` agent velocities.
    :param landmark_pos: ``f32[N, 2]`` landmark positions (landmarks never move).
    :param step: ``int32[]`` steps taken in this episode.
    """

    agent_pos: Array
    agent_vel: Array
    landmark_pos: Array
    step: Array


def contact_forces(pos: Array) -> Array:
    """Sum of mpe2's soft contact forces on each agent from all the others.

    :param pos: ``f32[N, 2]`` agent positions.
    :returns: ``f32[N, 2]`` force on each agent. Pairs at distance 0 (an agent with itself,
        or two agents on the same point) contribute nothing.
    """
    delta = pos[:, None, :] - pos[None, :, :]  # [N, N, 2]: p_a - p_b
    sq_dist = jnp.sum(jnp.square(delta), axis=-1)  # [N, N]
    apart = sq_dist > 0
    dist = jnp.sqrt(jnp.where(apart, sq_dist, 1.0))  # where-guard keeps gradients finite
    k = CONTACT_MARGIN
    penetration = jnp.logaddexp(0.0, -(dist - COLLISION_DISTANCE) / k) * k
    magnitude = jnp.where(apart, CONTACT_FORCE * penetration / dist, 0.0)
    return jnp.sum(magnitude[..., None] * delta, axis=1)


def action_to_u(actions: Array, continuous: bool) -> Array:
    """Agent controls ``u`` (before the force sensitivity) from raw actions.

    :param actions: ``int[N]`` in ``0..4`` (discrete; taken modulo 5 like mpe2's raw env) or
        ``f32[N, 5]`` (continuous, clipped to ``[0, 1]`` as mpe2's ``ClipOutOfBoundsWrapper``
        does).
    :returns: ``f32[N, 2]``.
    """
    if continuous:
        a = jnp.clip(actions.astype(jnp.float32), 0.0, 1.0)
        return jnp.stack([a[:, 2] - a[:, 1], a[:, 4] - a[:, 3]], axis=-1)
    return jnp.asarray(_DIRECTIONS)[actions % NUM_ACTIONS]


def integrate(pos: Array, vel: Array, force: Array) -> tuple[Array, Array]:
    """One explicit Euler step in mpe2's order (position first, with the old velocity).

    :param pos: ``f32[N, 2]``; :param vel: ``f32[N, 2]``; :param force: ``f32[N, 2]``.
    :returns: new ``(pos, vel)``, each ``f32[N, 2]``.
    """
    new_pos = pos + vel * DT
    new_vel = vel * (1.0 - DAMPING) + force * DT  # unit mass
    return new_pos, new_vel


def rewards(agent_pos: Array, landmark_pos: Array, local_ratio: float) -> Array:
    """Per-agent reward ``(1 - local_ratio) * global + local_ratio * local``.

    :param agent_pos: ``f32[N, 2]``; :param landmark_pos: ``f32[L, 2]``.
    :returns: ``f32[N]``.
    """
    to_landmarks = jnp.linalg.norm(agent_pos[:, None, :] - landmark_pos[None, :, :], axis=-1)
    global_reward = -jnp.sum(jnp.min(to_landmarks, axis=0))
    between = jnp.linalg.norm(agent_pos[:, None, :] - agent_pos[None, :, :], axis=-1)
    n = agent_pos.shape[0]
    collide = (between < COLLISION_DISTANCE) & ~jnp.eye(n, dtype=bool)
    local_reward = -jnp.sum(collide, axis=1).astype(jnp.float32)
    return (1.0 - local_ratio) * global_reward + local_ratio * local_reward


def _others_index(n: int) -> np.ndarray:
    """``int[n, n-1]``: row ``i`` lists ``0..n-1`` without ``i``, in order."""
    j = np.arange(n - 1)[None, :]
    return j + (j >= np.arange(n)[:, None])


def observations(state: SimpleSpreadState) -> Array:
    """Each agent's mpe2 observation.

    Row ``i`` is ``[v_i (2), p_i (2), landmarks - p_i (2N), others - p_i (2(N-1)),
    communication zeros (2(N-1))]`` with the other agents in agent order.

    :returns: ``f32[N, 6N]``.
    """
    pos, vel = state.agent_pos, state.agent_vel
    n = pos.shape[0]
    to_landmarks = state.landmark_pos[None, :, :] - pos[:, None, :]  # [N, L, 2]
    to_others = pos[_others_index(n)] - pos[:, None, :]  # [N, N-1, 2]
    comm = jnp.zeros((n, 2 * (n - 1)), jnp.float32)
    parts = [vel, pos, to_landmarks.reshape(n, -1), to_others.reshape(n, -1), comm]
    return jnp.concatenate(parts, axis=-1).astype(jnp.float32)


def global_state(state: SimpleSpreadState) -> Array:
    """The compact global state ``[agent_pos, agent_vel, landmark_pos]``, flattened.

    :returns: ``f32[6N]`` (agent-major within each block: ``x_0, y_0, x_1, ...``).
    """
    parts = [state.agent_pos, state.agent_vel, state.landmark_pos]
    return jnp.concatenate([p.reshape(-1) for p in parts]).astype(jnp.float32)


def _timestep(state: SimpleSpreadState, reward: Array, truncated: Array) -> TimeStep:
    n = state.agent_pos.shape[0]
    return TimeStep(
        obs=observations(state),
        state=global_state(state),
        reward=reward.astype(jnp.float32),
        terminated=jnp.zeros((n,), bool),
        truncated=jnp.broadcast_to(truncated, (n,)),
        done=truncated,
        alive=jnp.ones((n,), bool),
        action_mask=None,
    )


def _reset_state(key: PRNGKey, num_agents: int) -> SimpleSpreadState:
    xy = jax.random.uniform(key, (2 * num_agents, 2), jnp.float32, -1.0, 1.0)
    return SimpleSpreadState(
        agent_pos=xy[:num_agents],
        agent_vel=jnp.zeros((num_agents, 2), jnp.float32),
        landmark_pos=xy[num_agents:],
        step=jnp.zeros((), jnp.int32),
    )


def simple_spread_reset(key: PRNGKey, num_agents: int) -> tuple[SimpleSpreadState, TimeStep]:
    """Starts an episode: agents, then landmarks, uniform in ``[-1, 1]^2``; zero velocities.

    :returns: the state and the first ``TimeStep`` (``obs f32[N, 6N]``, zero rewards).
    """
    state = _reset_state(key, num_agents)
    return state, _timestep(state, jnp.zeros((num_agents,)), jnp.zeros((), bool))


def check_actions(actions: Array, num_agents: int, continuous: bool) -> None:
    """Raises ``ValueError`` (at trace time) unless ``actions`` has the expected shape/dtype."""
    expected = (num_agents, NUM_ACTIONS) if continuous else (num_agents,)
    shape = tuple(jnp.shape(actions))
    if shape != expected:
        kind = "continuous" if continuous else "discrete"
        raise ValueError(
            f"simple_spread ({kind}, {num_agents} agents) expects actions of shape "
            f"{expected}, got {shape}"
        )
    if not continuous and not jnp.issubdtype(jnp.result_type(actions), jnp.integer):
        raise ValueError(
            f"simple_spread (discrete) expects integer actions, got {jnp.result_type(actions)}"
        )


def _advance(
    state: SimpleSpreadState, actions: Array, continuous: bool, local_ratio: float
) -> tuple[SimpleSpreadState, Array]:
    """Physics and rewards of one step: the next state and ``f32[N]`` rewards."""
    n = state.agent_pos.shape[0]
    check_actions(actions, n, continuous)
    force = SENSITIVITY * action_to_u(actions, continuous) + contact_forces(state.agent_pos)
    pos, vel = integrate(state.agent_pos, state.agent_vel, force)
    state = SimpleSpreadState(pos, vel, state.landmark_pos, state.step + 1)
    return state, rewards(pos, state.landmark_pos, local_ratio)


def simple_spread_step(
    state: SimpleSpreadState,
    actions: Array,
    *,
    max_steps: int,
    continuous: bool = False,
    local_ratio: float = 0.5,
) -> tuple[SimpleSpreadState, TimeStep]:
    """One step without auto-reset (after ``max_steps`` steps ``done`` is True and stays so).

    :param state: current state with ``N`` agents.
    :param actions: ``int[N]`` (discrete) or ``f32[N, 5]`` (continuous).
    :returns: the next state and its ``TimeStep``; rewards and observations describe the
        state after the move.
    """
    state, reward = _advance(state, actions, continuous, local_ratio)
    return state, _timestep(state, reward, state.step >= max_steps)


def _fresh_episode(key: PRNGKey, num_agents: int) -> SimpleSpreadState:
    """The episode an auto-reset step with ``key`` starts (``auto_reset``'s reset key)."""
    _, key_reset = jax.random.split(key)
    return _reset_state(key_reset, num_agents)


def simple_spread_auto_reset_step(
    key: PRNGKey,
    state: SimpleSpreadState,
    actions: Array,
    *,
    max_steps: int,
    continuous: bool = False,
    local_ratio: float = 0.5,
) -> tuple[SimpleSpreadState, TimeStep]:
    """One step with auto-reset, equal to ``auto_reset(reset, step)`` (same keys, same
    values) but building the ``[N, 6N]`` observations once, from the state that is kept."""
    n = state.agent_pos.shape[0]
    state, reward = _advance(state, actions, continuous, local_ratio)
    done = state.step >= max_steps
    state = jax.tree.map(lambda a, b: jnp.where(done, a, b), _fresh_episode(key, n), state)
    return state, _timestep(state, reward, done)


def simple_spread_batch_step(
    key: PRNGKey,
    state: SimpleSpreadState,
    actions: Array,
    *,
    max_steps: int,
    continuous: bool = False,
    local_ratio: float = 0.5,
) -> tuple[SimpleSpreadState, TimeStep]:
    """:func:`simple_spread_auto_reset_step` over a batch of envs ``[E]``, equal to its
    ``vmap`` over ``split(key, E)`` (the same fresh episodes), with the fresh episodes drawn
    only when some env's episode ends: a ``lax.cond`` skips the keys, the uniform draws and
    the selects on the other steps (under an outer ``vmap``, e.g. over seeds, the cond
    becomes a select and both branches run)."""
    num_envs, n = state.agent_pos.shape[:2]
    advance = functools.partial(_advance, continuous=continuous, local_ratio=local_ratio)
    state, reward = jax.vmap(advance)(state, actions)
    done = state.step >= max_steps

    def restart(state: SimpleSpreadState) -> SimpleSpreadState:
        fresh = jax.vmap(_fresh_episode, in_axes=(0, None))(jax.random.split(key, num_envs), n)
        pick = lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)
        return jax.tree.map(pick, fresh, state)

    state = jax.lax.cond(jnp.any(done), restart, lambda s: s, state)
    return state, jax.vmap(_timestep)(state, reward, done)


def make_simple_spread(
    num_agents: int = 3,
    max_steps: int = 25,
    continuous_actions: bool = False,
    local_ratio: float = 0.5,
) -> Env:
    """Builds simple_spread with ``num_agents`` agents and as many landmarks.

    :param num_agents: ``N``, agents and landmarks (mpe2's ``N``).
    :param max_steps: episode length; episodes end by truncation (mpe2's ``max_cycles``).
    :param continuous_actions: ``Box(0, 1, (5,))`` actions instead of ``Discrete(5)``.
    :param local_ratio: weight of the collision penalty; the landmark-coverage reward gets
        ``1 - local_ratio``.

    >>> env = make_simple_spread(num_agents=4)
    >>> env.spec.observation_space.shape, env.spec.state_space.shape
    ((24,), (24,))
    """
    if int(num_agents) != num_agents or num_agents < 1:
        raise ValueError(f"simple_spread needs num_agents >= 1, got {num_agents}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"simple_spread needs max_steps >= 1, got {max_steps}")
    if not 0.0 <= local_ratio <= 1.0:
        raise ValueError(f"simple_spread needs local_ratio in [0, 1], got {local_ratio}")
    n, max_steps = int(num_agents), int(max_steps)
    spec = EnvSpec(
        name="simple_spread",
        agent_ids=tuple(f"agent_{i}" for i in range(n)),
        observation_space=Box(-np.inf, np.inf, (6 * n,)),
        action_space=Box(0.0, 1.0, (NUM_ACTIONS,)) if continuous_actions else Discrete(5),
        state_space=Box(-np.inf, np.inf, (6 * n,)),
        max_steps=max_steps,
    )
    reset = functools.partial(simple_spread_reset, num_agents=n)
    continuous, ratio = bool(continuous_actions), float(local_ratio)
    step = functools.partial(
        simple_spread_auto_reset_step,
        max_steps=max_steps,
        continuous=continuous,
        local_ratio=ratio,
    )

    def step_without_reset(
        key: PRNGKey, state: SimpleSpreadState, actions: Array
    ) -> tuple[SimpleSpreadState, TimeStep]:
        return simple_spread_step(
            state, actions, max_steps=max_steps, continuous=continuous, local_ratio=ratio
        )

    batch_step = functools.partial(
        simple_spread_batch_step, max_steps=max_steps, continuous=continuous, local_ratio=ratio
    )
    return Env(spec, reset, step, step_without_reset, batch_step=batch_step)


def scripted_landmark_policy(obs: Array, brake: float = 0.2) -> Array:
    """Steers agent ``i`` toward landmark ``i`` (a fixed assignment) with discrete actions.

    Each agent pushes along the axis with the larger component of ``gap - brake * velocity``,
    where ``gap`` is its own landmark's relative position; the velocity term brakes before
    arrival (``brake=0`` oscillates around the landmark). A sanity baseline: with 3 agents and
    25 steps it scores about -10.8 per-agent return (about -15.2 with ``brake=0``), against
    about -26.3 for uniform random actions (both measured over 2000+ episodes).

    :param obs: ``f32[..., N, 6N]`` simple_spread observations.
    :param brake: seconds of look-ahead on the current velocity.
    :returns: ``int32[..., N]`` discrete actions.
    """
    n = obs.shape[-1] // 6
    to_landmarks = obs[..., 4 : 4 + 2 * n].reshape(*obs.shape[:-1], n, 2)
    idx = jnp.arange(n)
    aim = to_landmarks[..., idx, idx, :] - brake * obs[..., 0:2]  # [..., N, 2]
    dx, dy = aim[..., 0], aim[..., 1]
    along_x = jnp.where(dx > 0, 2, 1)
    along_y = jnp.where(dy > 0, 4, 3)
    return jnp.where(jnp.abs(dx) >= jnp.abs(dy), along_x, along_y).astype(jnp.int32)
