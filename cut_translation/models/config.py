"""What every translation model's config shares: networks, GAN loss, Adam and the epoch schedule.

Defaults are the CUT code's ``train_options.py`` / ``base_options.py`` (Park et al. 2020), which the
CycleGAN code shares: lsgan, Adam lr 2e-4 with betas (0.5, 0.999), 200 epochs at a constant learning
rate then 200 of linear decay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cut_translation.models.gan_loss import check_gan_mode
from cut_translation.networks import INIT_TYPES, DiscriminatorConfig, GeneratorConfig


@dataclass
class TranslationConfig:
    """Base of :class:`~cut_translation.models.cut.CUTConfig` and
    :class:`~cut_translation.models.cyclegan.CycleGANConfig`; nested configs may be given as dicts."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    gan_mode: str = "lsgan"
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    init_type: str = "xavier"
    init_gain: float = 0.02
    n_epochs: int = 200  # constant learning rate
    n_epochs_decay: int = 200  # then linear decay to ~0

    def __post_init__(self) -> None:
        if isinstance(self.generator, dict):
            self.generator = GeneratorConfig(**self.generator)
        if isinstance(self.discriminator, dict):
            self.discriminator = DiscriminatorConfig(**self.discriminator)
        check_gan_mode(self.gan_mode)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.init_type not in INIT_TYPES:
            raise ValueError(f"init_type must be one of {INIT_TYPES}, got {self.init_type!r}")
        if self.n_epochs < 0 or self.n_epochs_decay < 0:
            raise ValueError(f"n_epochs/n_epochs_decay must be >= 0, got {self.n_epochs}/{self.n_epochs_decay}")

    def to_dict(self) -> dict:
        return asdict(self)
