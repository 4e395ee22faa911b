"""Translation models by name: ``cut``, ``fastcut`` (:mod:`.cut`) and ``cyclegan`` (:mod:`.cyclegan`).

Every model exposes ``train_step(real_a, real_b) -> dict[str, float]``, ``translator`` (the X -> Y
generator), ``set_lr(lr)``, ``extra_state()`` / ``load_extra_state()`` (optimisers, pools) and ``generator``
(its ``torch.Generator`` for patch locations, flips and pool draws).
"""

from __future__ import annotations

from cut_translation.models.cut import CUTConfig, CUTModel, cut_config, fastcut_config
from cut_translation.models.cyclegan import CycleGANConfig, CycleGANModel

MODEL_NAMES = ("cut", "fastcut", "cyclegan")


def make_config(name: str, **overrides) -> CUTConfig | CycleGANConfig:
    """The paper preset of model ``name`` with keyword overrides (nested configs may be dicts)."""
    if name == "cut":
        return cut_config(**overrides)
    if name == "fastcut":
        return fastcut_config(**overrides)
    if name == "cyclegan":
        return CycleGANConfig(**overrides)
    raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")


def build_model(name: str, config: CUTConfig | CycleGANConfig | None = None) -> CUTModel | CycleGANModel:
    """Instantiate model ``name`` from ``config`` (default: its paper preset)."""
    config = config if config is not None else make_config(name)
    if name in ("cut", "fastcut"):
        if not isinstance(config, CUTConfig):
            raise ValueError(f"model {name!r} needs a CUTConfig, got {type(config).__name__}")
        return CUTModel(config)
    if name == "cyclegan":
        if not isinstance(config, CycleGANConfig):
            raise ValueError(f"model 'cyclegan' needs a CycleGANConfig, got {type(config).__name__}")
        return CycleGANModel(config)
    raise ValueError(f"model must be one of {MODEL_NAMES}, got {name!r}")


__all__ = [
    "MODEL_NAMES",
    "CUTConfig",
    "CUTModel",
    "CycleGANConfig",
    "CycleGANModel",
    "build_model",
    "cut_config",
    "fastcut_config",
    "make_config",
]
