"""The ``cut-train``, ``cut-translate`` and ``cut-evaluate`` commands (also ``python -m cut_translation.cli train|...``).

Worked example on the offline benchmark (``dmc-restyle``, 64 px)::

    MUJOCO_GL=egl dmc-restyle --out data/dmc-restyle-64 --size 64
    cut-train --model cut --data data/dmc-restyle-64 --load-size 72 --crop-size 64 --iters 2000 --out runs/cut64
    cut-translate --checkpoint runs/cut64 --input data/dmc-restyle-64/testA --out runs/cut64/translated
    cut-evaluate --checkpoint runs/cut64 --data data/dmc-restyle-64

``cut-translate`` accepts any image size: the image is reflect-padded on the right and bottom to a
multiple of 4 (the generator halves the resolution twice), translated, and cropped back to its
original size; ``--size N`` instead resizes to N x N (bicubic) and the output back to the original size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from cut_translation.data import IMG_EXTENSIONS, image_to_tensor, list_images, load_rgb
from cut_translation.models import MODEL_NAMES
from cut_translation.models.gan_loss import GAN_MODES
from cut_translation.trainer import NonFiniteLossError, TrainConfig, Trainer, load_checkpoint, to_unit
from ssl_shared.host_memory import reuse_freed_host_memory

SIZE_MULTIPLE = 4

# CLI flag -> (config field, applies to these models)
GENERATOR_FLAGS = {"ngf": "ngf", "n_blocks": "n_blocks"}
DISCRIMINATOR_FLAGS = {"ndf": "ndf", "n_layers_d": "n_layers"}
CUT_ONLY = ("lambda_nce", "num_patches", "nce_layers", "nce_negatives", "nce_temperature", "nce_idt",
            "flip_equivariance")
CYCLEGAN_ONLY = ("lambda_cycle", "lambda_identity", "pool_size")
SHARED = ("lambda_gan", "gan_mode", "lr", "init_type", "init_gain", "n_epochs", "n_epochs_decay")


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 0,4,8,12,16, got {text!r}") from err


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cut-train", description="Train CUT, FastCUT or CycleGAN on ROOT/trainA,trainB.")
    p.add_argument("--model", choices=MODEL_NAMES, default="cut")
    p.add_argument("--data", required=True, help="dataset root with trainA/ trainB/ (testA/ testB/ optional)")
    p.add_argument("--out", required=True, help="run folder (logs, samples, checkpoints)")
    p.add_argument("--iters", type=int, default=None,
                   help="iterations to run (default: (n_epochs + n_epochs_decay) epochs of the dataset)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest.pt")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--load-size", type=int, default=286)
    p.add_argument("--crop-size", type=int, default=256)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--max-dataset-size", type=int, default=None)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--sample-every", type=int, default=200)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=0, help="FID every N iterations (needs --inception-weights)")
    p.add_argument("--inception-weights", default=os.environ.get("CUT_INCEPTION_WEIGHTS"),
                   help="InceptionV3 FID weights file (or $CUT_INCEPTION_WEIGHTS); without it no FID")
    p.add_argument("--no-crop-only-in-decay", action="store_true",
                   help="keep resize-and-crop in the decay epochs (the CUT code switches it off)")
    m = p.add_argument_group("model (defaults: the paper preset of --model)")
    m.add_argument("--ngf", type=int)
    m.add_argument("--n-blocks", type=int)
    m.add_argument("--ndf", type=int)
    m.add_argument("--n-layers-d", type=int)
    m.add_argument("--gan-mode", choices=GAN_MODES)
    m.add_argument("--lambda-gan", type=float)
    m.add_argument("--lr", type=float)
    m.add_argument("--init-type", choices=("normal", "xavier", "kaiming", "orthogonal"))
    m.add_argument("--init-gain", type=float)
    m.add_argument("--n-epochs", type=int)
    m.add_argument("--n-epochs-decay", type=int)
    m.add_argument("--lambda-nce", type=float, help="CUT/FastCUT")
    m.add_argument("--num-patches", type=int, help="CUT/FastCUT")
    m.add_argument("--nce-layers", type=_int_tuple, help="CUT/FastCUT, e.g. 0,4,8,12,16")
    m.add_argument("--nce-negatives", choices=("image", "batch"), help="CUT/FastCUT")
    m.add_argument("--nce-temperature", type=float, help="CUT/FastCUT")
    m.add_argument("--nce-idt", type=_bool, help="CUT/FastCUT: identity PatchNCE on Y (true/false)")
    m.add_argument("--flip-equivariance", type=_bool, help="CUT/FastCUT (true/false)")
    m.add_argument("--lambda-cycle", type=float, help="CycleGAN")
    m.add_argument("--lambda-identity", type=float, help="CycleGAN")
    m.add_argument("--pool-size", type=int, help="CycleGAN")
    return p


def model_overrides(args: argparse.Namespace) -> dict:
    """Model-config overrides from the flags that were given; a flag of another model is an error."""
    over: dict = {}
    gen = {field: getattr(args, flag) for flag, field in GENERATOR_FLAGS.items() if getattr(args, flag) is not None}
    dis = {field: getattr(args, flag) for flag, field in DISCRIMINATOR_FLAGS.items() if getattr(args, flag) is not None}
    if gen:
        over["generator"] = gen
    if dis:
        over["discriminator"] = dis
    wrong = CYCLEGAN_ONLY if args.model != "cyclegan" else CUT_ONLY
    for name in SHARED + CUT_ONLY + CYCLEGAN_ONLY:
        value = getattr(args, name)
        if value is None:
            continue
        if name in wrong:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to --model {args.model}")
        if args.model == "cyclegan" and name == "lambda_gan":
            raise ValueError("--lambda-gan does not apply to --model cyclegan")
        over[name] = value
    return over


def train_main(argv: Sequence[str] | None = None) -> dict:
    args = build_train_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reuse_freed_host_memory()  # no page faults for each iteration's activations (see ssl_shared.host_memory)
    config = TrainConfig(
        model=args.model, data_root=args.data, out=args.out, iters=args.iters, batch_size=args.batch_size,
        load_size=args.load_size, crop_size=args.crop_size, flip=not args.no_flip, seed=args.seed,
        device=args.device, log_every=args.log_every, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
        inception_weights=args.inception_weights, crop_only_in_decay=not args.no_crop_only_in_decay,
        max_dataset_size=args.max_dataset_size, model_overrides=model_overrides(args),
    )
    if config.eval_every and not config.inception_weights:
        raise ValueError("--eval-every needs --inception-weights (or $CUT_INCEPTION_WEIGHTS): FID needs InceptionV3")
    trainer = Trainer(config, resume=args.resume)
    try:
        summary = trainer.train()
    except NonFiniteLossError as err:
        print(f"cut-train: {err}; last good checkpoint: {trainer.out / 'checkpoints'}", file=sys.stderr)
        raise SystemExit(2) from err
    print(json.dumps(summary, indent=2))
    return summary


# ---------------------------------------------------------------------------------------------- translate


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the right/bottom to multiples of ``multiple`` (reflect, or replicate if too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


@torch.no_grad()
def translate_image(generator: torch.nn.Module, image: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Translate one (3, H, W) image in [-1, 1] of any size; the result has the input's size."""
    x = image.unsqueeze(0)
    h, w = x.shape[-2:]
    if size is not None:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
    x, (ph, pw) = pad_to_multiple(x)
    y = generator(x)[..., :ph, :pw]
    if size is not None:
        y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return y[0]


def save_unit_png(image: torch.Tensor, path: Path) -> None:
    """Save a (3, H, W) tensor in [-1, 1] as an 8-bit PNG."""
    arr = (to_unit(image) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def translate_main(argv: Sequence[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(prog="cut-translate", description="Translate one image or a folder with a trained G.")
    p.add_argument("--checkpoint", required=True, help="run folder or checkpoint file")
    p.add_argument("--input", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (PNG, same base names)")
    p.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE for the generator and back")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.size is not None and (args.size < SIZE_MULTIPLE or args.size % SIZE_MULTIPLE):
        raise ValueError(f"--size must be a positive multiple of {SIZE_MULTIPLE}, got {args.size}")
    source = Path(args.input)
    if source.is_dir():
        paths = list_images(source)
        if not paths:
            raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) in {source}")
    elif source.is_file():
        paths = [source]
    else:
        raise FileNotFoundError(f"--input not found: {source}")
    images = [image_to_tensor(load_rgb(path)) for path in paths]  # decode everything before any work
    _, model = load_checkpoint(args.checkpoint, args.device)
    generator = model.translator.eval()
    out = Path(args.out)
    written = []
    for path, image in tqdm(list(zip(paths, images)), desc="translate"):
        target = out / (path.stem + ".png")
        save_unit_png(translate_image(generator, image.to(args.device), args.size), target)
        written.append(target)
    print(f"cut-translate: wrote {len(written)} image(s) to {out}")
    return written


# ---------------------------------------------------------------------------------------------- evaluate


def evaluate_main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="cut-evaluate", description="Paired metrics (and FID/KID) of a trained G.")
    p.add_argument("--checkpoint", required=True, help="run folder or checkpoint file")
    p.add_argument("--data", required=True, help="dataset root with testA/ testB/")
    p.add_argument("--phase", default="test")
    p.add_argument("--size", type=int, default=None, help="resize test images to SIZE x SIZE (default: as stored)")
    p.add_argument("--inception-weights", default=os.environ.get("CUT_INCEPTION_WEIGHTS"),
                   help="InceptionV3 FID weights (or $CUT_INCEPTION_WEIGHTS); FID/KID only when given")
    p.add_argument("--save-images", default=None, help="also write G(A) PNGs to this folder")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = evaluate(args.checkpoint, args.data, args.phase, args.size, args.inception_weights,
                      args.save_images, args.device)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


def load_split(folder: Path, size: int | None) -> tuple[list[str], torch.Tensor]:
    """File names and images (N, 3, H, W) in [-1, 1] of one folder, optionally resized to size x size."""
    paths = list_images(folder)
    if not paths:
        raise ValueError(f"no images in {folder}")
    images = []
    for path in paths:
        img = load_rgb(path)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        images.append(image_to_tensor(img))
    sizes = {tuple(im.shape) for im in images}
    if len(sizes) > 1:
        raise ValueError(f"images in {folder} have different sizes {sorted(sizes)}; pass --size to resize them")
    return [p.name for p in paths], torch.stack(images)


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    phase: str = "test",
    size: int | None = None,
    inception_weights: str | None = None,
    save_images: str | Path | None = None,
    device: str = "cpu",
) -> dict:
    """G(A) on ``{phase}A``: paired L1/PSNR/SSIM vs ``{phase}B`` with the identity baseline when the file names
    pair up (ground truth, e.g. dmc-restyle), and FID/KID of G(A) vs ``{phase}B`` when Inception weights are given.
    """
    from cut_translation.metrics import fid_kid, paired_metrics

    root = Path(data)
    names_a, images_a = load_split(root / f"{phase}A", size)  # data errors before the checkpoint is read
    names_b, images_b = load_split(root / f"{phase}B", size)
    ckpt, model = load_checkpoint(checkpoint, device)
    generator = model.translator.eval()
    fakes = torch.stack([translate_image(generator, image.to(device)).cpu() for image in tqdm(images_a, "evaluate")])
    if save_images:
        for name, fake in zip(names_a, fakes):
            save_unit_png(fake, Path(save_images) / (Path(name).stem + ".png"))
    result: dict = {"model": ckpt["model_name"], "iteration": ckpt["iteration"], "data": str(data), "phase": phase}
    if names_a == names_b and images_a.shape == images_b.shape:
        result["paired"] = paired_metrics(fakes, images_b, images_a)
    else:
        result["paired"] = f"not available: {phase}A and {phase}B file names do not pair up (no ground truth)"
    if inception_weights:
        result["fid_kid"] = fid_kid(to_unit(images_b), to_unit(fakes), weights_path=inception_weights)
    else:
        result["fid_kid"] = ("skipped: no --inception-weights / $CUT_INCEPTION_WEIGHTS given (FID/KID need the "
                             "InceptionV3 FID weights file; see cut_translation/inception.py)")
        print(f"cut-evaluate: FID/KID {result['fid_kid']}", file=sys.stderr)
    return result


COMMANDS = {"train": train_main, "translate": translate_main, "evaluate": evaluate_main}


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: python -m cut_translation.cli {{{'|'.join(COMMANDS)}}} [options]")
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
