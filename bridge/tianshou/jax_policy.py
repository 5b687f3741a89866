"""Any registered jmarl algorithm inside Tianshou 2, through the algorithm contract only.

* :class:`JaxPolicy` is a Tianshou ``Policy`` built from a registered algorithm
  (``jmarl.ALGORITHMS[name]`` or an :class:`~jmarl.algos.base.Algorithm`), its config and the
  env's jmarl spec: ``algorithm.make(spec_only(spec), config, total_steps, mapping)`` gives a
  :class:`~jmarl.algos.base.Trainer`, and ``forward`` is ONE jitted ``trainer.act`` call for all
  envs x agents. It reads the parallel-mode observation of
  :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` (``{"obs": [B, N, ...], "alive":
  bool[B, N], "mask": bool[B, N, A] (optional), "state": [B, S] (optional)}``) and returns
  joint actions ``act`` ``[B, N]`` (discrete, int32) or ``[B, N, D]`` (continuous, float32),
  the ``act`` extras under ``policy.extras`` (the Collector stores them with the step, as
  jmarl's own rollout does) and, for a policy with a carry, the carry as Tianshou's ``state``.
* :class:`JaxOnPolicyAlgorithm` (alias :data:`JaxPPO`) is a Tianshou ``OnPolicyAlgorithm``
  that owns the algorithm's learner state (``trainer.init_learner``) and updates it with the
  algorithm's own jitted ``trainer.learn`` on the collected rollout. Tianshou's
  ``OnPolicyTrainer`` + ``Collector`` drive it like any other on-policy algorithm.

Nothing here knows an algorithm's internals; the only settings the bridge fills in are config
fields an algorithm may have (it does so where the config has the field, ignores it otherwise):
``num_epochs`` <- the trainer's ``update_step_num_repetitions``, ``num_minibatches`` <- rows //
``batch_size`` (at least 1), ``num_envs`` / ``rollout_length`` <- the rollout's shape, and,
without ``num_updates``, ``anneal_lr`` <- False (no schedule to anneal over).

Usage (MAPPO with one parameter set shared by all agents; any registered name works)::

    make_env = lambda: EnhancedPettingZooEnv(simple_spread_v3.parallel_env(), mode="parallel")
    policy = JaxPolicy.from_env(make_env(), algorithm="mappo")
    algo = JaxOnPolicyAlgorithm(policy=policy, num_updates=120)
    collector = Collector(algo, DummyVectorEnv([make_env] * 8), VectorReplayBuffer(400, 8))
    algo.run_training(OnPolicyTrainerParams(
        training_collector=collector, collection_step_num_env_steps=400, batch_size=200,
        update_step_num_repetitions=4, max_epochs=12, epoch_num_steps=4000,
        multi_agent_return_reduction=lambda r: r.mean(axis=-1)))

Policy carry (``trainer.init_carry``; ``()`` for feed-forward policies, which return no
``state``): ``forward`` returns ``state = Batch(carry=..., live=bool[B])`` and gets it back for
the same envs on the next call. Rows start from ``init_carry`` rows where an episode starts:
on the first call (``state`` None, after a Collector reset) and for envs whose episode ended
(Tianshou zeroes those rows of ``state``, which clears ``live``); the ``TimeStep`` given to
``act`` then has ``done`` True, as a jmarl env's first step after an auto-reset has.

Data path (buffer -> :class:`~jmarl.algos.base.Transition` ``[T, C, N, ...]`` for ``learn``):

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
   ``T - 1`` and the bootstrap ``last_ts`` goes where jmarl's ``learn`` expects it. Padding
   rows have ``alive`` False, reward 0 and discount 0: they neither enter a loss nor leak into
   real rows' returns.
   Per-agent end flags come from ``info["terminated"] | info["truncated"]`` (sticky per-agent
   flags of the env) or'ed with the episode's ``done``; as in jmarl, truncation is treated as
   termination (discount 0, no bootstrap).
2. ``_update_with_batch`` gathers the rows (and their stored ``act`` extras) into ``[T, C, ...]``
   host arrays allocated on a 64-byte boundary, hands them to JAX without a copy, builds
   ``last_ts`` ``[C]`` from each column's last ``obs_next``, then calls the jitted ``learn``.

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
state as the env's padded spaces say, actions int32 / float32, rewards float32, flags bool,
extras and carries as ``act`` returns them) with :mod:`bridge.pettingzoo.convert`'s rules --
float -> int, anything -> bool and overflowing integer casts raise instead of happening silently
(``jax.dlpack.from_dlpack`` alone would silently narrow int64 to int32).

Not supported: learning from rows this policy's ``forward`` did not collect (``collect(random=
True)`` stores no extras), bootstrapping on truncation, per-agent observations that are not one
array (``Dict`` spaces; ``EnhancedPettingZooEnv`` flattens heterogeneous ones), GPU <-> CPU
torch hand-over without a copy (a JAX array on an accelerator is copied to host for torch).
Jitted calls specialise on shapes: ``forward`` compiles once per distinct number of ready envs,
the update once per distinct rollout shape.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import torch
from tianshou.algorithm.algorithm_base import OnPolicyAlgorithm, Policy, TrainingStats
from tianshou.data import Batch, ReplayBuffer

from bridge.pettingzoo.convert import _cast, jax_dtype
from bridge.pettingzoo.env import EnhancedPettingZooEnv
from bridge.pettingzoo.train import spec_from_env
from jmarl.agents.sharing import PolicyMapping, make_policy_mapping
from jmarl.algos import ALGORITHMS
from jmarl.algos.acting import act_step, observed_timestep
from jmarl.algos.base import ActOutput, Algorithm, Carry, Trainer, Transition
from jmarl.env import spaces
from jmarl.env.base import EnvSpec, TimeStep, spec_only
from jmarl.types import Array, Params, PyTree

__all__ = [
    "ALIGNMENT",
    "DEFAULT_ALGORITHM",
    "JaxOnPolicyAlgorithm",
    "JaxPPO",
    "JaxPPOTrainingStats",
    "JaxPolicy",
    "JaxTrainingStats",
    "RolloutLayout",
    "TreeLayout",
    "algorithm_of",
    "aligned_empty",
    "check_like",
    "commit",
    "ended_flags",
    "make_host_trainer",
    "resolve_algorithm",
    "rollout_layout",
    "to_jax",
    "to_torch",
    "with_acting_params",
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
        int32 with x64 off); None keeps ``x``'s own. Casts follow :mod:`bridge.pettingzoo.convert`:
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


def _is_key(x: Any) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _tree_to_state(tree: PyTree) -> dict[str, Any]:
    """A pytree of JAX arrays as torch tensors (aliases; PRNG keys as their key data) plus its
    structure, for state_dicts."""
    leaves, treedef = jax.tree.flatten(tree)
    as_torch = lambda x: to_torch(jax.random.key_data(x) if _is_key(x) else x)
    return {"leaves": [as_torch(leaf) for leaf in leaves], "structure": str(treedef)}


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
        if _is_key(mine):
            data = jax.random.key_data(mine)
            value = to_jax(saved, data.dtype, f"{what} leaf {k}", copy=True)
            out.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(mine)))
            continue
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
    :func:`bridge.pettingzoo.train.spec_from_env` sizes it). Values keep their type (numpy or
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
# Algorithms, configs and trainers

DEFAULT_ALGORITHM = "mappo"
"""What :func:`resolve_algorithm` builds when given neither an algorithm nor a config."""


def algorithm_of(config: Any) -> Algorithm:
    """The first registered algorithm whose config class is ``config``'s and whose fixed fields
    ``config`` already has (a PPO config with ``centralized_critic=False`` is ``ippo``'s).

    :raises TypeError: no registered algorithm takes ``config``.
    """
    for algorithm in ALGORITHMS.values():
        if type(config) is algorithm.config and algorithm.configure(config) == config:
            return algorithm
    raise TypeError(
        f"no registered algorithm takes this {type(config).__name__}; name one with algorithm="
    )


def resolve_algorithm(
    algorithm: str | Algorithm | None, config: Any = None
) -> tuple[Algorithm, Any]:
    """The algorithm to build and its config, with the algorithm's fixed fields set.

    :param algorithm: a name registered in ``jmarl.ALGORITHMS``, an ``Algorithm``, or None:
        the algorithm ``config`` belongs to (:func:`algorithm_of`), or
        :data:`DEFAULT_ALGORITHM` when ``config`` is None too.
    :param config: an instance of the algorithm's config class; None: its defaults.
    :raises ValueError: an unknown algorithm name.
    :raises TypeError: ``algorithm`` is neither, or ``config`` is not of the algorithm's class.
    """
    if algorithm is None:
        algo = ALGORITHMS[DEFAULT_ALGORITHM] if config is None else algorithm_of(config)
    elif isinstance(algorithm, str):
        algo = ALGORITHMS[algorithm]
    elif isinstance(algorithm, Algorithm):
        algo = algorithm
    else:
        raise TypeError(
            "algorithm must be a registered name or a jmarl Algorithm, "
            f"got {type(algorithm).__name__}"
        )
    cfg = algo.config() if config is None else config
    if not isinstance(cfg, algo.config):
        raise TypeError(
            f"algorithm {algo.name!r} takes a {algo.config.__name__}, got {type(cfg).__name__}"
        )
    return algo, algo.configure(cfg)


def with_fields(cfg: Any, **values: Any) -> Any:
    """``cfg`` with those ``values`` whose names are fields of its dataclass (others ignored)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    present = {k: v for k, v in values.items() if k in names}
    return dataclasses.replace(cfg, **present) if present else cfg


def make_host_trainer(
    algorithm: Algorithm, cfg: Any, spec: EnvSpec, mapping: PolicyMapping, num_updates: int = 1
) -> Trainer:
    """``algorithm``'s trainer for envs stepped on the host (``spec_only(spec)``: ``act`` and
    ``learn`` only), its schedules spanning ``num_updates`` updates."""
    env = spec_only(spec)
    trainer = algorithm.make(env, cfg, 1, mapping)
    if num_updates == 1:
        return trainer
    return algorithm.make(env, cfg, num_updates * trainer.steps_per_update, mapping)


def _signature(tree: PyTree) -> tuple[Any, list[tuple[tuple[int, ...], Any]]]:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, [(tuple(x.shape), jnp.dtype(x.dtype)) for x in leaves]


def check_like(tree: PyTree, like: PyTree, what: str) -> None:
    """Raises ``ValueError`` naming ``what`` unless ``tree`` has ``like``'s structure, leaf
    shapes and dtypes."""
    (got_def, got), (want_def, want) = _signature(tree), _signature(like)
    if got_def != want_def:
        raise ValueError(f"{what}: pytree structure {got_def} does not match {want_def}")
    for k, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise ValueError(f"{what}: leaf {k} has shape and dtype {g}, need {w}")


def with_acting_params(trainer: Trainer, learner: Any, params: Params) -> Any:
    """``learner`` with its acting parameters (``trainer.acting_params(learner)``) set to
    ``params`` (leaves of the same structure, shapes and dtypes).

    Works where ``acting_params`` selects a part of the learner (``lambda s: s.params``): the
    learner's leaves that are the selected arrays are replaced, wherever they occur.

    :raises ValueError: ``params`` do not fit, or ``acting_params`` computes new arrays.
    """
    leaves, treedef = jax.tree.flatten(learner)
    acting = trainer.acting_params(learner)
    check_like(params, acting, "acting parameters")
    where: dict[int, list[int]] = {}
    for k, leaf in enumerate(leaves):
        where.setdefault(id(leaf), []).append(k)
    for old, new in zip(jax.tree.leaves(acting), jax.tree.leaves(params)):
        if id(old) not in where:
            raise ValueError(
                "acting_params computes its parameters instead of selecting them from the "
                "learner state: the bridge cannot set them"
            )
        for k in where[id(old)]:
            leaves[k] = new
    return jax.tree.unflatten(treedef, leaves)


class TreeLayout(NamedTuple):
    """How a pytree of ``[B, ...]`` arrays is kept in a Tianshou ``Batch``: one key per leaf
    (``names``, from the leaves' paths), with the per-row ``shapes`` and ``dtypes`` ``act``
    gives them."""

    treedef: Any
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]

    @classmethod
    def of(cls, tree: PyTree) -> TreeLayout:
        """The layout of ``tree`` (arrays or ``ShapeDtypeStruct`` with a leading batch axis)."""
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
        names: list[str] = []
        for k, (path, _) in enumerate(with_paths):
            name = re.sub(r"\W+", "_", jax.tree_util.keystr(path)).strip("_")
            if not name or name[0].isdigit() or name in names:
                name = f"leaf{k}_{name}".rstrip("_")
            names.append(name)
        leaves = [leaf for _, leaf in with_paths]
        shapes = tuple(tuple(x.shape[1:]) for x in leaves)
        return cls(treedef, tuple(names), shapes, tuple(np.dtype(x.dtype) for x in leaves))

    def to_batch(self, tree: PyTree, copy: bool = False) -> Batch:
        """``tree``'s leaves as numpy arrays under their names (copies that Tianshou may
        write to, with ``copy``)."""
        convert = np.array if copy else np.asarray
        return Batch({n: convert(x) for n, x in zip(self.names, jax.tree.leaves(tree))})

    def from_leaves(self, leaves: Sequence[Any]) -> PyTree:
        return jax.tree.unflatten(self.treedef, list(leaves))

    def zeros(self, rows: int) -> PyTree:
        """A tree of zeros with ``rows`` rows."""
        return self.from_leaves([np.zeros((rows, *s), d) for s, d in zip(self.shapes, self.dtypes)])


# ---------------------------------------------------------------------------------------------
# Policy


def _make_act(trainer: Trainer, deterministic: bool) -> Callable[..., ActOutput]:
    """ONE jitted call ``act(params, obs [B, N..], state [B, S], alive [B, N], mask, carry [B..],
    started bool[B] | None, key, i) -> ActOutput``: ``trainer.act`` on the observations as a
    ``TimeStep`` (reward and flags 0; ``done`` where an episode starts), with the key
    ``fold_in(key, i)``, after the ``started`` rows of the carry are set to ``init_carry`` rows
    (:func:`jmarl.algos.acting.act_step`).
    """

    @jax.jit
    def act(
        params: Params,
        obs: Any,
        state: Array,
        alive: Array,
        mask: Array | None,
        carry: Carry,
        started: Array | None,
        key: Array,
        i: Any,
    ) -> ActOutput:
        ts = observed_timestep(obs, state, alive, mask, done=started)
        return act_step(trainer, params, ts, jax.random.fold_in(key, i), carry, deterministic)

    return act


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


def _act_layouts(trainer: Trainer, spec: EnvSpec, params: Params, masked: bool) -> tuple:
    """The :class:`TreeLayout` of ``act``'s extras and of the carry, from one abstract call.

    :raises ValueError: ``act`` returns a carry of another structure than ``init_carry``.
    """
    n = spec.num_agents
    mask = None
    if masked and isinstance(spec.action_space, spaces.Discrete):
        mask = jnp.ones((1, n, spec.action_space.n), bool)
    zeros = jnp.zeros((1, n), bool)
    ts = TimeStep(
        obs=spaces.zeros(spec.observation_space, (1, n)),
        state=jnp.zeros((1, *spec.state_space.shape), spec.state_space.dtype),
        reward=jnp.zeros((1, n), jnp.float32),
        terminated=zeros,
        truncated=zeros,
        done=jnp.zeros((1,), bool),
        alive=jnp.ones((1, n), bool),
        action_mask=mask,
    )
    carry = jax.eval_shape(lambda: trainer.init_carry(1))
    out = jax.eval_shape(lambda p, c: trainer.act(p, ts, jax.random.key(0), c), params, carry)
    check_like(out.carry, carry, "the carry act returns (vs init_carry)")
    return TreeLayout.of(out.extras), TreeLayout.of(carry)


class JaxPolicy(Policy):
    """A registered jmarl algorithm's policy (its ``Trainer.act``) as a Tianshou ``Policy``.

    :param algorithm: a name in ``jmarl.ALGORITHMS``, an ``Algorithm``, or None (the algorithm
        ``config`` belongs to; ``mappo`` without a config), see :func:`resolve_algorithm`.
    :param spec: the jmarl ``EnvSpec`` of the env (:func:`bridge.pettingzoo.train.spec_from_env`);
        its agent axis is axis 1 of every observation the policy is given.
    :param action_space: the joint action space (``MultiDiscrete([A] * N)`` or ``Box[N, D]``).
    :param observation_space: the joint observation space (a ``Dict`` with ``"mask"``: the
        observations carry action masks).
    :param config: the algorithm's config (its fixed fields are set); None: its defaults.
        :class:`JaxOnPolicyAlgorithm` learns with it by default.
    :param mapping: the agent -> policy mapping (:func:`jmarl.make_policy_mapping`); None:
        one policy shared by all agents.
    :param params: acting parameters (``trainer.acting_params`` of a learner state); None:
        those of ``trainer.init_learner(key(seed))``.
    :param deterministic_eval: outside a training step (evaluation), ``act`` deterministically
        (the distribution's mode) instead of sampling. Inside a training step (the trainer's
        data collection) the policy always samples, as Tianshou's stochastic policies do.
    :param seed: the action-sampling key is ``fold_in(key(seed), 1)`` (distinct from the
        initialisation key ``init_key = key(seed)``); call ``i`` of ``forward`` samples with
        ``fold_in`` of it and ``i``.
    :raises ValueError: ``mapping`` is for other agents or ``params`` do not fit.
    """

    def __init__(
        self,
        algorithm: str | Algorithm | None,
        spec: EnvSpec,
        action_space: gymnasium.Space,
        observation_space: gymnasium.Space | None = None,
        *,
        config: Any = None,
        mapping: PolicyMapping | None = None,
        params: Params | None = None,
        deterministic_eval: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            action_space=action_space,
            observation_space=observation_space,
            action_scaling=False,
            action_bound_method=None,
        )
        self.algorithm, self.config = resolve_algorithm(algorithm, config)
        self.spec = spec
        self.mapping = make_policy_mapping(spec, "shared") if mapping is None else mapping
        if self.mapping.agent_ids != spec.agent_ids:
            raise ValueError(
                f"mapping is for agents {self.mapping.agent_ids}, the env has {spec.agent_ids}"
            )
        self.trainer = make_host_trainer(self.algorithm, self.config, spec, self.mapping)
        self.init_key = jax.random.key(seed)
        fresh = self.trainer.acting_params(self.trainer.init_learner(self.init_key))
        if params is not None:
            check_like(params, fresh, "JaxPolicy params")
        self.params = commit(fresh if params is None else params)
        self.deterministic_eval = deterministic_eval
        self._key = jax.random.fold_in(self.init_key, 1)
        self._calls = 0
        self._sample = _make_act(self.trainer, deterministic=False)
        self._mode = _make_act(self.trainer, deterministic=True)
        masked = isinstance(observation_space, gymnasium.spaces.Dict) and (
            "mask" in observation_space.spaces
        )
        self.extras_layout, self.carry_layout = _act_layouts(
            self.trainer, spec, self.params, masked
        )

    @classmethod
    def from_env(
        cls,
        env: EnhancedPettingZooEnv,
        config: Any = None,
        sharing: str = "shared",
        agent_groups: Mapping[str, Sequence[str]] | None = None,
        policy_mapping_fn: Callable[[str], str] | None = None,
        *,
        algorithm: str | Algorithm | None = None,
        deterministic_eval: bool = False,
        seed: int = 0,
    ) -> JaxPolicy:
        """A freshly initialised policy for a parallel-mode :class:`EnhancedPettingZooEnv`.

        :param config: the algorithm's settings (for PPO: ``hidden_sizes``, ``activation``,
            ``centralized_critic``, ..., and the settings :class:`JaxOnPolicyAlgorithm` learns
            with by default).
        :param sharing: jmarl's parameter sharing across this policy's agents: ``shared``,
            ``independent``, ``grouped`` (with ``agent_groups``) or ``custom`` (with
            ``policy_mapping_fn``); every mode is still one jitted call for all agents.
        :param algorithm: which algorithm (see :func:`resolve_algorithm`): by default the one
            ``config`` belongs to, ``mappo`` without a config.
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
        spec = spec_from_env(env, str(env.metadata.get("name", type(env.env).__name__)))
        mapping = make_policy_mapping(spec, sharing, agent_groups, policy_mapping_fn)
        return cls(
            algorithm,
            spec,
            env.action_space,
            env.observation_space,
            config=config,
            mapping=mapping,
            deterministic_eval=deterministic_eval,
            seed=seed,
        )

    @property
    def num_agents(self) -> int:
        return self.spec.num_agents

    def _carry_in(self, state: Any, rows: int) -> tuple[Carry, np.ndarray | None]:
        """The carry ``[B, ...]`` for ``forward`` and which rows start an episode (all when
        ``state`` is None; those Tianshou zeroed, i.e. ``live`` False); ``((), None)`` for a
        policy without carry."""
        layout = self.carry_layout
        if not layout.names:
            return layout.from_leaves([]), None
        if state is None:
            return layout.zeros(rows), np.ones(rows, bool)
        if not isinstance(state, Batch) or "carry" not in state or "live" not in state:
            raise TypeError(
                f"JaxPolicy's state must be the Batch(carry, live) forward returned, got {state!r}"
            )
        leaves = []
        for name, shape, dtype in zip(layout.names, layout.shapes, layout.dtypes):
            leaf = _cast(_numpy(state.carry[name]), jax_dtype(dtype), f"carry {name}")
            if leaf.shape != (rows, *shape):
                raise ValueError(f"carry {name}: shape {leaf.shape}, need {(rows, *shape)}")
            leaves.append(leaf)
        return layout.from_leaves(leaves), ~np.asarray(state.live, bool)

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        """Joint actions for a batch of ``B`` joint observations: ``Batch(act=[B, N, ...])``,
        plus ``policy.extras`` (``act``'s extras) and ``state`` (the carry) where there are any.

        Samples (or acts deterministically, with ``deterministic_eval`` outside a training
        step) in one jitted call; masked actions are never chosen. Call ``i`` samples with
        ``fold_in(sampling key, i)``. ``act`` is a torch tensor aliasing the JAX result (int32
        for discrete, float32 for continuous actions).
        """
        host = host_observation(batch.obs)
        obs = _device_input(host["obs"], self.spec.observation_space.dtype, "obs")
        st = _device_input(host["state"], self.spec.state_space.dtype, "state")
        alive = _device_input(host["alive"], np.bool_, "alive")
        mask = None if host["mask"] is None else _device_input(host["mask"], np.bool_, "mask")
        carry, started = self._carry_in(state, int(alive.shape[0]))
        deterministic = self.deterministic_eval and not self.is_within_training_step
        act_fn = self._mode if deterministic else self._sample
        i = np.uint32(self._calls % 2**32)
        out = act_fn(self.params, obs, st, alive, mask, carry, started, self._key, i)
        self._calls += 1
        result = Batch(act=to_torch(out.action))
        if self.extras_layout.names:
            result.policy = Batch(extras=self.extras_layout.to_batch(out.extras))
        if self.carry_layout.names:
            carry_batch = self.carry_layout.to_batch(out.carry, copy=True)  # Tianshou zeroes rows
            result.state = Batch(carry=carry_batch, live=np.ones(len(started), bool))
        return result

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
    ) -> tuple[Transition, TimeStep]:
        """The rows of ``batch`` as jmarl's ``Transition[T, C, ...]`` (with the extras stored by
        :meth:`forward`) and the bootstrap ``last_ts`` ``[C]`` (each column's last
        ``obs_next``), as ``learn`` takes them.

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
        jx = lambda a: None if a is None else to_jax(a)  # aligned: aliased, never copied
        traj = Transition(
            obs=jx(obs),
            state=jx(st),
            action=jx(act),
            reward=jx(reward),
            discount=jx(discount),
            alive=jx(alive),
            action_mask=jx(mask),
            extras=jax.tree.map(jx, self._stored_extras(batch, rows)),
        )
        return traj, self._last_timestep(batch, rows[-1:], ended)

    def _stored_extras(self, batch: Batch, rows: np.ndarray) -> Any:
        """The ``act`` extras :meth:`forward` returned for ``rows`` ``[T, C]`` (host arrays)."""
        layout = self.extras_layout
        if not layout.names:
            return layout.from_leaves([])
        policy = batch.get("policy", None)
        stored = None if policy is None else _field(policy, "extras")
        if stored is None:
            raise ValueError(
                f"the batch has no extras of {self.algorithm.name!r}'s act (policy.extras); "
                "JaxPolicy learns from rows its own forward collected (not collect(random=True))"
            )
        return layout.from_leaves(
            [
                _gather(stored[n], rows, d, f"extras {n}")
                for n, d in zip(layout.names, layout.dtypes)
            ]
        )

    def _last_timestep(self, batch: Batch, last: np.ndarray, ended: np.ndarray) -> TimeStep:
        """The ``TimeStep`` ``[C]`` after each column's last row ``last`` ``[1, C]``: its
        ``obs_next`` (observations, state, alive, mask), reward, per-agent end flags and
        ``done``."""
        nxt = host_observation(batch.obs_next)
        get = lambda x, dtype, name: to_jax(_gather(x, last, dtype, name)[0])
        spec = self.spec
        return TimeStep(
            obs=get(nxt["obs"], spec.observation_space.dtype, "obs_next"),
            state=get(nxt["state"], spec.state_space.dtype, "obs_next state"),
            reward=get(batch.rew, np.float32, "rew"),
            terminated=get(ended, np.bool_, "ended"),
            truncated=jnp.zeros((last.shape[1], spec.num_agents), bool),
            done=get(np.asarray(batch.done), np.bool_, "done"),
            alive=get(nxt["alive"], np.bool_, "obs_next alive"),
            action_mask=None if nxt["mask"] is None else get(nxt["mask"], np.bool_, "mask"),
        )


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
            "JaxOnPolicyAlgorithm needs every row of each env's sub-buffer in time order (what "
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
class JaxTrainingStats(TrainingStats):
    """The metrics ``learn`` reported for one update, one attribute each (``loss``; for PPO
    also ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl``, ``clip_fraction``,
    ``grad_norm``, ...), as means over their entries."""

    loss: float = 0.0

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> JaxTrainingStats:
        stats = cls()
        for name, value in metrics.items():
            if name.isidentifier() and name not in TrainingStats._non_loss_fields:
                setattr(stats, name, float(np.mean(value)))
        return stats


JaxPPOTrainingStats = JaxTrainingStats
"""The name this class had when the bridge ran PPO only."""


class JaxOnPolicyAlgorithm(OnPolicyAlgorithm[JaxPolicy]):
    """A :class:`JaxPolicy`'s algorithm learning on-policy in Tianshou: it owns the learner
    state (``learner``, from ``trainer.init_learner(policy.init_key)`` with the policy's
    parameters) and runs one jitted ``trainer.learn`` per update on the collected rollout,
    then sets the policy's parameters to ``trainer.acting_params(learner)``.

    The trainer's ``update_step_num_repetitions`` becomes the config's ``num_epochs`` and
    ``rows // batch_size`` its ``num_minibatches`` (at least one; None: one), where the config
    has those fields. Update ``u`` draws its randomness from ``fold_in(key(seed), u)``.

    :param policy: the :class:`JaxPolicy` to train.
    :param config: the algorithm's settings for learning (``lr``, ``gamma``, ...); defaults to
        the policy's ``config``. It must build the same acting parameters.
    :param num_updates: how many updates the algorithm's schedules span (e.g. PPO's learning
        rate, decaying linearly to 0 with ``anneal_lr``); every update must then have the
        config's ``num_epochs`` and ``num_minibatches`` (else ``ValueError``). None: the
        trainer is built for one update and a config's ``anneal_lr`` is turned off.
    :param seed: seeds the updates' randomness (e.g. minibatch shuffling).
    :raises ValueError: ``num_updates`` < 1, or ``config`` builds other acting parameters.
    """

    def __init__(
        self,
        *,
        policy: JaxPolicy,
        config: Any = None,
        num_updates: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(policy=policy)
        if num_updates is not None and num_updates < 1:
            raise ValueError(f"num_updates must be >= 1 or None, got {num_updates}")
        _, cfg = resolve_algorithm(policy.algorithm, policy.config if config is None else config)
        self.config = cfg if num_updates is not None else with_fields(cfg, anneal_lr=False)
        self.num_updates = num_updates
        trainer = self._trainer(self.config)
        learner = trainer.init_learner(policy.init_key)
        self.learner = commit(with_acting_params(trainer, learner, policy.params))
        self.num_updates_done = 0
        self._seed = seed
        self._learns: dict[tuple, Callable[..., Any]] = {}

    @property
    def train_state(self) -> Any:
        """The learner state (the name this had when the bridge ran PPO only)."""
        return self.learner

    def _trainer(self, cfg: Any) -> Trainer:
        policy = self.policy
        return make_host_trainer(
            policy.algorithm, cfg, policy.spec, policy.mapping, self.num_updates or 1
        )

    def _preprocess_batch(self, batch: Batch, buffer: ReplayBuffer, indices: np.ndarray) -> Batch:
        """Adds ``batch.rollout`` = ``Batch(time, column, ended)`` (one entry per row)."""
        layout = rollout_layout(buffer, indices, batch)
        ended = ended_flags(batch, self.policy.num_agents)
        batch.rollout = Batch(time=layout.time, column=layout.column, ended=ended)
        return batch

    def to_rollout(self, batch: Batch, num_minibatches: int = 1) -> tuple[Transition, TimeStep]:
        """A batch that went through ``_preprocess_batch`` as jmarl's ``Transition[T, C, ...]``
        and ``last_ts`` ``[C]``, padded at the front until ``T * C`` divides by
        ``num_minibatches``."""
        time = np.asarray(batch.rollout.time, np.int64)
        column = np.asarray(batch.rollout.column, np.int64)
        layout = RolloutLayout(time, column, int(time.max()) + 1, int(column.max()) + 1)
        ended = np.asarray(batch.rollout.ended, bool)
        return self.policy.rollout(batch, layout.padded(num_minibatches), ended)

    def _learn_fn(self, sizes: dict[str, int]) -> Callable[..., Any]:
        """The jitted ``learn`` of the config with ``sizes`` (where it has those fields)."""
        cfg = with_fields(self.config, **sizes)
        key = tuple(getattr(cfg, name, None) for name in sizes)
        if key in self._learns:
            return self._learns[key]
        schedule = ("num_epochs", "num_minibatches")
        changed = [n for n in schedule if getattr(cfg, n, None) != getattr(self.config, n, None)]
        if self.num_updates is not None and changed:
            want = ", ".join(f"{n}={getattr(self.config, n)}" for n in changed)
            got = ", ".join(f"{n}={getattr(cfg, n)}" for n in changed)
            raise ValueError(
                f"the schedule over num_updates={self.num_updates} (e.g. an annealed learning "
                f"rate) assumes the config's {want}, but this update has {got}: set the "
                "trainer's update_step_num_repetitions and batch_size to match, or pass "
                "num_updates=None"
            )
        trainer = self._trainer(cfg)
        template = jax.eval_shape(trainer.init_learner, self.policy.init_key)
        check_like(template, self.learner, f"the learner state of {cfg}")
        self._learns[key] = jax.jit(trainer.learn)
        return self._learns[key]

    def _update_with_batch(  # type: ignore[override]
        self, batch: Batch, batch_size: int | None, repeat: int
    ) -> JaxTrainingStats:
        """One ``learn`` on the rows of ``batch`` (see the module docstring)."""
        if len(batch) == 0:
            return JaxTrainingStats()
        minibatches = 1 if not batch_size else max(1, len(batch) // batch_size)
        padding = minibatches if hasattr(self.config, "num_minibatches") else 1
        traj, last_ts = self.to_rollout(batch, padding)
        steps, columns = traj.reward.shape[:2]
        sizes = dict(
            num_envs=columns, rollout_length=steps, num_epochs=repeat, num_minibatches=minibatches
        )
        learn = self._learn_fn(sizes)
        key = jax.random.fold_in(jax.random.key(self._seed), self.num_updates_done)
        self.learner, metrics = learn(self.learner, traj, last_ts, key)
        self.policy.params = self.policy.trainer.acting_params(self.learner)
        self.num_updates_done += 1
        return JaxTrainingStats.from_metrics(jax.device_get(metrics))

    def get_extra_state(self) -> dict[str, Any]:
        """The learner state (tensors aliasing the JAX arrays) and the update count."""
        return {"learner": _tree_to_state(self.learner), "updates": self.num_updates_done}

    def set_extra_state(self, state: Any) -> None:
        self.learner = _tree_from_state(state["learner"], self.learner, "learner state")
        self.num_updates_done = int(state["updates"])


JaxPPO = JaxOnPolicyAlgorithm
"""The name :class:`JaxOnPolicyAlgorithm` had when the bridge ran PPO only; it trains whatever
algorithm its policy was built for."""
