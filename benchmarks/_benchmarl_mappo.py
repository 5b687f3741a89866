"""BenchMARL MAPPO on PettingZoo simple_spread for a fixed frame budget; prints one JSON object.

Helper of ``pettingzoo_bridge.py``, run as a subprocess with BenchMARL's own interpreter (it is
never a dependency of jmarl)::

    /work/benchmarl-venv/bin/python benchmarks/_benchmarl_mappo.py --frames 50000

Builds a ``benchmarl.experiment.Experiment``: MAPPO (BenchMARL's YAML defaults), MLP actor and
critic, the PettingZoo ``simple_spread`` task with ``N`` agents and ``max_cycles`` steps per
episode, discrete actions (as jmarl's run uses), everything on the CPU. Evaluation, loggers,
JSON output and checkpoints are switched off. A frame is one env step (all agents acting once).

PettingZoo 1.27 moved MPE into the separate ``mpe2`` package, and ``pettingzoo.mpe`` now raises
``ImportError`` on import. TorchRL 0.11's PettingZoo wrapper (used by BenchMARL 1.5.2) finds
tasks through ``pettingzoo.utils.all_modules``, which fails here (the Atari family needs
``multi_agent_ale_py``), and then falls back to importing ``pettingzoo.mpe.all_modules``: an
``ImportError`` that it does not catch. :func:`alias_mpe2` registers ``mpe2`` under the old
names in ``sys.modules`` (``pettingzoo.mpe``, ``pettingzoo.mpe.all_modules`` and every
``pettingzoo.mpe.<env>_vN``) before BenchMARL is imported; the fallback then finds
``mpe/simple_spread_v3`` (the module ``mpe2.simple_spread_v3``). Nothing on disk is changed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import types
import warnings
from typing import Any


def alias_mpe2() -> list[str]:
    """Makes ``import pettingzoo.mpe[.all_modules|.<env>]`` resolve to ``mpe2``; returns names."""
    import mpe2
    import mpe2.all_modules
    import pettingzoo

    package = types.ModuleType("pettingzoo.mpe", "mpe2, registered under its old PettingZoo name")
    package.__path__ = list(mpe2.__path__)
    package.all_modules = mpe2.all_modules
    aliased = {"pettingzoo.mpe": package, "pettingzoo.mpe.all_modules": mpe2.all_modules}
    for key, module in mpe2.all_modules.mpe_environments.items():
        name = key.split("/")[-1]
        setattr(package, name, module)
        aliased[f"pettingzoo.mpe.{name}"] = module
    sys.modules.update(aliased)
    pettingzoo.mpe = package
    return sorted(aliased)


warnings.filterwarnings("ignore")
_t_import = time.perf_counter()
ALIASED = alias_mpe2()  # before BenchMARL (and TorchRL) are imported

import benchmarl  # noqa: E402
import tensordict  # noqa: E402
import torch  # noqa: E402
import torchrl  # noqa: E402
from benchmarl.algorithms import MappoConfig  # noqa: E402
from benchmarl.environments import PettingZooTask  # noqa: E402
from benchmarl.experiment import Experiment, ExperimentConfig  # noqa: E402
from benchmarl.experiment.callback import Callback  # noqa: E402
from benchmarl.models.mlp import MlpConfig  # noqa: E402

IMPORT_S = time.perf_counter() - _t_import


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=50_000, help="max_n_frames (env steps)")
    p.add_argument("--frames-per-batch", type=int, default=5_000, help="frames per iteration")
    p.add_argument("--n-envs", type=int, default=10, help="envs stepped in series per batch")
    p.add_argument("--minibatch-size", type=int, default=400, help="frames per minibatch")
    p.add_argument("--minibatch-iters", type=int, default=45, help="on_policy_n_minibatch_iters")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP widths")
    p.add_argument("--agents", type=int, default=3)
    p.add_argument("--max-cycles", type=int, default=25)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


class Clock(Callback):
    """Timestamps of each collected batch and of each training phase end (a BenchMARL callback;
    BenchMARL pickles its callbacks, so this class lives at module level)."""

    def __init__(self) -> None:
        super().__init__()
        self.collected: list[float] = []
        self.trained: list[float] = []

    def on_batch_collected(self, batch: Any) -> None:
        self.collected.append(time.perf_counter())

    def on_train_end(self, training_td: Any, group: str) -> None:
        self.trained.append(time.perf_counter())

    def split(self, run_start: float) -> tuple[float, float]:
        """Seconds spent collecting and training (one agent group: one train end per batch)."""
        collect = train = 0.0
        previous = run_start
        for got, done in zip(self.collected, self.trained, strict=False):
            collect += got - previous
            train += done - got
            previous = done
        return collect, train


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)

    config = ExperimentConfig.get_from_yaml()
    config.sampling_device = config.train_device = config.buffer_device = "cpu"
    config.prefer_continuous_actions = False
    config.max_n_frames = args.frames
    config.max_n_iters = None
    config.on_policy_collected_frames_per_batch = args.frames_per_batch
    config.on_policy_n_envs_per_worker = args.n_envs
    config.on_policy_minibatch_size = args.minibatch_size
    config.on_policy_n_minibatch_iters = args.minibatch_iters
    config.evaluation = False
    config.render = False
    config.loggers = []
    config.create_json = False
    config.checkpoint_interval = 0
    config.checkpoint_at_end = False
    config.save_folder = tempfile.mkdtemp(prefix="benchmarl_mappo_")

    task = PettingZooTask.SIMPLE_SPREAD.get_from_yaml()
    task.config.update({"max_cycles": args.max_cycles, "N": args.agents})
    model = MlpConfig.get_from_yaml()
    model.num_cells = list(args.hidden)
    algorithm = MappoConfig.get_from_yaml()
    clock = Clock()

    t0 = time.perf_counter()
    experiment = Experiment(
        task=task,
        algorithm_config=algorithm,
        model_config=model,
        seed=args.seed,
        config=config,
        callbacks=[clock],
    )
    t1 = time.perf_counter()
    experiment.run()
    t2 = time.perf_counter()

    frames = int(experiment.total_frames)
    collect_s, train_s = clock.split(t1)
    minibatches = -(-args.frames_per_batch // args.minibatch_size) * args.minibatch_iters
    reward = float(experiment.mean_return)
    print(
        json.dumps(
            {
                "frames": frames,
                "iterations": int(experiment.n_iters_performed),
                "wall_s": t2 - t0,
                "setup_s": t1 - t0,
                "run_s": t2 - t1,
                "import_s": IMPORT_S,
                "frames_per_s": frames / (t2 - t0),
                "frames_per_s_run_only": frames / (t2 - t1),
                "collection_s": collect_s,
                "training_s": train_s,
                "collection_frames_per_s": frames / collect_s if collect_s else None,
                "final_episode_reward": reward if math.isfinite(reward) else None,
                "final_episode_reward_note": "mean per-agent return of the episodes that ended "
                "in the last collected batch (BenchMARL's experiment.mean_return)",
                "config": {
                    "algorithm": "MAPPO (BenchMARL YAML defaults, shared actor and critic)",
                    "actions": "discrete" if not experiment.continuous_actions else "continuous",
                    "task": dict(task.config),
                    "frames_per_batch": args.frames_per_batch,
                    "n_envs_serial": args.n_envs,
                    "minibatch_size_frames": args.minibatch_size,
                    "minibatch_iters": args.minibatch_iters,
                    "gradient_steps_per_batch": minibatches,
                    "gradient_steps_per_1000_frames": 1000 * minibatches / args.frames_per_batch,
                    "mlp": list(args.hidden),
                    "lr": config.lr,
                    "torch_threads": torch.get_num_threads(),
                },
                "versions": {
                    "benchmarl": getattr(benchmarl, "__version__", None) or _dist("benchmarl"),
                    "torchrl": torchrl.__version__,
                    "tensordict": tensordict.__version__,
                    "torch": torch.__version__,
                    "pettingzoo": _dist("pettingzoo"),
                    "mpe2": _dist("mpe2"),
                    "python": sys.version.split()[0],
                },
                "mpe2_aliases": ALIASED,
            }
        )
    )


def _dist(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
