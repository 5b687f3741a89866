"""Environments: the pure env protocol, spaces, the registry and built-in envs."""

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, EnvState, TimeStep, auto_reset
from jmarl.env.dict_goal import make_dict_goal
from jmarl.env.games.kuhn_poker import make_kuhn_poker
from jmarl.env.games.leduc_holdem import make_leduc_holdem
from jmarl.env.games.matrix import (
    make_matching_pennies,
    make_matrix_game,
    make_prisoners_dilemma,
    make_rock_paper_scissors,
)
from jmarl.env.games.pgx_games import make_connect_four, make_tic_tac_toe
from jmarl.env.games.two_step import make_two_step
from jmarl.env.jaxmarl_adapter import from_jaxmarl
from jmarl.env.memory import make_memory
from jmarl.env.mpe.simple_spread import make_simple_spread
from jmarl.env.registry import describe, list_envs, make, register

register(
    "simple_spread",
    make_simple_spread,
    "MPE simple_spread (mpe2.simple_spread_v3 dynamics): N agents cover N landmarks",
)
register(
    "dict_goal",
    make_dict_goal,
    "grid world with Dict observations (landmark image, own position, target number)",
)
register(
    "memory",
    make_memory,
    "recall the cue of step 0 at the last step; feed-forward policies score at most 1/num_cues",
)
register(
    "two_step",
    make_two_step,
    "QMIX paper's two-step cooperative matrix game: optimal return 8, VDN's 7",
)
register(
    "rock_paper_scissors",
    make_rock_paper_scissors,
    "rock-paper-scissors, one simultaneous move (zero-sum; uniform play is the equilibrium)",
)
register(
    "matching_pennies",
    make_matching_pennies,
    "matching pennies, one simultaneous move (zero-sum; the row player wins on a match)",
)
register(
    "prisoners_dilemma",
    make_prisoners_dilemma,
    "prisoner's dilemma, one simultaneous move (general-sum; payoffs 3/0/5/1)",
)
register(
    "kuhn_poker",
    make_kuhn_poker,
    "Kuhn poker, turn-based (OpenSpiel rules; observations are full information states)",
)
register(
    "leduc_holdem",
    make_leduc_holdem,
    "Leduc hold'em, turn-based (OpenSpiel rules; observations are full information states)",
)
register(
    "tic_tac_toe",
    make_tic_tac_toe,
    "tic-tac-toe, turn-based (wraps Pgx: pip install 'jmarl[games]')",
)
register(
    "connect_four",
    make_connect_four,
    "connect four, turn-based (wraps Pgx: pip install 'jmarl[games]')",
)

__all__ = [
    "Env",
    "EnvSpec",
    "EnvState",
    "TimeStep",
    "auto_reset",
    "describe",
    "from_jaxmarl",
    "list_envs",
    "make",
    "make_connect_four",
    "make_dict_goal",
    "make_kuhn_poker",
    "make_leduc_holdem",
    "make_matching_pennies",
    "make_matrix_game",
    "make_memory",
    "make_prisoners_dilemma",
    "make_rock_paper_scissors",
    "make_simple_spread",
    "make_tic_tac_toe",
    "make_two_step",
    "register",
    "spaces",
]
