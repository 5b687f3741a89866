"""Self-play and league throughput: games/s of jitted training vs a Python-loop driver.

For ``kuhn_poker`` and ``tic_tac_toe`` (IPPO, shared parameters, ``--envs`` envs x
``--rollout`` steps per update) and pool sizes ``--pools`` (2 8 64; a pool keeps each
learner's initial snapshot, so self-play needs 2 slots and a league of 3 needs 6):

(a) ``jitted``: ``jmarl.modes.league`` self-play (one learner, PFSP over the pool) and a
    league (main agent, main exploiter, league exploiter; pools of at least 6 slots), the whole
    loop of ``--updates`` updates one compiled ``lax.scan``: finished games per second (all
    members' games);
(b) ``bookkeeping_share``: matchmaking (PFSP weights, per-env opponent draws, the parameter
    gather), payoff table, Elo update and snapshots alone, compiled as the same scan with the
    rollouts and updates left out, as a share of a whole self-play step;
(c) ``python_loop`` (the baseline): the same compiled rollout-and-update of one learner
    (``jmarl.modes.league.make_member_update``), driven from Python as RLlib or OpenSpiel
    drive self-play: the host draws per-env opponents by PFSP from a numpy payoff table,
    gathers their parameters from the device-resident pool, reads the outcomes back after
    every update and keeps Elo in numpy; snapshots are written into the pool by a compiled
    slot update. ``speedup`` = jitted self-play games/s / Python-loop games/s, both in this run.

Each timed configuration runs once untimed (compilation timed apart), then ``--repeats`` timed
runs, best kept. Run (about 6 minutes on one idle core)::

    JAX_PLATFORMS=cpu taskset -c 1 .venv/bin/python benchmarks/league_throughput.py
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from _common import arm_watchdog, compile_jit, emit, log, machine_info, ratio, time_compiled

import jmarl
from jmarl.algos.rollout import init_rollout_state
from jmarl.modes import LeagueConfig, league, league_config
from jmarl.modes.league import make_member_update, matchmaking, snapshot
from jmarl.modes.ratings import elo_update


def _trainer(game: str, args: argparse.Namespace) -> Any:
    env = jmarl.make(game)
    cfg = jmarl.PPOConfig(num_envs=args.envs, rollout_length=args.rollout, num_minibatches=1)
    return env, jmarl.make_ppo(env, cfg, args.updates * cfg.steps_per_update, sharing="shared")


def _scan(step: Any, updates: int) -> Any:
    return lambda s: jax.lax.scan(lambda c, _: step(c), s, None, updates)


def jitted(game: str, pool: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Games/s of the compiled self-play / league loop."""
    env, trainer = _trainer(game, args)
    interval = max(1, args.updates // 4)
    if mode == "self_play":
        cfg = LeagueConfig(pool_size=pool, snapshot_interval=interval)
    else:
        cfg = league_config(pool_size=pool, snapshot_interval=interval)
    tr = league(trainer, env, cfg, mode)
    state = jax.jit(tr.init)(jax.random.key(0))
    run, compile_s = compile_jit(_scan(tr.step, args.updates), state)
    _, metrics = run(state)
    timing = time_compiled(run, (state,), args.repeats, warmup=0)
    games = float(np.sum(metrics["population_games"]))
    return {
        "games_per_s": games / timing.best_s,
        "updates_per_s": args.updates / timing.best_s,
        "compile_s": compile_s,
        "timing": timing.as_dict(),
        "members": cfg.members,
    }


def bookkeeping(game: str, pool: int, args: argparse.Namespace) -> dict[str, Any]:
    """Matchmaking, payoff table, Elo and snapshots alone, as compiled in self-play."""
    env, trainer = _trainer(game, args)
    cfg = LeagueConfig(pool_size=pool, snapshot_interval=max(1, args.updates // 4))
    tr = league(trainer, env, cfg, "self_play")
    state = jax.jit(tr.init)(jax.random.key(0))
    e, c = args.envs, pool + 1

    def step(carry: Any) -> Any:
        ls, key, update = carry
        key, k_match, k_out = jax.random.split(key, 3)
        acting = jax.vmap(trainer.acting_params)(ls.members)
        candidates = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ls.pool, acting)
        opponent = jax.random.categorical(
            k_match, jnp.log(matchmaking(cfg, ls))[:, None], shape=(1, e)
        )
        theirs = jax.tree.map(lambda x: x[opponent], candidates)
        games = jax.random.poisson(k_out, 2.0, (1, e)).astype(jnp.float32)
        against = jax.nn.one_hot(opponent, c)
        g = jnp.einsum("me,mec->mc", games, against)
        s = 0.5 * g
        ls = ls._replace(
            games=0.99 * ls.games + g,
            score=0.99 * ls.score + s,
            ratings=elo_update(ls.ratings, g, s, jnp.array([pool]), 32.0),
        )
        update = update + 1
        take = update % cfg.snapshot_interval == 0
        ls = jax.lax.cond(take, lambda q: snapshot(q, acting, update), lambda q: q, ls)
        keep = jax.tree.map(lambda x: jnp.sum(x[:, :1]), theirs)  # the gather is not dead code
        return (ls, key, update), keep

    carry = (state.learner, jax.random.key(1), jnp.zeros((), jnp.int32))
    run, _ = compile_jit(_scan(step, args.updates), carry)
    return {"timing": time_compiled(run, (carry,), args.repeats).as_dict()}


def python_loop(game: str, pool: int, args: argparse.Namespace) -> dict[str, Any]:
    """The baseline: the same compiled member update, self-play driven from Python."""
    env, trainer = _trainer(game, args)
    e = args.envs
    update = jax.jit(make_member_update(trainer, env))
    gather = jax.jit(lambda pool_params, idx: jax.tree.map(lambda x: x[idx], pool_params))
    put = jax.jit(
        lambda pool_params, new, slot: jax.tree.map(
            lambda x, y: x.at[slot].set(y), pool_params, new
        )
    )
    interval = max(1, args.updates // 4)

    def run(seed: int) -> tuple[float, float]:
        rng = np.random.default_rng(seed)
        key = jax.random.key(seed)
        learner = trainer.init_learner(key)
        acting = trainer.acting_params(learner)
        pool_params = jax.tree.map(
            lambda x: jnp.zeros((pool, *x.shape), x.dtype).at[0].set(x), acting
        )
        filled, snaps = 1, 1
        games, score = np.zeros(pool), np.zeros(pool)
        ratings = np.full(pool + 1, 1000.0)
        rs = init_rollout_state(env, jax.random.fold_in(key, 1), e, trainer.init_carry(e))
        total = 0.0
        start = time.perf_counter()
        for u in range(1, args.updates + 1):
            p_win = (score[:filled] + 0.5) / (games[:filled] + 1.0)
            w = (1.0 - p_win) ** 2
            w = w / w.sum() if w.sum() > 0 else np.full(filled, 1.0 / filled)
            idx = rng.choice(filled, size=e, p=w)
            seat = rng.integers(0, 2, size=e)[:, None] == np.arange(2)
            theirs = gather(pool_params, jnp.asarray(idx))
            learner, rs, _, out = update(
                learner, rs, theirs, jnp.asarray(seat), jax.random.fold_in(key, u)
            )
            g, s = jax.device_get((out.games, out.score))  # the host needs them to matchmake
            total += float(g.sum())
            games *= 0.99
            score *= 0.99
            np.add.at(games, idx, g)
            np.add.at(score, idx, s)
            gv, sv = np.bincount(idx, g, filled), np.bincount(idx, s, filled)
            expected = 1.0 / (1.0 + 10.0 ** ((ratings[:filled] - ratings[pool]) / 400.0))
            delta = 32.0 * (sv - gv * expected) / max(gv.sum(), 1.0)
            ratings[pool] += delta.sum()
            ratings[:filled] -= delta
            if u % interval == 0:
                slot = snaps % pool
                pool_params = put(pool_params, trainer.acting_params(learner), slot)
                games[slot] = score[slot] = 0.0
                ratings[slot] = ratings[pool]
                snaps += 1
                filled = min(snaps, pool)
        jax.block_until_ready(learner)
        return total, time.perf_counter() - start

    run(0)  # compiles
    timed = [run(s + 1) for s in range(args.repeats)]
    best = min(t for _, t in timed)
    total = timed[0][0]
    return {
        "games_per_s": total / best,
        "updates_per_s": args.updates / best,
        "runs_s": [t for _, t in timed],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", nargs="+", default=["kuhn_poker", "tic_tac_toe"])
    parser.add_argument("--pools", nargs="+", type=int, default=[2, 8, 64])
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--rollout", type=int, default=16)
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    arm_watchdog(3600)
    rows = []
    for game in args.games:
        for pool in args.pools:
            log(f"{game} pool {pool}")
            row: dict[str, Any] = {"game": game, "pool_size": pool}
            row["self_play"] = jitted(game, pool, "self_play", args)
            row["league"] = jitted(game, pool, "league", args) if pool >= 6 else None
            book = bookkeeping(game, pool, args)
            step_s = row["self_play"]["timing"]["best_s"]
            row["bookkeeping_share"] = ratio(book["timing"]["best_s"], step_s)
            row["python_loop"] = python_loop(game, pool, args)
            row["speedup_vs_python_loop"] = ratio(
                row["self_play"]["games_per_s"], row["python_loop"]["games_per_s"]
            )
            speedup, share = row["speedup_vs_python_loop"], row["bookkeeping_share"]
            log(f"  {speedup:.2f}x the Python loop, bookkeeping {share:.3f} of a step")
            rows.append(row)
    emit({"machine": machine_info(), "settings": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
