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

from cut_translation.cli import evaluate_main, pad_to_multiple, train_main, translate_main
from cut_translation.trainer import NonFiniteLossError, TrainConfig, Trainer, collapse_stats

TINY = {"generator": {"ngf": 8, "n_blocks": 2}, "discriminator": {"ndf": 8}}
TINY_NCE = {**TINY, "nce_layers": (0, 4, 8, 12, 13), "num_patches": 32}
TINY_FLAGS = ["--ngf", "8", "--n-blocks", "2", "--ndf", "8", "--nce-layers", "0,4,8,12,13", "--num-patches", "32"]


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
    overrides = TINY if model == "cyclegan" else TINY_NCE
    values = dict(model=model, data_root=str(root), out=str(out), iters=iters, load_size=36, crop_size=32,
                  seed=3, device="cpu", log_every=1, sample_every=3, checkpoint_every=3, n_monitor=2,
                  model_overrides=dict(overrides))
    values.update(kw)
    return TrainConfig(**values)


@pytest.mark.parametrize("model", ["cut", "fastcut", "cyclegan"])
def test_resume_equals_uninterrupted_run(dataset, tmp_path, model):
    torch.manual_seed(0)
    full = Trainer(config(dataset, tmp_path / "full", model, iters=4, sample_every=2, checkpoint_every=2))
    full.train()
    torch.manual_seed(0)
    half = Trainer(config(dataset, tmp_path / "half", model, iters=2, sample_every=2, checkpoint_every=2))
    half.train()
    torch.manual_seed(123)  # global RNG state must not matter
    resumed = Trainer(config(dataset, tmp_path / "half", model, iters=4, sample_every=2, checkpoint_every=2),
                      resume=True)
    assert resumed.start_iter == 2
    resumed.train()
    for (k, a), (_, b) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    rows = list(csv.DictReader((tmp_path / "half" / "losses.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 5))
    full_rows = list(csv.DictReader((tmp_path / "full" / "losses.csv").open()))
    assert rows[-1]["G"] == full_rows[-1]["G"]


def test_losses_finite_decreasing_and_l1_to_truth_drops(dataset, tmp_path):
    torch.manual_seed(0)  # weight init
    trainer = Trainer(config(dataset, tmp_path / "run", "cut", iters=60, model_overrides={
        **TINY_NCE, "lr": 1e-3}))
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
    trainer = Trainer(config(dataset, tmp_path / "lr", "cut", iters=None,
                             model_overrides={**TINY_NCE, "n_epochs": 2, "n_epochs_decay": 2}))
    assert trainer.iters_per_epoch == 4 and trainer.total_iters == 16
    # epochs 0..3 -> factors 1, 1, 1 - 1/3, 1 - 2/3
    for it, factor in ((0, 1.0), (7, 1.0), (8, 2 / 3), (15, 1 / 3)):
        assert trainer.prepare_iteration(it) == pytest.approx(2e-4 * factor)
        assert trainer.model.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4 * factor)
    assert trainer.dataset.load_size == 32  # decay epochs: resize-and-crop off (CUT unaligned_dataset)
    trainer.prepare_iteration(0)
    assert trainer.dataset.load_size == 36


def test_nan_loss_stops_naming_iteration_and_loss(dataset, tmp_path):
    trainer = Trainer(config(dataset, tmp_path / "nan", "cut", iters=6))
    original = trainer.model.train_step

    def poisoned(real_a, real_b):
        if trainer.model.optimizers["G"].state and len(trainer.poison) == 0:
            trainer.poison.append(1)
            real_a = real_a * float("nan")
        return original(real_a, real_b)

    trainer.poison = []
    trainer.model.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match=r"iteration 2: loss \w+ = nan"):
        trainer.train()
    assert not (tmp_path / "nan" / "checkpoints" / "latest.pt").exists()  # nothing broken saved


def test_collapse_monitor_values_and_warnings(dataset, tmp_path):
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    same = collapse_stats(x, x.clone())
    assert same["identity_gap"] == 0 and same["spread_ratio"] == pytest.approx(1.0)
    const = collapse_stats(x, torch.zeros_like(x))
    assert const["spread_ratio"] == 0 and const["identity_gap"] == pytest.approx(x.abs().mean().item())
    trainer = Trainer(config(dataset, tmp_path / "mon", "fastcut", iters=4))
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
    trainer = Trainer(config(dataset, tmp_path / "fid", "cut", iters=2))
    trainer.fid_history = [{"iteration": 10, "fid": 50.0}, {"iteration": 20, "fid": 40.0},
                           {"iteration": 30, "fid": 45.0}]
    assert trainer.fid_summary() == {"fid_last": 45.0, "fid_last_iteration": 30,
                                     "fid_best": 40.0, "fid_best_iteration": 20}


def test_pad_to_multiple_of_four():
    x = torch.arange(2 * 7 * 5, dtype=torch.float32).view(1, 2, 7, 5)
    y, (h, w) = pad_to_multiple(x)
    assert y.shape == (1, 2, 8, 8) and (h, w) == (7, 5)
    assert torch.equal(y[..., :7, :5], x)
    assert torch.equal(y[..., 7, :5], x[..., 5, :])  # reflect: row 7 mirrors row 5


def test_cli_train_translate_evaluate_end_to_end(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    train_main(["--model", "cut", "--data", str(dataset), "--out", str(out), "--iters", "4", "--load-size",
                "36", "--crop-size", "32", "--sample-every", "2", "--checkpoint-every", "2", "--device", "cpu",
                *TINY_FLAGS])
    assert (out / "checkpoints" / "latest.pt").is_file() and (out / "losses.csv").is_file()
    assert json.loads((out / "summary.json").read_text())["iterations"] == 4
    assert (out / "samples" / "iter_0000004.png").is_file() and any((out / "tb").iterdir())
    # resume to 6 iterations via the CLI
    summary = train_main(["--model", "cut", "--data", str(dataset), "--out", str(out), "--iters", "6",
                          "--load-size", "36", "--crop-size", "32", "--device", "cpu", "--resume"])
    assert summary["resumed_from"] == 4 and summary["iterations"] == 6
    # translate any size: a 30x22 image comes back 30x22
    odd = tmp_path / "odd.png"
    Image.fromarray(np.full((22, 30, 3), 100, np.uint8)).save(odd)
    written = translate_main(["--checkpoint", str(out), "--input", str(odd), "--out", str(tmp_path / "tr")])
    assert Image.open(written[0]).size == (30, 22)
    written = translate_main(["--checkpoint", str(out / "checkpoints" / "latest.pt"), "--input",
                              str(dataset / "testA"), "--out", str(tmp_path / "tr2")])
    assert sorted(p.name for p in written) == ["im0.png", "im1.png"]
    result = evaluate_main(["--checkpoint", str(out), "--data", str(dataset), "--json", str(tmp_path / "e.json")])
    paired = result["paired"]
    assert paired["n"] == 2 and {"l1", "psnr", "ssim", "identity_l1", "identity_psnr", "identity_ssim"} <= set(paired)
    assert result["fid_kid"].startswith("skipped")
    assert "FID/KID skipped" in capsys.readouterr().err
    # no ground truth (names do not pair): paired metrics are reported as unavailable, not computed
    unpaired = tmp_path / "unpaired"
    shutil.copytree(dataset, unpaired)
    (unpaired / "testB" / "im0.png").rename(unpaired / "testB" / "other.png")
    result = evaluate_main(["--checkpoint", str(out), "--data", str(unpaired)])
    assert result["paired"].startswith("not available")


def test_cli_rejects_bad_options(dataset, tmp_path):
    with pytest.raises(ValueError, match="--lambda-nce does not apply"):
        train_main(["--model", "cyclegan", "--data", str(dataset), "--out", str(tmp_path), "--lambda-nce", "2"])
    with pytest.raises(ValueError, match="--eval-every needs --inception-weights"):
        train_main(["--model", "cut", "--data", str(dataset), "--out", str(tmp_path), "--eval-every", "5",
                    "--inception-weights", ""])
    with pytest.raises(ValueError, match="larger than load_size"):
        train_main(["--model", "cut", "--data", str(dataset), "--out", str(tmp_path), "--load-size", "32",
                    "--crop-size", "36"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_main(["--model", "cut", "--data", str(dataset), "--out", str(tmp_path / "none"), "--resume",
                    "--load-size", "36", "--crop-size", "32"])
