"""SAC+AE (Yarats et al. 2019, "Improving Sample Efficiency in Model-Free Reinforcement Learning from
Images", arXiv 1910.01741): pixel SAC without augmentation plus a regularised deterministic autoencoder.

Every default below is the authors' code, ``denisyarats/pytorch_sac_ae`` at commit ``7fa560e``
(``train.py`` argparse defaults, ``sac_ae.py``, ``encoder.py``, ``utils.py``; line numbers at that commit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

from stable_baselines3.common.type_aliases import Schedule

from curl_agents.algorithms.pixel_sac import PixelSAC

#: The reconstruction objective as SAC-AE configures it (``curl_agents.objectives.reconstruction``).
SAC_AE_AUX_KWARGS: Mapping[str, Any] = {
    "latent_lambda": 1e-6,  # train.py --decoder_latent_lambda (L59)
    "decoder_weight_decay": 1e-7,  # train.py --decoder_weight_lambda (L60), the decoder Adam's weight_decay
    "target_bits": 5,  # sac_ae.py update_decoder -> utils.preprocess_obs(obs, bits=5) (L374; utils.py L56)
}


class SacAE(PixelSAC):
    """SAC-AE: the pixel SAC update on unaugmented 84x84 renders, and every gradient step one Adam step of

        z = f(o),   x = floor(o / 8) / 32 + U[0, 1/32) - 0.5      (5-bit target with dequantisation noise)
        L = mean (decoder(z) - x)^2 + 1e-6 * mean_i 0.5 ||z_i||^2,  decoder weight decay 1e-7

    on the critic's encoder ``f`` and the decoder (``aux="reconstruction"`` with
    :data:`SAC_AE_AUX_KWARGS`; the decoder mirrors the encoder and is initialised like it). The encoder
    is fc -> LayerNorm -> tanh (``encoder.py`` L67), convolutions delta-orthogonal (``sac_ae.py``
    ``weight_init``). Cadence (``sac_ae.py`` ``update``, L393-416): critic and decoder every gradient
    step; actor and temperature every 2nd; EMA of the Q heads (tau 0.01) and of the encoder (tau 0.05)
    every 2nd. Like the reference training loop (``train.py`` L224), the first training call runs
    ``initial_updates`` gradient steps (default: ``learning_starts``, i.e. 1000), each updating the
    actor, the temperature and the target (the reference passes the same even step to all of them);
    from the next call on, the cadence counts gradient steps after that burst (1, 2, ...).

    Render at ``image_size`` (``render_margin`` 0): a larger render would be center-cropped, which
    SAC-AE does not do. The only auxiliary objective is the reconstruction (``aux`` other than
    ``None`` / ``"reconstruction"`` raises); ``aux_kwargs`` override entries of
    :data:`SAC_AE_AUX_KWARGS`.

    Args:
        initial_updates: gradient steps of the first training call; ``None``: ``learning_starts``;
            0 or 1: no burst (one gradient step per call from the start).
        other arguments: as :class:`PixelSAC`, with the defaults cited in the signature.
    """

    default_aux: ClassVar[str] = "reconstruction"
    fixed_aux: ClassVar[str | None] = "reconstruction"  # SAC-AE is defined by its autoencoder
    policy_defaults: ClassVar[Mapping[str, Any]] = {
        "feature_dim": 50,  # train.py --encoder_feature_dim (L53)
        "hidden_dim": 1024,  # train.py --hidden_dim (L36)
        "num_layers": 4,  # train.py --num_layers (L61)
        "num_filters": 32,  # train.py --num_filters (L62)
        "log_std_min": -10.0,  # train.py --actor_log_std_min (L48)
        "log_std_max": 2.0,  # train.py --actor_log_std_max (L49)
        "encoder_output_tanh": True,  # encoder.py PixelEncoder.forward: tanh(ln(fc(h))) (L67)
        "conv_init": "delta_orthogonal",  # sac_ae.py weight_init (L33-45)
    }
    task_learning_rates: ClassVar[Mapping[str, float]] = {}  # train.py: lr 1e-3 for every task
    render_margin: ClassVar[int] = 0  # train.py renders --image_size 84 (L26) and never crops
    default_aux_kwargs: ClassVar[Mapping[str, Any]] = SAC_AE_AUX_KWARGS

    def __init__(
        self,
        policy: Any,
        env: Any,
        learning_rate: float | Schedule = 1e-3,  # train.py --critic_lr, --actor_lr (L41, L46)
        buffer_size: int = 1_000_000,  # train.py --replay_buffer_capacity (L30)
        learning_starts: int = 1000,  # train.py --init_steps (L33), agent steps
        batch_size: int = 128,  # train.py --batch_size (L35)
        tau: float = 0.01,  # train.py --critic_tau (L43)
        encoder_tau: float = 0.05,  # train.py --encoder_tau (L55)
        gamma: float = 0.99,  # train.py --discount (L64)
        init_temperature: float = 0.1,  # train.py --init_temperature (L65)
        alpha_lr: float = 1e-4,  # train.py --alpha_lr (L66)
        alpha_betas: tuple[float, float] = (0.5, 0.999),  # train.py --alpha_beta 0.5 (L67)
        actor_update_freq: int = 2,  # train.py --actor_update_freq (L50)
        target_update_interval: int = 2,  # train.py --critic_target_update_freq (L44)
        image_size: int = 84,  # train.py --image_size (L26)
        aux: str | None = None,
        aux_kwargs: dict[str, Any] | None = None,
        aux_lr: float = 1e-3,  # train.py --encoder_lr, --decoder_lr (L54, L57)
        initial_updates: int | None = None,  # train.py L224: num_updates = init_steps at the first update
        **kwargs: Any,
    ) -> None:
        if aux not in (None, self.fixed_aux):
            raise ValueError(
                f"SacAE's auxiliary objective is 'reconstruction' (got aux={aux!r}); "
                f"use CURL(aux={aux!r}) for other objectives"
            )
        if initial_updates is not None and (
            isinstance(initial_updates, bool) or not isinstance(initial_updates, int) or initial_updates < 0
        ):
            raise ValueError(f"initial_updates must be None or a non-negative integer, got {initial_updates!r}")
        self.initial_updates = learning_starts if initial_updates is None else initial_updates
        self._burst_updates = 0
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            encoder_tau=encoder_tau,
            gamma=gamma,
            init_temperature=init_temperature,
            alpha_lr=alpha_lr,
            alpha_betas=alpha_betas,
            actor_update_freq=actor_update_freq,
            target_update_interval=target_update_interval,
            image_size=image_size,
            aux="reconstruction",
            aux_kwargs=aux_kwargs,
            aux_lr=aux_lr,
            **kwargs,
        )

    def train(self, gradient_steps: int, batch_size: int = 128) -> None:
        if self._n_updates == 0 and self.initial_updates > 1:
            self.policy.set_training_mode(True)
            self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
            burst_logs: dict[str, list[float]] = defaultdict(list)  # superseded by the regular step's logs
            for _ in range(self.initial_updates - 1):
                self._gradient_step(batch_size, burst_logs, update_actor=True, update_target=True)
            self._burst_updates = self.initial_updates - 1
        super().train(gradient_steps, batch_size)

    def _cadence_step(self) -> int:
        return self._n_updates - self._burst_updates
