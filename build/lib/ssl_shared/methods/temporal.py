"""Shared pieces of the methods on frame sequences: reading ``batch["frames"]`` and encoding frames."""

from __future__ import annotations

from torch import Tensor, nn

from ssl_shared.methods.base import as_unit_float, check_batch_keys


def get_frames(name: str, batch: dict[str, Tensor], min_frames: int, key: str = "frames") -> Tensor:
    """``batch[key]`` as float ``(B, T, C, H, W)`` in ``[0, 1]``, with ``T >= min_frames``."""
    check_batch_keys(name, batch, {key})
    frames = batch[key]
    if frames.ndim != 5:
        raise ValueError(f"method {name!r}: batch[{key!r}] must be (B, T, C, H, W), got {tuple(frames.shape)}")
    if frames.shape[1] < min_frames:
        raise ValueError(f"method {name!r} needs sequences of at least {min_frames} frames, got T={frames.shape[1]}")
    return as_unit_float(frames)


def check_num_frames(name: str, num_frames: int | None, min_frames: int) -> None:
    if num_frames is not None and num_frames < min_frames:
        raise ValueError(f"method {name!r} needs sequences of at least {min_frames} frames, got {num_frames}")


def pick_frames(frames: Tensor, index: Tensor) -> Tensor:
    """``out[b, k] = frames[b, index[b, k]]``: frames ``(B, T, C, H, W)``, index ``(B, K)`` -> ``(B, K, C, H, W)``."""
    b, k = index.shape
    return frames[index.new_tensor(range(b)).view(b, 1).expand(b, k), index]


def ordered_classifier(feature_dim: int, num_frames: int, hidden_dim: int, num_classes: int = 2) -> nn.Module:
    """MLP on the concatenated (ordered) features of ``num_frames`` frames."""
    return nn.Sequential(nn.Linear(num_frames * feature_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_classes))
