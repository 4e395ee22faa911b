"""Images the user already has on disk: a folder of images, or a torchvision dataset by path
(CIFAR-10, STL-10), never downloaded. ``build_dataset`` turns a ``--data`` string into a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class ImageFolderDataset(Dataset):
    """Every image under ``root`` (recursively), resized to ``image_size``; the label is the index of
    the image's parent folder among the sorted folder names (``-1`` when all images share ``root``)."""

    def __init__(self, root: str | Path, image_size: int = 64) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} does not exist")
        self.paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {root}")
        classes = sorted({p.parent for p in self.paths})
        self.class_index = {c: i for i, c in enumerate(classes)}
        self.flat = classes == [root]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        try:
            img = Image.open(path).convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
        except OSError as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
        image = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        label = -1 if self.flat else self.class_index[path.parent]
        return {"image": image, "label": label, "index": i}


class TorchvisionDataset(Dataset):
    """``cifar10`` or ``stl10`` from a local copy (``download=False``)."""

    def __init__(self, name: str, root: str | Path, split: str = "train") -> None:
        import torchvision

        if name == "cifar10":
            self.ds = torchvision.datasets.CIFAR10(str(root), train=split == "train", download=False)
        elif name == "stl10":
            self.ds = torchvision.datasets.STL10(
                str(root), split="train" if split == "train" else "test", download=False
            )
        else:
            raise ValueError(f"unknown torchvision dataset {name!r}; allowed: 'cifar10', 'stl10'")

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        img, label = self.ds[i]
        image = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        return {"image": image, "label": int(label), "index": i}


def build_dataset(spec: str, split: str = "train", image_size: int = 32, sequence_length: int = 1) -> Dataset:
    """Parse a ``--data`` string:

    - ``digits``: scikit-learn digits upsampled to ``image_size``;
    - ``dmc:TASK`` or ``dmc:TASK:PATH.npz``: DeepMind Control frames with states (generated and cached
      under ``data/`` on first use);
    - ``folder:PATH``: an image folder; ``cifar10:PATH`` / ``stl10:PATH``: a local torchvision copy.
    """
    from ssl_shared.data.digits import DigitsDataset
    from ssl_shared.data.dmc_frames import DMCFramesDataset, generate_dmc_frames

    kind, _, rest = spec.partition(":")
    if kind == "digits":
        return DigitsDataset(split=split, image_size=image_size)
    if kind == "dmc":
        task, _, path = rest.partition(":")
        task = task or "cartpole-swingup"
        path = path or f"data/dmc_frames/{task}_{image_size}px.npz"
        generate_dmc_frames(path, task=task, image_size=image_size)
        return DMCFramesDataset(path, split=split, sequence_length=sequence_length)
    if kind == "folder":
        return ImageFolderDataset(rest, image_size=image_size)
    if kind in ("cifar10", "stl10"):
        return TorchvisionDataset(kind, rest, split=split)
    raise ValueError(
        f"unknown dataset spec {spec!r}; use digits, dmc:TASK[:PATH], folder:PATH, cifar10:PATH or stl10:PATH"
    )
