"""CUT and FastCUT (Park, Efros, Zhang & Zhu, "Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020).

One generator ``G: X -> Y``, a PatchGAN ``D`` on Y, and PatchNCE between the input and output patches::

    L_D   = 0.5 * (GAN(D(y), real) + GAN(D(G(x).detach()), fake))
    L_G   = lambda_GAN * GAN(D(G(x)), real) + NCE_term
    NCE(a, b) = lambda_NCE * mean over layers l of PatchNCE(H_l(G_enc^l(b)), H_l(G_enc^l(a)).detach())
    CUT:      NCE_term = 0.5 * (NCE(x, G(x)) + NCE(y, G(y)))      (identity PatchNCE on Y, lambda_NCE 1)
    FastCUT:  NCE_term = NCE(x, G(x))                             (lambda_NCE 10, flip equivariance)

(the CUT code averages the X and Y terms: effective weight 0.5 each; we do the same). Per iteration:
forward ``G``, one ``D`` step, then one step of ``G`` and the MLP heads ``H`` with ``D`` frozen; three Adam
optimisers (lr 2e-4, betas 0.5/0.999). FastCUT's flip equivariance: with probability 1/2 the input batch is
flipped horizontally before ``G``; the output's query features are flipped back before being matched to
the unflipped input's keys.

Differences from the CUT code, all without changing the maths:

- The key features of ``x`` (and ``y``) are the encoder activations of the very pass that produced
  ``G(x)`` (``G`` has not been updated in between and keys are detached), instead of a second encoder
  pass. When FastCUT flipped the batch, keys need the unflipped input, so one gradient-free encoder pass
  is run instead.
- FastCUT reads the flipped output's queries at mirrored locations instead of flipping the feature maps
  back (the same numbers, without a copy of every feature map and its backward).
- Queries and keys of both groups (x and y) are gathered in one indexing per layer over the whole batch,
  each group with its own locations as in the CUT code's two calls; the backward then writes one
  gradient buffer per layer instead of one per group and slice.
- The query encoder passes for ``G(x)`` and ``G(y)`` run as one batch, and ``D`` sees real and detached
  fake images in one batch (instance norm is per image, so results are unchanged).
- PatchNCE comes from :mod:`ssl_shared.losses`: the positive sits on the diagonal of one cross-entropy;
  the CUT code adds a ``-10 / tau`` logit for the positive's duplicate (``exp(-10/0.07) ~ 1e-62``), so its
  value at initialisation is ln(257) instead of our ln(256) for 256 patches.
- The blur-pool / anti-aliased up-sampling run as average pools / bilinear interpolation (same operator,
  see :mod:`cut_translation.networks`).

Precision: with ``precision="bf16"`` the forward passes of ``G``, ``D`` and the MLP heads run under bf16
autocast (:mod:`ssl_shared.precision`); the generated images, the discriminator's logits and the projected
patch features are cast to fp32 before any loss, so every loss, weight, gradient and Adam state is fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cut_translation.models.config import (
    TranslationConfig,
    check_greater_than_zero,
    check_non_negative,
)
from cut_translation.models.gan_loss import discriminator_loss, generator_loss
from cut_translation.models.patch_sampler import PatchMLPHeads, gather_patches, mirror_locations, sample_locations
from cut_translation.networks import PatchDiscriminator, ResnetGenerator, check_nce_layers, init_weights
from ssl_shared.cli import check_choice, check_positive
from ssl_shared.errors import NonFiniteLossError, UserError
from ssl_shared.losses import PATCH_NEGATIVE_MODES, patch_nce_loss
from ssl_shared.precision import RESOLVED_PRECISIONS, autocast


@dataclass
class CUTConfig(TranslationConfig):
    """CUT defaults (Park et al. 2020, arXiv:2007.15651; the CUT code's ``cut_model.py`` / ``train_options.py``);
    the networks, GAN loss, Adam, init (xavier, gain 0.02) and epoch fields come from :class:`TranslationConfig`."""

    lambda_gan: float = 1.0  # weight of the generator's GAN loss
    lambda_nce: float = 1.0  # weight of the PatchNCE loss
    nce_idt: bool = True  # identity PatchNCE on y -> G(y)
    flip_equivariance: bool = False  # FastCUT: flip the input batch with p = 1/2 and match flipped features
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)  # generator module indices whose features PatchNCE compares
    num_patches: int = 256  # patch locations per layer and image
    nce_temperature: float = 0.07  # PatchNCE softmax temperature
    nce_negatives: str = field(
        default="image",
        metadata={
            "help": "negatives of a patch: other patches of its image, or of the whole batch (the CUT code's "
            "--nce_includes_all_negatives_from_minibatch)",
            "choices": PATCH_NEGATIVE_MODES,
        },
    )
    mlp_dim: int = 256  # width of the PatchNCE projection heads

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nce_layers = tuple(self.nce_layers)
        check_nce_layers(self.nce_layers, self.generator.n_blocks)
        check_choice("nce_negatives", self.nce_negatives, PATCH_NEGATIVE_MODES)
        for name in ("lambda_gan", "lambda_nce"):
            check_non_negative(name, getattr(self, name))
        if self.lambda_nce == 0 and self.nce_idt:
            raise UserError("--lambda-nce 0 with --nce-idt: the identity PatchNCE term needs --lambda-nce > 0")
        check_positive("num_patches", self.num_patches)
        check_positive("mlp_dim", self.mlp_dim)
        check_greater_than_zero("nce_temperature", self.nce_temperature)


#: The FastCUT preset (cut_model.py L47-50): lambda_NCE 10, no identity term, flip equivariance, 150 + 50 epochs.
FASTCUT_PRESET = {
    "lambda_nce": 10.0,
    "nce_idt": False,
    "flip_equivariance": True,
    "n_epochs": 150,
    "n_epochs_decay": 50,
}


def cut_config(**overrides) -> CUTConfig:
    """The CUT preset: lambda_NCE 1, identity PatchNCE, 200 + 200 epochs."""
    return CUTConfig(**overrides)


def fastcut_config(**overrides) -> CUTConfig:
    """The FastCUT preset (:data:`FASTCUT_PRESET`) with ``overrides`` on top."""
    return CUTConfig(**{**FASTCUT_PRESET, **overrides})


def raise_if_non_finite(name: str, loss: torch.Tensor, step: int) -> None:
    """:class:`~ssl_shared.errors.NonFiniteLossError` if ``loss`` is NaN or inf (call it before the optimizer step)."""
    if not bool(torch.isfinite(loss)):
        raise NonFiniteLossError(name, float(loss), step)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def check_model_precision(precision: str) -> None:
    """``ValueError`` unless ``precision`` is a resolved precision (``ssl_shared.precision.RESOLVED_PRECISIONS``)."""
    if precision not in RESOLVED_PRECISIONS:
        raise ValueError(f"a model trains in a resolved precision {RESOLVED_PRECISIONS}, got {precision!r}")


def make_adam(module: nn.Module, lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, beta2), fused=True)


class CUTModel(nn.Module):
    """CUT / FastCUT: ``G`` (``self.netG``), ``D`` (``self.netD``), MLP heads ``H`` (``self.netF``) and their optimisers."""

    def __init__(self, config: CUTConfig | None = None, seed: int | None = None, precision: str = "fp32") -> None:
        """``seed`` fixes every initial weight (None: torch's global generator); ``precision``: ``fp32`` or
        ``bf16`` (autocast of the network forward passes, see the module docstring)."""
        super().__init__()
        check_model_precision(precision)
        self.precision = precision
        self.config = config or CUTConfig()
        c = self.config
        self.netG = ResnetGenerator(c.generator)
        self.netG.check_nce_layers(c.nce_layers)
        self.netD = PatchDiscriminator(c.discriminator)
        self.netF = PatchMLPHeads(self.netG.feature_channels(c.nce_layers), c.mlp_dim)
        init_generator = torch.Generator().manual_seed(seed) if seed is not None else None
        for net in (self.netG, self.netD, self.netF):
            init_weights(net, c.init_type, c.init_gain, generator=init_generator)
        self.optimizers = {
            "G": make_adam(self.netG, c.lr, c.beta1, c.beta2),
            "D": make_adam(self.netD, c.lr, c.beta1, c.beta2),
        }
        if c.lambda_nce > 0:
            self.optimizers["F"] = make_adam(self.netF, c.lr, c.beta1, c.beta2)
        self.generator = torch.Generator()  # patch locations and the FastCUT flip; reseeded by the trainer

    @property
    def translator(self) -> ResnetGenerator:
        """The X -> Y generator used for translation and evaluation."""
        return self.netG

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    def nce_loss(self, query_feats: list[torch.Tensor], key_feats: list[torch.Tensor], flipped: bool) -> torch.Tensor:
        """``lambda_NCE * mean_l PatchNCE`` for one group (x -> G(x) or y -> G(y)); keys carry no gradient."""
        return self.nce_losses(query_feats, key_feats, flipped, groups=1)[0]

    def nce_losses(
        self, query_feats: list[torch.Tensor], key_feats: list[torch.Tensor], flipped: bool, groups: int
    ) -> list[torch.Tensor]:
        """``lambda_NCE * mean_l PatchNCE`` for each of ``groups`` equal groups of the batch (CUT: x, then y).

        Each group draws its own locations per layer, in the order of the CUT code's separate calls
        (all layers of group 1, then group 2). ``flipped``: the queries come from ``G(flip(x))`` and
        are read at mirrored locations (the same as flipping them back first). Queries and keys are
        gathered once per layer for the whole batch.
        """
        c = self.config
        batch = key_feats[0].shape[0]
        if groups < 1 or batch % groups:
            raise ValueError(f"a batch of {batch} images can't be split into {groups} equal groups")
        per_group = batch // groups
        drawn = [
            [sample_locations(f.shape[2], f.shape[3], c.num_patches, f.device, self.generator) for f in key_feats]
            for _ in range(groups)
        ]
        # per layer: (B, N) locations, group g's draw repeated for its images
        key_ids = [torch.stack(per_layer).repeat_interleave(per_group, 0) for per_layer in zip(*drawn)]
        query_ids = [mirror_locations(i, f.shape[3]) if flipped else i for i, f in zip(key_ids, query_feats)]
        with autocast(self.precision, key_feats[0].device):  # the heads return fp32 unit vectors
            with torch.no_grad():
                keys = self.netF([gather_patches(f, i) for f, i in zip(key_feats, key_ids)])
            queries = self.netF([gather_patches(f, i) for f, i in zip(query_feats, query_ids)])
        losses = []
        for g in range(groups):
            rows = slice(g * per_group, (g + 1) * per_group)
            per_layer = [
                patch_nce_loss(q[rows], k[rows], temperature=c.nce_temperature, negatives=c.nce_negatives)
                for q, k in zip(queries, keys)
            ]
            losses.append(c.lambda_nce * torch.stack(per_layer).mean())
        return losses

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, step: int = 0) -> dict[str, float]:
        """One iteration (forward G, D step, G+F step); returns the losses as floats.

        A NaN/inf D or G loss raises :class:`~ssl_shared.errors.NonFiniteLossError` (naming ``step``)
        before the optimizer step it would spoil.
        """
        c = self.config
        n = real_a.shape[0]
        use_nce = c.lambda_nce > 0
        real = torch.cat([real_a, real_b], 0) if c.nce_idt else real_a
        flipped = c.flip_equivariance and bool(torch.rand((), generator=self.generator).item() < 0.5)
        g_input = torch.flip(real, dims=[3]) if flipped else real
        layers = c.nce_layers
        device = real_a.device
        with autocast(self.precision, device):
            if use_nce and not flipped:
                fake, real_feats = self.netG.forward_with_features(g_input, layers)  # keys: read without grad
            else:
                fake = self.netG(g_input)
                real_feats = None
            if use_nce and flipped:
                with torch.no_grad():
                    real_feats = self.netG.encode(real, layers)
        fake = fake.float()
        fake_b = fake[:n]

        # D step (D sees real y and detached G(x) in one batch).
        set_requires_grad(self.netD, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with autocast(self.precision, device):
            pred = self.netD(torch.cat([fake_b.detach(), real_b], 0)).float()
        loss_d = discriminator_loss(pred[n:], pred[:n], c.gan_mode)
        raise_if_non_finite("D", loss_d.detach(), step)
        loss_d.backward()
        self.optimizers["D"].step()

        # G (+ F) step with D frozen.
        set_requires_grad(self.netD, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        if use_nce:
            self.optimizers["F"].zero_grad(set_to_none=True)
        loss_g_gan = None
        if c.lambda_gan > 0:
            with autocast(self.precision, device):
                pred_fake = self.netD(fake_b).float()
            loss_g_gan = c.lambda_gan * generator_loss(pred_fake, c.gan_mode)
        out = {"D": loss_d.detach()}
        loss_g = loss_g_gan if loss_g_gan is not None else torch.zeros((), device=real_a.device)
        if loss_g_gan is not None:
            out["G_GAN"] = loss_g_gan.detach()
        if use_nce:
            with autocast(self.precision, device):
                query_feats = self.netG.encode(fake, layers)  # G(x) and, for CUT, G(y) in one batch
            nce = self.nce_losses(query_feats, real_feats, flipped, groups=2 if c.nce_idt else 1)
            out["NCE"] = nce[0].detach()
            if c.nce_idt:
                out["NCE_Y"] = nce[1].detach()
            loss_g = loss_g + torch.stack(nce).mean()
        raise_if_non_finite("G", loss_g.detach(), step)
        loss_g.backward()
        self.optimizers["G"].step()
        if use_nce:
            self.optimizers["F"].step()
        set_requires_grad(self.netD, True)
        out["G"] = loss_g.detach()
        return {k: float(v) for k, v in out.items()}

    def extra_state(self) -> dict:
        """Checkpoint state besides ``state_dict()`` (optimisers)."""
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()}}

    def load_extra_state(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
