"""Training loop, resume, NaN stop, collapse monitor and the cut-* commands on tiny generated data."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cut_translation.cli import evaluate_main, pad_for_generator, train_main, translate_main
from cut_translation.models import make_config
from cut_translation.trainer import TrainConfig, Trainer, collapse_stats
from ssl_shared.errors import NonFiniteLossError

TINY = {"generator": {"ngf": 8, "n_blocks": 2}, "discriminator": {"ndf": 8}}
TINY_NCE = {**TINY, "nce_layers": (0, 4, 8, 12, 13), "num_patches": 32}
TINY_FLAGS = [
    "--ngf",
    "8",
    "--n-blocks",
    "2",
    "--ndf",
    "8",
    "--nce-layers",
    "0",
    "4",
    "8",
    "12",
    "13",
    "--num-patches",
    "32",
]


def blob_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth, dark random colour field (values 0..100, low-frequency content) as uint8 (size, size, 3)."""
    coarse = rng.integers(0, 101, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """trainA/testA: dark colour fields; trainB/testB: the same kind of images with inverted (bright) colours.

    testB/x.png is the inversion of testA/x.png (ground-truth pairs); trainB comes from other fields.
    """
    root = tmp_path_factory.mktemp("inv")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        (root / f"{split}A").mkdir()
        (root / f"{split}B").mkdir()
        for i in range(n):
            a = blob_image(rng, 36)
            b = 255 - (a if split == "test" else blob_image(rng, 36))
            Image.fromarray(a).save(root / f"{split}A" / f"im{i}.png")
            Image.fromarray(b).save(root / f"{split}B" / f"im{i}.png")
    return root


def config(root, out, model="cut", iters=6, **kw) -> TrainConfig:
    values = dict(
        model=model,
        data=str(root),
        out=str(out),
        iters=iters,
        load_size=36,
        crop_size=32,
        seed=3,
        device="cpu",
        log_every=1,
        sample_every=3,
        checkpoint_every=3,
        n_monitor=2,
    )
    values.update(kw)
    return TrainConfig(**values)


def tiny(model="cut", **overrides):
    """The tiny networks of these tests as ``model``'s config."""
    return make_config(model, **{**(TINY if model == "cyclegan" else TINY_NCE), **overrides})


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16 also where emulated: bf16 runs must be exact too
@pytest.mark.parametrize("model", ["cut", "fastcut", "cyclegan"])
def test_resume_equals_uninterrupted_run(dataset, tmp_path, model, precision):
    settings = dict(iters=4, sample_every=2, checkpoint_every=2, precision=precision)
    torch.manual_seed(0)
    full = Trainer(config(dataset, tmp_path / "full", model, **settings), tiny(model))
    full.fit()
    torch.manual_seed(1)
    cut_short = Trainer(config(dataset, tmp_path / "half", model, **settings), tiny(model))
    original_step = cut_short.step

    def stop_at_2(iteration):  # the process "dies" after the checkpoint at iteration 2
        if iteration == 2:
            raise Interrupted
        return original_step(iteration)

    cut_short.step = stop_at_2
    with pytest.raises(Interrupted):
        cut_short.fit()
    torch.manual_seed(123)  # global RNG state must not matter
    resumed = Trainer(config(dataset, tmp_path / "half", model, **settings), resume=True)
    assert resumed.start_iter == 2
    resumed.fit()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    rows = list(csv.DictReader((tmp_path / "half" / "losses.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 5))
    assert rows == list(csv.DictReader((tmp_path / "full" / "losses.csv").open()))


def test_seed_fixes_initial_weights_and_the_run(dataset, tmp_path):
    """Same --seed -> equal weights after two iterations whatever torch's global RNG did; other seed -> other."""
    weights = []
    for k, (seed, global_seed) in enumerate(((5, 0), (5, 99), (6, 0))):
        torch.manual_seed(global_seed)
        trainer = Trainer(config(dataset, tmp_path / f"s{k}", "cut", iters=2, seed=seed), tiny("cut"))
        trainer.step(0)
        trainer.step(1)
        weights.append(trainer.model.state_dict())
    same, other = weights[1], weights[2]
    assert all(torch.equal(weights[0][k], same[k]) for k in same)
    assert not torch.equal(weights[0]["netG.model.1.weight"], other["netG.model.1.weight"])


def test_losses_finite_decreasing_and_l1_to_truth_drops(dataset, tmp_path):
    trainer = Trainer(config(dataset, tmp_path / "run", "cut", iters=60), tiny("cut", lr=1e-3))
    test_a, test_b = trainer.monitor_batch["A"], trainer.monitor_batch["B"]
    with torch.no_grad():
        l1_before = (trainer.model.translator(test_a) - test_b).abs().mean().item()
    nce = []
    for it in range(60):
        losses = trainer.step(it)
        assert all(math.isfinite(v) for v in losses.values())
        nce.append(losses["NCE"])
    with torch.no_grad():
        l1_after = (trainer.model.translator(test_a) - test_b).abs().mean().item()
    assert np.mean(nce[-5:]) < np.mean(nce[:5])
    assert l1_after < 0.75 * l1_before  # outputs move towards the bright, inverted targets


def test_lr_follows_linear_schedule_per_epoch(dataset, tmp_path):
    trainer = Trainer(config(dataset, tmp_path / "lr", "cut", iters=None), tiny("cut", n_epochs=2, n_epochs_decay=2))
    assert trainer.iters_per_epoch == 4 and trainer.total_iters == 16
    # epochs 0..3 -> factors 1, 1, 1 - 1/3, 1 - 2/3
    for it, factor in ((0, 1.0), (7, 1.0), (8, 2 / 3), (15, 1 / 3)):
        assert trainer.prepare_iteration(it) == pytest.approx(2e-4 * factor)
        assert trainer.model.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4 * factor)
    assert trainer.dataset.load_size == 32  # decay epochs: resize-and-crop off (CUT unaligned_dataset)
    trainer.prepare_iteration(0)
    assert trainer.dataset.load_size == 36


@pytest.mark.parametrize("model", ["cut", "cyclegan"])
def test_nan_loss_stops_before_the_optimizer_step(dataset, tmp_path, model):
    trainer = Trainer(config(dataset, tmp_path / "nan", model, iters=6), tiny(model))
    original = trainer.model.train_step
    before = {}

    def poisoned(real_a, real_b, step):
        if step == 2:
            before.update({k: v.clone() for k, v in trainer.model.state_dict().items()})
            real_a = real_a * float("nan")
        return original(real_a, real_b, step=step)

    trainer.model.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match=r"non-finite [DG] \(nan\) at step 2; stopped before the optimizer"):
        trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no weight moved in the poisoned iteration
    assert trainer.store.latest() is None  # nothing broken saved (the first checkpoint is due at 3)


def test_collapse_monitor_values_and_warnings(dataset, tmp_path):
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    same = collapse_stats(x, x.clone())
    assert same["identity_gap"] == 0 and same["spread_ratio"] == pytest.approx(1.0)
    const = collapse_stats(x, torch.zeros_like(x))
    assert const["spread_ratio"] == 0 and const["identity_gap"] == pytest.approx(x.abs().mean().item())
    trainer = Trainer(config(dataset, tmp_path / "mon", "fastcut", iters=4), tiny("fastcut"))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tb"))
    trainer.translate_monitor = lambda: trainer.monitor_batch["A"].clone()
    with pytest.warns(UserWarning, match="identity collapse"):
        trainer.sample_and_monitor(4, writer)
    trainer.translate_monitor = lambda: torch.zeros_like(trainer.monitor_batch["A"])
    with pytest.warns(UserWarning, match="mode collapse"):
        trainer.sample_and_monitor(4, writer)
    writer.close()
    assert (tmp_path / "mon" / "samples" / "iter_0000004.png").is_file()
    grid = Image.open(tmp_path / "mon" / "samples" / "iter_0000004.png")
    assert grid.size == (2 + 3 * 34, 2 + 2 * 34)  # columns input | output | truth, rows = 2 test pairs


def test_fid_summary_names_last_and_best(dataset, tmp_path):
    trainer = Trainer(config(dataset, tmp_path / "fid", "cut", iters=2), tiny("cut"))
    trainer.fid_history = [
        {"iteration": 10, "fid": 50.0},
        {"iteration": 20, "fid": 40.0},
        {"iteration": 30, "fid": 45.0},
    ]
    assert trainer.fid_summary() == {
        "fid_last": 45.0,
        "fid_last_iteration": 30,
        "fid_best": 40.0,
        "fid_best_iteration": 20,
    }


def test_pad_to_multiple_of_four():
    x = torch.arange(2 * 9 * 13, dtype=torch.float32).view(1, 2, 9, 13)
    y, (h, w) = pad_for_generator(x)
    assert y.shape == (1, 2, 12, 16) and (h, w) == (9, 13)
    assert torch.equal(y[..., :9, :13], x)
    assert torch.equal(y[..., 9, :13], x[..., 7, :])  # reflect: row 9 mirrors row 7
    assert torch.equal(y[..., :9, 13], x[..., :, 11])  # column 13 mirrors column 11
    x = torch.arange(2 * 7 * 5, dtype=torch.float32).view(1, 2, 7, 5)
    y, (h, w) = pad_for_generator(x)
    assert y.shape == (1, 2, 8, 8) and (h, w) == (7, 5)
    assert torch.equal(y[..., :7, :5], x)
    assert torch.equal(y[..., 7, :5], x[..., 5, :])  # reflect: row 7 mirrors row 5


def test_cli_train_translate_evaluate_end_to_end(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    train_main(
        [
            "--model",
            "cut",
            "--data",
            str(dataset),
            "--out",
            str(out),
            "--iters",
            "4",
            "--load-size",
            "36",
            "--crop-size",
            "32",
            "--sample-every",
            "2",
            "--checkpoint-every",
            "2",
            "--device",
            "cpu",
            *TINY_FLAGS,
        ]
    )
    assert (out / "checkpoints" / "latest.txt").read_text().strip() == "step-0000000004"
    assert (out / "losses.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["iterations"] == 4
    assert (out / "samples" / "iter_0000004.png").is_file() and any((out / "tb").iterdir())
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["generator"]["ngf"] == 8 and saved["train"]["crop_size"] == 32
    # resume to 6 iterations via the CLI: the options not given keep their saved values (tiny nets, crop 32)
    train_main(["--out", str(out), "--iters", "6", "--resume"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 4 and summary["iterations"] == 6
    launches = json.loads((out / "launches.json").read_text())
    assert [launch["resumed_from"] for launch in launches] == [0, 4]
    assert all({"command", "git_commit", "versions", "hardware"} <= set(launch) for launch in launches)
    # translate any size: a 30x22 image comes back 30x22
    odd = tmp_path / "odd.png"
    Image.fromarray(np.full((22, 30, 3), 100, np.uint8)).save(odd)
    translate_main(["--checkpoint", str(out), "--input", str(odd), "--out", str(tmp_path / "tr")])
    assert Image.open(tmp_path / "tr" / "odd.png").size == (30, 22)
    translate_main(
        [
            "--checkpoint",
            str(out / "checkpoints" / "step-0000000006"),
            "--input",
            str(dataset / "testA"),
            "--out",
            str(tmp_path / "tr2"),
        ]
    )
    assert sorted(p.name for p in (tmp_path / "tr2").iterdir()) == ["im0.png", "im1.png"]
    evaluate_main(["--checkpoint", str(out), "--data", str(dataset), "--json", str(tmp_path / "e.json")])
    result = json.loads((tmp_path / "e.json").read_text())
    paired = result["paired"]
    assert paired["n"] == 2 and {"l1", "psnr", "ssim", "identity_l1", "identity_psnr", "identity_ssim"} <= set(paired)
    assert result["fid_kid"].startswith("skipped") and result["iteration"] == 6
    assert "FID/KID skipped" in capsys.readouterr().err
    # no ground truth (names do not pair): paired metrics are reported as unavailable, not computed
    unpaired = tmp_path / "unpaired"
    shutil.copytree(dataset, unpaired)
    (unpaired / "testB" / "im0.png").rename(unpaired / "testB" / "other.png")
    evaluate_main(["--checkpoint", str(out), "--data", str(unpaired), "--json", str(tmp_path / "u.json")])
    assert json.loads((tmp_path / "u.json").read_text())["paired"].startswith("not available")


@pytest.mark.parametrize(
    "iters, factors",
    [
        # 2 constant + 3 decay schedule epochs over 10 iterations: 2 iterations per schedule epoch; the
        # decay epochs k = 1, 2, 3 run at 1 - k / 4 (CUT's linear policy), crop-only from iteration 4
        (10, [1, 1, 1, 1, 0.75, 0.75, 0.5, 0.5, 0.25, 0.25]),
        # 7 iterations: schedule epoch of iteration t = floor(5 t / 7) = 0 0 1 2 2 3 4
        (7, [1, 1, 1, 0.75, 0.75, 0.5, 0.25]),
        # longer than the 5 x 4 = 20 iterations of the per-pass schedule: stretched, never 0
        (40, [1] * 16 + [0.75] * 8 + [0.5] * 8 + [0.25] * 8),
    ],
)
def test_iters_budget_compresses_or_stretches_the_schedule(dataset, tmp_path, iters, factors):
    trainer = Trainer(config(dataset, tmp_path / "b", "cut", iters=iters), tiny("cut", n_epochs=2, n_epochs_decay=3))
    assert trainer.iters_per_epoch == 4 and trainer.total_iters == iters
    for t, factor in enumerate(factors):
        assert trainer.prepare_iteration(t) == pytest.approx(2e-4 * factor), t
        assert trainer.dataset.load_size == (36 if factor == 1 else 32), t  # resize-and-crop off in the decay


@pytest.mark.parametrize("h, w", [(1, 1), (3, 5), (17, 9), (8, 8), (5, 30), (64, 12)])
def test_translate_image_of_any_size(h, w):
    from cut_translation.cli import translate_image
    from cut_translation.networks import GeneratorConfig, ResnetGenerator

    torch.manual_seed(0)
    generator = ResnetGenerator(GeneratorConfig(ngf=4, n_blocks=1)).eval()
    image = torch.rand(3, h, w) * 2 - 1
    out = translate_image(generator, image)
    assert out.shape == (3, h, w) and torch.isfinite(out).all()
    # reference: numpy pads each side to a multiple of 4 and >= 8, mirroring where the side is longer
    # than the pad and repeating the edge where it is not; G runs on that; the result is cropped back
    pad_h, pad_w = max(8, -(-h // 4) * 4) - h, max(8, -(-w // 4) * 4) - w
    padded = image.numpy()
    padded = np.pad(padded, ((0, 0), (0, 0), (0, pad_w)), mode="reflect" if pad_w < w else "edge")
    padded = np.pad(padded, ((0, 0), (0, pad_h), (0, 0)), mode="reflect" if pad_h < h else "edge")
    with torch.no_grad():
        ref = generator(torch.from_numpy(padded)[None])[0, :, :h, :w]
    assert torch.allclose(out, ref, atol=1e-6)


def test_generator_needs_sides_of_at_least_eight():
    from cut_translation.networks import GeneratorConfig, ResnetGenerator

    generator = ResnetGenerator(GeneratorConfig(ngf=4, n_blocks=1))
    assert generator(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(RuntimeError):  # the residual blocks reflect-pad a 1-pixel quarter-resolution map
        generator(torch.zeros(1, 3, 4, 8))
