"""Public conformance checks for jmarl components (like PettingZoo's ``api_test``), and a
probe environment whose every quantity can be computed by hand."""

from jmarl.testing.algo_checks import check_algorithm, tiny_config
from jmarl.testing.env_checks import check_env, sample_actions
from jmarl.testing.probes import MASKED_PENALTY, make_probe_env, probe_episode_return

__all__ = [
    "MASKED_PENALTY",
    "check_algorithm",
    "check_env",
    "make_probe_env",
    "probe_episode_return",
    "sample_actions",
    "tiny_config",
]
