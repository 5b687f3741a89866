"""The run configuration behind ``jmarl train``; the CLI is generated from these fields and
from the chosen algorithm's own config class."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmarl.agents.sharing import SHARING_MODES
from jmarl.algos import ALGORITHMS
from jmarl.algos.base import Algorithm
from jmarl.env.registry import check_name

PETTINGZOO_PREFIX = "pettingzoo:"
DEFAULT_ALGO = "mappo"


@dataclass(frozen=True)
class RunConfig:
    """One training run.

    :param env: a registered JAX env name (``jmarl envs``), or ``pettingzoo:<module>`` for a
        PettingZoo env stepped on the host through ``bridge`` (e.g.
        ``pettingzoo:mpe2.simple_spread_v3``; constructor arguments via ``env_kwargs``).
    :param algo: a registered algorithm (``jmarl.ALGORITHMS``): ``mappo`` (centralised
        critic), ``ippo`` (local critics), ...
    :param sharing: ``shared`` | ``independent`` | ``grouped`` (needs ``agent_groups``) |
        ``custom`` (needs ``policy_mapping`` in a config file: agent id -> policy id).
    :param agents: number of agents (``num_agents`` of the env).
    :param steps: env steps per seed (one env step = all agents of one env acting once).
    :param seed: base random seed.
    :param seeds: independent seeds trained together in one compiled program.
    :param episode_length: steps per episode (``max_steps`` of the env).
    :param continuous_actions: continuous instead of discrete actions (MPE envs).
    :param log_every: updates per compiled chunk: between metric flushes, checks for NaN and
        checkpoints (0 = about 50 chunks per run).
    :param checkpoint_every: updates between checkpoints, rounded up to whole chunks of
        ``log_every`` (0 = after every chunk). The last update, Ctrl-C and a NaN stop always
        leave a checkpoint of the last good update; fewer checkpoints cost less disk I/O but
        ``--resume`` after a crash repeats more updates.
    :param logger: metric loggers beside ``metrics.jsonl`` (always written): ``tensorboard``
        writes TensorBoard event files to ``OUT/tensorboard`` (needs ``tensorboardX``:
        ``pip install 'jmarl[tensorboard]'``). Repeat the flag for several.
    :param out: output folder (default: a new folder under ``runs/``).
    :param agent_groups: group -> agent ids, for ``sharing=grouped`` (config file only).
    :param policy_mapping: agent id -> policy id, for ``sharing=custom`` (config file only).
    :param env_kwargs: keyword arguments of a PettingZoo env's constructor (config file only).
    :param algo_config: the algorithm's settings (an instance of its config class; in
        ``config.json`` under the algorithm's section, e.g. ``ppo``); ``None`` means the
        algorithm's run defaults.
    """

    env: str = "simple_spread"
    algo: str = DEFAULT_ALGO
    sharing: str = "shared"
    agents: int = 3
    steps: int = 4_000_000
    seed: int = 0
    seeds: int = 1
    episode_length: int = 25
    continuous_actions: bool = False
    log_every: int = 0
    checkpoint_every: int = 0
    logger: tuple[str, ...] = ()
    out: str | None = None
    agent_groups: dict[str, list[str]] | None = None
    policy_mapping: dict[str, str] | None = None
    env_kwargs: dict[str, Any] | None = None
    algo_config: Any = None

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
        algorithm = ALGORITHMS[self.algo]  # ValueError naming the choices
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"unknown sharing {self.sharing!r}; choose from {list(SHARING_MODES)}")
        for name in ("agents", "steps", "seeds", "episode_length"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}"
                )
        for name in ("log_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= 0, got {getattr(self, name)}")
        _check_loggers(self.logger)
        object.__setattr__(self, "logger", tuple(self.logger))
        algo_config = self.algo_config if self.algo_config is not None else algorithm.defaults
        if not isinstance(algo_config, algorithm.config):
            raise ValueError(
                f"algorithm {self.algo!r} takes a {algorithm.config.__name__}, "
                f"got {type(algo_config).__name__}"
            )
        # fields the algorithm decides (e.g. mappo's critic) are set, so config.json records
        # what actually ran
        object.__setattr__(self, "algo_config", algorithm.configure(algo_config))

    @property
    def algorithm(self) -> Algorithm:
        """The registered algorithm ``algo`` names."""
        return ALGORITHMS[self.algo]


LOGGERS = ("tensorboard",)
# Settings that do not change what a run computes: a resumed run may change them.
RESUME_FREE_FIELDS = ("out", "checkpoint_every", "logger")


def _check_loggers(loggers: Any) -> None:
    if isinstance(loggers, str) or not isinstance(loggers, (list, tuple)):
        raise ValueError(f"logger must be a list of names from {list(LOGGERS)}, got {loggers!r}")
    for name in loggers:
        if name not in LOGGERS:
            raise ValueError(f"unknown --logger {name!r}; choose from {list(LOGGERS)}")
    if "tensorboard" in loggers:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            raise ValueError(
                "--logger tensorboard needs the tensorboardX package: "
                "pip install 'jmarl[tensorboard]'"
            )


# Fields only settable from a config file (not simple scalars on the command line).
FILE_ONLY_FIELDS = ("agent_groups", "policy_mapping", "env_kwargs", "algo_config")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """JSON-ready dict of every setting; the algorithm's under its section (e.g. ``ppo``)."""
    d = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "algo_config"}
    d[cfg.algorithm.section] = dataclasses.asdict(cfg.algo_config)
    return _jsonable(d)


def _config_from_dict(cls: type, data: dict[str, Any], base: Any) -> Any:
    """``base`` with ``data``'s fields replaced; JSON lists become the fields' tuples."""
    hints = typing.get_type_hints(cls)
    fixed = {}
    for name, value in data.items():
        if typing.get_origin(hints[name]) is tuple and isinstance(value, list):
            value = tuple(value)
        fixed[name] = value
    return dataclasses.replace(base, **fixed)


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`to_dict`. The algorithm's settings may be nested under its section
    or given flat (top-level keys that are fields of its config class).

    :raises ValueError: unknown keys, naming them.
    """
    data = dict(data)
    algorithm = ALGORITHMS[data.get("algo", DEFAULT_ALGO)]
    algo_data = dict(data.pop(algorithm.section, {}) or {})
    run_names = {f.name for f in dataclasses.fields(RunConfig)} - {"algo_config"}
    algo_names = {f.name for f in dataclasses.fields(algorithm.config)}
    for key in list(data):
        if key not in run_names and key in algo_names:
            algo_data[key] = data.pop(key)
    unknown = sorted(set(data) - run_names) + sorted(set(algo_data) - algo_names)
    if unknown:
        raise ValueError(f"unknown config keys for --algo {algorithm.name}: {', '.join(unknown)}")
    algo_config = _config_from_dict(algorithm.config, algo_data, algorithm.defaults)
    return RunConfig(**data, algo_config=algo_config)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a JSON or TOML config file into a plain dict (not yet validated)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"config file {p} is a folder, not a file")
    if not p.is_file():
        raise ValueError(f"config file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"config file {p} cannot be read: {e}") from None
    if p.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {p} is not valid TOML: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {p} must hold a JSON object of settings, not a {type(data).__name__}"
        )
    return data
