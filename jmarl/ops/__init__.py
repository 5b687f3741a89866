"""Returns, advantages and losses on time-major ``[T, ...]`` arrays."""

from jmarl.ops.losses import masked_mean, normalize_advantages, ppo_policy_loss, ppo_value_loss
from jmarl.ops.returns import discounted_returns, gae_advantages, lambda_returns, td_errors

__all__ = [
    "discounted_returns",
    "gae_advantages",
    "lambda_returns",
    "masked_mean",
    "normalize_advantages",
    "ppo_policy_loss",
    "ppo_value_loss",
    "td_errors",
]
