"""Raw env-step throughput: jmarl's simple_spread against JaxMARL's MPE simple_spread.

Both sides run the same program shape: ``E`` environments are reset, then a ``lax.scan`` of
``T`` steps calls the ``vmap``-ed ``step`` (which auto-resets on both sides) with uniform random
discrete actions, all under one ``jax.jit``. Every step's observations and rewards are folded
into a checksum carried by the scan, so XLA cannot drop the observation work. Compilation
(``jax.jit(f).lower(key).compile()``) is timed separately; throughput is ``E * T`` over the best
of ``--repeats`` runs. The baseline is JaxMARL's env at the same ``N`` and ``E``, measured in the
same run; the claim is the ratio ``jmarl / jaxmarl`` (targets: >= 1.5x at N=3, >= 10x at N=100).

JaxMARL is not a jmarl dependency. Install it into its own venv outside the repository::

    python3 -m venv /work/bench-venv
    /work/bench-venv/bin/pip install jax==0.10.2 jaxlib==0.10.2 jaxmarl==0.2.0
    /work/bench-venv/bin/pip install -e /work/main     # jmarl itself, editable

(jaxmarl 0.2.0 pulls flax, chex, gymnax, jaxtyping, safetensors, matplotlib; no torch.)
Then run, from the repository root (about 2-3 minutes on 2 CPU cores)::

    JAX_PLATFORMS=cpu /work/bench-venv/bin/python benchmarks/env_throughput.py > env.json

Run with the project venv instead and the JSON says ``"jaxmarl": "not installed"``; jmarl is
still measured. JaxMARL prints a line to stdout when imported; it is sent to stderr here.
At N=100 JaxMARL manages only about a thousand env steps/s, so that row uses fewer envs for
both sides.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from _common import arm_watchdog, compile_jit, emit, log, machine_info, ratio, time_compiled

import jmarl

NUM_ACTIONS = 5  # Discrete(5) on both sides: no-op, -x, +x, -y, +y
TARGETS = {3: 1.5, 100: 10.0}


class Case(NamedTuple):
    """One comparison: ``num_envs`` envs of ``num_agents`` agents for ``num_steps`` steps."""

    num_agents: int
    num_envs: int
    num_steps: int


FULL_CASES = (Case(3, 1024, 100), Case(100, 128, 25))
QUICK_CASES = (Case(3, 64, 20), Case(100, 4, 5))


def _checksum(obs: Any, reward: Any) -> jax.Array:
    return sum(jnp.sum(x) for x in jax.tree.leaves(obs)) + sum(
        jnp.sum(x) for x in jax.tree.leaves(reward)
    )


def jmarl_program(case: Case) -> Callable[[jax.Array], jax.Array]:
    """``run(key) -> checksum``: reset ``E`` jmarl envs, then scan ``T`` random steps."""
    env = jmarl.make("simple_spread", num_agents=case.num_agents)
    step = jax.vmap(env.step)
    shape = (case.num_envs, case.num_agents)

    def body(carry: tuple[Any, jax.Array, jax.Array], _: None) -> tuple[Any, None]:
        state, key, total = carry
        key, k_act, k_env = jax.random.split(key, 3)
        actions = jax.random.randint(k_act, shape, 0, NUM_ACTIONS)
        state, ts = step(jax.random.split(k_env, case.num_envs), state, actions)
        return (state, key, total + _checksum(ts.obs, ts.reward)), None

    def run(key: jax.Array) -> jax.Array:
        k_reset, k_run = jax.random.split(key)
        state, _ = jax.vmap(env.reset)(jax.random.split(k_reset, case.num_envs))
        carry = (state, k_run, jnp.zeros((), jnp.float32))
        (_, _, total), _ = jax.lax.scan(body, carry, None, length=case.num_steps)
        return total

    return run


def jaxmarl_program(jaxmarl: Any, case: Case) -> Callable[[jax.Array], jax.Array]:
    """The same program on ``jaxmarl.make("MPE_simple_spread_v3", ...)`` (dict-keyed agents)."""
    env = jaxmarl.make(
        "MPE_simple_spread_v3", num_agents=case.num_agents, num_landmarks=case.num_agents
    )
    agents = tuple(env.agents)
    step = jax.vmap(env.step)
    shape = (case.num_envs, case.num_agents)

    def body(carry: tuple[Any, jax.Array, jax.Array], _: None) -> tuple[Any, None]:
        state, key, total = carry
        key, k_act, k_env = jax.random.split(key, 3)
        acts = jax.random.randint(k_act, shape, 0, NUM_ACTIONS)
        actions = {a: acts[:, i] for i, a in enumerate(agents)}
        obs, state, reward, _, _ = step(jax.random.split(k_env, case.num_envs), state, actions)
        return (state, key, total + _checksum(obs, reward)), None

    def run(key: jax.Array) -> jax.Array:
        k_reset, k_run = jax.random.split(key)
        _, state = jax.vmap(env.reset)(jax.random.split(k_reset, case.num_envs))
        carry = (state, k_run, jnp.zeros((), jnp.float32))
        (_, _, total), _ = jax.lax.scan(body, carry, None, length=case.num_steps)
        return total

    return run


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Points file descriptor 1 at stderr (JaxMARL resets ``sys.stdout``, so ``redirect_stdout``
    is not enough) and restores it afterwards."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.__stdout__.flush()
        os.dup2(saved, 1)
        os.close(saved)


def import_jaxmarl() -> tuple[Any, str]:
    """``(module, version)``, or ``(None, why)`` when JaxMARL cannot be imported."""
    try:
        with _stdout_to_stderr():  # it prints on import
            import jaxmarl
    except ImportError:
        return None, "not installed"
    except Exception as err:  # installed but broken (e.g. a jax API it expects is gone)
        return None, f"import failed: {err!r}"
    from importlib.metadata import version

    return jaxmarl, version("jaxmarl")


def measure(name: str, run: Callable[[jax.Array], jax.Array], case: Case, repeats: int) -> dict:
    """Compiles and times ``run``; returns its env steps/s and compile seconds."""
    key = jax.random.key(0)
    log(f"[env_throughput] {name} N={case.num_agents} E={case.num_envs}: compiling")
    compiled, compile_s = compile_jit(run, key)
    timing = time_compiled(compiled, (key,), repeats, warmup=1)
    steps = case.num_envs * case.num_steps
    sps = steps / timing.best_s
    log(f"[env_throughput] {name} N={case.num_agents}: {sps:,.0f} env steps/s")
    return {
        "compile_s": compile_s,
        "run_s": timing.as_dict(),
        "env_steps_per_s": sps,
        "agent_steps_per_s": sps * case.num_agents,
        "env_steps_per_s_median": steps / timing.median_s,
    }


def compare(case: Case, jaxmarl: Any, why: str, repeats: int) -> dict[str, Any]:
    """One row: jmarl and (if installed) JaxMARL at the same ``N``, ``E`` and ``T``."""
    row: dict[str, Any] = {**case._asdict(), "env_steps_per_run": case.num_envs * case.num_steps}
    row["jmarl"] = measure("jmarl", jmarl_program(case), case, repeats)
    if jaxmarl is None:
        row["jaxmarl"] = why
        return row
    row["jaxmarl"] = measure("jaxmarl", jaxmarl_program(jaxmarl, case), case, repeats)
    speedup = ratio(row["jmarl"]["env_steps_per_s"], row["jaxmarl"]["env_steps_per_s"])
    row["jmarl_vs_jaxmarl"] = speedup
    row["jmarl_vs_jaxmarl_median"] = ratio(
        row["jmarl"]["env_steps_per_s_median"], row["jaxmarl"]["env_steps_per_s_median"]
    )
    target = TARGETS.get(case.num_agents)
    if target is not None:
        row["target_ratio"] = target
        row["meets_target"] = speedup is not None and speedup >= target
    return row


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, checks the script")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--case",
        action="append",
        metavar="N,E,T",
        help="agents,envs,steps (repeatable); replaces the default cases",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    arm_watchdog(240 if args.quick else 1200)
    if args.case:
        cases = tuple(Case(*(int(v) for v in c.split(","))) for c in args.case)
    else:
        cases = QUICK_CASES if args.quick else FULL_CASES
    info = machine_info()
    jaxmarl, jaxmarl_version = import_jaxmarl()
    rows = [compare(case, jaxmarl, jaxmarl_version, args.repeats) for case in cases]
    emit(
        {
            "benchmark": "env_throughput",
            "quick": args.quick,
            **info,
            "jmarl_version": jmarl.__version__,
            "jaxmarl": jaxmarl_version,
            "jaxmarl_env": 'jaxmarl.make("MPE_simple_spread_v3", num_agents=N, num_landmarks=N)',
            "program": "jit(reset E envs; lax.scan T x vmap(step) random actions; obs+reward sum)",
            "repeats": args.repeats,
            "throughput_from": "best run after one warm-up; *_median from the median run",
            "baseline": "JaxMARL simple_spread at the same N, E, T, measured in this run",
            "rows": rows,
        }
    )


if __name__ == "__main__":
    main()
