"""scikit-learn's bundled handwritten digits (1,797 images of 8x8, 10 classes), upsampled.

The images ship inside scikit-learn, so this dataset needs no download. A fixed, stratified 80/20
split (seeded) gives ``train`` and ``test``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


def _split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


class DigitsDataset(Dataset):
    """Digits as ``(channels, image_size, image_size)`` floats in [0, 1] with integer labels.

    Args:
        split: ``"train"`` (80%), ``"test"`` (20%) or ``"all"``.
        image_size: side after bilinear upsampling from 8 px (>= 8).
        channels: 1, or 3 (grey replicated, so RGB methods such as colour jitter apply).
        seed: seed of the stratified split.
    """

    def __init__(self, split: str = "train", image_size: int = 32, channels: int = 3, seed: int = 0) -> None:
        from sklearn.datasets import load_digits

        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        digits = load_digits()
        images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
        labels = digits.target.astype(np.int64)
        if split != "all":
            train_idx, test_idx = _split_indices(labels, 0.2, seed)
            keep = train_idx if split == "train" else test_idx
            images, labels = images[keep], labels[keep]
        if image_size != 8:
            images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
        self.images = images.clamp(0, 1).expand(-1, channels, -1, -1).contiguous()
        self.labels = torch.from_numpy(labels)
        self.num_classes = 10

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "index": i}
