"""The jmarl environment protocol.

An environment is a pair of pure functions plus a static description::

    env = jmarl.make("simple_spread", num_agents=3)
    state, ts = env.reset(key)                    # ts.obs: [N, obs_dim]
    state, ts = env.step(key, state, actions)     # actions: [N, ...]

* Agents are stacked on a leading agent axis ``N`` in the order of ``spec.agent_ids``,
  so one ``vmap``-ed network serves all agents of a policy.
* ``step`` auto-resets: when ``ts.done`` is True the returned ``obs``/``state``/``alive``/
  ``action_mask`` already belong to the first step of the next episode, while ``reward``,
  ``terminated``, ``truncated`` and ``done`` describe the transition that just ended.
* Per-agent ``alive`` masks let agents die mid-episode (their rows must be ignored by
  losses); ``action_mask`` (``[N, num_actions]`` bool, or None) restricts discrete actions;
  ``state`` is the global state used by centralized critics.
* Heterogeneous agents share one stacked layout: ``spec.observation_space`` /
  ``spec.action_space`` describe the common (padded) layout, while
  ``spec.agent_observation_spaces`` / ``spec.agent_action_spaces`` keep each agent's own
  space; policies may only be shared by agents whose own spaces are equal.
* Observations may be any pytree (e.g. a Dict space gives a dict of ``[N, ...]`` arrays).
  A Dict observation may also show the action mask (e.g. under ``"action_mask"``, as
  PettingZoo envs do): policies do not encode such entries
  (:func:`jmarl.nn.encoders.is_mask_key`) and mask actions with ``ts.action_mask`` only, so
  an env that shows its mask must return it as ``ts.action_mask`` too.
* Turn-based games (``kuhn_poker``, ``leduc_holdem``, ...) mark only the agent to act as
  ``alive`` (so only its transition enters a loss); its ``action_mask`` row holds its legal
  moves, the other rows are all False. Rewards are reported at the step they happen, to every
  agent they reach (a game's result at its last step, to both players). Crediting a reward
  that reaches an agent while it is not acting to that agent's last action is done on the
  trajectory, by the learner: :func:`jmarl.ops.turns.credit_to_last_action`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jmarl.env.spaces import Box, Space
from jmarl.types import Array, PRNGKey, PyTree


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a multi-agent environment.

    :param name: registry name.
    :param agent_ids: agent names, in the order of the agent axis.
    :param observation_space: one agent's observation space in the stacked layout.
    :param action_space: one agent's action space in the stacked layout.
    :param state_space: the global state's space (``Box``) for centralized critics.
    :param max_steps: episode length limit (truncation).
    :param agent_observation_spaces: each agent's own observation space (defaults to
        ``observation_space`` for every agent).
    :param agent_action_spaces: each agent's own action space (same default).
    :param turn_based: agents take turns (only the acting agent is ``alive`` on a step); a
        reward reaching an agent between its actions is credited to its last action
        (:mod:`jmarl.ops.turns`).
    :param zero_sum: a two-player game whose rewards sum to zero on every step, so one
        player's win is the other's loss (self-play win rates, leagues, NashConv).
    """

    name: str
    agent_ids: tuple[str, ...]
    observation_space: Space
    action_space: Space
    state_space: Box
    max_steps: int
    agent_observation_spaces: tuple[Space, ...] = field(default=())
    agent_action_spaces: tuple[Space, ...] = field(default=())
    turn_based: bool = False
    zero_sum: bool = False

    def __post_init__(self) -> None:
        n = len(self.agent_ids)
        if not self.agent_observation_spaces:
            object.__setattr__(self, "agent_observation_spaces", (self.observation_space,) * n)
        if not self.agent_action_spaces:
            object.__setattr__(self, "agent_action_spaces", (self.action_space,) * n)
        if len(self.agent_observation_spaces) != n or len(self.agent_action_spaces) != n:
            raise ValueError(
                f"EnvSpec {self.name!r}: per-agent spaces must have one entry per agent ({n})"
            )

    @property
    def num_agents(self) -> int:
        return len(self.agent_ids)


class TimeStep(NamedTuple):
    """What an environment returns after ``reset`` or ``step``.

    Shapes (N agents): ``obs`` pytree of ``[N, ...]``; ``state`` ``[S]``;
    ``reward`` ``f32[N]``; ``terminated``/``truncated``/``alive`` ``bool[N]``;
    ``done`` ``bool[]`` (episode ended, env auto-reset); ``action_mask`` ``bool[N, A]`` or None.
    """

    obs: PyTree
    state: Array
    reward: Array
    terminated: Array
    truncated: Array
    done: Array
    alive: Array
    action_mask: Array | None


EnvState = Any
ResetFn = Callable[[PRNGKey], tuple[EnvState, TimeStep]]
StepFn = Callable[[PRNGKey, EnvState, PyTree], tuple[EnvState, TimeStep]]
ChanceFn = Callable[[], tuple[EnvState, TimeStep, Array]]
BatchStepFn = Callable[[PRNGKey, EnvState, PyTree], tuple[EnvState, TimeStep]]


class Env(NamedTuple):
    """A pure multi-agent environment: ``reset`` and auto-resetting ``step`` (both jittable).

    ``step_without_reset``, when given, is the same transition without the auto-reset: its
    ``TimeStep`` on the last step of an episode holds the true terminal observation (used by
    wrappers that must report it, e.g. ``bridge.pettingzoo.to_pettingzoo``).

    ``chance_outcomes``, when given (games small enough to enumerate: matrix games, poker),
    returns every ``(state, TimeStep)`` pair that ``reset`` can return, stacked on a leading
    axis ``[C]``, and their probabilities ``f32[C]``: ``reset(key)`` draws outcome ``c`` with
    probability ``p[c]``, and ``step_without_reset`` is deterministic (all chance, e.g. the
    deal of the cards, happens at reset). :func:`jmarl.nash_conv` walks the game tree from
    these states.

    ``batch_step``, when given, steps a batch of envs at once: ``batch_step(key, states [E],
    actions [E])`` equals ``vmap(step)(split(key, E), states, actions)`` (to float32
    rounding; :func:`jmarl.testing.check_env` checks it) and exists to be cheaper, e.g. by
    drawing fresh episodes only when some env's episode ends. Use :func:`step_batch`, which
    falls back to that ``vmap``. A wrapper that changes ``step`` must drop or replace it.
    """

    spec: EnvSpec
    reset: ResetFn
    step: StepFn
    step_without_reset: StepFn | None = None
    chance_outcomes: ChanceFn | None = None
    batch_step: BatchStepFn | None = None


def step_batch(env: Env) -> BatchStepFn:
    """``(key, states [E], actions [E]) -> (states, TimeStep)`` [E]: ``env.batch_step``, or
    ``vmap(env.step)`` with one key per env from ``split(key, E)``."""
    if env.batch_step is not None:
        return env.batch_step
    step = jax.vmap(env.step)

    def stepped(key: PRNGKey, states: EnvState, actions: PyTree) -> tuple[EnvState, TimeStep]:
        num_envs = jax.tree.leaves((states, actions))[0].shape[0]
        return step(jax.random.split(key, num_envs), states, actions)

    return stepped


def auto_reset(reset: ResetFn, step: StepFn) -> StepFn:
    """Wraps a non-resetting ``step`` so that finished episodes restart in place.

    The returned step keeps ``reward``/``terminated``/``truncated``/``done`` of the finished
    transition and replaces everything else with the fresh episode's first step.
    """

    def stepped(key: PRNGKey, state: EnvState, action: PyTree) -> tuple[EnvState, TimeStep]:
        key_step, key_reset = jax.random.split(key)
        next_state, ts = step(key_step, state, action)
        reset_state, reset_ts = reset(key_reset)
        done = ts.done

        def pick(a: Array, b: Array) -> Array:
            return jnp.where(done, a, b)

        state_out = jax.tree.map(pick, reset_state, next_state)
        ts_out = ts._replace(
            obs=jax.tree.map(pick, reset_ts.obs, ts.obs),
            state=pick(reset_ts.state, ts.state),
            alive=pick(reset_ts.alive, ts.alive),
            action_mask=None
            if ts.action_mask is None or reset_ts.action_mask is None
            else pick(reset_ts.action_mask, ts.action_mask),
        )
        return state_out, ts_out

    return stepped


def spec_only(spec: EnvSpec) -> Env:
    """An :class:`Env` that only describes ``spec``, for drivers that step their envs on the
    host (e.g. PettingZoo through ``bridge``) and use a trainer's ``act`` / ``learn`` only."""

    def unavailable(*_: Any) -> Any:
        raise RuntimeError(
            f"env {spec.name!r} is stepped on the host: its JAX reset/step do not exist"
        )

    return Env(spec, unavailable, unavailable)
