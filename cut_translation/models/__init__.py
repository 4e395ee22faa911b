"""Translation models by name: ``cut``, ``fastcut`` (:mod:`.cut`) and ``cyclegan`` (:mod:`.cyclegan`).

:data:`MODELS` is the one registry: each name has its config class, its model class and its preset (the
config values that differ from the class defaults). Which ``scv-cut-train`` options apply to a model follows
from its config class: a flag belongs to the model whose config has that field.

Every model exposes ``train_step(real_a, real_b, step) -> dict[str, float]``, ``translator`` (the X -> Y
generator), ``set_lr(lr)``, ``extra_state()`` / ``load_extra_state()`` (optimisers, pools) and ``generator``
(its ``torch.Generator`` for patch locations, flips and pool draws); its constructor takes ``(config, seed,
precision)``, where ``seed`` fixes the initial weights and ``precision`` (``fp32`` or ``bf16``) sets the autocast
of its training forward passes (losses, weights and optimiser states stay fp32).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cut_translation.models.config import TranslationConfig
from cut_translation.models.cut import FASTCUT_PRESET, CUTConfig, CUTModel, cut_config, fastcut_config
from cut_translation.models.cyclegan import CycleGANConfig, CycleGANModel
from ssl_shared.cli import check_choice


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its config class, its module class and the preset applied on top of the defaults."""

    config_class: type[TranslationConfig]
    model_class: type[nn.Module]
    preset: Mapping[str, Any] = field(default_factory=dict)
    citation: str = ""


MODELS: dict[str, ModelSpec] = {
    "cut": ModelSpec(CUTConfig, CUTModel, {}, "Park et al. 2020, arXiv:2007.15651"),
    "fastcut": ModelSpec(CUTConfig, CUTModel, FASTCUT_PRESET, "Park et al. 2020, arXiv:2007.15651"),
    "cyclegan": ModelSpec(CycleGANConfig, CycleGANModel, {}, "Zhu et al. 2017, arXiv:1703.10593"),
}
MODEL_NAMES = tuple(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; ``UserError`` naming ``--model`` and the known names otherwise."""
    check_choice("model", name, MODEL_NAMES)
    return MODELS[name]


def make_config(name: str, **overrides) -> TranslationConfig:
    """The paper preset of model ``name`` with keyword overrides (nested configs may be dicts)."""
    spec = model_spec(name)
    return spec.config_class(**{**spec.preset, **overrides})


def build_model(
    name: str, config: TranslationConfig | None = None, seed: int | None = None, precision: str = "fp32"
) -> nn.Module:
    """Instantiate model ``name`` from ``config`` (default: its paper preset); ``seed`` fixes the initial weights;
    ``precision`` (``fp32`` or ``bf16``) is the precision of its training forward passes."""
    spec = model_spec(name)
    config = config if config is not None else make_config(name)
    if not isinstance(config, spec.config_class):
        raise ValueError(f"model {name!r} needs a {spec.config_class.__name__}, got {type(config).__name__}")
    return spec.model_class(config, seed=seed, precision=precision)


__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "CUTConfig",
    "CUTModel",
    "CycleGANConfig",
    "CycleGANModel",
    "ModelSpec",
    "build_model",
    "cut_config",
    "fastcut_config",
    "make_config",
    "model_spec",
]
