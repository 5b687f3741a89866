"""The algorithm contract: what every jmarl algorithm provides (in the spirit of optax's base).

An algorithm is a frozen config dataclass plus a factory::

    algo = jmarl.ALGORITHMS["mappo"]
    trainer = algo.make(env, algo.config(), total_steps, mapping)
    out = jax.jit(jax.vmap(trainer.train))(keys)          # one seed per key

A :class:`Trainer` is a bundle of pure functions. The run driver, evaluation, checkpoints and
the bridge use nothing else, so a new algorithm is a folder under ``jmarl/algos/`` that builds
one, plus one :func:`jmarl.algos.register` call.

Shapes: ``E`` envs, ``N`` agents, ``T`` steps of a rollout. ``act`` works on a leading env
axis ``[E, N, ...]`` (pass ``E = 1`` for one env); ``learn`` on a rollout ``[T, E, N, ...]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from jmarl.agents.sharing import PolicyMapping
from jmarl.env.base import Env, EnvState, TimeStep
from jmarl.types import Array, Params, PRNGKey, PyTree

Metrics = dict[str, Array]
Carry = PyTree  # what a policy keeps between steps (recurrent state, messages); () if nothing


class ActOutput(NamedTuple):
    """One step of acting for ``[E]`` envs.

    ``action`` ``[E, N, ...]``; ``extras`` per-agent data the learner needs stored with the
    step (PPO: ``log_prob`` and ``value``, ``f32[E, N]``); ``carry`` the policy carry after
    the step.
    """

    action: PyTree
    extras: dict[str, PyTree]
    carry: Carry


class Transition(NamedTuple):
    """One step of experience; in a rollout every leaf has leading ``[T, E]``.

    ``obs`` ``[.., N, ...]``; ``state`` ``[.., S]``; ``action`` ``[.., N, ...]``;
    ``reward``/``discount`` ``f32[.., N]`` (``discount`` 0 where the agent's episode ended at
    this step); ``alive`` ``bool[.., N]`` (the agent acted: only these rows enter a loss);
    ``action_mask`` ``bool[.., N, A]`` or None; ``extras`` the :class:`ActOutput` extras.
    """

    obs: PyTree
    state: Array
    action: PyTree
    reward: Array
    discount: Array
    alive: Array
    action_mask: Array | None
    extras: dict[str, PyTree]


class EpisodeStats(NamedTuple):
    """Running per-env returns and totals of the episodes completed since the last reset.

    ``running`` ``f32[E, N]``; ``return_sum`` sums the per-agent return (mean over agents)
    of each completed episode; ``length_sum`` their lengths; ``episodes`` how many completed.
    """

    running: Array
    length: Array
    return_sum: Array
    length_sum: Array
    episodes: Array


class RolloutState(NamedTuple):
    """Carry between rollouts: env states ``[E]``, last timesteps ``[E]``, episode stats and
    the policy carry ``[E, ...]``."""

    env_state: EnvState
    timestep: TimeStep
    stats: EpisodeStats
    carry: Carry = ()


class TrainerState(NamedTuple):
    """The whole carry of training: the algorithm's learner state (parameters, optimizer
    states, buffers, ...), the rollout state, the RNG key and the update counter."""

    learner: Any
    rollout: RolloutState
    key: PRNGKey
    update: Array


class TrainOutput(NamedTuple):
    """Final state and per-update metrics (each ``[U]``; ``[K, U]`` under ``vmap`` over seeds)."""

    state: TrainerState
    metrics: Metrics


class Trainer(NamedTuple):
    """Pure pieces of one algorithm's training on one env.

    * ``init(key) -> TrainerState``
    * ``step(state) -> (state, metrics)``: one rollout of ``rollout_length`` steps of
      ``num_envs`` envs, then ``learn``
    * ``train(key) -> TrainOutput``: ``init`` then ``num_updates`` steps under ``lax.scan``
    * ``act(params, ts [E], key, carry [E], deterministic=False) -> ActOutput``
    * ``init_carry(num_envs) -> carry [E, ...]``
    * ``learn(learner, traj [T, E], last_ts [E], key) -> (learner, metrics)``: one update
      from a rollout collected by ``act`` (also by a host-side driver)
    * ``acting_params(learner) -> params`` for ``act`` (what evaluation and export need)
    """

    init: Callable[[PRNGKey], TrainerState]
    step: Callable[[TrainerState], tuple[TrainerState, Metrics]]
    train: Callable[[PRNGKey], TrainOutput]
    act: Callable[..., ActOutput]
    init_carry: Callable[[int], Carry]
    learn: Callable[[Any, Transition, TimeStep, PRNGKey], tuple[Any, Metrics]]
    init_learner: Callable[[PRNGKey], Any]
    acting_params: Callable[[Any], Params]
    num_updates: int
    num_envs: int
    rollout_length: int
    mapping: PolicyMapping
    config: Any

    @property
    def steps_per_update(self) -> int:
        """Env steps consumed by one update (``num_envs * rollout_length``)."""
        return self.num_envs * self.rollout_length


class MakeTrainer(Protocol):
    def __call__(self, env: Env, cfg: Any, total_steps: int, mapping: PolicyMapping) -> Trainer: ...


class Algorithm(NamedTuple):
    """A registered algorithm.

    :param name: registry name (``--algo``).
    :param config: its frozen config dataclass; ``config()`` gives the defaults, and the CLI
        makes one flag per field.
    :param make: ``make(env, cfg, total_steps, mapping) -> Trainer``.
    :param section: the key of its settings in ``config.json`` (algorithms that share a
        config class share a section, e.g. ``ppo`` for ``ippo`` and ``mappo``).
    :param fixed: config fields the algorithm decides itself, as ``{field: value}`` (e.g.
        ``mappo``'s centralised critic); they are set by :meth:`configure`, never flags.
    :param summary: one line for ``jmarl train --help``.
    :param run_defaults: the settings ``jmarl train`` starts from, if not ``config()``.
    """

    name: str
    config: type
    make: MakeTrainer
    section: str
    fixed: tuple[tuple[str, Any], ...] = ()
    summary: str = ""
    run_defaults: Any = None

    @property
    def defaults(self) -> Any:
        """The config ``jmarl train`` starts from (fixed fields set)."""
        base = self.run_defaults if self.run_defaults is not None else self.config()
        return self.configure(base)

    def configure(self, cfg: Any) -> Any:
        """``cfg`` with this algorithm's fixed fields set."""
        return dataclasses.replace(cfg, **dict(self.fixed)) if self.fixed else cfg
