"""JaxMARL's own Q-learning baselines (``baselines/QLearning/vdn_ff.py``, ``qmix_rnn.py``) as a
timing server for ``offpolicy_throughput.py``.

Run as a subprocess with JaxMARL's interpreter (JaxMARL and flashbax are never dependencies of
jmarl; see benchmarks/README.md for the side venv)::

    /work/jaxmarl-venv/bin/python benchmarks/_jaxmarl_qlearning.py --jaxmarl-src /work/jaxmarl-src

It reads one JSON request per line on stdin and answers each with one JSON line on stdout:

* ``{"op": "compile", "name": s, "file": f, "alg": a, "overrides": {...}}``: the config of
  the baseline's own hydra files (``config/config.yaml`` merged with ``config/alg/<a>.yaml``,
  as its ``single_run`` merges them) updated with ``overrides``; ``make_train(config, env)``
  of ``baselines/QLearning/<f>.py`` with the env of its ``env_from_config``, and
  ``jax.jit(train).lower(key).compile()`` timed. Answers ``compile_s``, ``num_updates`` and
  the effective ``config``.
* ``{"op": "config", "alg": a, "overrides": {...}}``: that effective config alone.
* ``{"op": "run", "name": s, "seed": k}``: one timed run of that compiled program; answers
  ``run_s`` and ``returns`` (one per update, converted to jmarl's per-agent definition; None
  for a program compiled with ``WANDB_MODE`` ``disabled``, which reports nothing).
* ``{"op": "memory", "file": f, "alg": a, "overrides": {...}, "seeds": K}``: compiles (does
  not run) ``jax.jit(jax.vmap(train))`` over ``K`` keys, as the baseline's ``single_run`` does
  with ``NUM_SEEDS = K``; answers XLA's memory analysis of it, ``compile_s``, and the bytes of
  one seed's flashbax buffer (its ``experience`` in the ``runner_state`` that ``train``
  returns, from ``jax.eval_shape``).
* ``{"op": "quit"}``.

The baseline files are imported unchanged from the checkout; ``wandb`` (imported at their top)
is a stub module, put in ``sys.modules`` before the import. The baselines' training scans return
no metrics: with ``WANDB_MODE`` other than ``disabled`` they pass each update's metrics to
``wandb.log`` from a ``jax.debug.callback``, which the stub records (the only way to read their
returns); with ``disabled`` the program has no callback and nothing leaves it.

Returns: JaxMARL's ``MPELogWrapper`` multiplies every reward by the number of agents before
adding it to an agent's episode return (the learner sees the unscaled rewards), and the logged
``returned_episode_returns`` of an update is the mean over its ``NUM_STEPS x NUM_ENVS x N``
entries of the last finished episode's return (0 before an env's first episode ends). Dividing
by ``N`` gives one agent's episode return, averaged over agents (jmarl's ``episode_return``),
lagged by up to one episode.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.metadata
import json
import os
import sys
import time
import types
from typing import Any

import jax

from _common import compile_jit, memory_stats, tree_bytes  # isort: skip  (benchmarks/ first)


LOGGED: list[dict[str, Any]] = []  # what the baselines' per-update wandb.log calls receive


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jaxmarl-src", required=True, help="a JaxMARL repository checkout")
    return parser.parse_args()


def import_baselines(src: str) -> dict[str, types.ModuleType]:
    """``vdn_ff`` and ``qmix_rnn`` from ``src/baselines/QLearning`` with ``wandb`` stubbed.

    JaxMARL prints on import: descriptor 1 is pointed at stderr while importing, so stdout
    carries only our JSON.
    """
    stub = types.ModuleType("wandb", "stand-in: log records the metrics in LOGGED")
    stub.log = lambda metrics, *args, **kwargs: LOGGED.append(metrics)  # type: ignore[attr-defined]
    sys.modules["wandb"] = stub
    sys.path[:0] = [src, os.path.join(src, "baselines", "QLearning")]
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        modules = {name: importlib.import_module(name) for name in ("vdn_ff", "qmix_rnn")}
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    return modules


def baseline_config(src: str, alg: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The baseline's hydra config (``config.yaml`` + ``alg/<alg>.yaml``, merged as its
    ``single_run`` merges them) with ``overrides`` applied."""
    from omegaconf import OmegaConf

    folder = os.path.join(src, "baselines", "QLearning", "config")
    config = OmegaConf.to_container(OmegaConf.load(os.path.join(folder, "config.yaml")))
    alg_config = OmegaConf.to_container(OmegaConf.load(os.path.join(folder, "alg", f"{alg}.yaml")))
    config.pop("defaults", None)
    return {**config, **alg_config, **overrides}


class Server:
    """The baselines and the programs compiled so far, by name."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.modules = import_baselines(src)
        self.programs: dict[str, dict[str, Any]] = {}

    def make_train(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any], int]:
        """``make_train(config, env)`` of the requested file; the train function, the
        effective config (with ``NUM_UPDATES``) and the number of agents."""
        module = self.modules[request["file"]]
        config = baseline_config(self.src, request["alg"], request["overrides"])
        env, _ = module.env_from_config(copy.deepcopy(config))
        train = module.make_train(config, env)  # fills NUM_UPDATES
        return train, config, env.num_agents

    def config(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"config": baseline_config(self.src, request["alg"], request["overrides"])}

    def compile(self, request: dict[str, Any]) -> dict[str, Any]:
        train, config, num_agents = self.make_train(request)
        compiled, compile_s = compile_jit(train, jax.random.PRNGKey(0))
        self.programs[request["name"]] = {"compiled": compiled, "num_agents": num_agents}
        return {"compile_s": compile_s, "num_updates": int(config["NUM_UPDATES"]), "config": config}

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """One timed run; per-update returns ``[U]`` divided by ``N`` (see module docstring)."""
        program = self.programs[request["name"]]
        key = jax.random.PRNGKey(request["seed"])
        LOGGED.clear()
        start = time.perf_counter()
        jax.block_until_ready(program["compiled"](key))
        jax.effects_barrier()  # every debug callback has run
        run_s = time.perf_counter() - start
        logged = sorted(LOGGED, key=lambda metrics: int(metrics["update_steps"]))
        n = program["num_agents"]
        returns = [float(m["returned_episode_returns"]) / n for m in logged]
        return {"run_s": run_s, "returns": returns or None}

    def memory(self, request: dict[str, Any]) -> dict[str, Any]:
        """Memory analysis of ``jit(vmap(train))`` over ``seeds`` keys, compiled only."""
        train, config, _ = self.make_train(request)
        keys = jax.random.split(jax.random.PRNGKey(0), request["seeds"])
        compiled, compile_s = compile_jit(jax.vmap(train), keys)
        shapes = jax.eval_shape(train, jax.random.PRNGKey(0))
        buffer_state = shapes["runner_state"][1]  # (train_state, buffer_state, ...) in both
        return {
            "seeds": request["seeds"],
            "compile_s": compile_s,
            "memory": memory_stats(compiled),
            "buffer_bytes_per_seed": tree_bytes(buffer_state.experience),
            "num_updates": int(config["NUM_UPDATES"]),
        }


def serve(server: Server) -> None:
    """Answers requests from stdin until ``quit`` or end of input."""
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        reply = getattr(server, request["op"])(request)
        print(json.dumps(reply), flush=True)


def main() -> None:
    args = parse_args()
    src = os.path.abspath(args.jaxmarl_src)
    server = Server(src)
    import jaxmarl

    ready = {
        "ready": True,
        "jax_version": jax.__version__,
        "jaxmarl_version": getattr(jaxmarl, "__version__", None),
        "flashbax_version": importlib.metadata.version("flashbax"),
        "baseline_files": {
            name: os.path.relpath(module.__file__, src) for name, module in server.modules.items()
        },
    }
    print(json.dumps(ready), flush=True)
    serve(server)


if __name__ == "__main__":
    main()
