"""Offline datasets for SSL training and probing (nothing is downloaded).

Every dataset returns dict items: ``{"image": float (C, H, W) in [0, 1], "label": ..., "index": int}``
plus ``"frames"`` (T, C, H, W) for sequence datasets.
"""

from ssl_shared.data.digits import DigitsDataset
from ssl_shared.data.dmc_frames import DMCFramesDataset, generate_dmc_frames
from ssl_shared.data.folder import ImageFolderDataset, TorchvisionDataset, build_dataset

__all__ = [
    "DMCFramesDataset",
    "DigitsDataset",
    "ImageFolderDataset",
    "TorchvisionDataset",
    "build_dataset",
    "generate_dmc_frames",
]
