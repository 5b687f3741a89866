"""Public conformance checks for jmarl components (like PettingZoo's ``api_test``)."""

from jmarl.testing.env_checks import check_env, sample_actions

__all__ = ["check_env", "sample_actions"]
