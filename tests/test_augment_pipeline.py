"""Reproducibility, Compose / RandomApply / TwoViews and the public surface of ssl_shared.augment."""

from __future__ import annotations

import inspect
from functools import partial

import pytest
import torch

import ssl_shared.augment as A

# Settings for the 12 x 12 test images (the defaults of random_crop are CURL's 84 px; random_resized_crop has
# no default size) and a flip probability that varies the output between seeds. Every other op of the
# registry runs with its defaults, so a new op is covered as soon as it is registered.
SETTINGS: dict[str, dict] = {
    "random_crop": {"size": 10},
    "random_resized_crop": {"size": 8},
    "random_grayscale": {"p": 0.5},
    "cutout": {"size": 4},
    "gaussian_blur": {"kernel_size": 5},
}


def _op(name: str):
    return partial(A.RANDOM_OPS[name], **SETTINGS.get(name, {}))


def _images(shape: tuple[int, ...] = (16, 6, 12, 12), seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_random_ops_registry_holds_every_exported_op_with_a_generator() -> None:
    assert set(SETTINGS) <= set(A.RANDOM_OPS)
    with_generator = {
        name
        for name in A.__all__
        if inspect.isfunction(getattr(A, name))
        and {"generator", "return_params"} <= set(inspect.signature(getattr(A, name)).parameters)
    }
    assert set(A.RANDOM_OPS) == with_generator
    assert all(A.RANDOM_OPS[name] is getattr(A, name) for name in A.RANDOM_OPS)


@pytest.mark.parametrize("name", sorted(A.RANDOM_OPS))
def test_same_seed_same_output_and_params(name: str) -> None:
    op = _op(name)
    x = _images()
    out_1, params_1 = op(x, generator=torch.Generator().manual_seed(11), return_params=True)
    out_2, params_2 = op(x, generator=torch.Generator().manual_seed(11), return_params=True)
    assert torch.equal(out_1, out_2)
    assert params_1.keys() == params_2.keys() and all(torch.equal(params_1[k], params_2[k]) for k in params_1)
    assert out_1.dtype == x.dtype and out_1.device == x.device
    outs = [op(x, generator=torch.Generator().manual_seed(seed)) for seed in range(3)]
    assert not all(torch.equal(outs[0], other) for other in outs[1:])


def test_default_generator_follows_manual_seed() -> None:
    x = _images()
    torch.manual_seed(5)
    first = A.random_crop(x, 8)
    torch.manual_seed(5)
    assert torch.equal(A.random_crop(x, 8), first)


def test_generator_must_be_a_generator() -> None:
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None, got int"):
        A.random_crop(_images(), 8, generator=3)


def test_compose_equals_the_ops_applied_in_sequence() -> None:
    x = _images()
    pipeline = A.Compose([partial(A.random_crop, size=10), A.horizontal_flip, A.solarize])
    out, params = pipeline(x, generator=torch.Generator().manual_seed(0), return_params=True)
    g = torch.Generator().manual_seed(0)
    expected = A.solarize(A.horizontal_flip(A.random_crop(x, 10, generator=g), generator=g))
    assert torch.equal(out, expected)
    assert set(params) == {"0.top", "0.left", "1.flip"}
    assert torch.equal(pipeline(x, generator=torch.Generator().manual_seed(0)), out)


def test_random_apply_applies_the_op_to_the_flagged_samples_only() -> None:
    x = _images((64, 6, 8, 8))
    flip_all = partial(A.horizontal_flip, p=1.0)
    out, params = A.RandomApply(flip_all, p=0.3)(x, generator=torch.Generator().manual_seed(0), return_params=True)
    applied = params["applied"]
    assert 0 < int(applied.sum()) < 64
    assert torch.equal(out[applied], x[applied].flip(-1)) and torch.equal(out[~applied], x[~applied])
    assert torch.equal(A.RandomApply(flip_all, p=0.0)(x), x)


def test_random_apply_rejects_shape_changing_ops_and_bad_p() -> None:
    with pytest.raises(ValueError, match="keeps shape and dtype"):
        A.RandomApply(partial(A.random_crop, size=4), p=0.5)(_images())
    with pytest.raises(ValueError, match="got -0.1"):
        A.RandomApply(A.solarize, p=-0.1)
    with pytest.raises(ValueError, match="callable"):
        A.Compose([3])


def test_two_views_are_independent_crops_of_the_same_batch() -> None:
    x = _images()
    views, params = A.TwoViews(partial(A.random_crop, size=8))(
        x, generator=torch.Generator().manual_seed(0), return_params=True
    )
    assert not torch.equal(views[0], views[1])
    for view, p in zip(views, params):
        assert torch.equal(view, A.crop_at(x, p["top"], p["left"], 8))


def test_two_views_with_an_asymmetric_second_pipeline() -> None:
    x = _images()
    first = partial(A.random_crop, size=8)
    second = A.Compose([partial(A.random_crop, size=8), A.solarize])
    (v1, v2), (p1, p2) = A.TwoViews(first, second)(x, generator=torch.Generator().manual_seed(1), return_params=True)
    assert torch.equal(v1, A.crop_at(x, p1["top"], p1["left"], 8))
    assert torch.equal(v2, A.solarize(A.crop_at(x, p2["0.top"], p2["0.left"], 8)))


def test_a_simclr_style_pipeline_runs_on_float_images() -> None:
    x = _images((8, 3, 16, 16)).float() / 255.0
    pipeline = A.Compose(
        [
            partial(A.random_resized_crop, size=12),
            A.horizontal_flip,
            A.RandomApply(partial(A.color_jitter, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), p=0.8),
            partial(A.random_grayscale, p=0.2),
            A.RandomApply(partial(A.gaussian_blur, kernel_size=3), p=0.5),
        ]
    )
    out = pipeline(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 12, 12) and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_every_export_exists_and_the_issue_ops_are_exported() -> None:
    for name in A.__all__:
        assert callable(getattr(A, name)) or name == "RANDOM_OPS", name
    required = {
        "random_crop", "center_crop", "random_shift", "random_resized_crop", "horizontal_flip", "rot90",
        "color_jitter", "random_grayscale", "cutout", "random_erasing", "gaussian_blur", "gaussian_noise",
        "solarize", "sobel", "random_conv", "TwoViews", "Compose", "RandomApply",
    }  # fmt: skip
    assert required <= set(A.__all__)


@pytest.mark.parametrize("name", sorted(A.RANDOM_OPS))
def test_every_random_op_rejects_wrong_rank(name: str) -> None:
    with pytest.raises(ValueError, match="rank 3"):
        _op(name)(_images()[0])
