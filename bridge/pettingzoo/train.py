"""Training jmarl policies on PettingZoo environments stepped on the host.

``jmarl train --env pettingzoo:<module>`` lands here. ``E`` PettingZoo envs, each behind
:class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` in parallel mode, are stepped in Python;
the policy is ONE jitted call per step for all envs x agents; each rollout ``[T, E, N]`` is
then handed to the algorithm's jitted ``learn``. Dead or absent agents have ``alive=False`` and
never enter the loss; episodes that end are reset on the host, and so are the rows of the
policy carry (``init_carry`` rows) of envs whose episode starts.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bridge.pettingzoo.convert import from_gymnasium_space
from bridge.pettingzoo.env import EnhancedPettingZooEnv
from jmarl.algos.acting import act_step, observed_timestep
from jmarl.algos.base import ActOutput, Carry, Trainer, Transition
from jmarl.config_check import ConfigError, check_kwargs
from jmarl.env import spaces
from jmarl.env.base import EnvSpec, TimeStep, spec_only
from jmarl.run.checkpoint import load_checkpoint
from jmarl.run.config import PETTINGZOO_PREFIX, RunConfig, load_run_config
from jmarl.run.driver import build_trainer, chunk_length
from jmarl.run.drivers import DRIVER_MODULES, Driver, register_driver
from jmarl.run.recorder import Progress, RunRecorder

_UNBOUNDED_STEPS = 1_000_000


def resolve_pettingzoo(name: str, env_kwargs: dict[str, Any] | None = None) -> Callable[[], Any]:
    """``"pettingzoo:mpe2.simple_spread_v3"`` -> a constructor of that env.

    Prefers the module's ``parallel_env``, else its AEC ``env``.
    :raises ValueError: the module cannot be imported or has no env constructor.
    """
    path = name[len(PETTINGZOO_PREFIX) :] if name.startswith(PETTINGZOO_PREFIX) else name
    try:
        with warnings.catch_warnings():
            # the module path is the documented way to name an env here; PettingZoo warns
            # that importing `pettingzoo.<family>.<env>_vN` directly is its old API
            warnings.filterwarnings(
                "ignore", "The old environment creation API", DeprecationWarning
            )
            module = importlib.import_module(path)
    except ImportError as e:
        raise ValueError(f"cannot import PettingZoo env module {path!r}: {e}") from None
    ctor = getattr(module, "parallel_env", None) or getattr(module, "env", None)
    if ctor is None:
        raise ValueError(f"module {path!r} has neither parallel_env() nor env()")
    kwargs = dict(env_kwargs or {})
    check_pettingzoo_kwargs(module, ctor, kwargs, path)

    def make() -> Any:
        try:
            return ctor(**kwargs)
        except TypeError as e:
            raise ValueError(f"bad env_kwargs {kwargs} for {path}: {e}") from None

    return make


def check_pettingzoo_kwargs(module: Any, ctor: Any, kwargs: dict[str, Any], path: str) -> None:
    """Refuses, before any env is built, ``env_kwargs`` the constructor would not take
    (unknown names, wrong types by its signature) and episode lengths below one.

    PettingZoo modules' ``parallel_env``/``env`` take ``**kwargs`` and pass them to
    ``raw_env``, so its signature is the one checked.
    """
    params = inspect.signature(ctor).parameters.values()
    only_var_kw = all(p.kind is p.VAR_KEYWORD for p in params)
    target = getattr(module, "raw_env", ctor) if only_var_kw else ctor
    check_kwargs(f"env_kwargs of {path}", target, kwargs)
    cycles = kwargs.get("max_cycles")
    if isinstance(cycles, int) and cycles < 1:
        raise ConfigError(f"env_kwargs of {path}['max_cycles']: must be >= 1, got {cycles}")


class HostStep(NamedTuple):
    """Batched host-side step ``[E, ...]`` (numpy): what the policy sees and what it got."""

    obs: np.ndarray
    state: np.ndarray
    alive: np.ndarray
    action_mask: np.ndarray | None
    reward: np.ndarray
    ended: np.ndarray  # bool[E, N]: the agent's episode ended at this step
    done: np.ndarray  # bool[E]: the env's episode ended (and it was reset)


def spec_from_env(env: EnhancedPettingZooEnv, name: str) -> EnvSpec:
    """The jmarl :class:`EnvSpec` of a parallel-mode :class:`EnhancedPettingZooEnv`."""
    obs_space = env.observation_space
    obs = from_gymnasium_space(env.padded_observation_space)
    act = from_gymnasium_space(env.padded_action_space)
    if "state" in obs_space.spaces:
        state_size = int(np.prod(obs_space["state"].shape))
    else:
        state_size = int(np.prod(obs_space["obs"].shape))
    agents = tuple(env.agents)
    return EnvSpec(
        name=name,
        agent_ids=agents,
        observation_space=obs,
        action_space=act,
        state_space=spaces.Box(-np.inf, np.inf, (state_size,)),
        max_steps=int(getattr(env, "max_cycles", 0) or _UNBOUNDED_STEPS),
        agent_observation_spaces=tuple(
            from_gymnasium_space(env.agent_observation_spaces[a], a) for a in agents
        ),
        agent_action_spaces=tuple(
            from_gymnasium_space(env.agent_action_spaces[a], a) for a in agents
        ),
    )


class HostVecEnv:
    """``num_envs`` parallel-mode PettingZoo envs stepped in a Python loop, auto-resetting.

    Arrays come back stacked ``[E, ...]`` with explicit dtypes: observations float32, masks
    bool, rewards float32. Without an env ``state()``, the global state is all agents'
    observations concatenated.
    """

    def __init__(self, make_env: Callable[[], Any], num_envs: int, seed: int, name: str):
        self.envs = [
            EnhancedPettingZooEnv(make_env(), mode="parallel", dict_observations="flatten")
            for _ in range(num_envs)
        ]
        self.spec = spec_from_env(self.envs[0], name)
        self._seed = seed
        self._episodes = 0
        self._last: list[dict[str, np.ndarray]] = []

    def _reset_one(self, i: int) -> dict[str, np.ndarray]:
        obs, _ = self.envs[i].reset(seed=self._seed * 1_000_003 + self._episodes)
        self._episodes += 1
        return obs

    def _view(self, obs_list: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, ...]:
        obs = np.stack([np.asarray(o["obs"], np.float32) for o in obs_list])
        alive = np.stack([np.asarray(o["alive"], bool) for o in obs_list])
        if "state" in obs_list[0]:
            state = np.stack([np.asarray(o["state"], np.float32).reshape(-1) for o in obs_list])
        else:
            state = obs.reshape(obs.shape[0], -1)
        mask = (
            np.stack([np.asarray(o["mask"], bool) for o in obs_list])
            if "mask" in obs_list[0]
            else None
        )
        return obs, state, alive, mask

    def reset(self) -> HostStep:
        """Resets every env; rewards and flags are zero."""
        self._last = [self._reset_one(i) for i in range(len(self.envs))]
        obs, state, alive, mask = self._view(self._last)
        e, n = alive.shape
        return HostStep(
            obs,
            state,
            alive,
            mask,
            np.zeros((e, n), np.float32),
            np.zeros((e, n), bool),
            np.zeros(e, bool),
        )

    def step(self, actions: np.ndarray) -> HostStep:
        """Steps every env with its ``[N, ...]`` slice of ``actions``; resets ended ones."""
        e, n = len(self.envs), self.spec.num_agents
        reward = np.zeros((e, n), np.float32)
        ended = np.zeros((e, n), bool)
        done = np.zeros(e, bool)
        for i, env in enumerate(self.envs):
            obs, rew, term, trunc, info = env.step(actions[i])
            reward[i] = rew
            ended[i] = np.asarray(info.get("terminated", term), bool) | np.asarray(
                info.get("truncated", trunc), bool
            )
            done[i] = bool(term or trunc)
            self._last[i] = self._reset_one(i) if done[i] else obs
        ended |= done[:, None]
        obs, state, alive, mask = self._view(self._last)
        return HostStep(obs, state, alive, mask, reward, ended, done)


def make_act(trainer: Trainer, deterministic: bool = False) -> Callable[..., ActOutput]:
    """ONE jitted policy call for all envs x agents:
    ``act(params, step: HostStep, key, carry) -> ActOutput`` (actions ``[E, N, ...]``, extras,
    carry). Rows of ``carry`` whose env was reset at ``step`` (``step.done``: a new episode
    starts) are set to ``init_carry`` rows first (:func:`jmarl.algos.acting.act_step`)."""

    @jax.jit
    def act(params: Any, step: HostStep, key: jax.Array, carry: Carry) -> ActOutput:
        return act_step(trainer, params, timestep(step), key, carry, deterministic)

    return act


def timestep(step: HostStep) -> TimeStep:
    """A host step ``[E, ...]`` as the :class:`TimeStep` a trainer's ``act``/``learn`` read."""
    return observed_timestep(
        step.obs, step.state, step.alive, step.action_mask, step.done, step.reward, step.ended
    )


class EpisodeBook:
    """Host-side per-agent returns of finished episodes (mean over agents per episode)."""

    def __init__(self, num_envs: int, num_agents: int):
        self.running = np.zeros((num_envs, num_agents), np.float64)
        self.returns: list[float] = []

    def add(self, step: HostStep) -> None:
        self.running += step.reward
        for i in np.flatnonzero(step.done):
            self.returns.append(float(self.running[i].mean()))
            self.running[i] = 0.0

    def pop(self) -> tuple[float, int]:
        """Mean return of the episodes finished since the last call (NaN if none), count."""
        done, self.returns = self.returns, []
        return (float(np.mean(done)) if done else float("nan")), len(done)


def collect(
    venv: HostVecEnv,
    act: Callable[..., ActOutput],
    params: Any,
    last: HostStep,
    key: jax.Array,
    length: int,
    book: EpisodeBook,
    carry: Carry = (),
) -> tuple[Transition, HostStep, Carry]:
    """Steps ``venv`` ``length`` times from ``last`` with the policy carry ``carry`` ``[E, ...]``
    (``init_carry(E)`` after ``venv.reset()``); returns the rollout ``[T, E, ...]``, the last
    step and the carry after it."""
    steps = []
    for k in jax.random.split(key, length):
        out = act(params, last, k, carry)
        action = np.asarray(out.action)
        nxt = venv.step(action)
        steps.append(
            Transition(
                obs=last.obs,
                state=last.state,
                action=action,
                reward=nxt.reward,
                discount=1.0 - nxt.ended.astype(np.float32),
                alive=last.alive,
                action_mask=last.action_mask,
                extras=jax.tree.map(np.asarray, out.extras),
            )
        )
        book.add(nxt)
        last, carry = nxt, out.carry
    traj = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *steps)
    return traj, last, carry


class _Setup(NamedTuple):
    venv: HostVecEnv
    trainer: Trainer


def _setup(cfg: RunConfig, num_envs: int, seed: int) -> _Setup:
    if cfg.seeds != 1:
        raise ValueError("--seeds > 1 is not supported for PettingZoo envs (stepped on the host)")
    venv = HostVecEnv(resolve_pettingzoo(cfg.env, cfg.env_kwargs), num_envs, seed, cfg.env)
    return _Setup(venv, build_trainer(cfg, spec_only(venv.spec)))


def train_run(cfg: RunConfig, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """``jmarl train --env pettingzoo:...``: same outputs as the JAX-native driver."""
    s = _setup(cfg, cfg.algo_config.num_envs, cfg.seed)
    trainer = s.trainer
    learn = jax.jit(trainer.learn)
    act = make_act(trainer)
    recorder = RunRecorder(cfg, out_dir, progress, trainer.num_updates)
    recorder.started()
    key, k_init = jax.random.split(jax.random.key(cfg.seed))
    learner = trainer.init_learner(k_init)
    last, book = s.venv.reset(), EpisodeBook(trainer.num_envs, s.venv.spec.num_agents)
    carry = trainer.init_carry(trainer.num_envs)
    recorder.compiled()
    chunk, pending = chunk_length(trainer.num_updates, cfg.log_every), []
    for u in range(trainer.num_updates):
        key, k_roll, k_upd = jax.random.split(key, 3)
        params = trainer.acting_params(learner)
        traj, last, carry = collect(
            s.venv, act, params, last, k_roll, trainer.rollout_length, book, carry
        )
        learner, metrics = learn(learner, traj, timestep(last), k_upd)
        ret, episodes = book.pop()
        pending.append(
            dict(
                jax.device_get(metrics),
                episode_return=ret,
                episodes=episodes,
                update=u + 1,
                env_steps=(u + 1) * trainer.steps_per_update,
            )
        )
        if len(pending) == chunk:
            rows = {k: np.asarray([[p[k] for p in pending]]) for k in pending[0]}
            recorder.record(rows, learner)
            pending = []
    return recorder.finish()


def evaluate_run(
    out_dir: Path, episodes: int = 100, seed: int = 0, deterministic: bool = False
) -> dict[str, Any]:
    """Loads a PettingZoo run's checkpoint and plays ``episodes`` episodes on the host."""
    cfg = load_run_config(out_dir)
    s = _setup(cfg, min(episodes, cfg.algo_config.num_envs), seed)
    template = jax.eval_shape(s.trainer.init_learner, jax.random.key(0))
    template = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
    learner, meta = load_checkpoint(Path(out_dir), template)
    act = make_act(s.trainer, deterministic)
    params = s.trainer.acting_params(learner)
    last, book = s.venv.reset(), EpisodeBook(len(s.venv.envs), s.venv.spec.num_agents)
    carry = s.trainer.init_carry(len(s.venv.envs))
    key = jax.random.key(seed)
    while len(book.returns) < episodes:
        key, k = jax.random.split(key)
        out = act(params, last, k, carry)
        last, carry = s.venv.step(np.asarray(out.action)), out.carry
        book.add(last)
    returns = np.asarray(book.returns[:episodes])
    return {
        "episode_return": float(returns.mean()),
        "episode_return_std": float(returns.std()),
        "episodes": int(returns.size),
        "env": cfg.env,
        "env_steps_trained": meta.get("env_steps"),
        "deterministic": deterministic,
    }


register_driver(
    Driver(
        prefix=PETTINGZOO_PREFIX,
        train_run=train_run,
        evaluate_run=evaluate_run,
        description=DRIVER_MODULES[PETTINGZOO_PREFIX][1],
    )
)
