"""The run configuration behind ``jmarl train``; the CLI is generated from these fields."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmarl.agents.sharing import SHARING_MODES
from jmarl.algos import ALGORITHMS, ppo_config_for
from jmarl.algos.ppo.config import PPOConfig
from jmarl.env.registry import check_name

# PPO settings of the built-in default run (MAPPO on 3-agent simple_spread): a short
# discount suits its 25-step episodes with dense distance rewards. PPO keys given in a config
# file or as flags override these, field by field.
DEFAULT_PPO = PPOConfig(gamma=0.9)
PETTINGZOO_PREFIX = "pettingzoo:"


@dataclass(frozen=True)
class RunConfig:
    """One training run.

    :param env: a registered JAX env name (``jmarl envs``), or ``pettingzoo:<module>`` for a
        PettingZoo env stepped on the host through ``bridge`` (e.g.
        ``pettingzoo:mpe2.simple_spread_v3``; constructor arguments via ``env_kwargs``).
    :param algo: ``mappo`` (centralised critic) or ``ippo`` (local critics).
    :param sharing: ``shared`` | ``independent`` | ``grouped`` (needs ``agent_groups``) |
        ``custom`` (needs ``policy_mapping`` in a config file: agent id -> policy id).
    :param agents: number of agents (``num_agents`` of the env).
    :param steps: env steps per seed (one env step = all agents of one env acting once).
    :param seed: base random seed.
    :param seeds: independent seeds trained together in one compiled program.
    :param episode_length: steps per episode (``max_steps`` of the env).
    :param continuous_actions: continuous instead of discrete actions (MPE envs).
    :param log_every: updates between metric flushes / checkpoints (0 = about 50 per run).
    :param out: output folder (default: a new folder under ``runs/``).
    :param agent_groups: group -> agent ids, for ``sharing=grouped`` (config file only).
    :param policy_mapping: agent id -> policy id, for ``sharing=custom`` (config file only).
    :param env_kwargs: keyword arguments of a PettingZoo env's constructor (config file only).
    :param ppo: PPO hyperparameters (``--num-envs``, ``--lr``, ...).
    """

    env: str = "simple_spread"
    algo: str = "mappo"
    sharing: str = "shared"
    agents: int = 3
    steps: int = 4_000_000
    seed: int = 0
    seeds: int = 1
    episode_length: int = 25
    continuous_actions: bool = False
    log_every: int = 0
    out: str | None = None
    agent_groups: dict[str, list[str]] | None = None
    policy_mapping: dict[str, str] | None = None
    env_kwargs: dict[str, Any] | None = None
    ppo: PPOConfig = DEFAULT_PPO

    def __post_init__(self) -> None:
        if self.env.startswith(PETTINGZOO_PREFIX):
            module = self.env[len(PETTINGZOO_PREFIX) :]
            if not module or not all(p.isidentifier() for p in module.split(".")):
                raise ValueError(
                    f"--env {self.env!r}: expected pettingzoo:<module path>, "
                    "e.g. pettingzoo:mpe2.simple_spread_v3"
                )
        else:
            check_name(self.env)
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algo!r}; choose from {list(ALGORITHMS)}")
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"unknown sharing {self.sharing!r}; choose from {list(SHARING_MODES)}")
        for name in ("agents", "steps", "seeds", "episode_length"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        if self.log_every < 0:
            raise ValueError(f"--log-every must be >= 0, got {self.log_every}")
        # the critic kind follows --algo, so config.json records what actually ran
        object.__setattr__(self, "ppo", ppo_config_for(self.algo, self.ppo))


# Fields only settable from a config file (not simple scalars on the command line).
FILE_ONLY_FIELDS = ("agent_groups", "policy_mapping", "env_kwargs", "ppo")
# PPO fields that the CLI does not expose because another flag decides them.
DERIVED_PPO_FIELDS = ("centralized_critic",)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """JSON-ready dict of every setting (``ppo`` nested)."""
    d = dataclasses.asdict(cfg)
    d["ppo"]["hidden_sizes"] = list(cfg.ppo.hidden_sizes)
    d["ppo"]["cnn_channels"] = list(cfg.ppo.cnn_channels)
    return d


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`to_dict`; PPO keys may be nested under ``ppo`` or given flat.

    :raises ValueError: unknown keys, naming them.
    """
    data = dict(data)
    ppo_data = dict(data.pop("ppo", {}) or {})
    run_names = {f.name for f in dataclasses.fields(RunConfig)}
    ppo_names = {f.name for f in dataclasses.fields(PPOConfig)}
    for key in list(data):
        if key not in run_names and key in ppo_names:
            ppo_data[key] = data.pop(key)
    unknown = sorted(set(data) - run_names) + sorted(set(ppo_data) - ppo_names)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    for name in ("hidden_sizes", "cnn_channels"):  # JSON lists -> the config's int tuples
        if name in ppo_data:
            ppo_data[name] = tuple(int(h) for h in ppo_data[name])
    return RunConfig(**data, ppo=dataclasses.replace(DEFAULT_PPO, **ppo_data))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a JSON or TOML config file into a plain dict (not yet validated)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config file not found: {p}")
    text = p.read_text()
    if p.suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a JSON object")
    return data
