"""``league.json`` and ``league.png`` of a ``self_play`` / ``league`` run.

``league.json`` holds, per seed: the members (name, role, Elo), the pool's snapshots (slot,
the member that made it, the update it was taken at, Elo), the payoff table (the members'
decayed win rates against every candidate, with the game counts) and, for games small
enough to enumerate, the exact NashConv of the first main agent and of the pool's uniform
mixture. ``league.png`` plots every member's Elo over training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jmarl.algos.base import Trainer
from jmarl.algos.ppo.config import PPOConfig
from jmarl.env.base import Env
from jmarl.eval.nash_conv import Mixture, make_nash_conv
from jmarl.eval.policies import actor_critic_policy, greedy_policy
from jmarl.modes.league import LeagueConfig, LeagueState, member_names
from jmarl.modes.ratings import win_rates


def _policy(trainer: Trainer, env: Env, params: Any) -> Any:
    """``params``' policy as :func:`jmarl.nash_conv` takes it: exact PPO probabilities, else
    greedy actions."""
    exact = isinstance(trainer.config, PPOConfig)
    return (actor_critic_policy if exact else greedy_policy)(trainer, params, env.spec)


def pool_policies(trainer: Trainer, env: Env, ls: LeagueState) -> list[Any]:
    """The filled pool slots' policies (one seed's :class:`LeagueState`), in slot order."""
    slots = np.nonzero(np.asarray(ls.pool_owner) >= 0)[0]
    return [_policy(trainer, env, jax.tree.map(lambda x, i=i: x[i], ls.pool)) for i in slots]


def pool_mixture(trainer: Trainer, env: Env, ls: LeagueState) -> Mixture:
    """The uniform mixture of the pool's snapshots (one seed), as :func:`jmarl.nash_conv`
    takes it."""
    policies = pool_policies(trainer, env, ls)
    return Mixture(policies, [1.0] * len(policies))


def pool_nash_conv(trainer: Trainer, env: Env, ls: LeagueState) -> float:
    """Exact NashConv of the uniform mixture of the pool's snapshots (one seed)."""
    return make_nash_conv(env)(pool_mixture(trainer, env, ls))


def _seed_report(trainer: Trainer, env: Env, cfg: LeagueConfig, ls: LeagueState) -> dict:
    names = member_names(cfg)
    p = cfg.pool_size
    owner, update = np.asarray(ls.pool_owner), np.asarray(ls.pool_update)
    ratings = np.asarray(ls.ratings, np.float64)
    labels = [f"snapshot_{i}" for i in range(p)] + names
    rate = np.asarray(win_rates(ls.games, ls.score), np.float64)
    report: dict[str, Any] = {
        "members": [
            {"name": n, "role": r, "elo": float(ratings[p + i])}
            for i, (n, r) in enumerate(zip(names, cfg.roles, strict=True))
        ],
        "pool": [
            {
                "slot": i,
                "member": names[owner[i]],
                "update": int(update[i]),
                "elo": float(ratings[i]),
            }
            for i in range(p)
            if owner[i] >= 0
        ],
        "payoff": {
            "columns": labels,
            "win_rate": rate.round(4).tolist(),
            "games": np.asarray(ls.games, np.float64).round(2).tolist(),
        },
    }
    if env.chance_outcomes is not None and not jax.tree.leaves(trainer.init_carry(1)):
        nash_conv = make_nash_conv(env)
        report["nash_conv_pool"] = nash_conv(pool_mixture(trainer, env, ls))
        report["nash_conv_main"] = nash_conv(_policy(trainer, env, trainer.acting_params(ls)))
    return report


def league_report(trainer: Trainer, env: Env, cfg: LeagueConfig, learner: Any) -> dict:
    """``{"seeds": [per-seed report, ...]}`` from the run's learner state (leading seed
    axis)."""
    seeds = jax.tree.leaves(learner)[0].shape[0]
    one = lambda s: jax.tree.map(lambda x: np.asarray(x)[s], learner)
    return {"seeds": [_seed_report(trainer, env, cfg, one(s)) for s in range(seeds)]}


def plot_league(path: Path, rows: list[dict[str, Any]], names: list[str]) -> None:
    """Every member's Elo (mean over seeds) against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["env_steps"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name in names:
        elo = [np.mean(r.get(f"elo_{name}", np.nan)) for r in rows]
        ax.plot(steps, elo, lw=1.5, label=name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("Elo")
    ax.set_title("league ratings")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_league(out_dir: Path, report: dict, rows: list[dict[str, Any]], names: list[str]) -> None:
    """Writes ``league.json`` (atomically) and ``league.png`` into ``out_dir``."""
    tmp = out_dir / "league.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out_dir / "league.json")
    plot_league(out_dir / "league.png", rows, names)
