"""Training jmarl policies on PettingZoo environments stepped on the host.

``jmarl train --env pettingzoo:<module>`` lands here. ``E`` PettingZoo envs, each behind
:class:`~bridge.pettingzoo_env.EnhancedPettingZooEnv` in parallel mode, are stepped in Python;
the policy is ONE jitted call per step for all envs x agents; each rollout ``[T, E, N]`` is
then handed to jmarl's jitted PPO update. Dead or absent agents have ``alive=False`` and never
enter the loss; episodes that end are reset on the host.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from bridge.convert import from_gymnasium_space
from bridge.pettingzoo_env import EnhancedPettingZooEnv
from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.ppo.networks import ActorCritic, make_actor_critic
from jmarl.algos.ppo.rollout import Transition
from jmarl.algos.ppo.train import num_updates_for
from jmarl.algos.ppo.update import TrainState, make_optimizer, make_update
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.training.checkpoint import load_checkpoint
from jmarl.training.config import PETTINGZOO_PREFIX, RunConfig, from_dict
from jmarl.training.recorder import Progress, RunRecorder
from jmarl.training.run import build_mapping_fn, chunk_length

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

    def make() -> Any:
        try:
            return ctor(**kwargs)
        except TypeError as e:
            raise ValueError(f"bad env_kwargs {kwargs} for {path}: {e}") from None

    return make


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


def make_act(ac: ActorCritic, deterministic: bool = False) -> Callable[..., Any]:
    """ONE jitted policy call for all envs x agents:
    ``act(params, obs [E,N,...], state [E,S], mask, key) -> (action, log_prob, value)``."""
    policy = jax.vmap(ac.policy, in_axes=(None, 0))
    value = jax.vmap(ac.value, in_axes=(None, 0, 0))
    dist = ac.distribution

    @jax.jit
    def act(params: Any, obs: Any, state: Any, mask: Any, key: jax.Array) -> tuple:
        p = policy(params.actor, obs)
        a = dist.mode(p, mask) if deterministic else dist.sample(key, p, mask)
        return a, dist.log_prob(p, a, mask), value(params.critic, obs, state)

    return act


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
    act: Callable[..., Any],
    params: Any,
    last: HostStep,
    key: jax.Array,
    length: int,
    book: EpisodeBook,
) -> tuple[Transition, HostStep]:
    """Steps ``venv`` ``length`` times; returns the rollout ``[T, E, ...]`` and the last step."""
    steps = []
    for k in jax.random.split(key, length):
        action, log_prob, value = act(params, last.obs, last.state, last.action_mask, k)
        action = np.asarray(action)
        nxt = venv.step(action)
        steps.append(
            Transition(
                obs=last.obs,
                state=last.state,
                action=action,
                log_prob=np.asarray(log_prob),
                value=np.asarray(value),
                reward=nxt.reward,
                discount=1.0 - nxt.ended.astype(np.float32),
                alive=last.alive,
                action_mask=last.action_mask,
            )
        )
        book.add(nxt)
        last = nxt
    traj = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *steps)
    return traj, last


class _Setup(NamedTuple):
    venv: HostVecEnv
    ac: ActorCritic
    optimizer: Any
    num_updates: int


def _setup(cfg: RunConfig, num_envs: int, seed: int) -> _Setup:
    if cfg.seeds != 1:
        raise ValueError("--seeds > 1 is not supported for PettingZoo envs (stepped on the host)")
    venv = HostVecEnv(resolve_pettingzoo(cfg.env, cfg.env_kwargs), num_envs, seed, cfg.env)
    mapping = make_policy_mapping(venv.spec, cfg.sharing, cfg.agent_groups, build_mapping_fn(cfg))
    ac = make_actor_critic(venv.spec, mapping, cfg.ppo)
    num_updates = num_updates_for(cfg.ppo, cfg.steps)
    return _Setup(venv, ac, make_optimizer(cfg.ppo, num_updates), num_updates)


def train_run(cfg: RunConfig, out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """``jmarl train --env pettingzoo:...``: same outputs as the JAX-native driver."""
    s = _setup(cfg, cfg.ppo.num_envs, cfg.seed)
    update = jax.jit(make_update(s.ac, s.optimizer, cfg.ppo))
    act = make_act(s.ac)
    value = jax.jit(jax.vmap(s.ac.value, in_axes=(None, 0, 0)))
    recorder = RunRecorder(cfg, out_dir, progress)
    recorder.started()
    key, k_init = jax.random.split(jax.random.key(cfg.seed))
    params = s.ac.init(k_init)
    train_state = TrainState(params, s.optimizer.init(params))
    last, book = s.venv.reset(), EpisodeBook(cfg.ppo.num_envs, s.venv.spec.num_agents)
    recorder.compiled()
    chunk, pending = chunk_length(s.num_updates, cfg.log_every), []
    for u in range(s.num_updates):
        key, k_roll, k_upd = jax.random.split(key, 3)
        traj, last = collect(
            s.venv, act, train_state.params, last, k_roll, cfg.ppo.rollout_length, book
        )
        last_value = value(train_state.params.critic, last.obs, last.state)
        train_state, metrics = update(train_state, traj, last_value, k_upd)
        ret, episodes = book.pop()
        pending.append(
            dict(
                jax.device_get(metrics),
                episode_return=ret,
                episodes=episodes,
                env_steps=(u + 1) * cfg.ppo.steps_per_update,
            )
        )
        if len(pending) == chunk:
            rows = {k: np.asarray([[p[k] for p in pending]]) for k in pending[0]}
            recorder.record(rows, train_state)
            pending = []
    return recorder.finish()


def evaluate_run(
    out_dir: Path, episodes: int = 100, seed: int = 0, deterministic: bool = False
) -> dict[str, Any]:
    """Loads a PettingZoo run's checkpoint and plays ``episodes`` episodes on the host."""
    import json

    cfg = from_dict(json.loads((Path(out_dir) / "config.json").read_text()))
    s = _setup(cfg, min(episodes, cfg.ppo.num_envs), seed)
    params = s.ac.init(jax.random.key(0))
    template = jax.tree.map(np.asarray, TrainState(params, s.optimizer.init(params)))
    train_state, meta = load_checkpoint(Path(out_dir), template)
    act = make_act(s.ac, deterministic)
    last, book = s.venv.reset(), EpisodeBook(len(s.venv.envs), s.venv.spec.num_agents)
    key = jax.random.key(seed)
    while len(book.returns) < episodes:
        key, k = jax.random.split(key)
        action, _, _ = act(train_state.params, last.obs, last.state, last.action_mask, k)
        last = s.venv.step(np.asarray(action))
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
