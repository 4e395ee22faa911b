"""Stage 2 of a transfer run: train each translator (target look -> training look) and load it as a frame translator.

Each model (``cut`` by default; ``fastcut``, ``cyclegan``) is an ordinary ``scv-cut-train`` run in
``translators/<model>/`` on the frame set, driven through :class:`cut_translation.trainer.Trainer`: its own
``config.json``, ``losses.csv``, ``tb/``, ``samples/`` and checkpoints. A finished run (``summary.json``
at the requested iterations) is skipped, a stopped one resumes from its checkpoint exactly, one that
stopped before its first checkpoint is started again.

Training crops are the render size rounded down to a multiple of 4 (the generator's), from frames
resized to ``load_size`` (default: render size x 286 / 256, the CUT code's ratio of ``load_size`` to
``crop_size``). At test time :class:`PaddedGenerator` pads any frame to the generator's multiple of 4
and crops back, so frames are translated at their own size.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cut_translation.checkpoint import checkpoint_store, load_checkpoint
from cut_translation.cli import model_overrides, pad_for_generator
from cut_translation.models import make_config
from cut_translation.trainer import TrainConfig, Trainer
from ssl_shared.errors import UserError

CUT_LOAD_RATIO = 286 / 256  # CUT base_options.py: load_size 286, crop_size 256


@dataclass(frozen=True)
class TranslatorPlan:
    """How one translator is trained."""

    model: str
    data: Path
    out: Path
    iters: int
    batch_size: int
    crop_size: int
    load_size: int
    seed: int
    options: Mapping[str, Any]  # model options (flat, as scv-cut-train flags: ngf, n_blocks, lambda_nce, ...)


def crop_and_load_size(render_size: int, load_size: int) -> tuple[int, int]:
    """Training crop (render size down to a multiple of 4) and resize target (``load_size`` or the CUT ratio)."""
    crop = render_size - render_size % 4
    if crop < 8:
        raise UserError(f"render size {render_size} px is too small for a translator; allowed: at least 8 px")
    load = load_size or max(crop, round(render_size * CUT_LOAD_RATIO))
    if load < crop:
        raise UserError(f"--load-size {load_size}: smaller than the training crop {crop}; allowed: at least {crop}")
    return crop, load


def model_config(plan: TranslatorPlan) -> Any:
    """The model config: the paper preset of ``plan.model`` with ``plan.options`` on top."""
    try:
        return make_config(plan.model, **model_overrides(dict(plan.options), plan.model))
    except (UserError, TypeError) as err:
        raise UserError(f"--translator-options: {err}") from err


def train_config(plan: TranslatorPlan, device: str, threads: int | None) -> TrainConfig:
    every = max(1, plan.iters // 10)
    return TrainConfig(
        model=plan.model,
        data=str(plan.data),
        out=str(plan.out),
        iters=plan.iters,
        batch_size=plan.batch_size,
        load_size=plan.load_size,
        crop_size=plan.crop_size,
        seed=plan.seed,
        device=device,
        threads=threads,
        log_every=max(1, min(10, plan.iters)),
        sample_every=every,
        checkpoint_every=every,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def translator_complete(plan: TranslatorPlan) -> bool:
    summary = _read_json(plan.out / "summary.json")
    return bool(summary) and summary.get("iterations") == plan.iters and checkpoint_store(plan.out).latest() is not None


def train_translator(plan: TranslatorPlan, device: str, threads: int | None) -> dict[str, Any]:
    """Train (or resume, or skip) the translator of ``plan``; returns its ``summary.json``."""
    if translator_complete(plan):
        return _read_json(plan.out / "summary.json") or {}
    resume = checkpoint_store(plan.out).latest() is not None
    if not resume and plan.out.exists():
        shutil.rmtree(plan.out)  # stopped before its first checkpoint: nothing to resume
    trainer = Trainer(train_config(plan, device, threads), model_config(plan), resume=resume)
    return trainer.fit()


class PaddedGenerator(nn.Module):
    """A generator that accepts any frame size: pad to its multiple of 4 (min 8 px), translate, crop back."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_for_generator(x)
        return self.generator(padded)[..., :h, :w]


def load_generator(run: Path, device: str | torch.device) -> tuple[dict[str, Any], nn.Module]:
    """``(checkpoint meta, PaddedGenerator)`` of the translator run ``run``, in eval mode on ``device``."""
    meta, model = load_checkpoint(run, device)
    return meta, PaddedGenerator(model.translator).to(device).eval()
