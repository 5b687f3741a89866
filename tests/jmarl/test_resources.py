"""Resource guard (issue 12, item 3): runs that cannot fit are refused before anything is
allocated or written, naming the estimate and the flags to lower; evaluation runs in chunks.
The CLI's refusal (``--agents 1000``) and ``evaluate --episodes 10000000`` are rows of
test_bad_input_catalogue.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jmarl.eval.evaluate import EvalResult, evaluate_in_chunks
from jmarl.run import driver, resources
from jmarl.run.config import from_dict
from jmarl.run.resources import ResourceError, check_fits, program_bytes, tree_bytes

TINY = ["--steps", "64", "--num-envs", "2", "--rollout-length", "16", "--num-minibatches", "1"]
TINY += ["--hidden-sizes", "8", "--quiet"]


def test_check_fits_names_the_estimate_and_the_flags() -> None:
    check_fits(800, "x", available=1000)
    check_fits(None, "x", available=1)  # no estimate: nothing to refuse
    with pytest.raises(ResourceError, match=r"x needs about 346\.0 GB .* 8\.0 GB .*--num-envs"):
        check_fits(346 * 10**9, "x", available=8 * 10**9)


def test_available_memory_is_positive_here() -> None:
    free = resources.available_memory()
    assert free is None or free > 0


def test_tree_and_program_bytes_count_arrays() -> None:
    tree = {"a": jax.ShapeDtypeStruct((10, 4), jnp.float32), "k": jax.random.key(0)}
    assert tree_bytes(tree) == 160 + 8
    x = jax.ShapeDtypeStruct((1000,), jnp.float32)
    compiled = jax.jit(lambda v: jnp.outer(v, v).sum(0)).lower(x).compile()
    n = program_bytes(compiled)
    assert n is None or n >= 2 * 4000  # argument and output at least


def test_the_compiled_program_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # room for the state, none for the program's temporaries
    seen: list[int | None] = []

    def fits(needed: int | None, what: str, *a: object, **k: object) -> None:
        seen.append(needed)
        if what.startswith("training"):
            raise ResourceError("program")

    monkeypatch.setattr(driver, "check_fits", fits)
    cfg = from_dict({"steps": 64, "ppo": {"num_envs": 2, "rollout_length": 16}})
    trainer = driver.build_trainer(cfg, driver.build_env(cfg))
    with pytest.raises(ResourceError, match="program"):
        driver.compile_training(trainer, 1, jax.random.split(jax.random.key(0), 1))
    assert len(seen) == 2 and all(n is not None and n > 0 for n in seen)


def test_evaluation_runs_in_chunks_of_fixed_size() -> None:
    calls: list[jax.Array] = []

    def run(key: jax.Array) -> EvalResult:
        calls.append(key)
        r = jax.random.uniform(key, (2, 4))  # [seeds, size]
        return EvalResult(r, jnp.ones((2, 4), jnp.int32), jnp.stack([r, r], axis=1))

    key = jax.random.key(0)
    res = evaluate_in_chunks(run, 10, 4, key)
    assert len(calls) == 3 and res.returns.shape == (2, 10) and res.lengths.shape == (2, 10)
    assert res.agent_returns.shape == (2, 2, 10)
    first = jax.random.uniform(jax.random.fold_in(key, 0), (2, 4))
    np.testing.assert_array_equal(res.returns[:, :4], first)
    # one chunk uses the key itself: results of small evaluations are unchanged
    calls.clear()
    one = evaluate_in_chunks(run, 4, 4, key)
    assert len(calls) == 1
    np.testing.assert_array_equal(one.returns, jax.random.uniform(key, (2, 4)))
