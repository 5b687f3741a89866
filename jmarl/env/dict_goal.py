"""``dict_goal``: a grid world whose Dict observation is useful only as a whole.

A landmark sits on a ``G x G`` grid; the four corners of the 5x5 square around it are the
targets ``0..3``. Every agent is told the number of ITS target and is paid for standing on it::

    env = make_dict_goal(num_agents=3)
    state, ts = env.reset(key)
    ts.obs["image"]        # u8[N, G, G, 1]: 255 on the landmark's cell, 0 elsewhere
    ts.obs["position"]     # f32[N, 2]: the agent's own cell (x, y) / (G - 1), in [0, 1]
    ts.obs["target"]       # i32[N]: the agent's target: landmark + OFFSETS[target]
    ts.obs["action_mask"]  # i8[N, 5]: the moves that stay on the grid (= ts.action_mask)

Each part carries something the best action needs, and none can be recovered from the
others: the image says where the landmark is (not where the agent is), the position where the
agent is (not where the landmark is), the target number which corner to go to. The image is
the same for all agents; cell ``(x, y)`` is pixel ``image[y, x]``. The action mask is there to
show how masks travel (the encoder skips it; policies use ``ts.action_mask``).

Actions (``Discrete(5)``, as in MPE): no-op, ``-x``, ``+x``, ``-y``, ``+y``; moves off the grid
are masked (and would leave the agent in place). Agents move independently and may share
cells. Rewards, after the move, with ``d`` the Manhattan distance from the agent to its target::

    r_t = 1[d_t == 0] + shaping * (d_{t-1} - d_t)        (shaping = 0.5 by default)

The shaping telescopes to ``shaping * (d_0 - d_T)`` per episode, so the return is the number
of steps spent on the target plus a bounded bonus for ending closer than one started.
Episodes last ``max_steps`` steps (truncation). Each reset draws the landmark uniformly from
the cells at least 2 from the border (so every target is on the grid, and each agent's target
is uniform over the grid), start cells uniformly and target numbers uniformly. The global
state is ``[positions (2N), landmark (2), one-hot target numbers (4N)]`` in ``[0, 1]``.

Per-agent returns on the defaults (8x8 grid, 25 steps). "Learned": IPPO with shared
parameters, 2 agents, 150k env steps, ``PPOConfig(num_envs=32, rollout_length=25,
gamma=0.95, cnn_channels=(8, 16))``, seed 0, mean of the last 10% of the training episodes;
parts removed with :func:`jmarl.env.wrappers.zero_observation` (the slow test in
``tests/learning/test_dict_learning.py``, about 75 s on 2 CPU cores):

====================  ==============================  =======
observation           best possible                   learned
====================  ==============================  =======
all three parts       23.35 (oracle)                  22.9
without ``target``    <= 6.88 (nearest corner: 6.56)  4.5
without ``image``     <= 3.19                         3.0
without ``position``  ~5.9 (see below)                5.1
random actions        0.38                            -
====================  ==============================  =======

Through the torch bridge (``tests/learning/test_dict_learning_tianshou.py``: ``to_pettingzoo``,
``EnhancedPettingZooEnv``, one shared Tianshou DQN behind ``DictObservationWrapper``, 8000 env
steps, greedy per-agent return of 48 episodes): all three parts 22.7 / 22.5 / 15.1 / 18.5 / 20.1
(seeds 0-4), without ``target`` 0.9 / 2.0 / 1.2 / 1.0 / 1.5; seed 0 without ``image`` 2.2,
without ``position`` 2.4; about 30-40 s per run on 2 CPU cores.

Bounds: ``E[d_0] = 5.25`` (start and target uniform on the grid). Without the target number
each of the 4 corners is the agent's with probability 1/4 whatever it sees, so it spends at
most ``T/4 = 6.25`` steps on its target, and ends at least 4 away on average (the mean
distance to the four corners is 4 inside their square, more outside):
``6.25 + 0.5 * (5.25 - 4) = 6.88``.
Without the image the target is uniform over a 4x4 block fixed by the target number:
``T/16 + 0.5 * (5.25 - 2) = 3.19``. Without its position an agent's observation is the same at
every step of an episode, so its policy is one fixed (masked) action distribution per
episode: it can drift toward the target's side of the grid, not stop on the target. The best
such distribution for each target cell, found numerically (exact Markov-chain returns,
a 0.05 simplex grid refined by Nelder-Mead), averages about 5.9.
The oracle and nearest-corner returns (:func:`oracle_policy`) and the random one are means
over 20,000 episodes.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env.base import Env, EnvSpec, TimeStep, auto_reset
from jmarl.env.spaces import Box, Dict, Discrete, MultiBinary
from jmarl.types import Array, PRNGKey

NUM_ACTIONS = 5
SHAPING = 0.5  # reward per cell of progress toward the target
SPREAD = 2  # the targets sit SPREAD cells from the landmark along both axes
# Target k is the landmark plus OFFSETS[k]: the four diagonal corners of a 5x5 square.
OFFSETS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.int32) * SPREAD
NUM_TARGETS = len(OFFSETS)
# Unit move of each action: no-op, -x, +x, -y, +y.
_MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.int32)


class DictGoalState(NamedTuple):
    """One ``dict_goal`` episode.

    :param pos: ``i32[N, 2]`` agent cells ``(x, y)``.
    :param landmark: ``i32[2]`` the landmark's cell.
    :param target_id: ``i32[N]`` each agent's target number (an index into ``OFFSETS``).
    :param step: ``i32[]`` steps taken in this episode.
    """

    pos: Array
    landmark: Array
    target_id: Array
    step: Array


def targets(state: DictGoalState) -> Array:
    """``i32[N, 2]``: each agent's target cell, ``landmark + OFFSETS[target_id]``."""
    return state.landmark + jnp.asarray(OFFSETS)[state.target_id]


def distance(state: DictGoalState) -> Array:
    """``i32[N]``: Manhattan distance from each agent to its own target."""
    return jnp.sum(jnp.abs(state.pos - targets(state)), axis=-1)


def action_mask(pos: Array, grid_size: int) -> Array:
    """``bool[N, 5]``: the moves that keep each agent on the grid (no-op always allowed)."""
    new = pos[:, None, :] + jnp.asarray(_MOVES)[None]
    return jnp.all((new >= 0) & (new < grid_size), axis=-1)


def observations(state: DictGoalState, grid_size: int) -> dict[str, Array]:
    """Each agent's Dict observation (see the module doc); every leaf has leading ``[N]``."""
    n, (x, y) = state.pos.shape[0], state.landmark
    image = jnp.zeros((grid_size, grid_size, 1), jnp.uint8).at[y, x, 0].set(255)
    return {
        "action_mask": action_mask(state.pos, grid_size).astype(jnp.int8),
        "image": jnp.broadcast_to(image, (n, grid_size, grid_size, 1)),
        "position": state.pos.astype(jnp.float32) / (grid_size - 1),
        "target": state.target_id,
    }


def global_state(state: DictGoalState, grid_size: int) -> Array:
    """``f32[2N + 2 + 4N]``: positions, the landmark's cell, one-hot target numbers."""
    scale = 1.0 / (grid_size - 1)
    parts = [
        state.pos.reshape(-1) * scale,
        state.landmark * scale,
        jax.nn.one_hot(state.target_id, NUM_TARGETS).reshape(-1),
    ]
    return jnp.concatenate(parts).astype(jnp.float32)


def _timestep(state: DictGoalState, reward: Array, grid_size: int, max_steps: int) -> TimeStep:
    n = state.pos.shape[0]
    done = state.step >= max_steps
    return TimeStep(
        obs=observations(state, grid_size),
        state=global_state(state, grid_size),
        reward=reward.astype(jnp.float32),
        terminated=jnp.zeros((n,), bool),
        truncated=jnp.broadcast_to(done, (n,)),
        done=done,
        alive=jnp.ones((n,), bool),
        action_mask=action_mask(state.pos, grid_size),
    )


def dict_goal_reset(
    key: PRNGKey, *, num_agents: int, grid_size: int, max_steps: int
) -> tuple[DictGoalState, TimeStep]:
    """Draws the landmark, start cells and target numbers; zero rewards."""
    k_landmark, k_pos, k_id = jax.random.split(key, 3)
    state = DictGoalState(
        pos=jax.random.randint(k_pos, (num_agents, 2), 0, grid_size, jnp.int32),
        landmark=jax.random.randint(k_landmark, (2,), SPREAD, grid_size - SPREAD, jnp.int32),
        target_id=jax.random.randint(k_id, (num_agents,), 0, NUM_TARGETS, jnp.int32),
        step=jnp.zeros((), jnp.int32),
    )
    return state, _timestep(state, jnp.zeros((num_agents,)), grid_size, max_steps)


def dict_goal_step(
    key: PRNGKey,
    state: DictGoalState,
    actions: Array,
    *,
    grid_size: int,
    max_steps: int,
    shaping: float = SHAPING,
) -> tuple[DictGoalState, TimeStep]:
    """One move of every agent, without auto-reset.

    :param actions: ``int[N]`` in ``0..4``; moves off the grid leave the agent in place.
    """
    del key
    n = state.pos.shape[0]
    if tuple(jnp.shape(actions)) != (n,) or not jnp.issubdtype(actions.dtype, jnp.integer):
        raise ValueError(
            f"dict_goal expects int actions of shape ({n},), got "
            f"{jnp.result_type(actions)}{list(jnp.shape(actions))}"
        )
    move = jnp.asarray(_MOVES)[jnp.clip(actions, 0, NUM_ACTIONS - 1)]
    pos = jnp.clip(state.pos + move, 0, grid_size - 1)
    new = DictGoalState(pos, state.landmark, state.target_id, state.step + 1)
    d_before, d_after = distance(state), distance(new)
    reward = (d_after == 0) + shaping * (d_before - d_after)
    return new, _timestep(new, reward, grid_size, max_steps)


def make_dict_goal(
    num_agents: int = 3,
    max_steps: int = 25,
    continuous_actions: bool = False,
    grid_size: int = 8,
    shaping: float = SHAPING,
) -> Env:
    """Builds ``dict_goal`` (see the module doc).

    :param num_agents: ``N`` independent agents.
    :param max_steps: episode length (truncation).
    :param continuous_actions: must be False (``dict_goal`` is a grid world).
    :param grid_size: ``G >= 5``; ``G >= 8`` keeps the image a CNN input
        (:func:`jmarl.nn.encoders.is_image`).
    :param shaping: reward per cell of progress toward the target; larger values make the
        task easier to learn and the return less dominated by time on the target.

    >>> env = make_dict_goal(num_agents=2)
    >>> env.spec.observation_space["image"].shape, env.spec.state_space.shape
    ((8, 8, 1), (14,))
    """
    if continuous_actions:
        raise ValueError("dict_goal has discrete actions only (continuous_actions=True given)")
    _check_sizes(num_agents, max_steps, grid_size)
    g, t = int(grid_size), int(max_steps)
    reset = functools.partial(dict_goal_reset, num_agents=int(num_agents), grid_size=g, max_steps=t)
    step = functools.partial(dict_goal_step, grid_size=g, max_steps=t, shaping=float(shaping))
    spec = _spec(int(num_agents), int(max_steps), int(grid_size))
    return Env(spec, reset, auto_reset(reset, step), step)


def _check_sizes(num_agents: int, max_steps: int, grid_size: int) -> None:
    for name, value, low in (
        ("num_agents", num_agents, 1),
        ("max_steps", max_steps, 1),
        ("grid_size", grid_size, 2 * SPREAD + 1),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"dict_goal needs {name} >= {low}, got {value}")


def _spec(n: int, max_steps: int, g: int) -> EnvSpec:
    obs = Dict.from_mapping(
        {
            "action_mask": MultiBinary((NUM_ACTIONS,)),
            "image": Box(0.0, 255.0, (g, g, 1), "uint8"),
            "position": Box(0.0, 1.0, (2,)),
            "target": Discrete(NUM_TARGETS),
        }
    )
    return EnvSpec(
        name="dict_goal",
        agent_ids=tuple(f"agent_{i}" for i in range(n)),
        observation_space=obs,
        action_space=Discrete(NUM_ACTIONS),
        state_space=Box(0.0, 1.0, (2 * n + 2 + NUM_TARGETS * n,)),
        max_steps=max_steps,
    )


def oracle_policy(state: DictGoalState, know_target: bool = True) -> Array:
    """Scripted actions from the true state: step toward the target along x, then y.

    :param know_target: if False the agent heads for the corner nearest to it instead of its
        own target, as an agent without the target number might (close to its bound).
    :returns: ``i32[N]`` actions.
    """
    if know_target:
        goal = targets(state)
    else:
        candidates = state.landmark + jnp.asarray(OFFSETS)  # [4, 2]
        d = jnp.sum(jnp.abs(state.pos[:, None] - candidates[None]), axis=-1)  # [N, 4]
        goal = candidates[jnp.argmin(d, axis=-1)]
    dx, dy = goal[:, 0] - state.pos[:, 0], goal[:, 1] - state.pos[:, 1]
    along_y = jnp.where(dy > 0, 4, jnp.where(dy < 0, 3, 0))
    return jnp.where(dx > 0, 2, jnp.where(dx < 0, 1, along_y)).astype(jnp.int32)
