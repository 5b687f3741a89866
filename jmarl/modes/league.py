"""Self-play and leagues for two-player games, inside the one jitted training program.

A population of ``M`` learners (each the learner state of one algorithm of the contract,
stacked on a leading axis and updated by one ``vmap``) plays against ``C = P + M``
candidates: ``P`` snapshot slots of a fixed-size pool (stacked acting parameters, a ring
buffer) and the ``M`` current learners. Every update each learner draws, per env, an
opponent from its role's matchmaking weights and a seat; the opponent acts for the other seat,
and only the learner's seat enters its loss. Outcomes of the finished games update a
(decayed) payoff table ``[M, C]`` and Elo ratings ``[C]``; every ``snapshot_interval``
updates every learner's acting parameters are copied into the pool, inheriting its rating.

Roles (AlphaStar, Vinyals et al., 2019):

* ``main``: PFSP (or ``opponent_sampling``) over the pool, plus a ``self_play_fraction``
  of games against the current main agents;
* ``main_exploiter``: plays the current main agents; re-initialised when its win rate
  against them passes ``exploiter_reset_win_rate`` (checked at snapshots);
* ``league_exploiter``: PFSP over the pool; re-initialised with probability
  ``league_exploiter_reset_prob`` at each snapshot.

``self_play`` is the league of one main agent and no exploiters, drawing from the pool only
(``uniform``, ``latest`` or ``pfsp``). The trainer returned keeps the contract: its learner
state is a :class:`LeagueState`, ``acting_params`` are the first main agent's, so evaluation,
export and checkpoints work unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.algos.base import ActOutput, Metrics, Trainer, TrainerState, TrainOutput, Transition
from jmarl.algos.rollout import episode_metrics, init_rollout_state, make_rollout, reset_totals
from jmarl.config_check import ConfigError
from jmarl.env.base import Env, TimeStep
from jmarl.modes.ratings import (
    INITIAL_RATING,
    PFSP_WEIGHTINGS,
    elo_update,
    normalise,
    pfsp_weights,
    win_rates,
)
from jmarl.types import Array, Params, PRNGKey

ROLES = ("main", "main_exploiter", "league_exploiter")
SAMPLING = ("uniform", "latest", "pfsp")


@dataclasses.dataclass(frozen=True)
class LeagueConfig:
    """Settings of ``self_play`` and ``league`` training (see the module doc).

    :param pool_size: snapshot slots ``P``: the members' initial snapshots stay, the other
        ``P - M`` slots are a ring (the oldest snapshot is overwritten); ``P >= 2 M``.
    :param snapshot_interval: updates between snapshots.
    :param opponent_sampling: how main agents draw from the pool: ``uniform``, ``latest``
        or ``pfsp``.
    :param main_agents: main agents (at least one; the first is the run's policy).
    :param main_exploiters: main exploiters.
    :param league_exploiters: league exploiters.
    :param self_play_fraction: share of a main agent's games against current main agents.
    :param pfsp_weighting: ``squared``, ``variance`` or ``linear`` (:mod:`.ratings`).
    :param exploiter_reset_win_rate: a main exploiter beating the main agents this often is
        re-initialised (at a snapshot).
    :param league_exploiter_reset_prob: chance a league exploiter is re-initialised at a
        snapshot.
    :param elo_k: Elo K-factor.
    :param payoff_decay: per-update decay of the payoff table's game counts (recent games
        weigh more; 1 keeps all).
    """

    pool_size: int = 16
    snapshot_interval: int = 10
    opponent_sampling: str = "pfsp"
    main_agents: int = 1
    main_exploiters: int = 0
    league_exploiters: int = 0
    self_play_fraction: float = 0.0
    pfsp_weighting: str = "squared"
    exploiter_reset_win_rate: float = 0.7
    league_exploiter_reset_prob: float = 0.25
    elo_k: float = 32.0
    payoff_decay: float = 0.99

    @property
    def roles(self) -> tuple[str, ...]:
        """Each member's role, mains first."""
        return (
            ("main",) * self.main_agents
            + ("main_exploiter",) * self.main_exploiters
            + ("league_exploiter",) * self.league_exploiters
        )

    @property
    def members(self) -> int:
        return len(self.roles)


def league_config(**overrides: Any) -> LeagueConfig:
    """The ``league`` defaults: one main agent (35% self-play), one main exploiter, one league
    exploiter (AlphaStar's recipe at its smallest)."""
    base = LeagueConfig(main_exploiters=1, league_exploiters=1, self_play_fraction=0.35)
    return dataclasses.replace(base, **overrides)


class LeagueState(NamedTuple):
    """The learner state of a league (``M`` members, ``P`` pool slots, ``C = P + M``).

    ``members`` the algorithm's learner states ``[M, ...]``; ``pool`` acting parameters
    ``[P, ...]``; ``pool_owner`` ``i32[P]`` the member that made each snapshot (-1 empty);
    ``pool_update`` ``i32[P]`` when; ``snapshots`` ``i32[]`` taken so far; ``games`` /
    ``score`` ``f32[M, C]`` the decayed payoff table (games, wins + draws / 2);
    ``ratings`` ``f32[C]`` Elo, pool slots then members.
    """

    members: Any
    pool: Params
    pool_owner: Array
    pool_update: Array
    snapshots: Array
    games: Array
    score: Array
    ratings: Array


class Outcomes(NamedTuple):
    """Per env of one rollout: finished ``games``, the learner's ``score`` and ``draws``, and
    the summed returns of each seat ``seat_return`` ``[E, N]``."""

    games: Array
    score: Array
    draws: Array
    seat_return: Array


def check_league(env: Env, trainer: Trainer, cfg: LeagueConfig, mode: str) -> None:
    """A :class:`ConfigError` naming why ``mode`` cannot run ``cfg`` on ``env``."""
    spec = env.spec
    if spec.num_agents != 2:
        raise ConfigError(
            f"--mode {mode} pits a learner against opponents in two-player games; "
            f"{spec.name!r} has {spec.num_agents} agents"
        )
    if mode == "league" and not spec.zero_sum:
        raise ConfigError(
            f"--mode league ranks players by wins in zero-sum games; {spec.name!r} is not "
            "zero-sum (use --mode self_play)"
        )
    if getattr(trainer.config, "mixer", "none") != "none":
        raise ConfigError(
            f"--mode {mode} pits the two seats against each other, but a value-decomposition "
            f"learner ({trainer.config.mixer}) maximises their summed (team) reward: use iql, "
            "ippo, mappo or maddpg"
        )
    if jax.tree.leaves(trainer.init_carry(1)):
        raise ConfigError(f"--mode {mode} needs feed-forward policies (no --recurrent)")
    if cfg.pool_size < 1:
        raise ConfigError(f"--pool-size must be >= 1, got {cfg.pool_size}")
    if cfg.snapshot_interval < 1 or cfg.snapshot_interval > trainer.num_updates:
        raise ConfigError(
            f"--snapshot-interval {cfg.snapshot_interval} (updates) must be in 1.."
            f"{trainer.num_updates}, the updates of this run: no snapshot would be taken"
        )
    if cfg.opponent_sampling not in SAMPLING:
        raise ConfigError(
            f"unknown --opponent-sampling {cfg.opponent_sampling!r}; choose from {list(SAMPLING)}"
        )
    if cfg.pfsp_weighting not in PFSP_WEIGHTINGS:
        raise ConfigError(f"unknown PFSP weighting {cfg.pfsp_weighting!r}")
    if cfg.main_agents < 1 or cfg.main_exploiters < 0 or cfg.league_exploiters < 0:
        raise ConfigError("a league needs >= 1 main agent and >= 0 exploiters of each kind")
    if cfg.pool_size < 2 * cfg.members:
        raise ConfigError(
            f"--pool-size {cfg.pool_size} is too small for {cfg.members} learner(s): the pool "
            f"keeps their initial snapshots and rotates at least one more slot each (>= "
            f"{2 * cfg.members})"
        )


def make_match_act(act: Any) -> Any:
    """``act`` for one learner against per-env opponents: params ``(mine, theirs [E, ...],
    seat bool[E, N])``; the learner's action (and extras) in its seat, the opponent's in the
    other."""

    def match_act(params: Any, ts: TimeStep, key: PRNGKey, carry: Any) -> ActOutput:
        mine_params, theirs, seat = params
        k_mine, k_theirs = jax.random.split(key)
        mine = act(mine_params, ts, k_mine, carry)

        def one(p: Params, ts_e: TimeStep, k: PRNGKey) -> Any:
            return act(p, jax.tree.map(lambda x: x[None], ts_e), k, ()).action

        keys = jax.random.split(k_theirs, seat.shape[0])
        other = jax.tree.map(lambda a: a[:, 0], jax.vmap(one)(theirs, ts, keys))

        def pick(a: Array, b: Array) -> Array:
            return jnp.where(seat.reshape(seat.shape + (1,) * (a.ndim - 2)), a, b)

        return ActOutput(jax.tree.map(pick, mine.action, other), mine.extras, mine.carry)

    return match_act


def game_outcomes(running: Array, traj: Transition, seat: Array) -> Outcomes:
    """Outcomes of the games that ended in ``traj`` ``[T, E]``, from the running returns
    ``[E, N]`` at its start and the learner's ``seat`` ``bool[E, N]``."""
    ended = jnp.all(traj.discount == 0, axis=-1)  # [T, E]

    def body(run: Array, row: tuple[Array, Array]) -> tuple[Array, Array]:
        reward, end = row
        run = run + reward
        return jnp.where(end[:, None], 0.0, run), run

    _, totals = jax.lax.scan(body, running, (traj.reward, ended))  # [T, E, N]
    mine = jnp.sum(jnp.where(seat, totals, 0.0), -1)
    theirs = jnp.sum(jnp.where(seat, 0.0, totals), -1)
    end = ended.astype(jnp.float32)
    score = jnp.where(mine > theirs, 1.0, jnp.where(mine == theirs, 0.5, 0.0))
    return Outcomes(
        games=end.sum(0),
        score=(end * score).sum(0),
        draws=(end * (mine == theirs)).sum(0),
        seat_return=(end[..., None] * totals).sum(0),
    )


def matchmaking(cfg: LeagueConfig, state: LeagueState) -> Array:
    """Each member's opponent weights ``f32[M, C]`` (rows sum to 1)."""
    roles = np.asarray([ROLES.index(r) for r in cfg.roles])
    pool_size = state.pool_owner.shape[0]
    filled = state.pool_owner >= 0
    valid = jnp.concatenate([filled, jnp.ones(cfg.members, bool)])
    rate = win_rates(state.games, state.score)
    pool_valid = jnp.broadcast_to(filled, (cfg.members, pool_size))
    pfsp = pfsp_weights(rate[:, :pool_size], pool_valid, cfg.pfsp_weighting)
    if cfg.opponent_sampling == "uniform":
        pool_w = normalise(pool_valid.astype(jnp.float32), pool_valid)
    elif cfg.opponent_sampling == "latest":
        latest = jnp.argmax(jnp.where(filled, state.pool_update, -1))
        pool_w = jnp.broadcast_to(jax.nn.one_hot(latest, pool_size), pool_valid.shape)
    else:
        pool_w = pfsp
    mains = np.arange(cfg.members) < cfg.main_agents
    current_mains = jnp.concatenate([jnp.zeros(pool_size), mains / mains.sum()])
    pad = jnp.zeros((cfg.members, cfg.members))
    main_w = (1.0 - cfg.self_play_fraction) * jnp.concatenate([pool_w, pad], 1)
    main_w = main_w + cfg.self_play_fraction * current_mains
    exploit_w = jnp.broadcast_to(current_mains, main_w.shape)
    league_w = jnp.concatenate([pfsp, pad], 1)
    by_role = jnp.stack([main_w, exploit_w, league_w])  # [3, M, C]
    return normalise(by_role[roles, np.arange(cfg.members)] * valid, valid[None])


def init_league(trainer: Trainer, cfg: LeagueConfig, key: PRNGKey) -> LeagueState:
    """``M`` freshly initialised members, each snapshotted once into the pool."""
    members = jax.vmap(trainer.init_learner)(jax.random.split(key, cfg.members))
    acting = jax.vmap(trainer.acting_params)(members)
    p, m = cfg.pool_size, cfg.members
    pool = jax.tree.map(lambda x: jnp.zeros((p, *x.shape[1:]), x.dtype).at[:m].set(x), acting)
    owner = jnp.full((p,), -1, jnp.int32).at[:m].set(jnp.arange(m, dtype=jnp.int32))
    zeros = jnp.zeros((m, p + m), jnp.float32)
    return LeagueState(
        members=members,
        pool=pool,
        pool_owner=owner,
        pool_update=jnp.where(owner >= 0, 0, -1).astype(jnp.int32),
        snapshots=jnp.asarray(m, jnp.int32),
        games=zeros,
        score=zeros,
        ratings=jnp.full((p + m,), INITIAL_RATING, jnp.float32),
    )


def snapshot(state: LeagueState, acting: Params, update: Array) -> LeagueState:
    """Every member's ``acting`` parameters ``[M, ...]`` into the next ``M`` pool slots, each
    inheriting its member's rating; the payoff columns of those slots start over. Slots
    ``0..M-1`` keep the members' initial snapshots for good (the weakest, most varied players
    a learner keeps meeting); the others are a ring, the oldest overwritten first."""
    m = state.games.shape[0]
    p = state.pool_owner.shape[0]
    slots = m + (state.snapshots - m + jnp.arange(m)) % (p - m)
    fresh = jnp.zeros((p,), bool).at[slots].set(True)
    columns = jnp.concatenate([fresh, jnp.zeros((m,), bool)])
    return state._replace(
        pool=jax.tree.map(lambda x, new: x.at[slots].set(new), state.pool, acting),
        pool_owner=state.pool_owner.at[slots].set(jnp.arange(m, dtype=jnp.int32)),
        pool_update=state.pool_update.at[slots].set(update),
        snapshots=state.snapshots + m,
        games=jnp.where(columns, 0.0, state.games),
        score=jnp.where(columns, 0.0, state.score),
        ratings=state.ratings.at[slots].set(state.ratings[p:]),
    )


def reset_exploiters(
    trainer: Trainer, cfg: LeagueConfig, state: LeagueState, key: PRNGKey
) -> tuple[LeagueState, Array]:
    """Re-initialises main exploiters that beat the main agents (win rate over
    ``exploiter_reset_win_rate``) and league exploiters with probability
    ``league_exploiter_reset_prob``; returns the state and the reset flags ``bool[M]``."""
    roles = np.asarray(cfg.roles)
    p = state.pool_owner.shape[0]
    k_init, k_coin = jax.random.split(key)
    mains = slice(p, p + cfg.main_agents)
    vs_mains = win_rates(state.games[:, mains].sum(1), state.score[:, mains].sum(1))
    beaten = (roles == "main_exploiter") & (vs_mains > cfg.exploiter_reset_win_rate)
    coin = jax.random.uniform(k_coin, (cfg.members,)) < cfg.league_exploiter_reset_prob
    reset = beaten | ((roles == "league_exploiter") & coin)
    fresh = jax.vmap(trainer.init_learner)(jax.random.split(k_init, cfg.members))

    def pick(new: Array, old: Array) -> Array:
        return jnp.where(reset.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)

    rows = reset[:, None]
    own = jnp.concatenate([jnp.zeros((p,), bool), reset])
    state = state._replace(
        members=jax.tree.map(pick, fresh, state.members),
        games=jnp.where(rows, 0.0, state.games),
        score=jnp.where(rows, 0.0, state.score),
        ratings=jnp.where(own, INITIAL_RATING, state.ratings),
    )
    return state, reset


MemberUpdate = Callable[[Any, Any, Params, Array, PRNGKey], tuple[Any, Any, Metrics, Outcomes]]


def make_member_update(trainer: Trainer, env: Env) -> MemberUpdate:
    """``update(learner, rollout_state [E], theirs [E, ...], seat bool[E, N], key) ->
    (learner, rollout_state, metrics, Outcomes)``: one learner's rollout against per-env
    opponents (``theirs``: acting parameters) and its update from its own seat's rows."""
    rollout = make_rollout(env, make_match_act(trainer.act), trainer.rollout_length)

    def member_update(
        learner: Any, rs: Any, theirs: Params, seat: Array, key: PRNGKey
    ) -> tuple[Any, Any, Metrics, Outcomes]:
        k_roll, k_learn = jax.random.split(key)
        rs0 = rs._replace(stats=reset_totals(rs.stats))
        rs1, traj = rollout((trainer.acting_params(learner), theirs, seat), rs0, k_roll)
        traj = traj._replace(alive=traj.alive & seat)  # only the learner's seat learns
        learner, metrics = trainer.learn(learner, traj, rs1.timestep, k_learn)
        metrics = {**metrics, **episode_metrics(rs1.stats, traj)}
        return learner, rs1, metrics, game_outcomes(rs0.stats.running, traj, seat)

    return member_update


def _one_member(member_update: MemberUpdate) -> MemberUpdate:
    """``vmap(member_update)`` for a population of one, without the batching (``vmap`` of a
    whole PPO update over an axis of size 1 costs ~15% of a self-play step on CPU)."""

    def update(*args: Any) -> Any:
        out = member_update(*jax.tree.map(lambda x: x[0], args))
        return jax.tree.map(lambda x: x[None], out)

    return update


def member_names(cfg: LeagueConfig) -> list[str]:
    """``main_0``, ..., ``main_exploiter_0``, ..., ``league_exploiter_0``, ... (member order)."""
    counts: dict[str, int] = {}
    names = []
    for role in cfg.roles:
        names.append(f"{role}_{counts.get(role, 0)}")
        counts[role] = counts.get(role, 0) + 1
    return names


def _league_metrics(
    cfg: LeagueConfig, ls: LeagueState, metrics: Metrics, out: Outcomes, resets: Array
) -> Metrics:
    """The first main agent's learner and rollout metrics, its ``win_rate`` / ``draw_rate`` in
    this update's games, every member's Elo, the seats' mean returns over all games."""
    p = cfg.pool_size
    games = out.games[0].sum()
    draws = out.draws[0].sum()
    wins = out.score[0].sum() - 0.5 * draws
    per_game = lambda x: jnp.where(games > 0, x / jnp.maximum(games, 1.0), jnp.nan)
    all_games = jnp.maximum(out.games.sum(), 1.0)
    seat_return = out.seat_return.sum((0, 1)) / all_games
    league = {
        "win_rate": per_game(wins),
        "draw_rate": per_game(draws),
        "games": games,
        "population_games": out.games.sum(),
        "return_seat_0": seat_return[0],
        "return_seat_1": seat_return[1],
        "elo": ls.ratings[p],
        "pool_filled": jnp.minimum(ls.snapshots, p),
        "exploiter_resets": resets.sum(),
    }
    for i, name in enumerate(member_names(cfg)):
        league[f"elo_{name}"] = ls.ratings[p + i]
    return {**jax.tree.map(lambda x: x[0], metrics), **league}


def league(trainer: Trainer, env: Env, cfg: LeagueConfig, mode: str = "league") -> Trainer:
    """``trainer`` trained as a league (``mode="self_play"``: as self-play; module doc).

    Metrics (per update) are the first main agent's, plus ``win_rate``, ``draw_rate``,
    ``games`` (the first main agent's), ``population_games`` (all members'),
    ``return_seat_0/1``, ``elo``, ``elo_<member>``, ``pool_filled`` and
    ``exploiter_resets``.

    :raises ConfigError: see :func:`check_league`.
    """
    check_league(env, trainer, cfg, mode)
    m, p, e = cfg.members, cfg.pool_size, trainer.num_envs
    players = jnp.arange(p, p + m)
    has_exploiters = m > cfg.main_agents
    member_update = make_member_update(trainer, env)
    update_members = jax.vmap(member_update) if m > 1 else _one_member(member_update)

    def init(key: PRNGKey) -> TrainerState:
        k_league, k_env, k_run = jax.random.split(key, 3)
        carry = trainer.init_carry(e)
        rs = jax.vmap(lambda k: init_rollout_state(env, k, e, carry))(jax.random.split(k_env, m))
        return TrainerState(
            init_league(trainer, cfg, k_league), rs, k_run, jnp.zeros((), jnp.int32)
        )

    def play(state: TrainerState, key: PRNGKey) -> tuple[LeagueState, Any, Metrics, Outcomes]:
        """Matchmaking, every member's rollout and update, payoff table and Elo."""
        k_match, k_seat, k_members = jax.random.split(key, 3)
        ls = state.learner
        acting = jax.vmap(trainer.acting_params)(ls.members)
        candidates = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ls.pool, acting)
        logits = jnp.log(matchmaking(cfg, ls))[:, None, :]
        opponent = jax.random.categorical(k_match, logits, shape=(m, e))  # [M, E]
        seat = jax.random.randint(k_seat, (m, e, 1), 0, 2) == jnp.arange(2)  # [M, E, 2]
        theirs = jax.tree.map(lambda x: x[opponent], candidates)
        keys = jax.random.split(k_members, m)
        members, rs, metrics, out = update_members(ls.members, state.rollout, theirs, seat, keys)
        against = jax.nn.one_hot(opponent, p + m)  # [M, E, C]
        games = jnp.einsum("me,mec->mc", out.games, against)
        score = jnp.einsum("me,mec->mc", out.score, against)
        ls = ls._replace(
            members=members,
            games=cfg.payoff_decay * ls.games + games,
            score=cfg.payoff_decay * ls.score + score,
            ratings=elo_update(ls.ratings, games, score, players, cfg.elo_k),
        )
        return ls, rs, metrics, out

    def step(state: TrainerState) -> tuple[TrainerState, Metrics]:
        key, k_play, k_reset = jax.random.split(state.key, 3)
        ls, rs, metrics, out = play(state, k_play)
        n_upd = state.update + 1
        take = n_upd % cfg.snapshot_interval == 0
        acting = jax.vmap(trainer.acting_params)(ls.members)
        ls = jax.lax.cond(take, lambda s: snapshot(s, acting, n_upd), lambda s: s, ls)
        resets = jnp.zeros((m,), bool)
        if has_exploiters:
            ls, resets = jax.lax.cond(
                take,
                lambda s: reset_exploiters(trainer, cfg, s, k_reset),
                lambda s: (s, resets),
                ls,
            )
        metrics = {**_league_metrics(cfg, ls, metrics, out, resets), "update": n_upd}
        return TrainerState(ls, rs, key, n_upd), metrics

    def train(key: PRNGKey) -> TrainOutput:
        state = init(key)
        state, metrics = jax.lax.scan(lambda s, _: step(s), state, None, trainer.num_updates)
        return TrainOutput(state, metrics)

    def first(ls: LeagueState) -> Any:
        return jax.tree.map(lambda x: x[0], ls.members)

    def learn(ls: LeagueState, traj: Transition, last_ts: TimeStep, key: PRNGKey) -> Any:
        """One update of the first main agent from a rollout collected elsewhere."""
        new, metrics = trainer.learn(first(ls), traj, last_ts, key)
        members = jax.tree.map(lambda x, y: x.at[0].set(y), ls.members, new)
        return ls._replace(members=members), metrics

    return trainer._replace(
        init=init,
        step=step,
        train=train,
        learn=learn,
        init_learner=lambda key: init_league(trainer, cfg, key),
        acting_params=lambda ls: trainer.acting_params(first(ls)),
    )
