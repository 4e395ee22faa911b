"""CycleGAN baseline (Zhu, Park, Isola & Efros, ICCV 2017) on the same generator / discriminator blocks as CUT.

Two generators ``G_A: X -> Y`` and ``G_B: Y -> X``, two PatchGANs (``D_A`` judges Y, ``D_B`` judges X)::

    L_G = GAN(D_A(G_A(x)), real) + GAN(D_B(G_B(y)), real)
        + lambda_cycle * (|G_B(G_A(x)) - x|_1 + |G_A(G_B(y)) - y|_1)
        + lambda_cycle * lambda_identity * (|G_A(y) - y|_1 + |G_B(x) - x|_1)
    L_D_A = 0.5 * (GAN(D_A(y), real) + GAN(D_A(pool_Y(G_A(x))), fake))     (same for D_B on X)

``|.|_1`` is the mean absolute error. Defaults: lambda_cycle 10 (``--lambda_A = --lambda_B = 10``),
identity 0.5, image pools of 50, lsgan, Adam 2e-4 / (0.5, 0.999), one optimiser for both generators and
one for both discriminators, update order G then D (the CycleGAN/CUT code's ``cycle_gan_model.py``).
Initialisation N(0, 0.02) as in the CycleGAN code (xavier as an option).

Same maths, fewer calls: ``G_A`` runs once on ``cat(x, y)`` (giving ``G_A(x)`` and the identity ``G_A(y)``)
and ``G_B`` once on ``cat(y, x)``; each discriminator sees real and pooled fake images in one batch.

Precision: with ``precision="bf16"`` the generator and discriminator forward passes run under bf16 autocast
(:mod:`ssl_shared.precision`); generated images and logits are cast to fp32 before the losses and the image
pools, so every loss, weight, gradient and Adam state is fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cut_translation.models.config import TranslationConfig, check_non_negative
from cut_translation.models.cut import check_model_precision, raise_if_non_finite, set_requires_grad
from cut_translation.models.gan_loss import discriminator_loss, generator_loss
from cut_translation.models.image_pool import ImagePool
from cut_translation.networks import INIT_TYPES, PatchDiscriminator, ResnetGenerator, init_weights
from ssl_shared.cli import check_positive
from ssl_shared.precision import autocast


@dataclass
class CycleGANConfig(TranslationConfig):
    """CycleGAN defaults (Zhu et al. 2017, arXiv:1703.10593; ``cycle_gan_model.py`` options, as shipped with the
    CUT code); the networks, GAN loss, Adam and epoch fields come from :class:`TranslationConfig`."""

    init_type: str = field(  # the CycleGAN code's N(0, 0.02)
        default="normal", metadata={"help": "weight initialisation", "choices": INIT_TYPES}
    )
    lambda_cycle: float = 10.0  # weight of the cycle-consistency L1 losses
    lambda_identity: float = 0.5  # identity-loss weight, as a fraction of lambda_cycle
    pool_size: int = 50  # generated images kept for the discriminator (0: no pool)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lambda_cycle", "lambda_identity"):
            check_non_negative(name, getattr(self, name))
        check_positive("pool_size", self.pool_size, allow_zero=True)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


class CycleGANModel(nn.Module):
    """CycleGAN with ``netG_A``, ``netG_B``, ``netD_A``, ``netD_B``, two image pools and two optimisers."""

    def __init__(self, config: CycleGANConfig | None = None, seed: int | None = None, precision: str = "fp32") -> None:
        """``seed`` fixes every initial weight (None: torch's global generator); ``precision``: ``fp32`` or
        ``bf16`` (autocast of the network forward passes, see the module docstring)."""
        super().__init__()
        check_model_precision(precision)
        self.precision = precision
        self.config = config or CycleGANConfig()
        c = self.config
        self.netG_A = ResnetGenerator(c.generator)
        self.netG_B = ResnetGenerator(c.generator)
        self.netD_A = PatchDiscriminator(c.discriminator)
        self.netD_B = PatchDiscriminator(c.discriminator)
        init_generator = torch.Generator().manual_seed(seed) if seed is not None else None
        for net in (self.netG_A, self.netG_B, self.netD_A, self.netD_B):
            init_weights(net, c.init_type, c.init_gain, generator=init_generator)
        g_params = list(self.netG_A.parameters()) + list(self.netG_B.parameters())
        d_params = list(self.netD_A.parameters()) + list(self.netD_B.parameters())
        betas = (c.beta1, c.beta2)
        self.optimizers = {
            "G": torch.optim.Adam(g_params, lr=c.lr, betas=betas, fused=True),
            "D": torch.optim.Adam(d_params, lr=c.lr, betas=betas, fused=True),
        }
        self.pool_fake_b = ImagePool(c.pool_size)
        self.pool_fake_a = ImagePool(c.pool_size)
        self.generator = torch.Generator()  # image-pool draws; reseeded by the trainer

    @property
    def translator(self) -> ResnetGenerator:
        return self.netG_A

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def generator_losses(
        self, real_a: torch.Tensor, real_b: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """All generator loss terms (keys ``G_A, G_B, cycle_A, cycle_B, idt_A, idt_B``) and the fakes."""
        c = self.config
        n = real_a.shape[0]
        use_idt = c.lambda_identity > 0
        with autocast(self.precision, real_a.device):
            out_a = self.netG_A(torch.cat([real_a, real_b], 0) if use_idt else real_a).float()
            out_b = self.netG_B(torch.cat([real_b, real_a], 0) if use_idt else real_b).float()
            fake_b, fake_a = out_a[:n], out_b[:n]
            rec_a = self.netG_B(fake_b).float()
            rec_b = self.netG_A(fake_a).float()
            pred_fake_b = self.netD_A(fake_b).float()
            pred_fake_a = self.netD_B(fake_a).float()
        losses = {
            "G_A": generator_loss(pred_fake_b, c.gan_mode),
            "G_B": generator_loss(pred_fake_a, c.gan_mode),
            "cycle_A": c.lambda_cycle * l1(rec_a, real_a),
            "cycle_B": c.lambda_cycle * l1(rec_b, real_b),
        }
        if use_idt:
            losses["idt_A"] = c.lambda_cycle * c.lambda_identity * l1(out_a[n:], real_b)
            losses["idt_B"] = c.lambda_cycle * c.lambda_identity * l1(out_b[n:], real_a)
        return losses, fake_b, fake_a

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, step: int = 0) -> dict[str, float]:
        """One iteration: G step (D frozen), then D step on pooled fakes; returns the losses as floats.

        A NaN/inf G or D loss raises :class:`~ssl_shared.errors.NonFiniteLossError` (naming ``step``)
        before the optimizer step it would spoil.
        """
        c = self.config
        set_requires_grad(self.netD_A, False)
        set_requires_grad(self.netD_B, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        losses, fake_b, fake_a = self.generator_losses(real_a, real_b)
        loss_g = torch.stack(list(losses.values())).sum()
        raise_if_non_finite("G", loss_g.detach(), step)
        loss_g.backward()
        self.optimizers["G"].step()

        set_requires_grad(self.netD_A, True)
        set_requires_grad(self.netD_B, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        n = real_a.shape[0]
        pooled_b = self.pool_fake_b.query(fake_b, self.generator)
        pooled_a = self.pool_fake_a.query(fake_a, self.generator)
        with autocast(self.precision, real_a.device):
            pred_a = self.netD_A(torch.cat([real_b, pooled_b], 0)).float()
            pred_b = self.netD_B(torch.cat([real_a, pooled_a], 0)).float()
        loss_d_a = discriminator_loss(pred_a[:n], pred_a[n:], c.gan_mode)
        loss_d_b = discriminator_loss(pred_b[:n], pred_b[n:], c.gan_mode)
        raise_if_non_finite("D", (loss_d_a + loss_d_b).detach(), step)
        (loss_d_a + loss_d_b).backward()
        self.optimizers["D"].step()
        out = {k: float(v.detach()) for k, v in losses.items()}
        out.update(G=float(loss_g.detach()), D_A=float(loss_d_a.detach()), D_B=float(loss_d_b.detach()))
        return out

    def extra_state(self) -> dict:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "pool_fake_b": self.pool_fake_b.state_dict(),
            "pool_fake_a": self.pool_fake_a.state_dict(),
        }

    def load_extra_state(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.pool_fake_b.load_state_dict(state["pool_fake_b"])
        self.pool_fake_a.load_state_dict(state["pool_fake_a"])
