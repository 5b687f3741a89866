"""JaxMARL's own IPPO (``baselines/IPPO/ippo_ff_mpe.py``) as a timing server for
``train_throughput.py``.

Run as a subprocess with JaxMARL's interpreter (JaxMARL is never a dependency of jmarl; see
benchmarks/README.md for its side venv)::

    /work/jaxmarl-venv/bin/python benchmarks/_jaxmarl_ippo.py --jaxmarl-src /work/jaxmarl-src

It reads one JSON request per line on stdin and answers each with one JSON line on stdout:

* ``{"op": "compile", "name": s, "config": {...}}``: ``make_train(config)`` of JaxMARL's file,
  ``jax.jit(train).lower(key).compile()`` timed; answers ``compile_s`` and ``num_updates``.
* ``{"op": "run", "name": s, "seed": k}``: one timed run of that compiled program; answers
  ``run_s`` and ``returns`` (one per update, converted to jmarl's per-agent definition).
* ``{"op": "quit"}``.

The baseline file is imported unchanged from the checkout: ``wandb`` (imported at its top and
called from an ``io_callback`` after every update) is a stub module whose ``log`` does nothing,
put in ``sys.modules`` before the import. The callback itself stays in the program.

Returns: JaxMARL's ``MPELogWrapper`` multiplies every reward by the number of agents before
adding it to an agent's episode return, and the logged ``returned_episode_returns`` of an update
is the mean over its ``NUM_STEPS x NUM_ACTORS`` entries of the last finished episode's return
(0 before an env's first episode ends). Dividing by ``N`` gives one agent's episode return,
averaged over agents (jmarl's ``episode_return``), lagged by up to one episode.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from typing import Any

import jax

from _common import compile_jit  # isort: skip  (benchmarks/ is sys.path[0])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl-src", required=True, help="a JaxMARL repository checkout")
    return parser.parse_args()


def import_baseline(src: str) -> types.ModuleType:
    """``ippo_ff_mpe`` from ``src/baselines/IPPO`` with ``wandb`` stubbed.

    JaxMARL prints on import (and a library on the way resets ``sys.stdout``): descriptor 1
    is pointed at stderr while importing, so stdout carries only our JSON.
    """
    stub = types.ModuleType("wandb", "stand-in: the benchmark logs nothing")
    stub.log = lambda *args, **kwargs: None  # type: ignore[attr-defined]
    sys.modules["wandb"] = stub
    sys.path[:0] = [src, os.path.join(src, "baselines", "IPPO")]
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        import ippo_ff_mpe
        import jaxmarl  # noqa: F401  (its environments print once, here)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return ippo_ff_mpe


def compile_program(baseline: types.ModuleType, config: dict[str, Any]) -> dict[str, Any]:
    """Builds and compiles ``make_train(config)``; returns the compiled program and facts."""
    config = dict(config)
    train = baseline.make_train(config)  # fills NUM_UPDATES, NUM_ACTORS, MINIBATCH_SIZE
    compiled, compile_s = compile_jit(train, jax.random.PRNGKey(0))
    return {
        "compiled": compiled,
        "num_agents": config["NUM_ACTORS"] // config["NUM_ENVS"],
        "reply": {"compile_s": compile_s, "num_updates": config["NUM_UPDATES"]},
    }


def run_program(program: dict[str, Any], seed: int) -> dict[str, Any]:
    """One timed run; per-update returns ``[U]`` divided by ``N`` (see module docstring)."""
    key = jax.random.PRNGKey(seed)
    start = time.perf_counter()
    out = jax.block_until_ready(program["compiled"](key))
    run_s = time.perf_counter() - start
    logged = jax.device_get(out["metrics"]["returned_episode_returns"])
    return {"run_s": run_s, "returns": [float(x) / program["num_agents"] for x in logged]}


def serve(baseline: types.ModuleType) -> None:
    """Answers requests from stdin until ``quit`` or end of input."""
    programs: dict[str, dict[str, Any]] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "compile":
            programs[request["name"]] = compile_program(baseline, request["config"])
            reply = programs[request["name"]]["reply"]
        else:
            reply = run_program(programs[request["name"]], request["seed"])
        print(json.dumps(reply), flush=True)


def main() -> None:
    args = parse_args()
    baseline = import_baseline(os.path.abspath(args.jaxmarl_src))
    import jaxmarl

    ready = {
        "ready": True,
        "jax_version": jax.__version__,
        "jaxmarl_version": getattr(jaxmarl, "__version__", None),
        "baseline_file": os.path.relpath(baseline.__file__, os.path.abspath(args.jaxmarl_src)),
    }
    print(json.dumps(ready), flush=True)
    serve(baseline)


if __name__ == "__main__":
    main()
