"""The algorithm conformance check: the contract of :mod:`jmarl.algos.base` as one function.

Any algorithm author can run it (like PettingZoo's ``api_test``)::

    from jmarl.testing import check_algorithm
    check_algorithm(jmarl.ALGORITHMS["mappo"], sharing="grouped")

It builds a tiny trainer (the config's size fields shrunk, see :func:`tiny_config`) on the
probe env (:mod:`jmarl.testing.probes`, action masks and an agent that dies) unless an env is
given, and checks: shapes and dtypes of the carry are unchanged by a step (``lax.scan``
safety), ``step`` does not retrace, the same key gives the same metrics and another key other
ones, ``jax.jit(jax.vmap(train))`` over seeds equals single-seed runs, metrics have one entry
per update with ``env_steps``/``episode_return``/``loss``, ``act`` returns actions in the
action space that respect the mask (deterministically when asked), a checkpoint of the
learner state saves, loads and evaluates to the same result, and one of the whole training
state (what ``jmarl train --resume`` continues from) loads back bit-identical; where the
learner state has a ``trainable`` flag per policy, frozen policies' parameters stay
bit-identical.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.base import Algorithm, Trainer, TrainOutput
from jmarl.env import spaces
from jmarl.env.base import Env
from jmarl.eval.evaluate import make_evaluate
from jmarl.run.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    resume_part,
    save_checkpoint,
)
from jmarl.testing.env_checks import _in_space, _mismatch, _signature, _trees_equal
from jmarl.testing.probes import make_probe_env

# Size fields shrunk for the check, where the config has them.
TINY_SIZES: dict[str, Any] = {
    "num_envs": 2,
    "rollout_length": 4,
    "num_epochs": 1,
    "num_minibatches": 1,
    "hidden_sizes": (8,),
    "encoder_features": 8,
    "embed_dim": 4,
    "cnn_channels": (4,),
    "gru_size": 8,
    "buffer_size": 64,
    "batch_size": 8,
    "learning_starts": 0,
}


def tiny_config(cfg: Any) -> Any:
    """``cfg`` with the fields of :data:`TINY_SIZES` it has set to their tiny values."""
    names = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in TINY_SIZES.items() if k in names})


def _mapping_kwargs(sharing: str, agent_ids: tuple[str, ...]) -> dict[str, Any]:
    if sharing == "grouped":
        return {"agent_groups": {"g": list(agent_ids[::2]), "h": list(agent_ids[1::2])}}
    if sharing == "custom":
        return {"policy_mapping_fn": lambda a: "even" if agent_ids.index(a) % 2 == 0 else a}
    return {}


def _assert_equal(a: Any, b: Any, what: str) -> None:
    assert _trees_equal(a, b, exact=True), what


def _check_step(trainer: Trainer) -> Any:
    """Checks ``step``; returns it jitted (later checks reuse the compiled program)."""
    state = jax.jit(trainer.init)(jax.random.key(0))
    traces = []

    def traced_step(s: Any) -> Any:
        traces.append(1)
        return trainer.step(s)

    step = jax.jit(traced_step)
    new, metrics = step(state)
    before, after = _signature(state), _signature(new)
    assert before == after, f"step changed the carry:{_mismatch(before, after)}"
    step(new)
    assert len(traces) == 1, "step retraced for a carry of the same shapes"
    for name in ("update", "episode_return", "loss"):
        assert name in metrics, f"metrics lack {name!r}: {sorted(metrics)}"
    assert int(metrics["update"]) == 1
    return step


def _check_train(trainer: Trainer, train: Any) -> None:
    a, b, c = train(jax.random.key(1)), train(jax.random.key(1)), train(jax.random.key(2))
    _assert_equal(a.metrics, b.metrics, "the same key gave other metrics")
    leaves = lambda out: np.concatenate([np.ravel(x) for x in jax.tree.leaves(out.state.learner)])
    assert not np.allclose(leaves(a), leaves(c)), "another key gave the same learner state"
    for name, value in a.metrics.items():
        assert np.shape(value) == (trainer.num_updates,), f"metric {name!r}: {np.shape(value)}"
    keys = jax.random.split(jax.random.key(3), 2)
    many = jax.jit(jax.vmap(trainer.train))(keys)
    one = train(keys[1])
    for name in ("loss", "update"):
        np.testing.assert_allclose(many.metrics[name][1], one.metrics[name], rtol=2e-4, atol=1e-5)


def _check_act(trainer: Trainer, env: Env) -> None:
    e = 3
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(4), e))
    params = trainer.acting_params(trainer.init_learner(jax.random.key(5)))
    act = jax.jit(trainer.act, static_argnums=4)
    carry = trainer.init_carry(e)
    out = act(params, ts, jax.random.key(6), carry, False)
    before, after = _signature(carry), _signature(out.carry)
    assert before == after, f"act changed the carry:{_mismatch(before, after)}"
    space = env.spec.action_space
    expected, got = (
        _signature(spaces.zeros(space, (e, env.spec.num_agents))),
        _signature(out.action),
    )
    assert expected == got, (
        f"act's actions are not [E, N] of the action space:{_mismatch(expected, got)}"
    )
    assert _in_space(space, out.action), "act's actions lie outside the action space"
    if ts.action_mask is not None:
        taken = np.take_along_axis(
            np.asarray(ts.action_mask), np.asarray(out.action)[..., None], -1
        )
        assert taken.all(), "act chose a masked action"
    d1 = act(params, ts, jax.random.key(7), carry, True).action
    d2 = act(params, ts, jax.random.key(8), carry, True).action
    _assert_equal(d1, d2, "deterministic act depends on the key")


def _key_data(tree: Any) -> Any:
    """PRNG keys as their raw data (comparable with numpy)."""
    is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def _check_checkpoint(trainer: Trainer, env: Env, train: Any) -> None:
    final = train(jax.random.key(9)).state
    learner = final.learner
    evaluate = jax.jit(make_evaluate(env, trainer, episodes=3))
    expected = evaluate(trainer.acting_params(learner), jax.random.key(10))
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp), learner, {"update": trainer.num_updates}, resume_part(final))
        template = jax.eval_shape(trainer.init_learner, jax.random.key(0))
        template = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
        loaded, meta = load_checkpoint(Path(tmp), template)
        whole, _ = load_trainer_state(Path(tmp), jax.eval_shape(trainer.init, jax.random.key(0)))
    assert meta == {"update": trainer.num_updates}
    _assert_equal(learner, loaded, "the loaded checkpoint differs from the saved state")
    _assert_equal(
        _key_data(final),
        _key_data(whole),
        "the whole TrainerState (rollout state, key, update) does not survive a checkpoint, "
        "so a resumed run would not continue exactly",
    )
    got = evaluate(trainer.acting_params(loaded), jax.random.key(10))
    _assert_equal(expected, got, "the loaded checkpoint evaluates differently")


def _check_frozen(trainer: Trainer, step: Any) -> None:
    """With every policy frozen (``learner.trainable`` all False), acting parameters stay
    bit-identical through steps (algorithms whose learner has ``trainable``). Scalars among
    the acting parameters are settings that follow their own schedules (an exploration
    rate), not parameters, and may change."""
    state = jax.jit(trainer.init)(jax.random.key(11))
    if not hasattr(state.learner, "trainable"):
        return
    frozen = state.learner._replace(trainable=jnp.zeros_like(state.learner.trainable))
    state = state._replace(learner=frozen)
    new, _ = step(step(state)[0])
    weights = lambda learner: [x for x in jax.tree.leaves(trainer.acting_params(learner)) if x.ndim]
    _assert_equal(
        weights(state.learner), weights(new.learner), "frozen policies' parameters changed"
    )


def check_algorithm(
    algorithm: Algorithm,
    env: Env | None = None,
    cfg: Any = None,
    sharing: str = "shared",
    updates: int = 2,
) -> None:
    """Runs the contract checks (module docstring) for ``algorithm`` on ``env``.

    :param env: default: a 3-agent probe env with action masks and a dying agent.
    :param cfg: default: the algorithm's defaults; either way shrunk by :func:`tiny_config`.
    :param sharing: the agent -> policy mapping mode to check (grouped/custom use fixed
        mappings over the env's agents).
    :raises AssertionError: naming the broken part of the contract.
    """
    env = env if env is not None else make_probe_env(num_agents=3, death_step=1)
    cfg = algorithm.configure(tiny_config(cfg if cfg is not None else algorithm.defaults))
    mapping = make_policy_mapping(env.spec, sharing, **_mapping_kwargs(sharing, env.spec.agent_ids))
    steps_per_update = algorithm.make(env, cfg, 1, mapping).steps_per_update
    trainer = algorithm.make(env, cfg, updates * steps_per_update, mapping)
    assert trainer.num_updates == updates, f"{trainer.num_updates} updates, expected {updates}"
    step = _check_step(trainer)
    init = jax.jit(trainer.init)

    def train(key: Any) -> TrainOutput:
        # init, then the step compiled by _check_step: the same program as train's scan of
        # steps, without compiling a second whole-training program
        state, rows = init(key), []
        for _ in range(trainer.num_updates):
            state, metrics = step(state)
            rows.append(metrics)
        return TrainOutput(state, jax.tree.map(lambda *xs: jnp.stack(xs), *rows))

    _check_train(trainer, train)
    _check_act(trainer, env)
    _check_checkpoint(trainer, env, train)
    _check_frozen(trainer, step)
