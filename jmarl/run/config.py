"""The run configuration behind ``jmarl train``; the CLI is generated from these fields and
from the chosen algorithm's own config class."""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmarl.agents.sharing import SHARING_MODES
from jmarl.algos import ALGORITHMS
from jmarl.algos.base import Algorithm
from jmarl.config_check import (
    INT32_MAX,
    SEED_MAX,
    ConfigError,
    check_fields,
    check_kwargs,
    check_range,
    flag,
)
from jmarl.env.registry import check_name
from jmarl.env.registry import factory as env_factory
from jmarl.modes import MODES, POPULATION_MODES, SAMPLING, LeagueConfig, league_config

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
    :param agents: number of agents (``num_agents`` of a JAX env; default: the env's own, 3
        for ``simple_spread``). PettingZoo envs take theirs in ``env_kwargs`` (e.g. ``N``).
    :param steps: env steps per seed (one env step = all agents of one env acting once);
        rounded down to whole updates, which must fit the int32 update counter.
    :param seed: base random seed, 0 .. 2**32-1.
    :param seeds: independent seeds trained together in one compiled program.
    :param episode_length: steps per episode (``max_steps`` of a JAX env; default: the env's
        own, 25 for ``simple_spread``). PettingZoo envs: ``max_cycles`` in ``env_kwargs``.
    :param continuous_actions: continuous instead of discrete actions (JAX MPE envs; default:
        the env's own). PettingZoo envs: ``continuous_actions`` in ``env_kwargs``.
    :param log_every: updates per compiled chunk: between metric flushes, checks for NaN and
        checkpoints (0 = about 50 chunks per run).
    :param checkpoint_every: updates between checkpoints, rounded up to whole chunks of
        ``log_every`` (0 = after every chunk). The last update, Ctrl-C and a NaN stop always
        leave a checkpoint of the last good update; fewer checkpoints cost less disk I/O but
        ``--resume`` after a crash repeats more updates.
    :param logger: metric loggers beside ``metrics.jsonl`` (always written): ``tensorboard``
        writes TensorBoard event files to ``OUT/tensorboard`` (needs ``tensorboardX``:
        ``pip install 'jmarl[tensorboard]'``). Repeat the flag for several.
    :param mode: ``simultaneous`` (every policy learns every update), ``sequential`` (one
        policy learns while the others stay frozen, round-robin; needs several policies, i.e.
        independent, grouped or custom sharing), ``self_play`` (against snapshots of itself
        in a pool) or ``league`` (main agent, exploiters, PFSP, Elo; zero-sum two-player
        games). JAX envs only.
    :param turn_length: updates per policy turn in ``sequential`` mode.
    :param pool_size: snapshot slots of the opponent pool (``self_play`` / ``league``).
    :param snapshot_interval: updates between snapshots into the pool (``self_play`` /
        ``league``).
    :param opponent_sampling: how the learner (main agents) draws pool opponents:
        ``uniform``, ``latest`` or ``pfsp`` (prioritized by the learner's losses).
    :param main_exploiters: main exploiters in a ``league``.
    :param league_exploiters: league exploiters in a ``league``.
    :param out: output folder (default: a new folder under ``runs/``).
    :param agent_groups: group -> agent ids, for ``sharing=grouped`` only (config file only).
    :param policy_mapping: agent id -> policy id, for ``sharing=custom`` only (config file
        only).
    :param env_kwargs: further keyword arguments of the env's factory (a JAX env's, checked
        against its signature) or of a PettingZoo env's constructor (config file only).
    :param algo_config: the algorithm's settings (an instance of its config class; in
        ``config.json`` under the algorithm's section, e.g. ``ppo``); ``None`` means the
        algorithm's run defaults.
    """

    env: str = "simple_spread"
    algo: str = DEFAULT_ALGO
    sharing: str = "shared"
    agents: int | None = None
    steps: int = 4_000_000
    seed: int = 0
    seeds: int = 1
    episode_length: int | None = None
    continuous_actions: bool | None = None
    log_every: int = 0
    checkpoint_every: int = 0
    logger: tuple[str, ...] = ()
    mode: str = "simultaneous"
    turn_length: int = 10
    pool_size: int = 16
    snapshot_interval: int = 10
    opponent_sampling: str = "pfsp"
    main_exploiters: int = 1
    league_exploiters: int = 1
    out: str | None = None
    agent_groups: dict[str, list[str]] | None = None
    policy_mapping: dict[str, str] | None = None
    env_kwargs: dict[str, Any] | None = None
    algo_config: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.logger, list):  # from JSON
            object.__setattr__(self, "logger", tuple(self.logger))
        check_fields(self, skip=("algo_config",), wide=("steps", "seed"))
        for name in ("agents", "steps", "seeds", "episode_length"):
            if getattr(self, name) is not None:
                check_range(self, name, 1)
        check_range(self, "seed", 0, SEED_MAX)
        check_range(self, "log_every", 0)
        algorithm = ALGORITHMS[self.algo]  # ValueError naming the choices
        if self.sharing not in SHARING_MODES:
            raise ConfigError(
                f"unknown sharing {self.sharing!r}; choose from {list(SHARING_MODES)}"
            )
        _check_sharing_settings(self)
        if self.env.startswith(PETTINGZOO_PREFIX):
            _check_pettingzoo_settings(self)
        else:
            _resolve_jax_env_settings(self)
        check_range(self, "checkpoint_every", 0)
        _check_mode(self)
        _check_loggers(self.logger)
        algo_config = self.algo_config if self.algo_config is not None else algorithm.defaults
        if not isinstance(algo_config, algorithm.config):
            raise ConfigError(
                f"algorithm {self.algo!r} takes a {algorithm.config.__name__}, "
                f"got {type(algo_config).__name__}"
            )
        # fields the algorithm decides (e.g. mappo's critic) are set, so config.json records
        # what actually ran
        object.__setattr__(self, "algo_config", algorithm.configure(algo_config))
        _check_unused_algo_settings(self)
        _check_update_count(self)

    @property
    def algorithm(self) -> Algorithm:
        """The registered algorithm ``algo`` names."""
        return ALGORITHMS[self.algo]


LOGGERS = ("tensorboard",)
# Settings that do not change what a run computes: a resumed run may change them.
RESUME_FREE_FIELDS = ("out", "checkpoint_every", "logger")


def _check_mode(cfg: RunConfig) -> None:
    if cfg.mode not in MODES:
        raise ConfigError(f"unknown --mode {cfg.mode!r}; choose from {list(MODES)}")
    check_range(cfg, "turn_length", 1)
    if cfg.mode == "sequential" and cfg.sharing == "shared":
        raise ConfigError(
            "--mode sequential takes turns between policies; --sharing shared has one: use "
            "independent, grouped or custom"
        )
    if cfg.mode != "sequential" and cfg.turn_length != RunConfig.turn_length:
        raise ConfigError("--turn-length is only used with --mode sequential")
    for name in ("pool_size", "snapshot_interval", "opponent_sampling"):
        if cfg.mode not in POPULATION_MODES and getattr(cfg, name) != getattr(RunConfig, name):
            raise ConfigError(
                f"--{name.replace('_', '-')} is only used with --mode self_play or league"
            )
    for name in ("main_exploiters", "league_exploiters"):
        if cfg.mode != "league" and getattr(cfg, name) != getattr(RunConfig, name):
            raise ConfigError(f"--{name.replace('_', '-')} is only used with --mode league")
    check_range(cfg, "pool_size", 1)
    check_range(cfg, "snapshot_interval", 1)
    check_range(cfg, "main_exploiters", 0)
    check_range(cfg, "league_exploiters", 0)
    if cfg.opponent_sampling not in SAMPLING:
        raise ConfigError(
            f"unknown --opponent-sampling {cfg.opponent_sampling!r}; choose from {list(SAMPLING)}"
        )
    if cfg.mode != "simultaneous" and cfg.env.startswith(PETTINGZOO_PREFIX):
        raise ConfigError(
            f"--mode {cfg.mode} runs inside the jitted program of JAX envs; PettingZoo envs "
            "train simultaneously"
        )


def _check_loggers(loggers: Any) -> None:
    if isinstance(loggers, str) or not isinstance(loggers, (list, tuple)):
        raise ConfigError(f"logger must be a list of names from {list(LOGGERS)}, got {loggers!r}")
    for name in loggers:
        if name not in LOGGERS:
            raise ConfigError(f"unknown --logger {name!r}; choose from {list(LOGGERS)}")
    if "tensorboard" in loggers:
        import importlib.util

        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError(
                "--logger tensorboard needs the tensorboardX package: "
                "pip install 'jmarl[tensorboard]'"
            )


# Run settings a JAX env takes as factory arguments (the rest of its arguments: env_kwargs).
ENV_ARGUMENTS = {
    "agents": "num_agents",
    "episode_length": "max_steps",
    "continuous_actions": "continuous_actions",
}


def _check_sharing_settings(cfg: RunConfig) -> None:
    """``agent_groups`` only with ``grouped`` sharing, ``policy_mapping`` only with ``custom``."""
    for name, mode in (("agent_groups", "grouped"), ("policy_mapping", "custom")):
        if getattr(cfg, name) is not None and cfg.sharing != mode:
            raise ConfigError(
                f"{name} is only used with sharing={mode!r}, but sharing is {cfg.sharing!r}: "
                f"remove {name} or set sharing to {mode!r}"
            )


def _check_pettingzoo_settings(cfg: RunConfig) -> None:
    """PettingZoo envs are built by their own constructor: the JAX-env settings would be
    ignored, so they are refused (they belong in ``env_kwargs``)."""
    module = cfg.env[len(PETTINGZOO_PREFIX) :]
    if not module or not all(p.isidentifier() for p in module.split(".")):
        raise ConfigError(
            f"--env {cfg.env!r}: expected pettingzoo:<module path>, "
            "e.g. pettingzoo:mpe2.simple_spread_v3"
        )
    for name, hint in (("agents", "N"), ("episode_length", "max_cycles")):
        if getattr(cfg, name) is not None:
            raise ConfigError(
                f"{flag(name)} is not used by PettingZoo envs ({cfg.env}): set the env's own "
                f"constructor argument in env_kwargs instead (e.g. {hint!r} for "
                "mpe2.simple_spread_v3)"
            )
    if cfg.continuous_actions is not None:
        raise ConfigError(
            f"--continuous-actions is not used by PettingZoo envs ({cfg.env}): set "
            "'continuous_actions' in env_kwargs where the env's constructor takes it"
        )


def _resolve_jax_env_settings(cfg: RunConfig) -> None:
    """Unset env settings take the factory's defaults (so ``config.json`` records what ran);
    ``env_kwargs`` are checked against the factory's signature."""
    check_name(cfg.env)
    factory = env_factory(cfg.env)
    params = inspect.signature(factory).parameters
    for name, arg in ENV_ARGUMENTS.items():
        value = getattr(cfg, name)
        if arg not in params:
            if value is not None:
                raise ConfigError(f"{flag(name)} is not used by env {cfg.env!r}")
            continue
        if value is None:
            object.__setattr__(cfg, name, params[arg].default)
    if cfg.env_kwargs is not None:
        for name, arg in ENV_ARGUMENTS.items():
            if arg in cfg.env_kwargs:
                raise ConfigError(
                    f"env_kwargs[{arg!r}]: use {flag(name)} (the run setting) instead"
                )
        check_kwargs(f"env_kwargs of env {cfg.env!r}", factory, cfg.env_kwargs)


def _check_unused_algo_settings(cfg: RunConfig) -> None:
    """Algorithm settings that the others make unused (its config's ``unused()``, e.g. PPO's
    ``gru_size`` without ``recurrent``) must keep their defaults, or they would be ignored."""
    unused = getattr(cfg.algo_config, "unused", None)
    defaults = cfg.algorithm.defaults
    for name, why in (unused() if unused is not None else {}).items():
        value = getattr(cfg.algo_config, name)
        if value != getattr(defaults, name):
            raise ConfigError(f"{flag(name)} {value!r} would be ignored: {why}")


def _check_update_count(cfg: RunConfig) -> None:
    """``steps`` must give at most 2**31-1 updates: the update counter of the compiled
    program is int32 (env steps are counted on the host, exactly)."""
    per_update = getattr(cfg.algo_config, "steps_per_update", None)
    if per_update is None:
        return
    updates = cfg.steps // per_update
    if updates > INT32_MAX:
        raise ConfigError(
            f"--steps {cfg.steps} is {updates} updates of {per_update} env steps; at most "
            f"{INT32_MAX} fit the update counter: lower --steps or raise --num-envs / "
            "--rollout-length"
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


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`to_dict`. The algorithm's settings may be nested under its section
    or given flat (top-level keys that are fields of its config class).

    :raises ConfigError: unknown keys, wrong types or values, settings that would be ignored.
    """
    data = dict(data)
    algo = data.get("algo", DEFAULT_ALGO)
    if not isinstance(algo, str):
        raise ConfigError(f"algo: expected str, got {algo!r} ({type(algo).__name__})")
    algorithm = ALGORITHMS[algo]
    section = data.pop(algorithm.section, None)
    if section is not None and not isinstance(section, dict):
        raise ConfigError(
            f"{algorithm.section}: expected a table of {algorithm.config.__name__} settings, "
            f"got {section!r}"
        )
    algo_data = dict(section or {})
    run_names = {f.name for f in dataclasses.fields(RunConfig)} - {"algo_config"}
    algo_names = {f.name for f in dataclasses.fields(algorithm.config)}
    for key in list(data):
        if key not in run_names and key in algo_names:
            algo_data[key] = data.pop(key)
    unknown = sorted(set(data) - run_names) + sorted(set(algo_data) - algo_names)
    if unknown:
        raise ConfigError(f"unknown config keys for --algo {algorithm.name}: {', '.join(unknown)}")
    # every value is checked against its field's annotation by the configs' __post_init__
    algo_config = dataclasses.replace(algorithm.defaults, **algo_data)
    return RunConfig(**data, algo_config=algo_config)


# Settings that every config.json recorded before configs were validated (issue 12), PettingZoo
# runs included (agents 3, episode_length 25, continuous_actions false unless flags set them),
# although no PettingZoo driver ever read them: such an env takes its constructor arguments
# from env_kwargs. A PettingZoo config now refuses them; a run folder's own config.json is read
# without them.
LEGACY_PETTINGZOO_FIELDS = ("agents", "episode_length", "continuous_actions")


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The checked configuration of a run folder's ``config.json``, also one written by an
    earlier jmarl: :data:`LEGACY_PETTINGZOO_FIELDS` of a PettingZoo run are dropped, whatever
    their value, since they had no effect on the run.

    :raises FileNotFoundError: ``run_dir`` has no ``config.json``.
    :raises ConfigError: as :func:`load_config_file` and :func:`from_dict`.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no config.json (not a jmarl run folder)")
    data = load_config_file(path)
    env = data.get("env")
    if isinstance(env, str) and env.startswith(PETTINGZOO_PREFIX):
        data = {k: v for k, v in data.items() if k not in LEGACY_PETTINGZOO_FIELDS}
    return from_dict(data)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Reads a JSON or TOML config file into a plain dict (not yet validated)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"config file {p} is a folder, not a file")
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {p} cannot be read: {e}") from None
    if p.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config file {p} is not valid TOML: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {p} must hold a JSON object of settings, not a {type(data).__name__}"
        )
    return data


def population_config(cfg: RunConfig) -> LeagueConfig | None:
    """The pool and roles of a ``self_play`` / ``league`` run (None in other modes)."""
    if cfg.mode not in POPULATION_MODES:
        return None
    pool = LeagueConfig(
        pool_size=cfg.pool_size,
        snapshot_interval=cfg.snapshot_interval,
        opponent_sampling=cfg.opponent_sampling,
    )
    if cfg.mode == "self_play":
        return pool
    return league_config(
        pool_size=pool.pool_size,
        snapshot_interval=pool.snapshot_interval,
        opponent_sampling=pool.opponent_sampling,
        main_exploiters=cfg.main_exploiters,
        league_exploiters=cfg.league_exploiters,
    )
