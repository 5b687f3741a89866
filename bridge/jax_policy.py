"""jmarl policies and jmarl's PPO/MAPPO update inside Tianshou 2.

* :class:`JaxPolicy` is a Tianshou ``Policy`` whose parameters are a JAX pytree and whose
  ``forward`` is ONE jitted call (:func:`jmarl.algos.ppo.make_act`) for all envs x
  agents. It reads the parallel-mode observation of
  :class:`~bridge.pettingzoo_env.EnhancedPettingZooEnv` (``{"obs": [B, N, ...], "alive":
  bool[B, N], "mask": bool[B, N, A] (optional), "state": [B, S] (optional)}``) and returns
  joint actions ``act`` ``[B, N]`` (discrete, int32) or ``[B, N, D]`` (continuous, float32).
* :class:`JaxPPO` is a Tianshou ``OnPolicyAlgorithm`` that updates a :class:`JaxPolicy` with
  jmarl's jitted update (:func:`jmarl.algos.ppo.update.make_update`: jmarl's own GAE with
  per-agent values, discounts and alive masks, then epochs of minibatch steps). Tianshou's
  ``OnPolicyTrainer`` + ``Collector`` drive it like any other on-policy algorithm; the trainer's
  ``update_step_num_repetitions`` is the number of epochs and its ``batch_size`` the minibatch
  size in joint steps (buffer rows).

Usage (MAPPO with one parameter set shared by all agents)::

    make_env = lambda: EnhancedPettingZooEnv(simple_spread_v3.parallel_env(), mode="parallel")
    policy = JaxPolicy.from_env(make_env(), ppo_config_for("mappo", PPOConfig(gamma=0.9)))
    algo = JaxPPO(policy=policy)
    collector = Collector(algo, DummyVectorEnv([make_env] * 8), VectorReplayBuffer(400, 8))
    algo.run_training(OnPolicyTrainerParams(
        training_collector=collector, collection_step_num_env_steps=400, batch_size=200,
        update_step_num_repetitions=4, max_epochs=12, epoch_num_steps=4000,
        multi_agent_return_reduction=lambda r: r.mean(axis=-1)))

Data path (buffer -> :class:`~jmarl.algos.base.Transition` ``[T, C, N, ...]``):

1. ``_preprocess_batch(batch, buffer, indices)`` runs on ``buffer.sample(0)``, i.e. all rows,
   each env's sub-buffer in insertion (time) order -- which is what ``ReplayBuffer`` and
   ``VectorReplayBuffer`` return for ``sample_size=0``, also after the ring has wrapped.
   :func:`rollout_layout` assigns each row a column and a time step, and *checks* the
   assumption: within a sub-buffer consecutive rows must be ring successors (a shuffled or
   partial sample raises ``ValueError``). A column is a contiguous run of one env's steps:
   normally one per env, but a run is cut where an unfinished episode's ``obs_next`` is not the
   next row's ``obs`` (a collector reset in mid-episode without clearing the buffer), so that
   each part bootstraps from its own last ``obs_next``. Columns of unequal length
   (episode-based collection, cuts) are padded at the *front*, so every column ends at
   ``T - 1`` and the bootstrap value goes where jmarl's GAE expects it. Padding rows have
   ``alive`` False, reward 0 and discount 0: they neither enter the loss nor leak into real
   rows' GAE.
   Per-agent end flags come from ``info["terminated"] | info["truncated"]`` (sticky per-agent
   flags of the env) or'ed with the episode's ``done``; as in jmarl, truncation is treated as
   termination (discount 0, no bootstrap).
2. ``_update_with_batch`` gathers the rows into ``[T, C, ...]`` host arrays allocated on a
   64-byte boundary, hands them to JAX without a copy, recomputes ``log_prob`` / ``value`` with
   the current parameters (one jitted call; the policy has not changed since collection) and
   ``V(obs_next)`` of each column's last row as the bootstrap ``last_value[C, N]``, then calls
   jmarl's jitted update.

Zero-copy hand-over (:func:`to_jax`, :func:`to_torch`), on the CPU backend:

* jax -> torch (actions returned by ``forward``, tensors in ``state_dict``): always aliased
  through DLPack.
* torch -> jax: aliased through DLPack when the tensor is C-contiguous, 64-byte aligned
  (torch's CPU allocator aligns every allocation) and already has the expected dtype.
* numpy -> jax: aliased when the array is C-contiguous, writeable and 64-byte aligned -- XLA's
  CPU runtime aliases host memory only at that alignment, and numpy does not align its
  allocations, so observations the env produced are usually copied once by JAX. The rollout
  arrays of the update are gathered straight into aligned memory and are always aliased.

Dtypes are explicit: a leaf is converted to the dtype its jmarl space names (observations and
state as the env's padded spaces say, actions int32 / float32, rewards float32, flags bool)
with :mod:`bridge.convert`'s rules -- float -> int, anything -> bool and overflowing integer
casts raise instead of happening silently (``jax.dlpack.from_dlpack`` alone would silently
narrow int64 to int32).

Not supported: recurrent policies (no hidden state), bootstrapping on truncation, per-agent
observations that are not one array (``Dict`` spaces; ``EnhancedPettingZooEnv`` flattens
heterogeneous ones), GPU <-> CPU torch hand-over without a copy (a JAX array on an accelerator
is copied to host for torch). Jitted calls specialise on shapes: ``forward`` compiles once per
distinct number of ready envs, the update once per distinct rollout shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from tianshou.algorithm.algorithm_base import OnPolicyAlgorithm, Policy, TrainingStats
from tianshou.data import Batch, ReplayBuffer

from bridge.convert import _cast, jax_dtype
from bridge.pettingzoo_env import EnhancedPettingZooEnv
from bridge.pettingzoo_train import spec_from_env
from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.base import Transition
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams, make_actor_critic
from jmarl.algos.ppo.train import make_act
from jmarl.algos.ppo.update import TrainState, make_optimizer, make_update
from jmarl.env.base import EnvSpec, TimeStep
from jmarl.types import Array, PyTree

__all__ = [
    "ALIGNMENT",
    "JaxPPO",
    "JaxPPOTrainingStats",
    "JaxPolicy",
    "RolloutLayout",
    "aligned_empty",
    "commit",
    "ended_flags",
    "rollout_layout",
    "to_jax",
    "to_torch",
]

ALIGNMENT = 64
"""Bytes; XLA's CPU runtime aliases host memory only if it starts on this boundary."""

# ---------------------------------------------------------------------------------------------
# Array hand-over


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an :data:`ALIGNMENT` boundary,
    so that :func:`to_jax` can hand it to JAX without a copy."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _cpu_backend() -> bool:
    return jax.default_backend() == "cpu"


def _aliasable(a: np.ndarray) -> bool:
    return bool(
        a.size and a.flags.c_contiguous and a.flags.writeable and a.ctypes.data % ALIGNMENT == 0
    )


def _torch_to_numpy_dtype(t: torch.Tensor) -> np.dtype | None:
    try:
        return np.dtype(str(t.dtype).removeprefix("torch."))
    except TypeError:
        return None


def to_jax(x: Any, dtype: Any = None, name: str = "array", copy: bool = False) -> Array:
    """A host array (numpy, CPU torch tensor or anything ``np.asarray`` takes) as a JAX array.

    :param x: the values.
    :param dtype: the dtype the caller expects (narrowed as JAX holds it, e.g. int64 ->
        int32 with x64 off); None keeps ``x``'s own. Casts follow :mod:`bridge.convert`:
        int -> float only because the caller asks for a float, float -> int or anything ->
        bool raise ``TypeError``, integers that do not fit raise ``OverflowError``.
    :param name: what ``x`` is, for error messages.
    :param copy: always copy (for data whose owner may mutate it later).
    :returns: on the CPU backend an alias of ``x``'s memory when it is C-contiguous, 64-byte
        aligned (and writeable, for numpy) and already of the target dtype; otherwise a copy.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach()
        target = jax_dtype(dtype if dtype is not None else _torch_to_numpy_dtype(x))
        aligned = x.is_contiguous() and x.data_ptr() % ALIGNMENT == 0
        same = _torch_to_numpy_dtype(x) == target
        if not copy and same and aligned and x.numel() and x.device.type == "cpu":
            if _cpu_backend():
                return jax.dlpack.from_dlpack(x)
        x = x.cpu().numpy()
    a = np.asarray(x)
    target = jax_dtype(dtype if dtype is not None else a.dtype)
    a = _cast(a, target, name)
    if not copy and _cpu_backend() and _aliasable(a):
        return jax.dlpack.from_dlpack(a)
    return jnp.array(a, dtype=target)


def to_torch(x: Array) -> torch.Tensor:
    """A JAX array as a torch tensor: an alias through DLPack when the array lives on the CPU,
    else a host copy (torch here is CPU-only)."""
    if all(d.platform == "cpu" for d in x.devices()):
        return torch.from_dlpack(x)
    return torch.from_numpy(np.array(x))


def commit(tree: PyTree) -> PyTree:
    """``tree`` placed (committed) on JAX's default device.

    Jitted functions are compiled anew when an argument changes from uncommitted (fresh from
    eager ops such as ``init``) to committed (outputs of jitted calls, DLPack imports); holding
    parameters and optimizer state committed from the start keeps every call on one program.
    """
    return jax.device_put(tree, jax.devices()[0])


def _tree_to_state(tree: PyTree) -> dict[str, Any]:
    """A pytree of JAX arrays as torch tensors (aliases) plus its structure, for state_dicts."""
    leaves, treedef = jax.tree.flatten(tree)
    return {"leaves": [to_torch(leaf) for leaf in leaves], "structure": str(treedef)}


def _tree_from_state(state: Mapping[str, Any], like: PyTree, what: str) -> PyTree:
    """Inverse of :func:`_tree_to_state`, checked against ``like`` (structure, shapes, dtypes).

    Loaded values are copied: a state dict's tensors belong to the caller, JAX arrays must not
    change under our feet.
    """
    leaves, treedef = jax.tree.flatten(like)
    if state.get("structure") != str(treedef) or len(state["leaves"]) != len(leaves):
        raise ValueError(f"{what}: the saved pytree does not match this one's structure")
    out = []
    for k, (saved, mine) in enumerate(zip(state["leaves"], leaves)):
        if tuple(saved.shape) != tuple(mine.shape):
            raise ValueError(f"{what}: leaf {k} has shape {tuple(saved.shape)}, need {mine.shape}")
        out.append(to_jax(saved, mine.dtype, f"{what} leaf {k}", copy=True))
    return commit(jax.tree.unflatten(treedef, out))


def _key_state(key: Array) -> torch.Tensor:
    return to_torch(jax.random.key_data(key))


def _key_from_state(t: torch.Tensor) -> Array:
    return jax.random.wrap_key_data(to_jax(t, np.uint32, "PRNG key", copy=True))


# ---------------------------------------------------------------------------------------------
# Observations


def _field(obs: Any, key: str) -> Any:
    """``obs[key]`` for a Tianshou ``Batch`` or a mapping; None if absent."""
    if isinstance(obs, Batch):
        value = obs.get(key, None)
        return None if isinstance(value, Batch) and len(value.get_keys()) == 0 else value
    if isinstance(obs, Mapping):
        return obs.get(key)
    return None


def host_observation(obs: Any) -> dict[str, Any]:
    """The parallel-mode observation's arrays ``{"obs", "state", "alive", "mask"}`` (host side).

    ``obs`` is a ``Batch`` / mapping with ``obs`` ``[B, N, ...]``, optional ``alive``
    ``[B, N]`` (all alive if absent), ``mask`` and ``state``; or a bare ``[B, N, ...]`` array.
    Without a ``state``, the global state is every agent's observation flattened (as
    :func:`bridge.pettingzoo_train.spec_from_env` sizes it). Values keep their type (numpy or
    torch) and dtype; :func:`to_jax` converts them.
    """
    agent_obs = _field(obs, "obs")
    if agent_obs is None:
        agent_obs = obs
    b, n = agent_obs.shape[:2]
    alive = _field(obs, "alive")
    state = _field(obs, "state")
    return {
        "obs": agent_obs,
        "state": agent_obs.reshape(b, -1) if state is None else state.reshape(b, -1),
        "alive": np.ones((b, n), bool) if alive is None else alive,
        "mask": _field(obs, "mask"),
    }


# ---------------------------------------------------------------------------------------------
# Policy


def _make_evaluate(ac: ActorCritic) -> Callable[..., tuple[Array, Array, Array]]:
    """``evaluate(params, tr_obs[T,C,N..], state[T,C,S], action, mask, last_obs[C,N..],
    last_state[C,S]) -> (log_prob[T,C,N], value[T,C,N], last_value[C,N])``."""

    def one(params: ActorCriticParams, obs: Any, state: Any, action: Any, mask: Any) -> tuple:
        dist_params = ac.policy(params.actor, obs)
        log_prob = ac.distribution.log_prob(dist_params, action, mask)
        return log_prob, ac.value(params.critic, obs, state)

    over_envs = jax.vmap(one, in_axes=(None, 0, 0, 0, 0))
    over_time = jax.vmap(over_envs, in_axes=(None, 0, 0, 0, 0))
    value = jax.vmap(ac.value, in_axes=(None, 0, 0))

    def evaluate(
        params: ActorCriticParams,
        obs: Any,
        state: Array,
        action: Array,
        mask: Array | None,
        last_obs: Any,
        last_state: Array,
    ) -> tuple[Array, Array, Array]:
        log_prob, v = over_time(params, obs, state, action, mask)
        return log_prob, v, value(params.critic, last_obs, last_state)

    return jax.jit(evaluate)


def _keyed_act(ac: ActorCritic, deterministic: bool) -> Callable[..., Array]:
    """``act(params, obs, state, mask, key, i) -> action``: :func:`make_act`'s policy call with
    the key ``fold_in(key, i)`` drawn inside the same jitted program."""
    act = make_act(ac)

    @jax.jit
    def keyed(
        params: ActorCriticParams, obs: Any, state: Any, mask: Any, key: Array, i: Any
    ) -> Array:
        b, n = jax.tree.leaves(obs)[0].shape[:2]
        ts = TimeStep(
            obs=obs,
            state=state,
            reward=jnp.zeros((b, n)),
            terminated=jnp.zeros((b, n), bool),
            truncated=jnp.zeros((b, n), bool),
            done=jnp.zeros((b,), bool),
            alive=jnp.ones((b, n), bool),
            action_mask=mask,
        )
        return act(params, ts, jax.random.fold_in(key, i), (), deterministic).action

    return keyed


def _device_input(x: Any, dtype: Any, name: str) -> Any:
    """An input for a jitted call with the dtype the spec names (casts as :func:`to_jax`).

    Torch tensors go through :func:`to_jax` (DLPack); numpy arrays are passed as they are and
    JAX imports them on the call, aliasing 64-byte aligned memory and copying other memory
    as :func:`to_jax` does (measured: 0.09 ms for an aligned 400 MB array, 180 ms unaligned) --
    one dispatch instead of two.
    """
    if isinstance(x, torch.Tensor):
        return to_jax(x, dtype, name)
    return _cast(np.asarray(x), jax_dtype(dtype), name)


class JaxPolicy(Policy):
    """A jmarl actor-critic (parameters + jitted apply) as a Tianshou ``Policy``.

    :param ac: the jmarl actor-critic (``make_actor_critic(spec, mapping, cfg)``); its agent
        axis is axis 1 of every observation the policy is given.
    :param params: its parameters (``ac.init(key)``).
    :param spec: the jmarl ``EnvSpec`` ``ac`` was built for (dtypes of observations and actions).
    :param action_space: the joint action space (``MultiDiscrete([A] * N)`` or ``Box[N, D]``).
    :param observation_space: the joint observation space.
    :param config: the ``PPOConfig`` ``ac`` was built with; :class:`JaxPPO` uses it by default.
    :param deterministic_eval: outside a training step (evaluation), act with the
        distribution's mode instead of sampling. Inside a training step (the trainer's data
        collection) the policy always samples, as Tianshou's stochastic policies do.
    :param seed: the action-sampling key is ``fold_in(key(seed), 1)`` (distinct from the
        initialisation key ``key(seed)`` that :meth:`from_env` uses); call ``i`` of ``forward``
        samples with ``fold_in`` of it and ``i``.
    """

    def __init__(
        self,
        ac: ActorCritic,
        params: ActorCriticParams,
        spec: EnvSpec,
        action_space: gymnasium.Space,
        observation_space: gymnasium.Space | None = None,
        *,
        config: PPOConfig | None = None,
        deterministic_eval: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            action_space=action_space,
            observation_space=observation_space,
            action_scaling=False,
            action_bound_method=None,
        )
        self.ac, self.params, self.spec = ac, commit(params), spec
        self.config = config if config is not None else PPOConfig()
        self.deterministic_eval = deterministic_eval
        self._key = jax.random.fold_in(jax.random.key(seed), 1)
        self._calls = 0
        self._sample = _keyed_act(ac, deterministic=False)
        self._mode = _keyed_act(ac, deterministic=True)
        self._evaluate = _make_evaluate(ac)

    @classmethod
    def from_env(
        cls,
        env: EnhancedPettingZooEnv,
        config: PPOConfig | None = None,
        sharing: str = "shared",
        agent_groups: Mapping[str, Sequence[str]] | None = None,
        policy_mapping_fn: Callable[[str], str] | None = None,
        *,
        deterministic_eval: bool = False,
        seed: int = 0,
    ) -> JaxPolicy:
        """A freshly initialised policy for a parallel-mode :class:`EnhancedPettingZooEnv`.

        :param config: network settings (``hidden_sizes``, ``activation``,
            ``centralized_critic`` -- MAPPO if True, IPPO if False -- ``agent_id_input``) and
            the PPO settings :class:`JaxPPO` uses by default.
        :param sharing: jmarl's parameter sharing across this policy's agents: ``shared``,
            ``independent``, ``grouped`` (with ``agent_groups``) or ``custom`` (with
            ``policy_mapping_fn``); every mode is still one jitted call for all agents.
        :raises ValueError: ``env`` is not in parallel mode, keeps Dict observations, or a bad
            sharing configuration.
        """
        if env.mode != "parallel":
            raise ValueError(
                f"JaxPolicy needs an EnhancedPettingZooEnv in parallel mode, got {env.mode!r}"
            )
        if env.dict_observations:
            raise ValueError(
                "JaxPolicy takes array observations; wrap this Dict-observation env with "
                "EnhancedPettingZooEnv(env, mode='parallel', dict_observations='flatten')"
            )
        cfg = config if config is not None else PPOConfig()
        spec = spec_from_env(env, str(env.metadata.get("name", type(env.env).__name__)))
        mapping = make_policy_mapping(spec, sharing, agent_groups, policy_mapping_fn)
        ac = make_actor_critic(spec, mapping, cfg)
        return cls(
            ac,
            ac.init(jax.random.key(seed)),
            spec,
            env.action_space,
            env.observation_space,
            config=cfg,
            deterministic_eval=deterministic_eval,
            seed=seed,
        )

    @property
    def num_agents(self) -> int:
        return self.spec.num_agents

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        """Joint actions for a batch of ``B`` joint observations: ``Batch(act=[B, N, ...])``.

        Samples (or takes the mode, with ``deterministic_eval`` outside a training step) in one
        jitted call; masked actions are never chosen. Call ``i`` samples with
        ``fold_in(sampling key, i)``. ``act`` is a torch tensor aliasing the JAX result (int32
        for discrete, float32 for continuous actions).
        """
        host = host_observation(batch.obs)
        obs = _device_input(host["obs"], self.spec.observation_space.dtype, "obs")
        st = _device_input(host["state"], self.spec.state_space.dtype, "state")
        mask = None if host["mask"] is None else _device_input(host["mask"], np.bool_, "mask")
        deterministic = self.deterministic_eval and not self.is_within_training_step
        act_fn = self._mode if deterministic else self._sample
        action = act_fn(self.params, obs, st, mask, self._key, np.uint32(self._calls % 2**32))
        self._calls += 1
        return Batch(act=to_torch(action))

    def map_action(self, act: Any) -> np.ndarray:
        """Continuous actions are clipped to the action space's bounds before the env sees them
        (the buffer keeps the sampled, unclipped action); discrete actions pass unchanged."""
        act = self._action_to_numpy(act)
        if isinstance(self.action_space, gymnasium.spaces.Box):
            return np.clip(act, self.action_space.low, self.action_space.high)
        return act

    def get_extra_state(self) -> dict[str, Any]:
        """Parameters (tensors aliasing the JAX arrays), the sampling key and call count, for
        ``state_dict``."""
        return {
            "params": _tree_to_state(self.params),
            "key": _key_state(self._key),
            "calls": self._calls,
        }

    def set_extra_state(self, state: Any) -> None:
        self.params = _tree_from_state(state["params"], self.params, "JaxPolicy params")
        self._key = _key_from_state(state["key"])
        self._calls = int(state["calls"])

    def rollout(
        self, batch: Batch, layout: RolloutLayout, ended: np.ndarray
    ) -> tuple[Transition, Array]:
        """The rows of ``batch`` as jmarl's ``Transition[T, C, ...]`` and ``last_value[C, N]``.

        :param layout: where each row goes (:func:`rollout_layout`).
        :param ended: bool ``[B, N]``, the agent's episode ended at this row (:func:`ended_flags`).
        """
        rows, valid = layout.grid()
        host = host_observation(batch.obs)
        obs = _gather(host["obs"], rows, self.spec.observation_space.dtype, "obs")
        st = _gather(host["state"], rows, self.spec.state_space.dtype, "state")
        act = _gather(batch.act, rows, self.spec.action_space.dtype, "act")
        alive = _gather(host["alive"], rows, np.bool_, "alive")
        alive &= valid[..., None]
        mask = None if host["mask"] is None else _gather(host["mask"], rows, np.bool_, "mask")
        reward = _gather(batch.rew, rows, np.float32, "rew")
        reward *= valid[..., None]
        discount = aligned_empty(reward.shape, np.float32)
        np.copyto(discount, valid[..., None] & ~_gather(ended, rows, np.bool_, "ended"))
        nxt = host_observation(batch.obs_next)
        last = rows[-1:]
        last_obs = _gather(nxt["obs"], last, self.spec.observation_space.dtype, "obs_next")[0]
        last_state = _gather(nxt["state"], last, self.spec.state_space.dtype, "obs_next")[0]
        jx = lambda a: None if a is None else to_jax(a)  # aligned: aliased, never copied
        obs_j, st_j, act_j, mask_j = jx(obs), jx(st), jx(act), jx(mask)
        log_prob, value, last_value = self._evaluate(
            self.params, obs_j, st_j, act_j, mask_j, jx(last_obs), jx(last_state)
        )
        traj = Transition(
            obs=obs_j,
            state=st_j,
            action=act_j,
            reward=jx(reward),
            discount=jx(discount),
            alive=jx(alive),
            action_mask=mask_j,
            extras={"log_prob": log_prob, "value": value},
        )
        return traj, last_value


def _numpy(x: Any) -> np.ndarray:
    """A host view of a numpy array or torch tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _gather(x: Any, rows: np.ndarray, dtype: Any, name: str) -> np.ndarray:
    """``x[rows]`` (rows ``[T, C]`` into the leading axis) in aligned memory, as ``dtype``."""
    a = _cast(_numpy(x), jax_dtype(dtype), name)
    out = aligned_empty((*rows.shape, *a.shape[1:]), a.dtype)
    np.take(a, rows, axis=0, out=out)
    return out


# ---------------------------------------------------------------------------------------------
# Buffer -> rollout layout


class RolloutLayout(NamedTuple):
    """Where each of ``B`` buffer rows goes in a ``[T, C]`` rollout.

    ``time`` int64 ``[B]``; ``column`` int64 ``[B]`` (one column per contiguous run of an env's
    steps); ``num_steps`` ``T``; ``num_columns`` ``C``. Columns are padded at the front: the
    last row of every column sits at ``T - 1``.
    """

    time: np.ndarray
    column: np.ndarray
    num_steps: int
    num_columns: int

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` int64 ``[T, C]`` (the batch row at each slot; 0 for padding) and ``valid``
        bool ``[T, C]`` (False for padding)."""
        rows = np.zeros((self.num_steps, self.num_columns), np.int64)
        valid = np.zeros((self.num_steps, self.num_columns), bool)
        rows[self.time, self.column] = np.arange(self.time.shape[0])
        valid[self.time, self.column] = True
        return rows, valid

    def padded(self, num_minibatches: int) -> RolloutLayout:
        """The layout with front padding added until ``T * C`` divides by ``num_minibatches``."""
        extra = 0
        while ((self.num_steps + extra) * self.num_columns) % num_minibatches:
            extra += 1
        return self._replace(time=self.time + extra, num_steps=self.num_steps + extra)


def _stream_edges(buffer: ReplayBuffer) -> np.ndarray:
    """Start offsets of the buffer's sub-buffers plus its end (one stream for a plain buffer)."""
    edges = getattr(buffer, "subbuffer_edges", None)
    if edges is None:
        return np.array([0, buffer.maxsize], np.int64)
    return np.asarray(edges, np.int64)


def _cuts(batch: Batch, order: np.ndarray) -> np.ndarray:
    """bool ``[B - 1]``: row ``order[k + 1]`` does not continue row ``order[k]`` although that
    row's episode went on (its ``obs_next`` is not the next row's ``obs``; this is what a
    collector reset in mid-episode leaves in a buffer that was not cleared)."""
    obs, nxt = host_observation(batch.obs)["obs"], host_observation(batch.obs_next)["obs"]
    obs, nxt = _numpy(obs)[order], _numpy(nxt)[order]
    same = np.all((nxt[:-1] == obs[1:]).reshape(len(order) - 1, -1), axis=1)
    return ~np.asarray(batch.done, bool)[order][:-1] & ~same


def rollout_layout(
    buffer: ReplayBuffer, indices: np.ndarray, batch: Batch | None = None
) -> RolloutLayout:
    """Recovers each env's time order from ``buffer.sample(0)``'s ``indices``.

    A row belongs to the sub-buffer (env) its index lies in; within a sub-buffer, rows are
    taken in the order given, which must be the ring order of insertion. Each contiguous run of
    an env's steps becomes one column (normally one per env); with ``batch`` (``buffer[indices]``)
    a run is also cut where an unfinished episode does not continue in the next row.

    :raises ValueError: two consecutive rows of a sub-buffer are not ring successors (the
        indices were shuffled, subsampled or are not from ``sample(0)``).
    """
    indices = np.asarray(indices, np.int64)
    edges = _stream_edges(buffer)
    stream = np.searchsorted(edges, indices, side="right") - 1
    order = np.argsort(stream, kind="stable")
    s, i = stream[order], indices[order]
    start, size = edges[s[:-1]], edges[s[:-1] + 1] - edges[s[:-1]]
    broken = (s[1:] == s[:-1]) & (start + (i[:-1] - start + 1) % size != i[1:])
    if broken.any():
        k = int(np.flatnonzero(broken)[0])
        raise ValueError(
            "JaxPPO needs every row of each env's sub-buffer in time order (what "
            f"buffer.sample(0) returns); index {i[k + 1]} follows {i[k]}"
        )
    new_run = np.ones(s.size, bool)
    new_run[1:] = s[1:] != s[:-1]
    if batch is not None and s.size > 1:
        new_run[1:] |= _cuts(batch, order)
    column_sorted = np.cumsum(new_run) - 1
    counts = np.bincount(column_sorted)
    num_steps = int(counts.max()) if counts.size else 0
    first = np.flatnonzero(new_run)
    time_sorted = np.arange(s.size) - first[column_sorted] + num_steps - counts[column_sorted]
    time, column = np.empty_like(indices), np.empty_like(indices)
    time[order], column[order] = time_sorted, column_sorted
    return RolloutLayout(time, column, num_steps, int(counts.size))


def ended_flags(batch: Batch, num_agents: int) -> np.ndarray:
    """bool ``[B, N]``: the agent's episode ended at this row.

    ``done`` (episode over) or'ed with the env's per-agent ``info["terminated"]`` /
    ``info["truncated"]`` where the rows' infos carry them.
    """
    done = np.asarray(batch.done, bool).reshape(-1, 1)
    ended = np.repeat(done, num_agents, axis=1)
    info = batch.get("info", None)
    for key in ("terminated", "truncated"):
        flags = _field(info, key) if info is not None else None
        if flags is not None and np.shape(flags) == ended.shape:
            ended |= _cast(np.asarray(flags), np.dtype(bool), f"info[{key!r}]")
    return ended


# ---------------------------------------------------------------------------------------------
# Algorithm


@dataclass(kw_only=True)
class JaxPPOTrainingStats(TrainingStats):
    """Means over all minibatch steps of one :class:`JaxPPO` update."""

    loss: float = 0.0
    policy_loss: float = 0.0
    value_loss: float = 0.0
    entropy: float = 0.0
    approx_kl: float = 0.0
    clip_fraction: float = 0.0
    grad_norm: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> JaxPPOTrainingStats:
        names = {f.name for f in dataclasses.fields(cls)} - {"train_time", "smoothed_loss"}
        return cls(**{k: float(v) for k, v in metrics.items() if k in names})


class JaxPPO(OnPolicyAlgorithm[JaxPolicy]):
    """jmarl's multi-agent PPO (IPPO / MAPPO, per the policy's critic) as a Tianshou
    on-policy algorithm.

    Per update: the trainer's ``repeat`` is the number of epochs; ``batch_size`` the minibatch
    size in joint steps (``B // batch_size`` minibatches, at least one; None for one full
    batch). Update ``u`` draws its randomness from ``fold_in(key(seed), u)``.

    :param policy: the :class:`JaxPolicy` to train.
    :param config: loss and optimizer settings (``lr``, ``gamma``, ``gae_lambda``, ``clip_eps``,
        ``ent_coef``, ...); defaults to the policy's ``config``. ``num_envs``,
        ``rollout_length``, ``num_epochs`` and ``num_minibatches`` are set per update from the
        collected data and the trainer.
    :param num_updates: with ``config.anneal_lr``, the learning rate decays linearly to 0 over
        this many updates of ``config.num_epochs`` x ``config.num_minibatches`` gradient steps
        (jmarl's schedule; an update with another number of epochs or minibatches raises
        ``ValueError``); None keeps ``config.lr`` constant.
    :param optimizer: an optax optimizer over ``ActorCriticParams`` replacing the default
        (jmarl's ``make_optimizer``: Adam with separate gradient clipping of actor and critic).
    :param seed: seeds minibatch shuffling.
    """

    def __init__(
        self,
        *,
        policy: JaxPolicy,
        config: PPOConfig | None = None,
        num_updates: int | None = None,
        optimizer: optax.GradientTransformation | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(policy=policy)
        self.config = config if config is not None else policy.config
        self._anneal = optimizer is None and self.config.anneal_lr and num_updates is not None
        if optimizer is None:
            cfg = dataclasses.replace(self.config, anneal_lr=self._anneal)
            optimizer = make_optimizer(cfg, num_updates or 1)
        self.optimizer = optimizer
        self.opt_state = commit(optimizer.init(policy.params))
        self.num_updates_done = 0
        self._seed = seed
        self._updates: dict[tuple[int, int], Callable[..., Any]] = {}

    @property
    def train_state(self) -> TrainState:
        """jmarl's ``TrainState``: the policy's parameters and this optimizer's state."""
        return TrainState(self.policy.params, self.opt_state)

    def _preprocess_batch(self, batch: Batch, buffer: ReplayBuffer, indices: np.ndarray) -> Batch:
        """Adds ``batch.rollout`` = ``Batch(time, column, ended)`` (one entry per row)."""
        layout = rollout_layout(buffer, indices, batch)
        ended = ended_flags(batch, self.policy.num_agents)
        batch.rollout = Batch(time=layout.time, column=layout.column, ended=ended)
        return batch

    def to_rollout(self, batch: Batch, num_minibatches: int = 1) -> tuple[Transition, Array]:
        """A batch that went through ``_preprocess_batch`` as jmarl's ``Transition[T, C, ...]``
        and ``last_value[C, N]``, padded at the front until ``T * C`` divides by
        ``num_minibatches``."""
        time = np.asarray(batch.rollout.time, np.int64)
        column = np.asarray(batch.rollout.column, np.int64)
        layout = RolloutLayout(time, column, int(time.max()) + 1, int(column.max()) + 1)
        ended = np.asarray(batch.rollout.ended, bool)
        return self.policy.rollout(batch, layout.padded(num_minibatches), ended)

    def _update_fn(self, cfg: PPOConfig) -> Callable[..., Any]:
        """The jitted jmarl update for ``cfg``'s epochs and minibatches (it reads no shapes from
        ``cfg``: jit specialises on the rollout's shapes)."""
        if self._anneal and (cfg.num_epochs, cfg.num_minibatches) != (
            self.config.num_epochs,
            self.config.num_minibatches,
        ):
            raise ValueError(
                f"the annealed learning rate assumes {self.config.num_epochs} epochs of "
                f"{self.config.num_minibatches} minibatches per update (config), but this update "
                f"has {cfg.num_epochs} of {cfg.num_minibatches}: set the trainer's "
                "update_step_num_repetitions and batch_size to match, or pass num_updates=None"
            )
        key = (cfg.num_epochs, cfg.num_minibatches)
        if key not in self._updates:
            self._updates[key] = jax.jit(make_update(self.policy.ac, self.optimizer, cfg))
        return self._updates[key]

    def _update_with_batch(  # type: ignore[override]
        self, batch: Batch, batch_size: int | None, repeat: int
    ) -> JaxPPOTrainingStats:
        """One jmarl PPO update on the rows of ``batch`` (see the module docstring)."""
        if len(batch) == 0:
            return JaxPPOTrainingStats()
        minibatches = 1 if not batch_size else max(1, len(batch) // batch_size)
        traj, last_value = self.to_rollout(batch, minibatches)
        steps, columns = traj.reward.shape[:2]
        cfg = dataclasses.replace(
            self.config,
            num_envs=columns,
            rollout_length=steps,
            num_epochs=repeat,
            num_minibatches=minibatches,
        )
        key = jax.random.fold_in(jax.random.key(self._seed), self.num_updates_done)
        state, metrics = self._update_fn(cfg)(self.train_state, traj, last_value, key)
        self.policy.params, self.opt_state = state.params, state.opt_state
        self.num_updates_done += 1
        return JaxPPOTrainingStats.from_metrics(jax.device_get(metrics))

    def get_extra_state(self) -> dict[str, Any]:
        """Optimizer state (tensors aliasing the JAX arrays) and the update count."""
        return {"opt_state": _tree_to_state(self.opt_state), "updates": self.num_updates_done}

    def set_extra_state(self, state: Any) -> None:
        self.opt_state = _tree_from_state(state["opt_state"], self.opt_state, "JaxPPO opt_state")
        self.num_updates_done = int(state["updates"])
