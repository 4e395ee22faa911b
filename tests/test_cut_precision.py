"""bf16 autocast in cut_translation: where it applies, what stays fp32, how close it stays to fp32, how the
run records and resumes it; and the parity study's verdict arithmetic (experiments/cut_precision_parity.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import ssl_shared.provenance
from cut_translation.cli import evaluate_main, train_main, translate_image
from cut_translation.models import build_model, cut, cyclegan, make_config
from cut_translation.trainer import TrainConfig, Trainer
from experiments.cut_precision_parity import summarize

TINY = {"generator": {"ngf": 8, "n_blocks": 2}, "discriminator": {"ndf": 8}}
TINY_NCE = {**TINY, "nce_layers": (0, 4, 8, 12, 13), "num_patches": 16}
TINY_FLAGS = ["--ngf", "8", "--n-blocks", "2", "--ndf", "8", "--nce-layers", "0", "4", "8", "12", "13"]
TINY_FLAGS += ["--num-patches", "16"]
#: bf16 keeps 8 significant bits: one rounding has a relative error of at most u = 2**-9.
BF16_UNIT_ROUNDOFF = 2.0**-9


def tiny_model(name: str, precision: str) -> nn.Module:
    config = make_config(name, **(TINY if name == "cyclegan" else TINY_NCE))
    return build_model(name, config, seed=0, precision=precision)


def images(seed: int, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=gen) * 2 - 1


def conv_output_dtypes(model: nn.Module) -> tuple[dict[str, set[torch.dtype]], list]:
    """Forward hooks on every conv of the generators and discriminators and every linear layer of the MLP
    heads; returns {network: dtypes seen} (filled as the model runs) and the hook handles."""
    seen: dict[str, set[torch.dtype]] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            network = name.split(".")[0]
            handles.append(
                module.register_forward_hook(lambda m, i, o, n=network: seen.setdefault(n, set()).add(o.dtype))
            )
    return seen, handles


def record_losses(monkeypatch, module, names) -> list[tuple[str, list[torch.dtype], torch.dtype]]:
    """Wrap the loss functions ``names`` of ``module``: each call records its tensor inputs' and output's dtypes."""
    calls = []
    for name in names:
        original = getattr(module, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            out = _original(*args, **kwargs)
            calls.append((_name, [a.dtype for a in args if isinstance(a, torch.Tensor)], out.dtype))
            return out

        monkeypatch.setattr(module, name, wrapped)
    return calls


LOSSES = {
    "cut": (cut, ("discriminator_loss", "generator_loss", "patch_nce_loss")),
    "fastcut": (cut, ("discriminator_loss", "generator_loss", "patch_nce_loss")),
    "cyclegan": (cyclegan, ("discriminator_loss", "generator_loss", "l1")),
}


@pytest.mark.parametrize("name", ["cut", "fastcut", "cyclegan"])
def test_bf16_runs_the_networks_in_bf16_and_keeps_losses_weights_and_adam_states_fp32(monkeypatch, name):
    module, loss_names = LOSSES[name]
    calls = record_losses(monkeypatch, module, loss_names)
    dtypes = {}
    for precision in ("fp32", "bf16"):
        model = tiny_model(name, precision)
        seen, handles = conv_output_dtypes(model)
        for step in range(2):  # FastCUT flips on one of the two draws of generator seed 1
            model.generator.manual_seed(1)
            model.train_step(images(2 * step), images(2 * step + 1), step=step)
        for handle in handles:
            handle.remove()
        dtypes[precision] = seen
        # weights, gradients and the Adam moments stay fp32 in both precisions
        assert {p.dtype for p in model.parameters()} == {torch.float32}
        assert {p.grad.dtype for p in model.parameters() if p.grad is not None} == {torch.float32}
        states = [v for opt in model.optimizers.values() for s in opt.state.values() for v in s.values()]
        assert states and {v.dtype for v in states if v.is_floating_point()} == {torch.float32}
    networks = {"netG", "netD", "netF"} if name != "cyclegan" else {"netG_A", "netG_B", "netD_A", "netD_B"}
    assert dtypes["bf16"] == {n: {torch.bfloat16} for n in networks}
    assert dtypes["fp32"] == {n: {torch.float32} for n in networks}
    # every loss of both precisions saw fp32 inputs and returned fp32
    assert {n for n, _, _ in calls} == set(loss_names)
    assert all(inputs and set(inputs) == {torch.float32} and out == torch.float32 for _, inputs, out in calls), calls


@pytest.mark.parametrize("name", ["cut", "fastcut", "cyclegan"])
def test_bf16_losses_are_close_to_fp32_on_the_same_weights_and_batch(name):
    """First step, identical initial weights, batch and random draws: only the rounding differs.

    Tolerance 2**-5 = 16 u (u = 2**-9, bf16's unit roundoff): the image passes ~15 convolutions in G and D
    (tiny nets: 10 in G, 5 in D), each rounding its inputs to bf16 (products accumulated in fp32), so a
    relative error of a few u per layer, adding up over the layers, stays below 16 u; a loss computed from
    wrong data (e.g. the un-cast bf16 logits squared in bf16, or a dropped term) is off by far more.
    """
    losses = {}
    for precision in ("fp32", "bf16"):
        model = tiny_model(name, precision)
        model.generator.manual_seed(1)
        losses[precision] = model.train_step(images(10), images(11), step=0)
    assert losses["fp32"].keys() == losses["bf16"].keys()
    for key, value in losses["fp32"].items():
        assert losses["bf16"][key] == pytest.approx(value, rel=16 * BF16_UNIT_ROUNDOFF), key
    assert losses["bf16"] != losses["fp32"]  # the bf16 forward really ran in bf16


def test_a_model_takes_only_a_resolved_precision():
    with pytest.raises(ValueError, match="'auto'"):
        tiny_model("cut", "auto")


# ---------------------------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 train and 2 test pairs of 36 px smooth colour fields (testB = inverted testA)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            coarse = rng.integers(0, 101, (4, 4, 3), dtype=np.uint8)
            a = np.asarray(Image.fromarray(coarse).resize((36, 36), Image.Resampling.BICUBIC))
            for domain, image in (("A", a), ("B", 255 - a)):
                (root / f"{split}{domain}").mkdir(exist_ok=True)
                Image.fromarray(image).save(root / f"{split}{domain}" / f"im{i}.png")
    return root


def train_config(root, out, **kw) -> TrainConfig:
    values = dict(data=str(root), out=str(out), iters=2, load_size=36, crop_size=32, seed=3, device="cpu")
    values.update(log_every=1, sample_every=2, checkpoint_every=2, n_monitor=2, spread_threshold=0.0, **kw)
    return TrainConfig(**values)


def machine_with(monkeypatch, flags: set[str]) -> None:
    """Make the CPU look as if it had (only) these instruction-set flags."""
    real = ssl_shared.provenance.cpu_info
    monkeypatch.setattr(ssl_shared.provenance, "cpu_info", lambda *a: {**real(*a), "flags": sorted(flags)})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "bf16"),
        ({"avx2", "avx512_bf16"}, "bf16"),
        ({"avx2", "fma"}, "fp32"),
    ],
)
def test_auto_resolves_by_the_cpu_and_the_run_records_the_resolved_precision(
    dataset, tmp_path, monkeypatch, flags, expected
):
    machine_with(monkeypatch, flags)
    trainer = Trainer(train_config(dataset, tmp_path / "run", precision="auto"), make_config("cut", **TINY_NCE))
    assert trainer.model.precision == expected
    trainer.fit()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == expected
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step-0000000002" / "meta.json").read_text())
    assert meta["train_config"]["precision"] == expected


def test_resume_compares_the_resolved_precision(dataset, tmp_path, monkeypatch, capsys):
    machine_with(monkeypatch, {"avx2", "amx_bf16"})
    out = tmp_path / "run"
    new = ["--data", str(dataset), "--out", str(out), "--iters", "2", "--load-size", "36", "--crop-size", "32"]
    train_main([*new, "--device", "cpu", "--checkpoint-every", "2", "--spread-threshold", "0", *TINY_FLAGS])
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "bf16"
    # another resolved precision is refused, naming the setting
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--out", str(out), "--iters", "3", "--resume", "--precision", "fp32"])
    assert exit_info.value.code == 2
    assert "--precision: saved 'bf16', now 'fp32'" in capsys.readouterr().err
    # --precision auto resolves to bf16 on this (bf16) machine: the same precision, accepted
    train_main(["--out", str(out), "--iters", "3", "--resume", "--precision", "auto"])
    # without --precision the saved bf16 is kept, even where auto would now give fp32
    machine_with(monkeypatch, {"avx2"})
    train_main(["--out", str(out), "--iters", "4", "--resume"])
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "bf16"
    assert json.loads((out / "summary.json").read_text())["iterations"] == 4


def test_a_checkpoint_without_a_precision_resumes_in_fp32(dataset, tmp_path, monkeypatch, capsys):
    machine_with(monkeypatch, {"avx2", "amx_bf16"})
    out = tmp_path / "run"
    Trainer(train_config(dataset, out, precision="fp32"), make_config("cut", **TINY_NCE)).fit()
    meta_path = out / "checkpoints" / "step-0000000002" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["train_config"]["precision"]  # as written before runs recorded a precision
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(SystemExit):  # auto is bf16 here: not the fp32 the checkpoint was trained in
        train_main(["--out", str(out), "--iters", "3", "--resume", "--precision", "auto"])
    assert "--precision: saved 'fp32', now 'bf16'" in capsys.readouterr().err
    train_main(["--out", str(out), "--iters", "3", "--resume"])
    assert json.loads((out / "config.json").read_text())["train"]["precision"] == "fp32"


def test_bf16_inference_and_evaluate_record_the_precision(dataset, tmp_path):
    model = tiny_model("cut", "fp32")
    generator = model.translator.eval()
    seen, handles = conv_output_dtypes(generator)
    image = images(5, 28)[0]  # 28 px: padded to a multiple of 4 and cropped back
    out_fp32 = translate_image(generator, image, precision="fp32")
    assert seen == {"model": {torch.float32}}
    out_bf16 = translate_image(generator, image, precision="bf16")
    assert seen == {"model": {torch.float32, torch.bfloat16}}
    for handle in handles:
        handle.remove()
    assert out_bf16.dtype == torch.float32 and out_bf16.shape == out_fp32.shape == (3, 28, 28)
    # 16 u of the output range [-1, 1], as for the losses
    assert (out_bf16 - out_fp32).abs().max() <= 2 * 16 * BF16_UNIT_ROUNDOFF
    run = tmp_path / "run"
    Trainer(train_config(dataset, run, precision="fp32"), make_config("cut", **TINY_NCE)).fit()
    for precision in ("fp32", "bf16"):
        evaluate_main(
            ["--checkpoint", str(run), "--data", str(dataset), "--precision", precision, "--json", str(tmp_path / "e")]
        )
        assert json.loads((tmp_path / "e").read_text())["precision"] == precision


# ---------------------------------------------------------------------------------------------- parity verdict


def run_scores(precision: str, seed: int, l1: float, psnr: float, ssim: float) -> dict:
    return {"precision": precision, "seed": seed, "paired_fp32_inference": {"l1": l1, "psnr": psnr, "ssim": ssim}}


def test_parity_verdict_compares_the_difference_of_means_with_the_larger_seed_range():
    runs = [
        run_scores("fp32", 0, 0.10, 20.0, 0.50),
        run_scores("fp32", 1, 0.12, 22.0, 0.52),
        run_scores("bf16", 0, 0.11, 21.0, 0.60),
        run_scores("bf16", 1, 0.12, 24.0, 0.61),
    ]
    summary = summarize(runs)
    psnr = summary["comparison"]["psnr"]  # means 21.0 and 22.5; ranges 2 and 3
    assert psnr["difference_bf16_minus_fp32"] == pytest.approx(1.5) and psnr["seed_spread"] == pytest.approx(3.0)
    assert psnr["within_spread"] is True
    l1 = summary["comparison"]["l1"]  # means 0.11 and 0.115; ranges 0.02 and 0.01
    assert l1["difference_bf16_minus_fp32"] == pytest.approx(0.005) and l1["within_spread"] is True
    ssim = summary["comparison"]["ssim"]  # means 0.51 and 0.605: 0.095 apart; ranges 0.02 and 0.01
    assert ssim["difference_bf16_minus_fp32"] == pytest.approx(0.095) and ssim["within_spread"] is False
    assert summary["bf16_matches"] is False
    assert summary["per_precision"]["bf16"]["psnr"] == pytest.approx({"mean": 22.5, "min": 21, "max": 24, "range": 3})


def test_parity_gives_no_verdict_with_one_seed():
    runs = [run_scores("fp32", 0, 0.10, 20.0, 0.50), run_scores("bf16", 0, 0.10, 20.0, 0.50)]
    summary = summarize(runs)
    assert summary["bf16_matches"] is None and summary["comparison"]["psnr"]["within_spread"] is None
