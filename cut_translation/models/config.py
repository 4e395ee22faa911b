"""What every translation model's config shares: networks, GAN loss, Adam and the epoch schedule.

Defaults are the CUT code's ``train_options.py`` / ``base_options.py`` (Park et al. 2020, arXiv:2007.15651;
taesungp/contrastive-unpaired-translation), which the CycleGAN code shares: lsgan, Adam lr 2e-4 with betas
(0.5, 0.999), 200 epochs at a constant learning rate then 200 of linear decay.

Every field is a ``scv-cut-train`` flag (``n_epochs_decay`` -> ``--n-epochs-decay``) whose help is the field's
trailing comment; invalid values raise :class:`~ssl_shared.errors.UserError` naming the flag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from cut_translation.models.gan_loss import GAN_MODES
from cut_translation.networks import INIT_TYPES, DiscriminatorConfig, GeneratorConfig
from ssl_shared.cli import check_choice, check_positive
from ssl_shared.errors import UserError


def check_non_negative(name: str, value: float) -> None:
    """``UserError`` naming the flag of ``name`` unless ``value >= 0``."""
    if not value >= 0:  # also refuses NaN
        raise UserError(f"--{name.replace('_', '-')}: got {value}; allowed: a number >= 0")


def check_greater_than_zero(name: str, value: float) -> None:
    """``UserError`` naming the flag of ``name`` unless ``value > 0``."""
    if not value > 0:
        raise UserError(f"--{name.replace('_', '-')}: got {value}; allowed: a number > 0")


@dataclass
class TranslationConfig:
    """Base of :class:`~cut_translation.models.cut.CUTConfig` and
    :class:`~cut_translation.models.cyclegan.CycleGANConfig`; nested configs may be given as dicts."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    gan_mode: str = field(
        default="lsgan",
        metadata={"help": "GAN objective (lsgan: least squares, the papers' choice)", "choices": GAN_MODES},
    )
    lr: float = 2e-4  # Adam learning rate of every network (before the schedule's decay)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    init_type: str = field(default="xavier", metadata={"help": "weight initialisation", "choices": INIT_TYPES})
    init_gain: float = 0.02  # scale of the weight initialisation
    n_epochs: int = 200  # schedule epochs at the constant learning rate
    n_epochs_decay: int = 200  # schedule epochs of linear decay towards 0 after them

    def __post_init__(self) -> None:
        if isinstance(self.generator, dict):
            self.generator = GeneratorConfig(**self.generator)
        if isinstance(self.discriminator, dict):
            self.discriminator = DiscriminatorConfig(**self.discriminator)
        check_choice("gan_mode", self.gan_mode, GAN_MODES)
        check_choice("init_type", self.init_type, INIT_TYPES)
        for name in ("lr", "init_gain"):
            check_greater_than_zero(name, getattr(self, name))
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise UserError(f"--{name}: got {value}; allowed: a number in [0, 1)")
        check_positive("n_epochs", self.n_epochs, allow_zero=True)
        check_positive("n_epochs_decay", self.n_epochs_decay, allow_zero=True)
        if self.n_epochs + self.n_epochs_decay < 1:
            raise UserError("--n-epochs 0 with --n-epochs-decay 0: the schedule needs at least one epoch")

    def to_dict(self) -> dict:
        return asdict(self)
