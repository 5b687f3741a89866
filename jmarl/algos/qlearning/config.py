"""Hyperparameters of multi-agent Q-learning (IQL, VDN, QMIX)."""

from __future__ import annotations

from dataclasses import dataclass

from jmarl.agents.inputs import check_network_fields
from jmarl.algos.replay import check_capacity
from jmarl.config_check import ConfigError, check_fields, check_range
from jmarl.critics.mixers import MIXERS


@dataclass(frozen=True)
class QConfig:
    """Settings of one multi-agent Q-learning run; closed over once by ``make``.

    :param num_envs: environments stepped in lock-step by ``vmap``.
    :param rollout_length: env steps per env between updates; each update stores
        ``num_envs * rollout_length`` transitions, then takes ``num_epochs`` gradient steps.
    :param buffer_size: transitions the replay buffer holds (per seed; the memory is fixed
        when the program is built: ``buffer_size`` x one transition's bytes, see
        :func:`jmarl.algos.replay.replay_bytes`). Larger keeps older, more diverse data.
    :param batch_size: transitions per gradient step, sampled uniformly from the buffer.
    :param num_epochs: gradient steps per update.
    :param learning_starts: env steps collected before the first gradient step.
    :param lr: Adam learning rate; with ``anneal_lr`` it decays linearly to 0.
    :param gamma: discount. Episode truncation is treated as termination.
    :param epsilon_start: exploration rate at the start (probability of a uniformly random
        allowed action).
    :param epsilon_finish: exploration rate after the decay.
    :param epsilon_decay: fraction of the updates over which epsilon decays linearly.
    :param target_update_interval: gradient steps between target-network updates.
    :param tau: target update weight: 1 copies the online network, smaller values move the
        target part of the way (Polyak averaging).
    :param double_q: pick the next action with the online network and value it with the
        target network (double Q-learning), rather than the target's max.
    :param max_grad_norm: global gradient-norm clip.
    :param hidden_sizes: hidden layer widths of the per-agent Q networks.
    :param activation: ``tanh`` | ``relu`` | ``gelu`` | ``silu``.
    :param agent_id_input: append a one-hot agent id to the Q networks' inputs.
    :param mixer: how agent utilities combine into the team's value: ``none`` (independent
        Q-learning on each agent's own reward), ``vdn`` (sum) or ``qmix`` (monotonic
        hypernetwork mixer on the global state). Fixed by the algorithm (``iql``, ``vdn``,
        ``qmix``). With a mixer the team reward is the mean of the agents' rewards.
    :param mixer_embed_dim: QMIX's mixing-layer width.
    :param mixer_hidden: hidden width of QMIX's hypernetworks.
    :param recurrent: the Q networks get a GRU after their first layer (memory across an
        episode's steps, restarted at its start). The buffer then stores each env's rollout as
        one sequence of ``rollout_length`` steps with the carry it started from (replayed
        from that stored carry), ``buffer_size // rollout_length`` sequences, and a gradient
        step samples ``max(1, batch_size // rollout_length)`` sequences.
    :param gru_size: the GRU's width when ``recurrent``.
    :param encoder_features: for structured observations (see :mod:`jmarl.nn.encoders`).
    :param embed_dim: embedding width of each Discrete part / MultiDiscrete dimension.
    :param cnn_channels: channels of the image CNN's 3x3 conv layers.
    """

    num_envs: int = 16
    rollout_length: int = 25
    buffer_size: int = 100_000
    batch_size: int = 128
    num_epochs: int = 4
    learning_starts: int = 5_000
    lr: float = 1e-3
    anneal_lr: bool = True
    gamma: float = 0.9
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_decay: float = 0.3
    target_update_interval: int = 200
    tau: float = 1.0
    double_q: bool = True
    max_grad_norm: float = 10.0
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    agent_id_input: bool = False
    mixer: str = "vdn"
    mixer_embed_dim: int = 32
    mixer_hidden: int = 64
    recurrent: bool = False
    gru_size: int = 64
    encoder_features: int = 64
    embed_dim: int = 16
    cnn_channels: tuple[int, ...] = (16, 32)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("num_envs", "rollout_length", "buffer_size", "batch_size", "num_epochs"):
            check_range(self, name, 1)
        for name in ("target_update_interval", "mixer_embed_dim", "mixer_hidden", "gru_size"):
            check_range(self, name, 1)
        check_network_fields(self)
        check_range(self, "learning_starts", 0)
        check_range(self, "lr", 0.0, strict_low=True)
        check_range(self, "max_grad_norm", 0.0, strict_low=True)
        check_range(self, "tau", 0.0, 1.0, strict_low=True)
        for name in ("gamma", "epsilon_start", "epsilon_finish", "epsilon_decay"):
            check_range(self, name, 0.0, 1.0)
        check_capacity(self.num_envs * self.rollout_length, self.buffer_size)
        if self.mixer not in ("none", *MIXERS):
            raise ConfigError(f"unknown mixer {self.mixer!r}; expected none, {', '.join(MIXERS)}")

    def unused(self) -> dict[str, str]:
        """Fields these settings ignore, with why (``jmarl train`` refuses changed ones)."""
        unused = {} if self.recurrent else {"gru_size": "it is only used with --recurrent"}
        if self.mixer != "qmix":
            why = "it is only used by the qmix mixer"
            unused.update(mixer_embed_dim=why, mixer_hidden=why)
        return unused

    @property
    def steps_per_update(self) -> int:
        """Env steps consumed by one update (``num_envs * rollout_length``)."""
        return self.num_envs * self.rollout_length
