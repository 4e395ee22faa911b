"""Unpaired image datasets in the CycleGAN/CUT folder layout.

Layout (Zhu et al. 2017; Park et al. 2020, ``dataset_mode unaligned``)::

    ROOT/trainA/*.png|jpg|jpeg|bmp    domain A, training images
    ROOT/trainB/...                   domain B, training images
    ROOT/testA/...   ROOT/testB/...   the same for the test phase

``UnpairedImageDataset`` pairs every A image with a B image drawn at random (unaligned), as the
reference CUT code does, and applies its default ``resize_and_crop`` preprocessing:

* train phase: resize to ``load_size x load_size`` (bicubic) -> random ``crop_size`` crop -> random
  horizontal flip -> values in [-1, 1];
* any other phase: resize to ``load_size x load_size`` -> centre ``crop_size`` crop, no flip, serial
  pairing (the reference ``test.py`` forces ``no_flip`` and ``serial_batches`` and sets
  ``load_size = crop_size``, which is also our default for non-train phases).

``PairedTestDataset`` reads a test split whose A and B images with identical file names are
ground-truth pairs (the ``dmc-restyle`` benchmark).

Every problem with the data (missing folder, empty domain, unreadable or truncated image, crop larger
than load size) is raised by ``validate_dataset`` when a dataset is built, before any training step, as
a one-line :class:`~ssl_shared.errors.UserError` naming the folder, file or option.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ssl_shared.cli import check_positive
from ssl_shared.errors import UserError

IMG_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")

# Reference defaults (taesungp/contrastive-unpaired-translation, options/base_options.py).
DEFAULT_LOAD_SIZE = 286
DEFAULT_CROP_SIZE = 256
# The generator downsamples twice by 2, so square inputs must be a multiple of 4 (the reference rounds
# silently to a multiple of 4; we refuse instead).
SIZE_MULTIPLE = 4


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (extensions in IMG_EXTENSIONS, any case), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode an image as 8-bit RGB (grayscale, palette, RGBA, 16-bit all converted).

    Raises ``UserError`` naming the file when it cannot be read or is truncated.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(
            f"cannot read image {path}: {err}; allowed: a complete {'/'.join(IMG_EXTENSIONS)} image"
        ) from err


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img.copy()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on black so that transparent pixels do not keep arbitrary colour values.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 / 65535.0 if arr.max() > 255 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (3, H, W) with values (v / 255 - 0.5) / 0.5 in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def check_sizes(load_size: int, crop_size: int) -> None:
    """``UserError`` unless 0 < crop_size <= load_size and crop_size is a multiple of 4."""
    for name, value in (("load_size", load_size), ("crop_size", crop_size)):
        check_positive(name, value)
    if crop_size > load_size:
        raise UserError(
            f"--crop-size {crop_size} is larger than --load-size {load_size}: images are resized to "
            f"load size x load size before cropping, so the crop must be <= the load size"
        )
    if crop_size % SIZE_MULTIPLE:
        raise UserError(
            f"--crop-size {crop_size} is not a multiple of {SIZE_MULTIPLE} (the generator downsamples "
            f"twice by 2); use e.g. {crop_size - crop_size % SIZE_MULTIPLE or SIZE_MULTIPLE}"
        )


def validate_domain(folder: Path, check_images: bool = True, max_size: int | None = None) -> list[Path]:
    """List a domain folder (first ``max_size`` images) and, if ``check_images``, decode each once.

    Raises ``UserError`` (missing folder, no images, unreadable/truncated image).
    """
    if max_size is not None:
        check_positive("max_dataset_size", max_size)
    paths = list_images(folder)[:max_size]
    if not paths:
        raise UserError(f"domain folder {folder} contains no images (allowed extensions: {', '.join(IMG_EXTENSIONS)})")
    if check_images:
        for path in paths:
            load_rgb(path)
    return paths


def validate_dataset(
    root: str | Path,
    phase: str,
    load_size: int,
    crop_size: int,
    check_images: bool = True,
    max_size: int | None = None,
) -> tuple[list[Path], list[Path]]:
    """Check ``ROOT/{phase}A`` and ``ROOT/{phase}B`` and return their sorted image paths.

    Checked, in this order: sizes (crop <= load, multiple of 4), folder existence, non-empty domains,
    and (``check_images=True``) that every image opens and decodes completely. ``max_size`` keeps the
    first images (sorted by name) of each domain.
    """
    check_sizes(load_size, crop_size)
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset root not found: {root} (expected a folder with {phase}A/ and {phase}B/)")
    folders = [root / f"{phase}A", root / f"{phase}B"]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise UserError(
            f"dataset folder(s) missing: {', '.join(missing)} (expected layout ROOT/{phase}A and ROOT/{phase}B)"
        )
    paths_a = validate_domain(folders[0], check_images, max_size)
    paths_b = validate_domain(folders[1], check_images, max_size)
    return paths_a, paths_b


class UnpairedImageDataset(Dataset):
    """Unaligned A/B dataset: item i is A[i % |A|] with a random B image; ``len = max(|A|, |B|)``.

    Args:
        root: dataset root holding ``{phase}A`` and ``{phase}B``.
        phase: split name ("train", "test", "val", ...). Only "train" randomises crop, flip and pairing.
        load_size: images are resized to ``load_size x load_size`` first. Default: 286 for train (the
            reference default), ``crop_size`` for other phases (the reference test protocol).
        crop_size: side of the square crop (random in train, centred otherwise); multiple of 4.
        flip: random horizontal flip with p = 0.5. Default: True in train, False otherwise.
        serial: pair A[i] with B[i % |B|] instead of a random B. Default: False in train, True otherwise.
        seed: seed of the dataset's own random generator (crops, flips, B draws); None = from OS entropy.
            DataLoader workers reseed it from the loader's seed (see ``make_dataloader``).
        max_size: keep at most this many (sorted) images per domain.
        check_images: decode every image once at construction (default). False checks lazily (at load).
    """

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        load_size: int | None = None,
        crop_size: int = DEFAULT_CROP_SIZE,
        flip: bool | None = None,
        serial: bool | None = None,
        seed: int | None = None,
        max_size: int | None = None,
        check_images: bool = True,
    ) -> None:
        train = phase == "train"
        if load_size is None:
            load_size = DEFAULT_LOAD_SIZE if train else crop_size
        paths_a, paths_b = validate_dataset(root, phase, load_size, crop_size, check_images, max_size)
        self.root = Path(root)
        self.phase = phase
        self.load_size = load_size
        self.crop_size = crop_size
        self.random_crop = train
        self.flip = train if flip is None else bool(flip)
        self.serial = (not train) if serial is None else bool(serial)
        self.paths_a: list[Path] = paths_a
        self.paths_b: list[Path] = paths_b
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return max(len(self.paths_a), len(self.paths_b))

    def reseed(self, seed: int) -> None:
        """Restart the dataset's random generator (used by DataLoader workers)."""
        self._rng = np.random.default_rng(seed)

    def set_load_size(self, load_size: int) -> None:
        """Change the resize target, e.g. ``crop_size`` to switch off resize-and-crop (CUT decay epochs)."""
        check_sizes(load_size, self.crop_size)
        self.load_size = load_size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        path_a = self.paths_a[index % len(self.paths_a)]
        if self.serial:
            path_b = self.paths_b[index % len(self.paths_b)]
        else:
            path_b = self.paths_b[int(self._rng.integers(len(self.paths_b)))]
        return {
            "A": self._transform(load_rgb(path_a)),
            "B": self._transform(load_rgb(path_b)),
            "A_path": str(path_a),
            "B_path": str(path_b),
        }

    def _transform(self, img: Image.Image) -> torch.Tensor:
        size, crop = self.load_size, self.crop_size
        img = img.resize((size, size), Image.Resampling.BICUBIC)
        if self.random_crop:
            top = int(self._rng.integers(size - crop + 1))
            left = int(self._rng.integers(size - crop + 1))
        else:
            top = left = (size - crop) // 2
        img = img.crop((left, top, left + crop, top + crop))
        if self.flip and self._rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image_to_tensor(img)


class PairedTestDataset(Dataset):
    """Ground-truth pairs: ``ROOT/{phase}A/x.png`` and ``ROOT/{phase}B/x.png`` share a file name.

    Items are ``{"A", "B", "A_path", "B_path", "name"}``; images are resized to ``size x size`` (bicubic)
    when ``size`` is given, otherwise kept at their stored size. No cropping or flipping.
    """

    def __init__(
        self,
        root: str | Path,
        phase: str = "test",
        size: int | None = None,
        check_images: bool = True,
    ) -> None:
        if size is not None:
            check_positive("size", size)
        root = Path(root)
        paths_a = validate_domain(root / f"{phase}A", check_images)
        paths_b = validate_domain(root / f"{phase}B", check_images)
        check_matching_names(paths_a, paths_b)
        self.root = root
        self.phase = phase
        self.size = size
        self.paths_a = paths_a
        self.paths_b = paths_b

    def __len__(self) -> int:
        return len(self.paths_a)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        path_a, path_b = self.paths_a[index], self.paths_b[index]
        return {
            "A": image_to_tensor(self._resize(load_rgb(path_a))),
            "B": image_to_tensor(self._resize(load_rgb(path_b))),
            "A_path": str(path_a),
            "B_path": str(path_b),
            "name": path_a.name,
        }

    def _resize(self, img: Image.Image) -> Image.Image:
        if self.size is None or img.size == (self.size, self.size):
            return img
        return img.resize((self.size, self.size), Image.Resampling.BICUBIC)


def check_matching_names(paths_a: Sequence[Path], paths_b: Sequence[Path], show: int = 5) -> None:
    """``UserError`` listing the first file names present in only one of the two domains."""
    names_a = {p.name for p in paths_a}
    names_b = {p.name for p in paths_b}
    only_a = sorted(names_a - names_b)
    only_b = sorted(names_b - names_a)
    if only_a or only_b:
        folder_a = paths_a[0].parent if paths_a else "A"
        folder_b = paths_b[0].parent if paths_b else "B"
        raise UserError(
            f"paired test set: file names of {folder_a} and {folder_b} do not match "
            f"({len(only_a)} only in A, e.g. {only_a[:show]}; {len(only_b)} only in B, e.g. {only_b[:show]})"
        )


def _seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed the worker's dataset copy from the worker's torch seed."""
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(info.seed % 2**63)


def make_dataloader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    seed: int | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffle order (and worker reseeding) comes from ``seed``.

    With ``num_workers == 0`` crops, flips and B draws come from the dataset's own ``seed``; with workers,
    each worker reseeds its dataset copy from ``seed`` and the worker id (deterministic for a fixed seed).
    The reference trains with ``shuffle=True, drop_last=True``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if drop_last and batch_size > len(dataset):
        raise ValueError(
            f"batch_size {batch_size} is larger than the dataset ({len(dataset)} items) with drop_last=True: "
            f"every batch would be dropped"
        )
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        worker_init_fn=_seed_worker,
        persistent_workers=False,
    )
