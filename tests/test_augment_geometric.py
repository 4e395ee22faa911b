"""Crops, shifts, resized crops, flips and rotations of ssl_shared.augment against slices and loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssl_shared.augment import (
    center_crop,
    crop_at,
    horizontal_flip,
    random_crop,
    random_resized_crop,
    random_shift,
    replicate_pad,
    resized_crop,
    rot90,
    rot90_by,
)
from ssl_shared.augment.crop import replicate_pad_by_concat


def _images(shape: tuple[int, ...], dtype: torch.dtype = torch.uint8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("size", [12, (10, 14), (20, 20)])
def test_random_crop_equals_slice_at_returned_offsets(dtype: torch.dtype, size: int | tuple[int, int]) -> None:
    x = _images((8, 6, 20, 20), dtype)
    out, params = random_crop(x, size, generator=torch.Generator().manual_seed(1), return_params=True)
    h, w = (size, size) if isinstance(size, int) else size
    assert out.shape == (8, 6, h, w) and out.dtype == dtype and out.is_contiguous()
    for i in range(8):
        top, left = int(params["top"][i]), int(params["left"][i])
        assert torch.equal(out[i], x[i, :, top : top + h, left : left + w])


def test_random_crop_offsets_cover_0_to_16_inclusive() -> None:
    x = torch.zeros(1500, 1, 100, 100, dtype=torch.uint8)
    x[:, :, 99, 99] = 7  # only a crop at offset (16, 16) sees the last row and column
    out, params = random_crop(x, 84, generator=torch.Generator().manual_seed(0), return_params=True)
    assert sorted(set(params["top"].tolist())) == list(range(17))
    assert sorted(set(params["left"].tolist())) == list(range(17))
    corner = (params["top"] == 16) & (params["left"] == 16)
    assert bool(corner.any()) and torch.all(out[corner, 0, 83, 83] == 7)


def test_crop_of_a_batch_slice_uses_its_own_storage_offset() -> None:
    big = _images((6, 3, 12, 12))
    x = big[2:5]  # non-zero storage offset
    top, left = torch.tensor([0, 2, 4]), torch.tensor([4, 0, 1])
    out = crop_at(x, top, left, 8)
    for i in range(3):
        assert torch.equal(out[i], x[i, :, int(top[i]) : int(top[i]) + 8, int(left[i]) : int(left[i]) + 8])


def test_crop_at_rejects_offsets_outside_the_image() -> None:
    x = _images((2, 3, 10, 10))
    with pytest.raises(ValueError, match="top"):
        crop_at(x, torch.tensor([0, 3]), torch.tensor([0, 0]), 8)
    with pytest.raises(ValueError, match=r"size=\(12, 12\) is larger than the image \(10, 10\)"):
        random_crop(x, 12)


def test_center_crop_is_the_middle_window() -> None:
    x = _images((2, 3, 11, 10))
    assert torch.equal(center_crop(x, (5, 4)), x[:, :, 3:8, 3:7])
    assert torch.equal(center_crop(x, 10)[..., 0, 0], x[:, :, 0, 0])


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_shift_equals_replicate_pad_then_slice(dtype: torch.dtype) -> None:
    x = _images((16, 6, 12, 12), dtype)
    pad = 4
    out, params = random_shift(x, pad, generator=torch.Generator().manual_seed(3), return_params=True)
    padded = F.pad(x.float(), (pad,) * 4, mode="replicate").to(dtype)
    assert out.shape == x.shape and out.dtype == dtype
    for i in range(16):
        top, left = int(params["top"][i]), int(params["left"][i])
        assert 0 <= top <= 2 * pad and 0 <= left <= 2 * pad
        assert torch.equal(out[i], padded[i, :, top : top + 12, left : left + 12])


def test_random_shift_stays_within_the_pad_and_reaches_both_ends() -> None:
    x = torch.zeros(400, 1, 6, 6, dtype=torch.uint8)
    _, params = random_shift(x, 2, generator=torch.Generator().manual_seed(0), return_params=True)
    for key in ("top", "left"):
        assert sorted(set(params[key].tolist())) == [0, 1, 2, 3, 4]
    assert torch.equal(random_shift(x, 0), x)


def test_replicate_pad_matches_torch_pad_on_both_code_paths() -> None:
    x = _images((2, 3, 7, 5))
    expected = F.pad(x.float(), (3, 3, 3, 3), mode="replicate").to(torch.uint8)
    assert torch.equal(replicate_pad(x, 3), expected)
    assert torch.equal(replicate_pad_by_concat(x, 3), expected)


def _bilinear_reference(img: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    """Explicit loop: sample at box pixel centres, bilinear, coordinates clamped to the image."""
    top, left, height, width = box
    channels, img_h, img_w = img.shape
    out = torch.zeros(channels, size, size, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            y = min(max(top + (i + 0.5) * height / size - 0.5, 0.0), img_h - 1.0)
            x = min(max(left + (j + 0.5) * width / size - 0.5, 0.0), img_w - 1.0)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, img_h - 1), min(x0 + 1, img_w - 1)
            wy, wx = y - y0, x - x0
            out[:, i, j] = (
                (1 - wy) * (1 - wx) * img[:, y0, x0]
                + (1 - wy) * wx * img[:, y0, x1]
                + wy * (1 - wx) * img[:, y1, x0]
                + wy * wx * img[:, y1, x1]
            )
    return out


def test_resized_crop_matches_an_explicit_bilinear_loop() -> None:
    x = _images((2, 3, 9, 9), torch.float64)
    boxes = [(1.0, 2.0, 6.0, 5.0), (0.0, 0.0, 3.0, 4.0)]  # shrink and enlarge
    top, left, height, width = (torch.tensor(v) for v in zip(*boxes))
    out = resized_crop(x, top, left, height, width, 5)
    for i, box in enumerate(boxes):
        torch.testing.assert_close(out[i], _bilinear_reference(x[i], box, 5))


def test_resized_crop_of_an_integer_box_of_output_size_is_the_slice() -> None:
    x = _images((3, 6, 16, 16))
    out = resized_crop(x, torch.tensor([0, 3, 8]), torch.tensor([5, 0, 8]), torch.full((3,), 8), torch.full((3,), 8), 8)
    assert torch.equal(out, torch.stack([x[0, :, 0:8, 5:13], x[1, :, 3:11, 0:8], x[2, :, 8:16, 8:16]]))


def test_random_resized_crop_boxes_follow_scale_and_ratio() -> None:
    x = _images((64, 3, 32, 32))
    out, p = random_resized_crop(
        x, 16, scale=(0.2, 0.6), ratio=(0.5, 2.0), generator=torch.Generator().manual_seed(0), return_params=True
    )
    assert out.shape == (64, 3, 16, 16) and out.dtype == torch.uint8
    assert torch.all(p["top"] >= 0) and torch.all(p["top"] + p["height"] <= 32)
    assert torch.all(p["left"] >= 0) and torch.all(p["left"] + p["width"] <= 32)
    area = (p["height"] * p["width"]).float() / (32 * 32)
    # Rounding the sides moves the area and ratio a little past the sampled interval.
    assert torch.all(area > 0.15) and torch.all(area < 0.7)
    aspect = p["width"].float() / p["height"].float()
    assert torch.all(aspect > 0.4) and torch.all(aspect < 2.5)
    assert len(set(p["top"].tolist())) > 5


def test_random_resized_crop_falls_back_to_the_whole_image() -> None:
    x = _images((4, 3, 12, 12))
    out, p = random_resized_crop(x, 12, scale=(2.0, 3.0), ratio=(1.0, 1.0), return_params=True)
    assert torch.equal(p["height"], torch.full((4,), 12)) and torch.equal(p["top"], torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, x)


def test_horizontal_flip_flips_exactly_the_flagged_samples_and_inverts() -> None:
    x = _images((32, 6, 5, 7))
    out, p = horizontal_flip(x, 0.5, generator=torch.Generator().manual_seed(0), return_params=True)
    flip = p["flip"]
    assert 0 < int(flip.sum()) < 32
    assert torch.equal(out[flip], x[flip].flip(-1)) and torch.equal(out[~flip], x[~flip])
    back = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
    assert torch.equal(back, x)
    assert torch.equal(horizontal_flip(x, 0.0), x) and torch.equal(horizontal_flip(x, 1.0), x.flip(-1))


def test_rot90_label_matches_torch_rot90_and_inverts() -> None:
    x = _images((40, 6, 6, 6))
    out, p = rot90(x, generator=torch.Generator().manual_seed(0), return_params=True)
    assert sorted(set(p["k"].tolist())) == [0, 1, 2, 3]
    for i in range(40):
        assert torch.equal(out[i], torch.rot90(x[i], int(p["k"][i]), dims=(1, 2)))
    assert torch.equal(rot90_by(out, -p["k"]), x)


def test_rot90_rejects_non_square_images() -> None:
    with pytest.raises(ValueError, match="H=4, W=6"):
        rot90(_images((2, 3, 4, 6)))


@pytest.mark.parametrize(
    "op",
    [
        lambda x, g: random_crop(x, 9, generator=g),
        lambda x, g: random_shift(x, 3, generator=g),
        lambda x, g: random_resized_crop(x, 8, generator=g),
        lambda x, g: horizontal_flip(x, generator=g),
        lambda x, g: rot90(x, generator=g),
    ],
)
def test_every_frame_of_a_stack_gets_the_same_transform(op) -> None:
    x = _images((10, 9, 12, 12))
    out = op(x, torch.Generator().manual_seed(5))
    for frame in range(3):
        channels = slice(3 * frame, 3 * frame + 3)
        alone = op(x[:, channels].contiguous(), torch.Generator().manual_seed(5))
        assert torch.equal(out[:, channels], alone)


def test_geometric_ops_reject_bad_input() -> None:
    x = _images((2, 3, 8, 8))
    with pytest.raises(ValueError, match="rank 3"):
        random_crop(x[0], 4)
    with pytest.raises(ValueError, match="p must be a probability in \\[0, 1\\], got 1.5"):
        horizontal_flip(x, 1.5)
    with pytest.raises(ValueError, match="pad must be a non-negative int, got -1"):
        random_shift(x, -1)
    with pytest.raises(ValueError, match="dtype torch.int32"):
        random_crop(x.int(), 4)
    with pytest.raises(ValueError, match="scale"):
        random_resized_crop(x, 4, scale=(0.9, 0.1))
    with pytest.raises(ValueError, match="size must be a positive int"):
        center_crop(x, 0)
