"""Training schemes over a :class:`~bridge.tianshou.manager.FlexibleMultiAgentPolicyManager`:
:class:`MATrainer` (simultaneous, sequential, self-play, league), opponent pools and Elo ratings.

Modes (``training_mode``):

* ``"simultaneous"``: every distinct policy of the manager learns each :meth:`MATrainer.train_step`
  (the manager's own ``update``).
* ``"sequential"``: one policy id learns while the others are frozen (their ``update`` is not
  called, so their parameters stay bit-identical); the learner changes round-robin every
  ``turn_length`` train steps.
* ``"self_play"`` (two-player envs whose agents share spaces): the ``learner`` policy plays,
  from either seat (alternating every train step), against frozen snapshots of itself (deep
  copies) held in a pool of at most ``pool_size`` members; a snapshot joins every
  ``snapshot_interval`` train steps. The opponent of each collect is drawn with
  :attr:`MATrainer.opponent_weights` (``opponent_sampling``: ``"uniform"``, ``"latest"``, or
  ``"pfsp"``: prioritized fictitious self-play, ``f(p_win)`` of the learner's win rate against
  each member, see :func:`pfsp_weights`). Only the learner's own transitions are learned from.
* ``"league"``: the self-play learner is the *main agent*, joined by deep copies of it as
  *main exploiters* (play the latest snapshot of the main agent, reset to their initial
  parameters at each of their snapshots) and *league exploiters* (play the whole pool by PFSP,
  reset with probability ``league_exploiter_reset_prob`` at each snapshot), AlphaStar's roles.
  Learners take turns, one per train step; each adds a snapshot to the pool every
  ``snapshot_interval`` of its own steps. Matchmaking reads the payoff (win-rate) table.

Game outcomes (self-play and league) come from the learner's final transition of every episode
in the collected rows: its reward's sign is a win (> 0), draw (0) or loss (< 0). Each game
updates the payoff table and the Elo ratings (:func:`elo_update`) of both players; snapshots
start from their source's rating. :meth:`MATrainer.evaluate` plays rated games without
learning. (Simultaneous and sequential training keep no ratings.)

The Collector acts with :attr:`MATrainer.policy` (the manager's policy, or in self-play and
league a policy that plays the current matchup). Matchups change at every train step, so
collect whole episodes from a reset (``collect(n_episode=..., reset_before_collect=True)``) as
:meth:`MATrainer.run` does; transitions of episodes cut by a collect's end are dropped.

Example (self-play DQN on tic-tac-toe; ``make_dqn(env)`` builds a Tianshou ``DQN`` for the
env's padded spaces, as in ``tests/bridge/test_ma_trainer.py``)::

    def make_env():
        return EnhancedPettingZooEnv(pettingzoo.make("aec", "classic/tictactoe-v3"), mode="aec")

    env = make_env()
    manager = FlexibleMultiAgentPolicyManager(make_dqn(env), env, mode="shared")
    trainer = MATrainer(manager, "self_play", env=env, pool_size=5, snapshot_interval=10,
                        opponent_sampling="pfsp", batch_size=64, updates_per_step=8, seed=0)
    envs = DummyVectorEnv([make_env] * 8)
    collector = Collector(trainer.policy, envs, VectorReplayBuffer(20000, 8),
                          exploration_noise=True)
    for _ in range(400):
        with policy_within_training_step(trainer.policy):  # DQN explores (eps_training)
            collector.collect(n_episode=8, reset_before_collect=True)
        stats = trainer.train_step(collector.buffer)
        # stats: step, mode, learning, opponent, seat, games, score, losses, ratings, pool
    history = trainer.run(collector, num_steps=400, episodes_per_step=8)  # the same loop
    trainer.evaluate(collector, "shared", "shared@0", n_episode=20)  # rated games, no learning
    trainer.get_ratings()  # {"shared": 1650.2, "shared@360": 1590.1, ...}

Sequential training of two independent policies::

    manager = FlexibleMultiAgentPolicyManager([make_dqn(env), make_dqn(env)], env)
    trainer = MATrainer(manager, "sequential", turn_length=5)
    collector = Collector(trainer.policy, envs, VectorReplayBuffer(20000, 8))
    ...  # collect, then trainer.train_step(collector.buffer): only get_current_learner() learns
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import numpy as np
from tianshou.algorithm.algorithm_base import (
    Algorithm,
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    Policy,
    TrainingStats,
)
from tianshou.data import Batch, ReplayBuffer
from tianshou.utils.torch_utils import policy_within_training_step

from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.tianshou.buffers import AgentReplayBuffer, append, latest, streams, trajectory_buffer
from bridge.tianshou.manager import (
    FlexibleMultiAgentOffPolicyManager,
    FlexibleMultiAgentPolicyManager,
    MultiAgentTrainingStats,
)
from bridge.tianshou.restitch import Restitcher, buffer_rows
from bridge.tianshou.training_step import PassesOnTrainingStep
from jmarl.modes import MODES, SAMPLING, ratings
from jmarl.modes.ratings import PFSP_FUNCTIONS

__all__ = [
    "OPPONENT_SAMPLING",
    "PFSP_WEIGHTINGS",
    "TRAINING_MODES",
    "MATrainer",
    "PoolMember",
    "Ratings",
    "elo_expected",
    "elo_update",
    "pfsp_weights",
]

TRAINING_MODES = MODES
OPPONENT_SAMPLING = SAMPLING
PFSP_WEIGHTINGS = PFSP_FUNCTIONS  # one definition, shared with jmarl's jitted leagues

# --- ratings ------------------------------------------------------------------------------------


def elo_expected(rating_a: float, rating_b: float) -> float:
    """Expected score of ``a`` against ``b``: ``1 / (1 + 10 ** ((R_b - R_a) / 400))``
    (:func:`jmarl.modes.ratings.elo_expected`)."""
    return float(ratings.elo_expected(rating_a, rating_b))


def elo_update(
    rating_a: float, rating_b: float, score_a: float, k: float = 32.0
) -> tuple[float, float]:
    """Both ratings after one game: ``R_a + k (S_a - E_a)`` and ``R_b + k ((1 - S_a) - E_b)``.

    :param score_a: ``a``'s score: 1 win, 0.5 draw, 0 loss.
    :param k: the step size (the most a rating moves in one game).
    """
    if not 0.0 <= score_a <= 1.0:
        raise ValueError(f"score_a must be in [0, 1] (1 win, 0.5 draw, 0 loss), got {score_a}")
    expected_a = elo_expected(rating_a, rating_b)
    delta = k * (score_a - expected_a)
    return rating_a + delta, rating_b - delta


def pfsp_weights(
    win_rates: np.ndarray, weighting: str | Callable[[np.ndarray], np.ndarray] = "squared"
) -> np.ndarray:
    """Prioritized fictitious self-play: opponent sampling probabilities ``f(p) / sum f(p)``.

    :param win_rates: the learner's win rate against each candidate, in ``[0, 1]``.
    :param weighting: ``"squared"`` (``(1 - p)^2``), ``"linear"`` (``1 - p``), ``"variance"``
        (``p (1 - p)``), or a function of the win-rate array. All-zero weights (the learner
        beats everyone) give uniform probabilities.
    """
    fn = PFSP_WEIGHTINGS.get(weighting) if isinstance(weighting, str) else weighting
    if fn is None:
        raise ValueError(f"unknown pfsp weighting {weighting!r}; expected {list(PFSP_WEIGHTINGS)}")
    p = np.asarray(win_rates, np.float64)
    if len(p) == 0:
        return p
    w = np.clip(np.asarray(fn(p), np.float64), 0.0, None)
    total = w.sum()
    return w / total if total > 0 else np.full(len(p), 1.0 / len(p))


@dataclass
class Ratings:
    """Elo ratings and the payoff table (games, wins, draws) of named players.

    :param k: Elo step size.
    :param initial: rating of a player not seen before.
    """

    k: float = 32.0
    initial: float = 1000.0
    elo: dict[str, float] = field(default_factory=dict)
    games: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # [wins, draws, n]

    def rating(self, player: str) -> float:
        """``player``'s rating (``initial`` if it has none)."""
        return self.elo.get(player, self.initial)

    def record(self, a: str, b: str, score_a: float) -> None:
        """One game of ``a`` against ``b`` with ``a``'s score (1, 0.5 or 0)."""
        self.elo[a], self.elo[b] = elo_update(self.rating(a), self.rating(b), score_a, self.k)
        for x, y, s in ((a, b, score_a), (b, a, 1.0 - score_a)):
            row = self.games.setdefault((x, y), np.zeros(3))
            row += (s == 1.0, s == 0.5, 1)

    def win_rate(self, a: str, b: str) -> float:
        """``a``'s score rate against ``b``: ``(wins + draws / 2) / games``; 0.5 if unplayed."""
        wins, draws, n = self.games.get((a, b), np.zeros(3))
        return float((wins + 0.5 * draws) / n) if n else 0.5

    def payoff(self, players: list[str]) -> np.ndarray:
        """``[P, P]`` win rates: entry ``[i, j]`` is ``win_rate(players[i], players[j])``."""
        return np.array([[self.win_rate(a, b) for b in players] for a in players])

    def forget(self, player: str, rating: float | None = None) -> None:
        """Drops ``player``'s games and sets its rating (a reset player is a new one)."""
        self.games = {key: v for key, v in self.games.items() if player not in key}
        self.elo[player] = self.initial if rating is None else rating


# --- pool members and frozen algorithms ---------------------------------------------------------


@dataclass
class PoolMember:
    """A frozen opponent: a snapshot (deep copy) of a learner's policy, or a fixed policy.

    :param id: its name in the pool, the ratings and the payoff table (``"<learner>@<step>"``
        for snapshots).
    :param policy: the frozen policy (parameters with ``requires_grad=False``, never updated).
    :param source: the learner it was copied from; None for a policy added as is.
    :param step: the learner's train step at the snapshot.
    """

    id: str
    policy: Policy
    source: str | None = None
    step: int = 0


def _frozen_copy(policy: Policy) -> Policy:
    out = copy.deepcopy(policy)
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def _no_update(*args: Any, **kwargs: Any) -> TrainingStats:
    return _FROZEN_STATS


_FROZEN_STATS = TrainingStats()


class _FrozenOffPolicy(OffPolicyAlgorithm):
    """A pool member seated under a manager: acts with its policy, never updates."""

    def update(self, buffer: ReplayBuffer | None, sample_size: int | None) -> TrainingStats:
        return _FROZEN_STATS

    def _update_with_batch(self, batch: Any) -> TrainingStats:
        raise RuntimeError("a frozen opponent never updates")


class _FrozenOnPolicy(OnPolicyAlgorithm):
    """A pool member seated under an on-policy manager: acts with its policy, never updates."""

    def update(
        self, buffer: ReplayBuffer | None, batch_size: int | None, repeat: int
    ) -> TrainingStats:
        return _FROZEN_STATS

    def _update_with_batch(self, batch: Any, batch_size: int | None, repeat: int) -> Any:
        raise RuntimeError("a frozen opponent never updates")


@contextmanager
def _frozen(algorithms: list[Algorithm]) -> Iterator[None]:
    """Within the block, ``update`` of every algorithm in ``algorithms`` does nothing."""
    for a in algorithms:
        a.update = _no_update  # an instance attribute shadows the method
    try:
        yield
    finally:
        for a in algorithms:
            del a.update


class _MatchPolicy(PassesOnTrainingStep, Policy):
    """The Collector's policy in self-play and league: plays the current matchup (a manager's
    dispatch policy that the trainer swaps between collects)."""

    _INNER_POLICIES = "current"

    def __init__(self, current: Policy) -> None:
        super().__init__(
            action_space=current.action_space,
            observation_space=current.observation_space,
            action_scaling=False,
            action_bound_method=None,
        )
        self.current = current

    def play(self, current: Policy) -> None:
        """Acts with ``current`` from now on (it inherits the training-step flag)."""
        self.current = current
        current.is_within_training_step = self.is_within_training_step

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        """The current matchup's joint action."""
        return self.current(batch, state=state, **kwargs)

    def add_exploration_noise(self, act: Any, batch: Any) -> Any:
        """The current matchup's exploration noise (each seat's own policy's)."""
        return self.current.add_exploration_noise(act, batch)

    def map_action(self, act: Any) -> np.ndarray:
        """The current matchup's action mapping."""
        return self.current.map_action(act)

    def map_action_inverse(self, act: Any) -> np.ndarray:
        """The current matchup's inverse action mapping."""
        return self.current.map_action_inverse(act)


# --- learners, matchups and collected data ------------------------------------------------------

LEAGUE_ROLES = ("main", "main_exploiter", "league_exploiter")


@dataclass
class _Learner:
    """A learning player of self-play or league: its algorithm, role and own replay."""

    id: str
    role: str
    algorithm: Algorithm
    initial: dict[str, Any] | None = None  # state to reset an exploiter to
    steps: int = 0
    replay: ReplayBuffer | None = None


@dataclass
class _Matchup:
    """Who plays the next collect: a learner in ``seat`` (agent index) against a pool member."""

    learner: _Learner
    opponent: PoolMember
    seat: int
    manager: FlexibleMultiAgentPolicyManager


class _Cursor:
    """Rows of a collector's buffer added since the previous look, per env sub-buffer."""

    def __init__(self) -> None:
        self.source: ReplayBuffer | None = None
        self._seen: dict[int, tuple[int, int]] = {}

    def new_rows(self, buffer: ReplayBuffer) -> list[tuple[int, int, np.ndarray]]:
        """``(stream, offset, indices within the sub-buffer)`` of the new rows, oldest first."""
        if buffer is not self.source:
            self.source, self._seen = buffer, {}
        out = []
        for stream, (offset, sub) in enumerate(streams(buffer)):
            size, last = len(sub), int(sub.last_index[0])
            before = self._seen.get(stream)
            self._seen[stream] = (size, last)
            if before is None or before[0] == 0 or size < before[0]:
                count = size  # first look, or the buffer was emptied meanwhile
            else:
                count = (last - before[1]) % sub.maxsize if size else 0
            if count:
                out.append((stream, offset, latest(sub, count)))
        return out


def _distinct(manager: FlexibleMultiAgentPolicyManager) -> dict[Any, Algorithm]:
    """Policy id -> algorithm, one id (the first) per distinct algorithm."""
    out: dict[int, tuple[Any, Algorithm]] = {}
    for pid, algorithm in manager.algorithms.items():
        out.setdefault(id(algorithm), (pid, algorithm))
    return dict(out.values())


def _score(reward: float) -> float:
    """A final reward's game score: win 1, draw 0.5, loss 0."""
    return 1.0 if reward > 0 else 0.0 if reward < 0 else 0.5


def _loss_stats(stats: TrainingStats, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in stats.get_loss_stats_dict().items()}


# --- the trainer --------------------------------------------------------------------------------


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")


def _check_settings(
    mode: str,
    sampling: str,
    weighting: str | Callable[[np.ndarray], np.ndarray],
    exploiters: tuple[int, int],
    reset_prob: float,
) -> None:
    """The trainer's choices and league settings (``ValueError`` naming a bad one)."""
    _check_choice("training_mode", mode, TRAINING_MODES)
    _check_choice("opponent_sampling", sampling, OPPONENT_SAMPLING)
    if isinstance(weighting, str):
        _check_choice("pfsp_weighting", weighting, tuple(PFSP_WEIGHTINGS))
    elif not callable(weighting):
        raise ValueError(f"pfsp_weighting must be a name or a function, got {weighting!r}")
    for name, count in zip(("num_main_exploiters", "num_league_exploiters"), exploiters):
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {count!r}")
    if not 0.0 <= reset_prob <= 1.0:
        raise ValueError(f"league_exploiter_reset_prob must be in [0, 1], got {reset_prob}")


def _check_two_player(mode: str, manager: FlexibleMultiAgentPolicyManager, env: Any) -> None:
    """Self-play and league seat one learner in either seat of a two-player game."""
    if env is None:
        raise ValueError(
            f"training_mode {mode!r} needs env= (the EnhancedPettingZooEnv the manager was "
            "built for) to seat the learner and its opponents"
        )
    if not isinstance(env, EnhancedPettingZooEnv):
        raise ValueError(f"env must be an EnhancedPettingZooEnv, got {type(env).__name__}")
    if list(env.agents) != list(manager.agents):
        raise ValueError(f"env's agents {env.agents} are not the manager's {manager.agents}")
    if len(env.agents) != 2:
        raise ValueError(
            f"training_mode {mode!r} needs a two-player env, got {len(env.agents)} agents "
            f"{list(env.agents)}"
        )
    if manager.policy.joint:
        raise ValueError(f"training_mode {mode!r} needs per-agent policies, not a joint policy")
    a, b = env.agents
    for what, space in (("observation", env.agent_observation_spaces),
                        ("action", env.agent_action_spaces)):  # fmt: skip
        if space[a] != space[b]:
            raise ValueError(
                f"training_mode {mode!r} needs both agents to share {what} spaces (the learner "
                f"plays either seat): {a!r} has {space[a]}, {b!r} has {space[b]}"
            )


class MATrainer:
    """Trains the Tianshou algorithms under a manager in one of :data:`TRAINING_MODES`.

    See the module docstring for the modes and a usage example. Collect with :attr:`policy`,
    then call :meth:`train_step` on the collector's buffer (or use :meth:`run`).

    :param policy_manager: the :class:`FlexibleMultiAgentPolicyManager` of the algorithms.
    :param training_mode: ``"simultaneous"``, ``"sequential"``, ``"self_play"`` or ``"league"``.
    :param env: self-play and league: the wrapped env the manager was built for (two players
        with equal spaces).
    :param learner: self-play and league: the policy id of the manager whose algorithm learns
        (the main agent); default the first. The manager's other policies are not used.
    :param turn_length: sequential: train steps of each policy's turn.
    :param pool_size: most members in the opponent pool; when full, the oldest snapshot leaves.
    :param snapshot_interval: a learner's snapshot joins the pool every this many of its
        train steps. Shorter: a more recent, less diverse pool.
    :param opponent_sampling: the main learner's opponent draw: ``"uniform"`` over the pool,
        ``"latest"`` member, or ``"pfsp"`` (weights :func:`pfsp_weights` of its win rates).
    :param pfsp_weighting: the PFSP weighting (see :func:`pfsp_weights`).
    :param num_main_exploiters: league: main exploiters (copies of the learner).
    :param num_league_exploiters: league: league exploiters (copies of the learner).
    :param league_exploiter_reset_prob: league: chance that a league exploiter is reset to its
        initial parameters at a snapshot (main exploiters always are).
    :param batch_size: off-policy: transitions sampled per gradient step; on-policy: minibatch.
    :param updates_per_step: off-policy: gradient steps per train step.
    :param repeat: on-policy: passes over the data per train step.
    :param elo_k: the Elo step size (the most a rating moves in one game).
    :param initial_rating: a new player's Elo rating.
    :param seed: seed of the opponent draws and resets.
    :raises ValueError: an unknown mode, sampling or weighting; ``pool_size``,
        ``snapshot_interval``, ``turn_length``, ``updates_per_step`` or ``repeat`` below 1;
        negative exploiter counts; a reset probability outside [0, 1]; sequential with a single
        policy; self-play or league without ``env``, on an env that is not two-player, whose
        agents do not share spaces, or with a joint policy; an unknown ``learner``.
    """

    def __init__(
        self,
        policy_manager: FlexibleMultiAgentPolicyManager,
        training_mode: str = "simultaneous",
        *,
        env: EnhancedPettingZooEnv | None = None,
        learner: Any = None,
        turn_length: int = 1,
        pool_size: int = 10,
        snapshot_interval: int = 10,
        opponent_sampling: str = "uniform",
        pfsp_weighting: str | Callable[[np.ndarray], np.ndarray] = "squared",
        num_main_exploiters: int = 1,
        num_league_exploiters: int = 1,
        league_exploiter_reset_prob: float = 0.25,
        batch_size: int | None = 64,
        updates_per_step: int = 1,
        repeat: int = 1,
        elo_k: float = 32.0,
        initial_rating: float = 1000.0,
        seed: int | None = None,
    ) -> None:
        if not isinstance(policy_manager, FlexibleMultiAgentPolicyManager):
            raise ValueError(
                "policy_manager must be a FlexibleMultiAgentPolicyManager, got "
                f"{type(policy_manager).__name__}"
            )
        exploiters = (num_main_exploiters, num_league_exploiters)
        _check_settings(
            training_mode,
            opponent_sampling,
            pfsp_weighting,
            exploiters,
            league_exploiter_reset_prob,
        )
        _check_positive(
            turn_length=turn_length,
            pool_size=pool_size,
            snapshot_interval=snapshot_interval,
            updates_per_step=updates_per_step,
            repeat=repeat,
        )
        self.policy_manager = policy_manager
        self.training_mode = training_mode
        self.env = env
        self.turn_length, self.pool_size = turn_length, pool_size
        self.snapshot_interval = snapshot_interval
        self.opponent_sampling, self.pfsp_weighting = opponent_sampling, pfsp_weighting
        self.league_exploiter_reset_prob = league_exploiter_reset_prob
        self.batch_size, self.updates_per_step, self.repeat = batch_size, updates_per_step, repeat
        self.off_policy = isinstance(policy_manager, FlexibleMultiAgentOffPolicyManager)
        self.ratings = Ratings(k=elo_k, initial=initial_rating)
        self.step = 0
        self._rng = np.random.default_rng(seed)
        self._distinct = _distinct(policy_manager)
        self._pool: list[PoolMember] = []
        self._seated: dict[str, Algorithm] = {}  # pool member id -> its frozen algorithm
        self._cursor = _Cursor()
        self._learners: list[_Learner] = []
        self._matchup: _Matchup | None = None
        self._policy: Policy = policy_manager.policy
        if training_mode == "sequential" and len(self._distinct) < 2:
            raise ValueError(
                "training_mode 'sequential' needs at least two distinct policies to take "
                f"turns, the manager has {list(self._distinct)}"
            )
        if training_mode in ("self_play", "league"):
            _check_two_player(training_mode, policy_manager, env)
            self._setup_pool(learner, *(exploiters if training_mode == "league" else (0, 0)))

    # --- public state ----------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy to collect with: the manager's, or in self-play and league the current
        matchup's (the same object throughout; it switches matchups at each train step)."""
        return self._policy

    def get_current_learner(self) -> str:
        """The id of the policy (self-play, league: the learner) that the next train step
        updates; in simultaneous mode every policy id, joined by commas."""
        if self._matchup is not None:
            return self._matchup.learner.id
        if self.training_mode == "sequential":
            ids = list(self._distinct)
            return str(ids[(self.step // self.turn_length) % len(ids)])
        return ",".join(str(p) for p in self._distinct)

    @property
    def matchup(self) -> dict[str, Any] | None:
        """Self-play and league: ``learner``, ``opponent`` and ``seat`` (the learner's agent)
        of the next collect; None in the other modes."""
        m = self._matchup
        if m is None:
            return None
        return {"learner": m.learner.id, "opponent": m.opponent.id, "seat": self._agent(m.seat)}

    @property
    def learners(self) -> dict[str, Algorithm]:
        """Self-play and league: learner id -> its algorithm (main agent first)."""
        return {le.id: le.algorithm for le in self._learners}

    def get_opponent_pool(self) -> list[PoolMember]:
        """The pool's members, oldest first (the order of :attr:`opponent_weights`)."""
        return list(self._pool)

    @property
    def opponent_weights(self) -> np.ndarray:
        """The main learner's probability of drawing each pool member, by ``opponent_sampling``
        (uniform, latest, or PFSP of its win rates)."""
        if not self._learners:
            n = len(self._pool)
            return np.full(n, 1.0 / n) if n else np.zeros(0)
        return self._weights(self._learners[0], self.opponent_sampling, self._pool)

    def get_ratings(self) -> dict[str, float]:
        """Elo rating of every learner and pool member."""
        ids = [le.id for le in self._learners] + [m.id for m in self._pool]
        return {i: self.ratings.rating(i) for i in ids}

    def payoff(self) -> tuple[list[str], np.ndarray]:
        """Players (learners, then pool members) and their ``[P, P]`` win-rate table."""
        ids = list(self.get_ratings())
        return ids, self.ratings.payoff(ids)

    # --- the pool -------------------------------------------------------------------------------

    def add_to_opponent_pool(
        self, policy_id: Any = None, *, policy: Policy | None = None, name: str | None = None
    ) -> str:
        """Adds a frozen deep copy to the pool and returns its member id.

        :param policy_id: snapshot this learner (self-play, league) or policy id of the
            manager (other modes); default the main learner (or the first policy).
        :param policy: instead, a fixed policy to copy in (e.g. a random policy), as ``name``.
        :param name: the member id (default ``"<policy_id>@<step>"``).
        """
        if policy is not None:
            if policy_id is not None:
                raise ValueError("pass policy_id or policy, not both")
            member = PoolMember(name or f"policy_{len(self._pool)}", _frozen_copy(policy))
        else:
            source, algorithm, steps = self._source(policy_id)
            member = PoolMember(
                name or f"{source}@{steps}", _frozen_copy(algorithm.policy), source, steps
            )
            self.ratings.elo.setdefault(member.id, self.ratings.rating(source))
        if any(m.id == member.id for m in self._pool):
            raise ValueError(f"the pool already has a member {member.id!r}")
        self._pool.append(member)
        if len(self._pool) > self.pool_size:
            snapshots = [m for m in self._pool if m.source is not None]
            gone = (snapshots or self._pool)[0]
            self._pool.remove(gone)
            self._seated.pop(gone.id, None)
        return member.id

    def _source(self, policy_id: Any) -> tuple[str, Algorithm, int]:
        """``(id, algorithm, its train steps)`` of the learner or manager policy to snapshot."""
        if self._learners:
            found = [le for le in self._learners if policy_id in (None, le.id)]
            if not found:
                raise ValueError(
                    f"unknown learner {policy_id!r}; learners are "
                    f"{[le.id for le in self._learners]}"
                )
            return found[0].id, found[0].algorithm, found[0].steps
        ids = list(self._distinct)
        pid = ids[0] if policy_id is None else policy_id
        if pid not in self.policy_manager.algorithms:
            raise ValueError(
                f"unknown policy id {pid!r}; the manager has {list(self.policy_manager.algorithms)}"
            )
        return str(pid), self.policy_manager.algorithms[pid], self.step

    def _setup_pool(self, learner: Any, main_exploiters: int, league_exploiters: int) -> None:
        """Learners (main, exploiters), a first snapshot of the main agent, the first matchup."""
        ids = list(self.policy_manager.algorithms)
        pid = ids[0] if learner is None else learner
        if pid not in self.policy_manager.algorithms:
            raise ValueError(f"unknown learner {pid!r}; the manager's policy ids are {ids}")
        main = self.policy_manager.algorithms[pid]
        self._learners = [_Learner(str(pid), "main", main)]
        for role, count in (("main_exploiter", main_exploiters),
                            ("league_exploiter", league_exploiters)):  # fmt: skip
            for k in range(count):
                algorithm = copy.deepcopy(main)
                initial = copy.deepcopy(algorithm.state_dict())
                self._learners.append(_Learner(f"{role}_{k}", role, algorithm, initial))
        for le in self._learners:
            self.ratings.elo.setdefault(le.id, self.ratings.initial)
        self.add_to_opponent_pool(str(pid))
        self._policy = _MatchPolicy(self.policy_manager.policy)
        self._set_matchup(self._next_matchup())

    def _weights(self, learner: _Learner, sampling: str, members: list[PoolMember]) -> np.ndarray:
        n = len(members)
        if n == 0:
            return np.zeros(0)
        if sampling == "uniform":
            return np.full(n, 1.0 / n)
        if sampling == "latest":
            return np.eye(n)[n - 1]
        rates = np.array([self.ratings.win_rate(learner.id, m.id) for m in members])
        return pfsp_weights(rates, self.pfsp_weighting)

    # --- matchups -------------------------------------------------------------------------------

    def _agent(self, seat: int) -> Any:
        return self.policy_manager.agents[seat]

    def _next_matchup(self) -> tuple[_Learner, PoolMember, int]:
        """The next learner (round-robin), its opponent (by its role) and its seat (its own
        steps alternate the seats)."""
        learner = self._learners[self.step % len(self._learners)]
        if learner.role == "main":
            members, sampling = self._pool, self.opponent_sampling
        elif learner.role == "main_exploiter":
            main = self._learners[0].id
            members = [m for m in self._pool if m.source == main][-1:] or self._pool
            sampling = "latest"
        else:
            members, sampling = self._pool, "pfsp"
        weights = self._weights(learner, sampling, members)
        opponent = members[int(self._rng.choice(len(members), p=weights))]
        return learner, opponent, learner.steps % 2

    def _set_matchup(self, matchup: tuple[_Learner, PoolMember, int]) -> None:
        """Seats the learner and its (frozen) opponent under a manager; the Collector's policy
        plays with it from now on."""
        learner, opponent, seat = matchup
        frozen = self._seat_algorithm(opponent.id)
        seats = [learner.algorithm, frozen] if seat == 0 else [frozen, learner.algorithm]
        manager = FlexibleMultiAgentPolicyManager(seats, self.env, mode="independent")
        self._matchup = _Matchup(learner, opponent, seat, manager)
        assert isinstance(self._policy, _MatchPolicy)
        self._policy.play(manager.policy)

    # --- training -------------------------------------------------------------------------------

    def train_step(self, batch: ReplayBuffer) -> dict[str, Any]:
        """One training step on the collector's buffer, by ``training_mode``.

        :param batch: the Collector's buffer. Simultaneous and sequential: handed to the
            manager's ``update``. Self-play and league: its rows added since the previous
            train step (on-policy: all of its rows; empty it after each step, as Tianshou's
            on-policy trainer and :meth:`run` do) are the current matchup's games; the
            learner's transitions are learned from, and every finished game is scored.
        :return: ``step``, ``mode``, ``learning`` (the policy or member that learned),
            ``losses`` (its loss stats), ``ratings``; in self-play and league also
            ``opponent``, ``seat``, ``games``, ``score`` (the learner's mean score this step,
            nan without games) and ``pool`` (member ids).
        """
        if not isinstance(batch, ReplayBuffer):
            raise ValueError(
                "train_step needs the collector's buffer (a ReplayBuffer), got "
                f"{type(batch).__name__}"
            )
        if self._matchup is not None:
            out = self._pool_step(batch)
        else:
            out = self._manager_step(batch)
        self.step += 1
        if self._learners:
            self._set_matchup(self._next_matchup())
        return out

    def _manager_step(self, buffer: ReplayBuffer) -> dict[str, Any]:
        """Simultaneous and sequential: the manager's update, with the frozen policies' own
        updates turned off."""
        learning = self.get_current_learner()
        frozen = []
        if self.training_mode == "sequential":
            frozen = [a for pid, a in self._distinct.items() if str(pid) != learning]
        manager = self.policy_manager
        with policy_within_training_step(manager.policy), _frozen(frozen):
            if self.off_policy:
                stats = manager.update(buffer, sample_size=self.batch_size)
            else:
                stats = manager.update(buffer, batch_size=self.batch_size, repeat=self.repeat)
        assert isinstance(stats, MultiAgentTrainingStats)
        losses = {}
        for pid, s in stats.per_policy.items():
            if s is not _FROZEN_STATS:
                losses.update(_loss_stats(s, f"{pid}/"))
        return {
            "step": self.step,
            "mode": self.training_mode,
            "learning": learning,
            "losses": losses,
            "ratings": self.get_ratings(),
        }

    def _pool_step(self, buffer: ReplayBuffer) -> dict[str, Any]:
        """Self-play and league: the learner learns from its own transitions of the new rows;
        the games are scored; a snapshot (and an exploiter reset) when it is due."""
        m = self._matchup
        assert m is not None
        found = self._learner_transitions(buffer, m)
        scores = self._record_games(m, found[0] if found else None)
        losses = self._learn(m.learner, found, buffer) if found else {}
        m.learner.steps += 1
        if m.learner.steps % self.snapshot_interval == 0:
            self._snapshot(m.learner)
        return {
            "step": self.step,
            "mode": self.training_mode,
            "learning": m.learner.id,
            "opponent": m.opponent.id,
            "seat": self._agent(m.seat),
            "games": len(scores),
            "score": float(np.mean(scores)) if scores else float("nan"),
            "losses": losses,
            "ratings": self.get_ratings(),
            "pool": [p.id for p in self._pool],
        }

    def _learner_transitions(
        self, buffer: ReplayBuffer, m: _Matchup
    ) -> tuple[Batch, np.ndarray] | None:
        """The learner's transitions in the rows added since the last step, and their replay
        slots (env x seat); the manager's re-stitching (episodes cut by a collect's end are
        dropped)."""
        dispatch = m.manager.policy
        layout = dispatch.layout
        restitch = Restitcher(layout.parallel)
        if self.off_policy:
            new = self._cursor.new_rows(buffer)
        else:  # on-policy: the whole buffer, emptied after every step
            new = [(k, o, latest(sub, len(sub))) for k, (o, sub) in enumerate(streams(buffer))]
        parts = []
        for stream, offset, idx in new:
            rows = buffer_rows(buffer, idx + offset, not layout.parallel, layout.agent_indices)
            parts.append(restitch(stream, rows))
        found = dispatch.routes[int(dispatch.owner[m.seat])].transitions(parts)
        if found is None:
            return None
        data, stream, agent = found
        return data, stream * len(self.policy_manager.agents) + agent

    def _record_games(self, m: _Matchup, data: Batch | None) -> list[float]:
        """Scores every game the learner finished (sign of its final reward) into the ratings."""
        if data is None:
            return []
        done = np.logical_or(data.terminated, data.truncated)
        scores = [_score(float(r)) for r in np.asarray(data.rew)[done]]
        for s in scores:
            self.ratings.record(m.learner.id, m.opponent.id, s)
        return scores

    def _learn(
        self, learner: _Learner, found: tuple[Batch, np.ndarray], buffer: ReplayBuffer
    ) -> dict[str, float]:
        """The learner's own update: off-policy from its replay (its transitions appended),
        on-policy on this step's trajectories."""
        data, slot = found
        algorithm = learner.algorithm
        slots = len(streams(buffer)) * len(self.policy_manager.agents)
        stats = TrainingStats()
        with policy_within_training_step(algorithm.policy):
            if not self.off_policy:
                trajectories = trajectory_buffer(data, slot)
                stats = algorithm.update(
                    trajectories, batch_size=self.batch_size, repeat=self.repeat
                )
                return _loss_stats(stats)
            replay = learner.replay
            if replay is None or len(replay.buffers) != slots:
                replay = learner.replay = AgentReplayBuffer(max(buffer.maxsize, slots), slots)
            append(replay, data, slot)
            for _ in range(self.updates_per_step):
                stats = algorithm.update(replay, sample_size=self.batch_size)
        return _loss_stats(stats)

    def _snapshot(self, learner: _Learner) -> None:
        """Adds the learner's snapshot; resets a main exploiter (always) or a league exploiter
        (with ``league_exploiter_reset_prob``) to its initial parameters, as a new player."""
        self.add_to_opponent_pool(learner.id)
        reset = learner.role == "main_exploiter" or (
            learner.role == "league_exploiter"
            and self._rng.random() < self.league_exploiter_reset_prob
        )
        if reset and learner.initial is not None:
            learner.algorithm.load_state_dict(copy.deepcopy(learner.initial))
            learner.replay = None
            self.ratings.forget(learner.id)

    def record_game(self, player: str, opponent: str, score: float) -> None:
        """Scores one game played outside :meth:`train_step` (e.g. an evaluation) into the
        payoff table and the Elo ratings: ``score`` is ``player``'s (1, 0.5 or 0)."""
        self.ratings.record(player, opponent, score)

    def evaluate(
        self, collector: Any, player: str, opponent: str, n_episode: int
    ) -> dict[str, float]:
        """Plays ``n_episode`` games (half from each seat) of ``player`` against ``opponent``
        (learner or pool member ids) without learning, outside a training step (DQN acts with
        its ``eps_inference``), and scores them into the payoff table and the ratings (by the
        sign of the players' episode return difference).

        :param collector: a Tianshou ``Collector`` built on :attr:`policy` (self-play, league);
            if it is the training collector, rows it collected since the last train step are
            not learned from.
        :return: ``player``'s ``games``, ``win``, ``draw`` and ``loss`` rates.
        """
        self._check_collector(collector)
        if self._matchup is None:
            raise ValueError("evaluate() seats pool members: self_play and league only")
        _check_positive(n_episode=n_episode)
        algorithms = [self._seat_algorithm(player), self._seat_algorithm(opponent)]
        by_seat: list[list[float]] = [[], []]
        try:
            for seat, count in ((0, (n_episode + 1) // 2), (1, n_episode // 2)):
                if count == 0:
                    continue
                seats = algorithms if seat == 0 else algorithms[::-1]
                self._policy.play(FlexibleMultiAgentPolicyManager(seats, self.env).policy)
                stats = collector.collect(n_episode=count, reset_before_collect=True)
                returns = np.asarray(stats.returns).reshape(-1, 2)
                by_seat[seat] = [_score(r[seat] - r[1 - seat]) for r in returns]
        finally:
            self._policy.play(self._matchup.manager.policy)
            if collector.buffer is self._cursor.source:
                self._cursor.new_rows(collector.buffer)  # the games are not learned from
        first, second = by_seat  # Elo depends on the order: alternate the seats' games
        scores = [s for pair in zip_longest(first, second) for s in pair if s is not None]
        for s in scores:
            self.ratings.record(player, opponent, s)
        n = len(scores)
        return {
            "games": n,
            "win": scores.count(1.0) / n,
            "draw": scores.count(0.5) / n,
            "loss": scores.count(0.0) / n,
        }

    def _seat_algorithm(self, member_id: str) -> Algorithm:
        """A learner's algorithm, or a pool member's frozen one."""
        for le in self._learners:
            if le.id == member_id:
                return le.algorithm
        for m in self._pool:
            if m.id == member_id:
                if m.id not in self._seated:
                    kind = _FrozenOffPolicy if self.off_policy else _FrozenOnPolicy
                    self._seated[m.id] = kind(policy=m.policy)
                return self._seated[m.id]
        known = [le.id for le in self._learners] + [m.id for m in self._pool]
        raise ValueError(f"unknown player {member_id!r}; learners and pool members are {known}")

    def _check_collector(self, collector: Any) -> None:
        if getattr(collector, "policy", None) is not self.policy:
            raise ValueError(
                "the collector must act with trainer.policy (Collector(trainer.policy, ...))"
            )

    def run(self, collector: Any, num_steps: int, episodes_per_step: int) -> list[dict[str, Any]]:
        """``num_steps`` times: collect ``episodes_per_step`` whole episodes (from a reset,
        within a training step: exploration on), then :meth:`train_step`. On-policy, the
        buffer is emptied after each step. Returns the train steps' stats.

        :param collector: a Tianshou ``Collector`` built on :attr:`policy`.
        """
        _check_positive(num_steps=num_steps, episodes_per_step=episodes_per_step)
        self._check_collector(collector)
        history = []
        for _ in range(num_steps):
            with policy_within_training_step(self.policy):
                collector.collect(n_episode=episodes_per_step, reset_before_collect=True)
            history.append(self.train_step(collector.buffer))
            if not self.off_policy:
                collector.reset_buffer(keep_statistics=True)
        return history
