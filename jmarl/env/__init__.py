"""Environments: the pure env protocol, spaces, the registry and built-in envs."""

from jmarl.env import spaces
from jmarl.env.base import Env, EnvSpec, EnvState, TimeStep, auto_reset
from jmarl.env.dict_goal import make_dict_goal
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
    "make_dict_goal",
    "make_memory",
    "make_simple_spread",
    "make_two_step",
    "register",
    "spaces",
]
