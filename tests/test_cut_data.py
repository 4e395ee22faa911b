"""Tests for cut_translation.data: layout, unaligned pairing, preprocessing, error cases, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cut_translation.data import (
    PairedTestDataset,
    UnpairedImageDataset,
    make_dataloader,
    validate_dataset,
)
from ssl_shared.errors import UserError


def _save(path: Path, array: np.ndarray) -> Path:
    """Save uint8 (H, W) as grayscale, (H, W, 3) as RGB, (H, W, 4) as RGBA; format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _make_root(tmp_path: Path, n_a: int = 3, n_b: int = 5, size: int = 20, phase: str = "train") -> Path:
    """Domain A image i is a constant 10*i (red channel); domain B image j is constant 200 - 10*j."""
    for i in range(n_a):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 0] = 10 * i
        _save(tmp_path / f"{phase}A" / f"a{i:02d}.png", img)
    for j in range(n_b):
        img = np.zeros((size, size, 3), np.uint8)
        img[..., 1] = 200 - 10 * j
        suffix = ".png" if j % 2 == 0 else ".bmp"  # lossless formats, mixed extensions
        _save(tmp_path / f"{phase}B" / f"b{j:02d}{suffix}", img)
    return tmp_path


def test_layout_length_and_value_range(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    (root / "trainA" / "notes.txt").write_text("not an image")
    _save(root / "trainA" / "upper.PNG", np.zeros((20, 20, 3), np.uint8))
    ds = UnpairedImageDataset(root, load_size=20, crop_size=16, seed=0)
    assert [p.name for p in ds.paths_a] == ["a00.png", "a01.png", "a02.png", "upper.PNG"]
    assert len(ds.paths_b) == 5
    assert len(ds) == max(4, 5)
    limited = UnpairedImageDataset(root, load_size=20, crop_size=16, max_size=2)
    assert [p.name for p in limited.paths_a] == ["a00.png", "a01.png"] and len(limited) == 2
    with pytest.raises(ValueError, match="--max-dataset-size"):
        UnpairedImageDataset(root, load_size=20, crop_size=16, max_size=0)
    item = ds[1]
    assert set(item) == {"A", "B", "A_path", "B_path"}
    assert item["A"].shape == (3, 16, 16) and item["A"].dtype == torch.float32
    # constant image 10 in red, 0 elsewhere -> 10/127.5 - 1 and -1
    assert torch.allclose(item["A"][0], torch.full((16, 16), 10 / 127.5 - 1), atol=1e-6)
    assert torch.all(item["A"][1:] == -1.0)
    assert item["A_path"].endswith("a01.png")


def test_unaligned_pairing_is_random_and_serial_is_not(tmp_path: Path) -> None:
    root = _make_root(tmp_path, n_a=2, n_b=6)
    ds = UnpairedImageDataset(root, load_size=20, crop_size=16, flip=False, seed=1)
    drawn = {Path(ds[0]["B_path"]).name for _ in range(40)}
    assert len(drawn) >= 4  # 40 draws from 6 images: fewer than 4 distinct has probability < 1e-9
    serial = UnpairedImageDataset(root, load_size=20, crop_size=16, serial=True, seed=1)
    assert [Path(serial[i]["B_path"]).name for i in range(6)] == [p.name for p in serial.paths_b]
    # same seed -> same sequence of draws
    again = UnpairedImageDataset(root, load_size=20, crop_size=16, flip=False, seed=1)
    ds.reseed(1)
    assert [ds[0]["B_path"] for _ in range(10)] == [again[0]["B_path"] for _ in range(10)]


def test_resize_random_crop_and_centre_crop(tmp_path: Path) -> None:
    # A gradient image: pixel value encodes its column, so a crop's first column gives its offset.
    size = 24
    grad = np.tile(np.arange(size, dtype=np.uint8)[None, :, None] * 10, (size, 1, 3))
    _save(tmp_path / "trainA" / "g.png", grad)
    _save(tmp_path / "trainB" / "g.png", grad)
    _save(tmp_path / "testA" / "g.png", grad)
    _save(tmp_path / "testB" / "g.png", grad)
    ds = UnpairedImageDataset(tmp_path, load_size=size, crop_size=16, flip=False, seed=3)
    lefts = set()
    for _ in range(30):
        first_col = ds[0]["A"][0, 0, 0].item()
        lefts.add(round((first_col + 1) * 127.5 / 10))
    assert len(lefts) > 3 and min(lefts) >= 0 and max(lefts) <= size - 16
    test = UnpairedImageDataset(tmp_path, phase="test", load_size=size, crop_size=16)
    assert test.flip is False and test.serial is True
    out = test[0]["A"]
    expected = (torch.arange(4, 20, dtype=torch.float32) * 10) / 127.5 - 1  # centre crop: offset (24-16)/2
    assert torch.allclose(out[0, 0], expected, atol=1e-6)
    # default load size of a non-train phase is the crop size (reference test protocol)
    assert UnpairedImageDataset(tmp_path, phase="test", crop_size=16).load_size == 16
    # a resize is applied before cropping
    big = UnpairedImageDataset(tmp_path, load_size=40, crop_size=32, seed=0)
    assert big[0]["A"].shape == (3, 32, 32)


def test_flip_mirrors_the_image(tmp_path: Path) -> None:
    size = 16
    grad = np.tile(np.arange(size, dtype=np.uint8)[None, :, None] * 10, (size, 1, 3))
    _save(tmp_path / "trainA" / "g.png", grad)
    _save(tmp_path / "trainB" / "g.png", grad)
    ds = UnpairedImageDataset(tmp_path, load_size=size, crop_size=size, flip=True, seed=0)
    plain = torch.from_numpy(grad).permute(2, 0, 1).float() / 127.5 - 1
    seen = {"plain": 0, "flipped": 0}
    for _ in range(40):
        a = ds[0]["A"]
        if torch.allclose(a, plain, atol=1e-6):
            seen["plain"] += 1
        elif torch.allclose(a, plain.flip(-1), atol=1e-6):
            seen["flipped"] += 1
    assert seen["plain"] + seen["flipped"] == 40
    assert seen["plain"] > 5 and seen["flipped"] > 5
    no_flip = UnpairedImageDataset(tmp_path, load_size=size, crop_size=size, flip=False, seed=0)
    assert all(torch.allclose(no_flip[0]["A"], plain, atol=1e-6) for _ in range(10))


def test_grayscale_and_rgba_become_rgb(tmp_path: Path) -> None:
    _save(tmp_path / "trainA" / "gray.png", np.full((16, 16), 100, np.uint8))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    _save(tmp_path / "trainB" / "rgba.png", rgba)
    ds = UnpairedImageDataset(tmp_path, load_size=16, crop_size=16, flip=False, seed=0)
    item = ds[0]
    assert item["A"].shape == (3, 16, 16)
    assert torch.allclose(item["A"], torch.full((3, 16, 16), 100 / 127.5 - 1), atol=1e-6)
    assert item["B"].shape == (3, 16, 16)
    assert torch.all(item["B"][0] == 1.0) and torch.all(item["B"][1:] == -1.0)


def test_missing_folder_names_the_path(tmp_path: Path) -> None:
    _save(tmp_path / "trainA" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match="trainB"):
        UnpairedImageDataset(tmp_path, load_size=8, crop_size=8)
    with pytest.raises(UserError, match="nowhere"):
        UnpairedImageDataset(tmp_path / "nowhere", load_size=8, crop_size=8)


def test_empty_domain(tmp_path: Path) -> None:
    _save(tmp_path / "trainA" / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="trainB.*no images"):
        UnpairedImageDataset(tmp_path, load_size=8, crop_size=8)


def test_truncated_png_is_named_at_construction(tmp_path: Path) -> None:
    root = _make_root(tmp_path, size=32)
    bad = root / "trainB" / "b02.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="b02.png"):
        UnpairedImageDataset(root, load_size=32, crop_size=32)
    (root / "trainA" / "junk.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ValueError, match="junk.jpg"):
        validate_dataset(root, "train", 32, 32)
    # lazy checking defers the error to loading the file, still naming it
    lazy = UnpairedImageDataset(root, load_size=32, crop_size=32, serial=True, check_images=False)
    with pytest.raises(ValueError, match="b02.png"):
        lazy[2]


def test_bad_sizes(tmp_path: Path) -> None:
    root = _make_root(tmp_path)
    with pytest.raises(ValueError, match="--crop-size 32 is larger than --load-size 20"):
        UnpairedImageDataset(root, load_size=20, crop_size=32)
    with pytest.raises(ValueError, match="multiple of 4"):
        UnpairedImageDataset(root, load_size=20, crop_size=18)
    with pytest.raises(ValueError, match="--load-size"):
        UnpairedImageDataset(root, load_size=0, crop_size=16)
    ds = UnpairedImageDataset(root, load_size=20, crop_size=16)
    with pytest.raises(ValueError, match="larger than --load-size"):
        ds.set_load_size(12)


def test_dataloader_batches_and_determinism(tmp_path: Path) -> None:
    root = _make_root(tmp_path, n_a=4, n_b=3)
    ds = UnpairedImageDataset(root, load_size=20, crop_size=16, seed=0)
    loader = make_dataloader(ds, batch_size=3, shuffle=True, seed=5, drop_last=True)
    batches = list(loader)
    assert len(batches) == 1
    assert batches[0]["A"].shape == (3, 3, 16, 16) and len(batches[0]["A_path"]) == 3
    order1 = [p for b in make_dataloader(ds, 2, True, seed=5) for p in b["A_path"]]
    order2 = [p for b in make_dataloader(ds, 2, True, seed=5) for p in b["A_path"]]
    assert order1 == order2 and sorted(order1) == sorted(str(p) for p in ds.paths_a)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataloader(ds, 0, True)
    with pytest.raises(ValueError, match="drop_last"):
        make_dataloader(ds, 10, True, drop_last=True)


def test_paired_test_dataset(tmp_path: Path) -> None:
    for name, value in (("x0.png", 10), ("x1.png", 20)):
        _save(tmp_path / "testA" / name, np.full((12, 12, 3), value, np.uint8))
        _save(tmp_path / "testB" / name, np.full((12, 12, 3), value + 100, np.uint8))
    ds = PairedTestDataset(tmp_path, size=8)
    assert len(ds) == 2
    item = ds[1]
    assert item["name"] == "x1.png" and item["A"].shape == (3, 8, 8)
    assert torch.allclose(item["B"], torch.full((3, 8, 8), 120 / 127.5 - 1), atol=1e-5)
    _save(tmp_path / "testB" / "extra.png", np.zeros((12, 12, 3), np.uint8))
    with pytest.raises(ValueError, match="extra.png"):
        PairedTestDataset(tmp_path)


def test_workers_reseed_deterministically_from_the_loader_seed(tmp_path: Path) -> None:
    root = _make_root(tmp_path, n_a=4, n_b=5)

    def epoch(seed: int) -> list[str]:
        ds = UnpairedImageDataset(root, load_size=20, crop_size=16, seed=None)  # dataset seed unused
        loader = make_dataloader(ds, batch_size=2, shuffle=True, num_workers=1, seed=seed)
        return [
            f"{a}|{b}|{x.sum().item():.4f}"
            for batch in loader
            for a, b, x in zip(batch["A_path"], batch["B_path"], batch["A"])
        ]

    first = epoch(11)
    assert first == epoch(11)
    assert first != epoch(12)
