"""The ``scv-cut-train``, ``scv-cut-translate`` and ``scv-cut-evaluate`` commands (also ``python -m cut_translation train|...``).

Worked example on the offline benchmark (``dmc-restyle``, 64 px)::

    MUJOCO_GL=egl scv-dmc-restyle --out data/dmc-restyle-64 --size 64
    scv-cut-train --model cut --data data/dmc-restyle-64 --load-size 72 --crop-size 64 --iters 2000 --out runs/cut64
    scv-cut-translate --checkpoint runs/cut64 --input data/dmc-restyle-64/testA --out runs/cut64/translated
    scv-cut-evaluate --checkpoint runs/cut64 --data data/dmc-restyle-64

``scv-cut-train``'s options come from :class:`~cut_translation.trainer.TrainConfig` and from the config classes
of the registered models (:data:`cut_translation.models.MODELS`): every field is a flag whose help is the
field's comment, and an option whose field the chosen model's config lacks is refused for that model.
``--resume`` keeps the saved value of every option not given and refuses given values that differ from
the saved ones (except the iteration budget, device, threads and logging intervals).

``scv-cut-translate`` and ``scv-cut-evaluate`` take ``--precision`` for the generator's forward pass (``bf16``: bf16
autocast; ``auto``: bf16 where the device has bf16 matrix units). ``scv-cut-translate`` defaults to ``auto``;
``scv-cut-evaluate`` defaults to ``fp32``, so that the metrics of a checkpoint do not depend on the machine, and
records the resolved precision in its results.

``scv-cut-translate`` accepts any image size: the image is padded on the right and bottom to a multiple of 4
(the generator halves the resolution twice) and to at least 8 pixels (the residual blocks reflect-pad
their quarter-resolution maps by one pixel), with reflection where the image is larger than the pad and
edge replication where it is not, translated, and cropped back to its original size. ``--size N``
instead resizes to N x N (bicubic) and the output back to the original size.

Bad input (flags, data, checkpoints, output folders) ends the command with one line on stderr and exit
status 2; a non-finite loss with exit status 3; success with 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import tempfile
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from cut_translation.checkpoint import checkpoint_store, load_checkpoint, read_meta
from cut_translation.data import IMG_EXTENSIONS, image_to_tensor, list_images, load_rgb
from cut_translation.models import MODEL_NAMES, MODELS, make_config, model_spec
from cut_translation.networks import ResnetGenerator
from cut_translation.trainer import (
    DEFAULTS_SHOWN,
    TrainConfig,
    Trainer,
    open_run_dir,
    resolve_device,
    resume_configuration,
    to_unit,
)
from ssl_shared.cli import OneLineArgumentParser, add_dataclass_options, check_positive, command, explicit_values
from ssl_shared.errors import NonFiniteLossError, UserError
from ssl_shared.host_memory import reuse_freed_host_memory
from ssl_shared.precision import PRECISIONS, autocast, resolve_precision
from ssl_shared.run_dir import atomic_write_json

WEIGHTS_ENV = "CUT_INCEPTION_WEIGHTS"  # same name as cut_translation.inception.WEIGHTS_ENV (not imported: slow)
#: Network-config fields that are not options: the images are RGB.
FIXED_FIELDS = ("in_channels", "out_channels")
SSIM_WINDOW = 11  # cut_translation.metrics.ssim's window


# ---------------------------------------------------------------------------------------------- model options


def _nested_configs(cls: type) -> dict[str, type]:
    """Fields of config class ``cls`` that hold a nested config (generator, discriminator) -> its class."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def _config_classes() -> list[type]:
    """The registered models' config classes, each once, in registry order."""
    return list(dict.fromkeys(spec.config_class for spec in MODELS.values()))


def option_fields(cls: type) -> set[str]:
    """Names of the ``scv-cut-train`` options that a model with config class ``cls`` accepts."""
    names = set()
    nested = _nested_configs(cls)
    for f in dataclasses.fields(cls):
        if f.name in nested:
            names |= {g.name for g in dataclasses.fields(nested[f.name]) if g.name not in FIXED_FIELDS}
        else:
            names.add(f.name)
    return names


def _shown_default(values: dict[str, Any]) -> str:
    """``lsgan`` when every model's preset agrees, else ``1.0 (cut), 10.0 (fastcut)``."""

    def text(value: Any) -> str:
        return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)

    by_value: dict[str, list[str]] = {}
    for model, value in values.items():
        by_value.setdefault(text(value), []).append(model)
    if len(by_value) == 1:
        return next(iter(by_value))
    return ", ".join(f"{value} ({'/'.join(models)})" for value, models in by_value.items())


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """One flag per field of the registered models' configs, grouped by the models that accept it."""
    presets = {name: make_config(name) for name in MODEL_NAMES}
    classes = _config_classes()
    added = set.intersection(*(option_fields(cls) for cls in classes))
    _add_config_fields(parser.add_argument_group("model options (all models)"), classes[0], added, presets)
    for cls in classes:
        own = option_fields(cls) - added
        if own:
            users = [name for name, spec in MODELS.items() if spec.config_class is cls]
            group = parser.add_argument_group(f"model options ({', '.join(users)} only)")
            _add_config_fields(group, cls, own, {name: presets[name] for name in users})
            added |= own


def _add_config_fields(group: Any, cls: type, names: set[str], presets: dict[str, Any]) -> None:
    """Flags for the fields ``names`` of ``cls`` (nested configs' fields included); help shows ``presets``' values."""
    nested = _nested_configs(cls)
    for field_name, nested_cls in nested.items():
        wanted = {g.name for g in dataclasses.fields(nested_cls)} & names
        if wanted:
            defaults = {
                n: _shown_default({m: getattr(getattr(p, field_name), n) for m, p in presets.items()}) for n in wanted
            }
            add_dataclass_options(group, nested_cls, exclude=_others(nested_cls, wanted), defaults=defaults)
    top = names - {g.name for n in nested.values() for g in dataclasses.fields(n)}
    if top:
        defaults = {n: _shown_default({m: getattr(p, n) for m, p in presets.items() if hasattr(p, n)}) for n in top}
        add_dataclass_options(group, cls, exclude=_others(cls, top), defaults=defaults)


def _others(cls: type, keep: set[str]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in keep]


def given_model_options(args: argparse.Namespace) -> dict[str, Any]:
    """Every model option given on the command line, flat (``{"ngf": 8, "lambda_nce": 2.0}``)."""
    given: dict[str, Any] = {}
    for cls in _config_classes():
        given.update(explicit_values(args, cls))
        for nested_cls in _nested_configs(cls).values():
            given.update(explicit_values(args, nested_cls))
    accepted = set().union(*(option_fields(cls) for cls in _config_classes()))
    return {k: v for k, v in given.items() if k in accepted}


def model_overrides(given: dict[str, Any], model: str) -> dict[str, Any]:
    """``given`` as overrides of ``model``'s config (nested configs as dicts); refuses options it lacks."""
    cls = model_spec(model).config_class
    foreign = sorted(set(given) - option_fields(cls))
    if foreign:
        owners = sorted({m for m, s in MODELS.items() for name in foreign if name in option_fields(s.config_class)})
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise UserError(
            f"{flags}: not an option of --model {model} ({cls.__name__} has no {', '.join(foreign)}); "
            f"allowed for {', '.join(owners)}"
        )
    overrides = dict(given)
    for field_name, nested_cls in _nested_configs(cls).items():
        sub = {g.name: overrides.pop(g.name) for g in dataclasses.fields(nested_cls) if g.name in overrides}
        if sub:
            overrides[field_name] = sub
    return overrides


# ---------------------------------------------------------------------------------------------- train


@functools.lru_cache(maxsize=1)
def build_train_parser() -> OneLineArgumentParser:
    """The ``scv-cut-train`` parser (built once per process: reading the help comments parses the config sources)."""
    p = OneLineArgumentParser(
        prog="scv-cut-train",
        description="Train CUT, FastCUT or CycleGAN on DATA/trainA, trainB. Model options default to the paper "
        "preset of --model.",
    )
    run = p.add_argument_group("run")
    add_dataclass_options(run, TrainConfig, defaults={**dataclasses.asdict(TrainConfig()), **DEFAULTS_SHOWN})
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoint; options not given keep their saved values",
    )
    add_model_options(p)
    return p


@command("scv-cut-train")
def train_main(argv: Sequence[str] | None = None) -> None:
    args = build_train_parser().parse_args(argv)
    train_values = explicit_values(args, TrainConfig)
    given = given_model_options(args)
    if not train_values.get("out"):
        raise UserError("--out is required: the run folder (new, or with --resume the run to continue)")
    if args.resume:
        meta = read_meta(open_run_dir(Path(train_values["out"]), resume=True).latest(), flag="--resume")
        overrides = model_overrides(given, train_values.get("model", meta["model"]))
        config, model_config = resume_configuration(meta, train_values, overrides)
    else:
        if not train_values.get("data"):
            raise UserError("--data is required for a new run: the dataset root with trainA/ and trainB/")
        train_values.setdefault("inception_weights", os.environ.get(WEIGHTS_ENV) or None)
        config = TrainConfig(**train_values)
        model_config = make_config(config.model, **model_overrides(given, config.model))
    if config.threads:
        torch.set_num_threads(config.threads)
    reuse_freed_host_memory()  # no page faults for each iteration's activations (see ssl_shared.host_memory)
    trainer = Trainer(config, model_config, resume=args.resume)
    try:
        summary = trainer.fit()
    except NonFiniteLossError as err:
        latest = checkpoint_store(config.out).latest()
        where = f"last good checkpoint: {latest}" if latest else "no checkpoint was written"
        raise NonFiniteLossError(err.loss_name, err.value, err.step, where=where) from err
    print(json.dumps(summary, indent=2))


# ---------------------------------------------------------------------------------------------- translate


def pad_for_generator(
    x: torch.Tensor,
    multiple: int = ResnetGenerator.SIZE_MULTIPLE,
    minimum: int = ResnetGenerator.MIN_SIZE,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the right and bottom to sides that are multiples of ``multiple`` and >= ``minimum``.

    Each side is reflect-padded when the pad is shorter than it (reflection needs that), else the edge is
    replicated. Returns the padded tensor and the original ``(H, W)``.
    """
    h, w = x.shape[-2:]
    target_h = max(minimum, -(-h // multiple) * multiple)
    target_w = max(minimum, -(-w // multiple) * multiple)
    pad_h, pad_w = target_h - h, target_w - w
    if pad_w:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < w else "replicate")
    if pad_h:
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < h else "replicate")
    return x, (h, w)


@torch.no_grad()
def translate_image(
    generator: torch.nn.Module, image: torch.Tensor, size: int | None = None, precision: str = "fp32"
) -> torch.Tensor:
    """Translate one (3, H, W) image in [-1, 1] of any size; the result (fp32) has the input's size.

    ``precision`` (resolved: ``fp32`` or ``bf16``) is that of the generator's forward pass.
    """
    x = image.unsqueeze(0)
    h, w = x.shape[-2:]
    if size is not None:
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
    x, (ph, pw) = pad_for_generator(x)
    with autocast(precision, x.device):
        y = generator(x)
    y = y.float()[..., :ph, :pw]
    if size is not None:
        y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False).clamp(-1, 1)
    return y[0]


def save_unit_png(image: torch.Tensor, path: Path) -> None:
    """Save a (3, H, W) tensor in [-1, 1] as an 8-bit PNG."""
    arr = (to_unit(image) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def writable_folder(flag: str, path: str | Path) -> Path:
    """Create folder ``path`` if needed and check that files can be written there; ``UserError`` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file; allowed: a folder (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path} is not writable ({err.strerror or err})") from err
    return path


def _input_images(source: Path) -> list[Path]:
    if source.is_dir():
        paths = list_images(source)
        if not paths:
            raise UserError(f"--input {source}: no images in the folder (allowed: {', '.join(IMG_EXTENSIONS)})")
        return paths
    if source.is_file():
        return [source]
    raise UserError(f"--input {source}: not found; allowed: an image file or a folder of images")


def _targets(paths: list[Path], out: Path) -> list[Path]:
    """``out/<stem>.png`` per input; refuses two inputs with one output name and outputs over inputs."""
    targets = [out / (path.stem + ".png") for path in paths]
    seen: dict[Path, Path] = {}
    for path, target in zip(paths, targets):
        if target in seen:
            raise UserError(f"--input: {seen[target].name} and {path.name} would both be written as {target}")
        seen[target] = path
    inputs = {path.resolve() for path in paths}
    clobbered = [t for t in targets if t.resolve() in inputs]
    if clobbered:
        raise UserError(f"--out {out}: would overwrite the input image {clobbered[0]}; choose another --out")
    return targets


@command("scv-cut-translate")
def translate_main(argv: Sequence[str] | None = None) -> None:
    p = OneLineArgumentParser(prog="scv-cut-translate", description="Translate one image or a folder with a trained G.")
    p.add_argument("--checkpoint", required=True, help="run folder, its checkpoints/ folder or a checkpoint")
    p.add_argument("--input", required=True, help="an image file or a folder of images (any size)")
    p.add_argument("--out", required=True, help="output folder (PNG, same base names)")
    p.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE for the generator and back")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_precision_option(p, "auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    for name in ("size", "threads"):
        if getattr(args, name) is not None:
            check_positive(name, getattr(args, name))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    paths = _input_images(Path(args.input))
    images = [image_to_tensor(load_rgb(path)) for path in paths]  # decode everything before any work
    _, model = load_checkpoint(args.checkpoint, device)
    out = writable_folder("--out", args.out)
    targets = _targets(paths, out)
    generator = model.translator.eval()
    for target, image in tqdm(list(zip(targets, images)), desc="translate"):
        save_unit_png(translate_image(generator, image.to(device), args.size, precision), target)
    print(f"scv-cut-translate: wrote {len(targets)} image(s) to {out} (precision {precision})")


# ---------------------------------------------------------------------------------------------- evaluate


@command("scv-cut-evaluate")
def evaluate_main(argv: Sequence[str] | None = None) -> None:
    p = OneLineArgumentParser(prog="scv-cut-evaluate", description="Paired metrics (and FID/KID) of a trained G.")
    p.add_argument("--checkpoint", required=True, help="run folder, its checkpoints/ folder or a checkpoint")
    p.add_argument("--data", required=True, help="dataset root with {phase}A/ and {phase}B/")
    p.add_argument("--phase", default="test", help="split to evaluate: reads DATA/PHASEA and DATA/PHASEB")
    p.add_argument("--size", type=int, default=None, help="resize test images to SIZE x SIZE (default: as stored)")
    p.add_argument(
        "--inception-weights",
        default=os.environ.get(WEIGHTS_ENV) or None,
        help=f"InceptionV3 FID weights (or ${WEIGHTS_ENV}); FID/KID only when given",
    )
    p.add_argument("--save-images", default=None, help="also write G(A) PNGs to this folder")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    add_precision_option(p, "fp32")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    for name in ("size", "threads"):
        if getattr(args, name) is not None:
            check_positive(name, getattr(args, name))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    if args.save_images:
        writable_folder("--save-images", args.save_images)
    if args.json:
        json_path = Path(args.json)
        if json_path.is_dir():
            raise UserError(f"--json {json_path} is a folder; allowed: a file name")
        writable_folder("--json", json_path.parent if str(json_path.parent) else ".")
    result = evaluate(
        args.checkpoint,
        args.data,
        args.phase,
        args.size,
        args.inception_weights,
        args.save_images,
        str(device),
        precision,
    )
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write_json(args.json, result)


def add_precision_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--precision",
        default=default,
        choices=PRECISIONS,
        help="precision of the generator's forward pass: bf16 autocast, fp32, or auto (bf16 where the device has "
        f"bf16 matrix units: CUDA with bf16, CPUs with AMX or AVX-512 BF16) (default: {default})",
    )


def load_split(folder: Path, size: int | None) -> tuple[list[str], torch.Tensor]:
    """File names and images (N, 3, H, W) in [-1, 1] of one folder, optionally resized to size x size."""
    paths = list_images(folder)
    if not paths:
        raise UserError(f"{folder}: no images (allowed: {', '.join(IMG_EXTENSIONS)})")
    images = []
    for path in paths:
        img = load_rgb(path)
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BICUBIC)
        images.append(image_to_tensor(img))
    sizes = {tuple(im.shape[1:]) for im in images}
    if len(sizes) > 1:
        raise UserError(f"{folder}: images of different sizes {sorted(sizes)[:3]}; pass --size to resize them")
    return [p.name for p in paths], torch.stack(images)


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    phase: str = "test",
    size: int | None = None,
    inception_weights: str | None = None,
    save_images: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict:
    """G(A) on ``{phase}A``: paired L1/PSNR/SSIM vs ``{phase}B`` with the identity baseline when the file names
    pair up (ground truth, e.g. dmc-restyle), and FID/KID of G(A) vs ``{phase}B`` when Inception weights are given.
    ``precision`` (resolved) is that of the generator's forward pass; the result records it.

    Checked before any translation, as one-line ``UserError``: the data, the Inception weights, the checkpoint.
    """
    from cut_translation.metrics import fid_kid, paired_metrics

    root = Path(data)
    if not root.is_dir():
        raise UserError(f"--data {root}: not found; allowed: a dataset root with {phase}A/ and {phase}B/")
    names_a, images_a = load_split(root / f"{phase}A", size)
    names_b, images_b = load_split(root / f"{phase}B", size)
    paired = names_a == names_b and images_a.shape == images_b.shape
    if paired and min(images_a.shape[-2:]) < SSIM_WINDOW:
        raise UserError(
            f"--data {root}: {phase} images of {images_a.shape[-1]}x{images_a.shape[-2]} px are smaller than the "
            f"{SSIM_WINDOW}x{SSIM_WINDOW} SSIM window; pass --size {SSIM_WINDOW} or more"
        )
    extractor = None
    if inception_weights:
        from cut_translation.inception import load_feature_extractor

        extractor = load_feature_extractor(inception_weights)
    meta, model = load_checkpoint(checkpoint, device)
    generator = model.translator.eval()
    fakes = torch.stack(
        [
            translate_image(generator, image.to(device), precision=precision).cpu()
            for image in tqdm(images_a, "evaluate")
        ]
    )
    if save_images:
        for name, fake in zip(names_a, fakes):
            save_unit_png(fake, Path(save_images) / (Path(name).stem + ".png"))
    result: dict = {
        "model": meta["model"],
        "iteration": meta["iteration"],
        "data": str(data),
        "phase": phase,
        "precision": precision,
    }
    if paired:
        result["paired"] = paired_metrics(fakes, images_b, images_a)
    else:
        result["paired"] = f"not available: {phase}A and {phase}B file names do not pair up (no ground truth)"
    if extractor is not None:
        result["fid_kid"] = fid_kid(to_unit(images_b), to_unit(fakes), extractor=extractor)
    else:
        result["fid_kid"] = (
            f"skipped: no --inception-weights / ${WEIGHTS_ENV} given (FID/KID need the InceptionV3 FID weights "
            "file; see cut_translation/inception.py)"
        )
        print(f"scv-cut-evaluate: FID/KID {result['fid_kid']}", file=sys.stderr)
    return result


COMMANDS = {"train": train_main, "translate": translate_main, "evaluate": evaluate_main}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cut_translation train|translate|evaluate [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        got = repr(argv[0]) if argv else "nothing"
        sys.stderr.write(f"cut_translation: error: got {got}; allowed: {', '.join(COMMANDS)} [options]\n")
        raise SystemExit(2)
    COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
