"""Every SSL method: builds by name, validates its input, trains (loss decreases on a fixed tiny batch)
and exposes a probe encoder; plus the registry's error messages."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from registry_helpers import defined_subclasses
from torch import nn

import ssl_shared.methods as methods_package
from ssl_shared.encoders import PixelEncoder, SmallResNet
from ssl_shared.methods import METHODS, SSLMethod, build_method
from ssl_shared.methods.base import BATCH_KEYS
from ssl_shared.methods.table import render

FEATURE_DIM = 16


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: a second intra-op thread only spins (5-10x the CPU time on a busy machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Small heads/queues/banks so each test stays well under a second or two on one core.
TINY = {
    "jigsaw": dict(num_permutations=10, hidden_dim=32),
    "relative_position": dict(hidden_dim=32),
    "moco_v2": dict(queue_size=256, hidden_dim=32),
    "byol": dict(hidden_dim=32),
    "exemplar": dict(num_samples=16),
    "npid": dict(num_samples=256, num_negatives=64),
    "pirl": dict(num_samples=256, num_negatives=64),
    "counting": dict(num_counts=32),
    "cpc": dict(prediction_steps=2),
    "pixelcnn": dict(levels=16, hidden_channels=12, num_layers=2),
    "s4l": dict(num_classes=3),
    "shuffle_and_learn": dict(hidden_dim=32),
    "arrow_of_time": dict(hidden_dim=32),
    "simclr": dict(hidden_dim=32),
    "simclr_v2": dict(hidden_dim=32),
    "supcon": dict(hidden_dim=32),
}
# The logged quantity that must go down (the total of the context encoder includes a GAN term).
WATCH = {"context_encoder": "reconstruction"}
# MoCo's queue and NPID/PIRL's memory banks would turn the fixed batch's own embeddings into negatives
# (the same noise rows are drawn every step here), so the loss would rise for reasons unrelated to
# learning; their queue/bank updates are tested in test_methods_pretext.py and skipped here.
SKIP_AFTER_STEP = {"moco_v2", "npid", "pirl"}
LEARNING_RATE = {"vae": 3e-3, "pixelcnn": 3e-3, "tcn": 3e-3}


def tiny_backbone(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return SmallResNet(3, FEATURE_DIM, widths=(8, 16))


def tiny_batch(size: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "image": torch.rand(8, 3, size, size, generator=g),
        "index": torch.arange(8),
        "label": torch.tensor([0, 1, 2, -1, 0, 1, -1, 2]),
        "frames": torch.rand(4, 8, 3, size, size, generator=g),
    }


def test_registry_lists_every_method_with_its_family_and_citation():
    assert len(METHODS) == 25
    assert set(METHODS.values()) == defined_subclasses(
        SSLMethod, methods_package
    )  # a new method class must be registered
    for name, cls in METHODS.items():
        assert issubclass(cls, SSLMethod) and cls.name == name
        own = vars(cls)  # set on the class itself, not inherited (simclr_v2 from simclr)
        assert own.get("family") and own.get("citation"), f"{name}: family and citation must be class attributes"
        module_doc = sys.modules[cls.__module__].__doc__ or ""
        first_author = cls.citation.split()[0].rstrip(",")
        assert first_author in module_doc, f"{name}: module docstring does not cite {first_author}"
        for arxiv_id in re.findall(r"arXiv (\S+)", cls.citation):
            assert re.fullmatch(r"\d{4}\.\d{4,5}", arxiv_id.rstrip(";,")), f"{name}: bad arXiv id {arxiv_id}"
        assert "image" in cls.required_inputs or "frames" in cls.required_inputs
        assert set(cls.required_inputs) <= set(BATCH_KEYS)


def test_methods_table_rows_read_the_class_attributes():
    rows = {line.split(" | ")[0].strip("| `"): line for line in render().splitlines() if line.startswith("| `")}
    assert list(rows) == list(METHODS)
    assert rows["exemplar"] == (
        "| `exemplar` | contrastive | Dosovitskiy et al. 2014, arXiv 1406.6909 | image, index | `exemplar.py` |"
    )
    assert rows["simclr_v2"].endswith("| image | `simclr.py` |")
    assert "| image (square) |" in rows["rotation"] and "| image, label (plus the pretext's keys) |" in rows["s4l"]


def test_docs_ssl_methods_md_is_the_generated_table():
    committed = (Path(__file__).resolve().parents[1] / "docs" / "ssl_methods.md").read_text()
    assert committed == render(), (
        "docs/ssl_methods.md is stale: python -m ssl_shared.methods.table --out docs/ssl_methods.md"
    )


def test_unknown_method_and_option_raise_value_error():
    with pytest.raises(ValueError, match="available: .*rotation"):
        build_method("rotnet", tiny_backbone(), FEATURE_DIM)
    with pytest.raises(ValueError, match="unknown options \\['tempreature'\\]"):
        build_method("simclr", tiny_backbone(), FEATURE_DIM, tempreature=0.1)
    with pytest.raises(ValueError, match="corruption"):
        build_method("denoising_ae", tiny_backbone(), FEATURE_DIM, corruption="salt")


def test_nested_view_options_update_the_method_default():
    method = build_method("moco_v2", tiny_backbone(), FEATURE_DIM, queue_size=8, views={"jitter_strength": 1.0})
    assert method.config.views.jitter_strength == 1.0
    assert method.config.views.blur_probability == 0.5  # MoCo v2's own default kept


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_decreases_on_a_fixed_batch(name):
    method = build_method(name, tiny_backbone(), FEATURE_DIM, **TINY.get(name, {}))
    batch = tiny_batch()
    method.validate_input((3, 16, 16), num_frames=8)
    optimizer = torch.optim.Adam(method.parameters(), lr=LEARNING_RATE.get(name, 1e-3))
    watched = []
    steps = 5
    for step in range(steps):
        torch.manual_seed(123)  # the same views, masks, permutations and noise every step
        loss, logs = method.training_step(batch, step, steps)
        assert torch.isfinite(loss) and loss.ndim == 0
        assert all(isinstance(v, float) for v in logs.values())
        watched.append(logs[WATCH.get(name, "loss")])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if name not in SKIP_AFTER_STEP:
            method.after_optimizer_step(step, steps)
    assert watched[-1] < watched[0], f"{name}: {watched}"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_probe_encoder_maps_raw_images_to_features(name):
    method = build_method(name, tiny_backbone(), FEATURE_DIM, **TINY.get(name, {}))
    encoder = method.encoder()
    images = (torch.rand(4, 3, 16, 16) * 255).to(torch.uint8)
    features = encoder(images)
    width = 2 * FEATURE_DIM if name == "split_brain" else FEATURE_DIM
    assert features.shape == (4, width) and encoder.feature_dim == width
    # uint8 and the same images as floats in [0, 1] give the same features
    encoder.eval()
    torch.testing.assert_close(encoder(images), encoder(images.float() / 255))


def test_missing_batch_keys_are_named():
    method = build_method("exemplar", tiny_backbone(), FEATURE_DIM, num_samples=16)
    with pytest.raises(ValueError, match="missing \\['index'\\]"):
        method.training_step({"image": torch.rand(4, 3, 16, 16)})
    with pytest.raises(ValueError, match="indices must lie in \\[0, 15\\]"):
        method.training_step({"image": torch.rand(2, 3, 16, 16), "index": torch.tensor([3, 16])})


def test_validate_input_rejects_bad_shapes_before_training():
    with pytest.raises(ValueError, match="square"):
        build_method("rotation", tiny_backbone(), FEATURE_DIM).validate_input((3, 16, 24))
    with pytest.raises(ValueError, match="RGB"):
        build_method("colorization", tiny_backbone(), FEATURE_DIM).validate_input((1, 16, 16))
    with pytest.raises(ValueError, match="at least 6 px"):
        build_method("jigsaw", tiny_backbone(), FEATURE_DIM, num_permutations=4).validate_input((3, 5, 5))
    with pytest.raises(ValueError, match="at least 4 frames"):
        build_method("tcn", tiny_backbone(), FEATURE_DIM).validate_input((3, 16, 16), num_frames=3)
    # A fixed-size backbone (CURL's PixelEncoder) cannot read the jigsaw tiles of its own images.
    pixel = PixelEncoder((3, 32, 32), feature_dim=FEATURE_DIM, num_layers=2, num_filters=8)
    with pytest.raises(ValueError, match="jigsaw tiles"):
        build_method("jigsaw", pixel, FEATURE_DIM, num_permutations=4).validate_input((3, 32, 32))


def test_pixel_encoder_backbone_gets_0_255_inputs():
    pixel = PixelEncoder((3, 16, 16), feature_dim=FEATURE_DIM, num_layers=2, num_filters=8)
    method = build_method("rotation", pixel, FEATURE_DIM)
    images = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(method.encoder()(images), pixel(images * 255))


@pytest.mark.parametrize("name", ["colorization", "npid", "moco_v2", "jigsaw", "byol"])
def test_state_dict_round_trip_restores_buffers(name):
    """Checkpoints carry the method's state (priors, banks, queues, permutation sets, targets)."""
    trained = build_method(name, tiny_backbone(0), FEATURE_DIM, **TINY.get(name, {}))
    torch.manual_seed(0)
    loss, _ = trained.training_step(tiny_batch())
    loss.backward()
    trained.after_optimizer_step(0, 1)
    fresh = build_method(name, tiny_backbone(1), FEATURE_DIM, **TINY.get(name, {}))
    fresh.load_state_dict(trained.state_dict())
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, equal_nan=True, msg=key)


@pytest.mark.parametrize("name", ["simclr", "simclr_v2", "counting"])
def test_min_batch_size_is_declared_and_needed(name):
    method = build_method(name, tiny_backbone(), FEATURE_DIM, **TINY.get(name, {}))
    assert method.min_batch_size == 2
    batch = {key: value[:1] for key, value in tiny_batch().items()}
    with pytest.raises(ValueError, match="at least 2 images"):
        method.training_step(batch)
