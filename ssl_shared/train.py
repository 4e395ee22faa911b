"""One training loop for every SSL method: ``python -m ssl_shared.train --method simclr --data digits``.

The loop is method-agnostic: a method (``ssl_shared.methods``) turns a batch into a loss
(``training_step``) and updates its momentum encoders, queues or memory banks afterwards
(``after_optimizer_step``). :class:`Trainer` adds what every run needs:

- device auto-selection; ``--precision auto`` (bf16 autocast where the device accelerates it, see
  ``ssl_shared.precision``) and channels-last on CUDA; optional ``torch.compile`` of the backbone;
- multi-GPU / multi-node through ``torchrun`` (``torch.distributed``; gradients averaged across processes,
  BatchNorm synchronised on CUDA, each process reads its own shard of the data and draws its own
  augmentations; methods keep their queues and memory banks identical on every process);
- AdamW or SGD, linear warm-up then cosine learning-rate decay;
- deterministic seeding (Python, NumPy, torch, the data order): one seed gives one run;
- a linear probe (and k-NN for class labels) of the frozen encoder at the end, written to ``probe.json``;
  ``--probe-only`` probes the encoder as initialised, without a training step (the random-init baseline).

Run folder (``--out``), written through ``ssl_shared.run_dir`` so a run killed at any instant resumes
exactly where its last checkpoint left it::

    config.json                      the run's settings, resolved (device, precision, channels_last, threads)
                                     plus the method's full config; written once, never overwritten
    launches.json                    one record per launch: command, git commit, versions, hardware
    train.csv                        step, time_s, loss, lr and the method's logs (each row reaches the file at once)
    tb/                              TensorBoard scalars
    checkpoints/step-N/checkpoint.pt model, optimiser, step and every process's RNG state
    checkpoints/latest.txt           names the newest complete checkpoint
    probe.json                       final logs and probe scores, written last: the run reached --steps

A new run refuses a folder that holds one; ``--resume`` continues the latest checkpoint with the saved
settings (on the command line, flags not given are read from ``config.json``) and refuses flags that
change what the run computes, and a finished run (``probe.json``) unless a larger ``--steps`` extends it. Bad input (unknown names, non-positive sizes, missing data, a batch
without what the method needs) stops with one line before any model is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import random
import sys
import time
import typing
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ssl_shared.cli import (
    OneLineArgumentParser,
    add_dataclass_options,
    check_choice,
    check_positive,
    command,
    explicit_values,
    one_line,
)
from ssl_shared.data import build_dataset
from ssl_shared.device import get_device
from ssl_shared.encoders import TORCHVISION_RESNETS, SmallResNet, TorchvisionResNet
from ssl_shared.errors import NonFiniteLossError, UserError
from ssl_shared.evaluation import (
    extract_features,
    knn_classify,
    linear_probe_classification,
    linear_probe_regression,
)
from ssl_shared.host_memory import reuse_freed_host_memory
from ssl_shared.precision import PRECISIONS, autocast, resolve_precision
from ssl_shared.provenance import record_launch
from ssl_shared.run_dir import (
    CheckpointStore,
    CsvLog,
    atomic_write_json,
    check_resume_config,
    prepare_run_dir,
)

BACKBONES = ("small_resnet", *TORCHVISION_RESNETS)
OPTIMIZERS = ("adamw", "sgd")
DATA_KINDS = "digits, dmc:TASK[:PATH.npz], folder:PATH, cifar10:PATH, stl10:PATH"


def _method_names() -> list[str]:
    from ssl_shared.methods import METHODS

    return sorted(METHODS)


@dataclass
class TrainerConfig:
    """Settings of one SSL run; every field is an ``scv-ssl-train`` flag whose help is the trailing comment.

    Defaults are CPU-sized; paper-scale runs raise ``steps``, ``batch_size`` and the backbone. The schedule
    follows SimCLR (Chen et al. 2020, arXiv:2002.05709): linear warm-up, then cosine decay without
    restarts (Loshchilov & Hutter, arXiv:1608.03983), with AdamW (Loshchilov & Hutter, arXiv:1711.05101)
    or SGD with momentum 0.9.
    """

    method: str = field(default="simclr", metadata={"choices": _method_names, "help": "SSL method"})
    data: str = "digits"  # digits | dmc:TASK[:PATH.npz] | folder:PATH | cifar10:PATH | stl10:PATH
    image_size: int = 32  # side of the square training images in px
    backbone: str = field(default="small_resnet", metadata={"choices": BACKBONES, "help": "encoder network"})
    feature_dim: int = 128  # width of the backbone's output features
    widths: tuple[int, ...] = (32, 64, 128)  # small_resnet stage widths
    sequence_length: int = 1  # frames per item; >= 2 gives temporal methods batch["frames"] (dmc data)
    steps: int = 500  # optimizer steps of the whole run (the learning-rate schedule ends here)
    batch_size: int = 64  # images per step on each process
    optimizer: str = field(default="adamw", metadata={"choices": OPTIMIZERS, "help": "optimizer"})
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-4  # decoupled (adamw) or L2 (sgd) weight decay
    warmup_steps: int = 0  # linear learning-rate warm-up steps before the cosine decay
    seed: int = 0  # seeds the weights, the data order and the augmentations: one seed, one run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = field(
        default="auto",
        metadata={
            "choices": PRECISIONS,
            "help": "auto: bf16 autocast where the device accelerates it (CUDA with bf16, CPUs with AMX or "
            "AVX-512 BF16), else fp32",
        },
    )
    channels_last: bool | None = None  # channels-last memory format
    compile: bool = False  # torch.compile the backbone
    threads: int | None = None  # CPU threads of torch (torch.set_num_threads)
    num_workers: int = 0  # DataLoader worker processes
    out: str = "runs/ssl"  # run folder: config.json, launches.json, train.csv, tb/, checkpoints/, probe.json
    resume: bool = False  # continue the run in --out from its latest checkpoint
    log_every: int = 10  # steps between train.csv / TensorBoard rows
    checkpoint_every: int = 200  # steps between checkpoints
    stop_after: int | None = None  # end this launch after N more steps (checkpointed); --resume continues
    probe: bool = True  # linear probe (and k-NN) of the frozen encoder at the end, into probe.json
    probe_only: bool = False  # probe the encoder as initialised, without training (the random-init baseline)
    method_kwargs: dict = field(default_factory=dict)  # JSON object of method config overrides


#: Fields a resumed run may change: they do not change what is computed (or, for ``steps``, extend it).
RESUME_MAY_CHANGE = (
    "steps",
    "stop_after",
    "device",
    "threads",
    "num_workers",
    "compile",
    "channels_last",
    "log_every",
    "checkpoint_every",
    "probe",
    "out",
    "resume",
)
#: Fields ``scv-ssl-train --resume`` does not read from ``config.json``: they belong to this launch or machine.
PER_LAUNCH = ("stop_after", "device", "threads", "channels_last", "out", "resume")
#: Files whose presence means a folder already holds a run (besides a checkpoint).
RUN_MARKERS = ("config.json", "train.csv", "probe.json", "checkpoint.pt")
CHECKPOINTS = "checkpoints"
CHECKPOINT_FILE = "checkpoint.pt"


def config_from_dict(values: dict[str, Any]) -> TrainerConfig:
    """A :class:`TrainerConfig` from JSON-like values (unknown keys ignored, lists of tuple fields restored)."""
    hints = typing.get_type_hints(TrainerConfig)
    kept = {}
    for name, value in values.items():
        if name not in hints:
            continue
        if isinstance(value, list) and typing.get_origin(hints[name]) is tuple:
            value = tuple(value)
        kept[name] = value
    return TrainerConfig(**kept)


# ----------------------------------------------------------------------------------------- validation


def validate_config(config: TrainerConfig) -> None:
    """Raise :class:`UserError` naming the flag for any value the run cannot use; touches no file or model."""
    check_choice("method", config.method, _method_names())
    check_choice("backbone", config.backbone, BACKBONES)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    check_choice("precision", config.precision, PRECISIONS)
    for name in (
        "image_size",
        "feature_dim",
        "sequence_length",
        "steps",
        "batch_size",
        "log_every",
        "checkpoint_every",
    ):
        check_positive(name, getattr(config, name))
    for name in ("warmup_steps", "num_workers"):
        check_positive(name, getattr(config, name), allow_zero=True)
    for name in ("stop_after", "threads"):
        if getattr(config, name) is not None:
            check_positive(name, getattr(config, name))
    if config.probe_only and not config.probe:
        raise UserError("--probe-only with --no-probe: nothing to do; allowed: --probe-only with the probe on")
    widths = config.widths
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise UserError(f"--widths: got {list(widths)}; allowed: one or more integers >= 1")
    _check_number("lr", config.lr, minimum=0.0, inclusive=False)
    _check_number("weight_decay", config.weight_decay, minimum=0.0, inclusive=True)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int):
        raise UserError(f"--seed: got {config.seed!r}; allowed: an integer")
    if not isinstance(config.method_kwargs, dict):
        raise UserError(f"--method-kwargs: got {config.method_kwargs!r}; allowed: a JSON object")
    check_data_spec(config.data)
    method_config(config)


def _check_number(name: str, value: Any, minimum: float, inclusive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    if not ok:
        bound = ">=" if inclusive else ">"
        raise UserError(f"--{name.replace('_', '-')}: got {value!r}; allowed: a finite number {bound} {minimum:g}")


def check_data_spec(spec: str) -> None:
    """The ``--data`` string names a known kind, and a folder that exists where it names one."""
    kind, _, rest = str(spec).partition(":")
    if kind not in ("digits", "dmc", "folder", "cifar10", "stl10") or (kind == "digits" and rest):
        raise UserError(f"--data: unknown value {spec!r}; allowed: {DATA_KINDS}")
    if kind in ("folder", "cifar10", "stl10"):
        if not rest:
            raise UserError(f"--data {spec!r}: no PATH; allowed: {kind}:PATH with PATH an existing folder")
        if not Path(rest).is_dir():
            raise UserError(
                f"--data {spec!r}: folder {rest} does not exist; allowed: {kind}:PATH of an existing folder"
            )


def method_config(config: TrainerConfig, extra: dict[str, Any] | None = None) -> Any:
    """The method's config dataclass: its defaults, then ``extra`` (derived from the data), then ``--method-kwargs``."""
    from ssl_shared.methods import METHODS
    from ssl_shared.methods.base import config_from_overrides

    cls = METHODS[config.method].config_class
    try:
        return config_from_overrides(cls, {**(extra or {}), **config.method_kwargs})
    except (TypeError, ValueError) as err:
        given = json.dumps(config.method_kwargs, default=str)
        raise UserError(f"--method-kwargs {given} for --method {config.method}: {one_line(err)}") from err


def check_data_feeds_method(config: TrainerConfig, method_cls: type, sample: dict, dataset_size: int, world: int):
    """What the method needs from the data, checked from its class before it is built."""
    missing = set(method_cls.required_inputs) - set(sample)
    if missing:
        raise UserError(
            f"--method {config.method} needs batch entries {sorted(missing)} that --data {config.data} does not "
            f"provide (available: {sorted(sample)}); temporal methods need --data dmc:TASK --sequence-length >= 2"
        )
    if config.batch_size < method_cls.min_batch_size:
        raise UserError(
            f"--batch-size {config.batch_size}: --method {config.method} needs at least {method_cls.min_batch_size}"
        )
    if dataset_size < config.batch_size * world:
        raise UserError(
            f"--batch-size {config.batch_size}: --data {config.data} has {dataset_size} items, fewer than one batch "
            f"of {config.batch_size * world} ({world} processes); allowed: --batch-size <= {dataset_size // world}"
        )


# ----------------------------------------------------------------------------------------- set-up


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def distributed_context() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``; initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return torch.distributed.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(name: str, world: int, local_rank: int) -> torch.device:
    """``--device`` as a ``torch.device``; under torchrun each process takes the GPU of its local rank."""
    try:
        device = get_device(name)
    except ValueError as err:
        raise UserError(f"--device {name!r}: {one_line(err)}") from err
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # object collectives (the per-process RNG states) use the current device
    return device


def build_backbone(config: TrainerConfig, in_channels: int) -> nn.Module:
    check_choice("backbone", config.backbone, BACKBONES)
    if config.backbone == "small_resnet":
        return SmallResNet(in_channels, config.feature_dim, widths=tuple(config.widths))
    return TorchvisionResNet(config.backbone, in_channels, config.feature_dim)


def build_optimizer(config: TrainerConfig, params) -> torch.optim.Optimizer:
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def lr_at(step: int, config: TrainerConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def load_dataset(config: TrainerConfig, split: str = "train", sequence_length: int = 1) -> Dataset:
    """``build_dataset`` with the data's own errors (missing files, unknown task) reported against ``--data``."""
    try:
        return build_dataset(config.data, split, config.image_size, sequence_length)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"--data {config.data}: {one_line(err)}") from err


def dataset_kwargs(config: TrainerConfig, dataset: Dataset) -> dict:
    """Method options that follow from the data unless the user set them: memory banks and exemplar
    classes get one slot per dataset item; S4L's classifier gets the number of classes."""
    from ssl_shared.methods import METHODS

    method_cls = METHODS[config.method]
    fields = getattr(method_cls.config_class, "__dataclass_fields__", {})
    kwargs = {}
    if "index" in method_cls.required_inputs and "num_samples" in fields:
        kwargs["num_samples"] = len(dataset)
    if "num_classes" in fields and hasattr(dataset, "num_classes"):
        kwargs["num_classes"] = dataset.num_classes
    return kwargs


def check_built_method(config: TrainerConfig, method, sample: dict) -> None:
    """What only the built method can tell: inputs of composite methods, image sizes and frame counts."""
    missing = set(getattr(method, "required_inputs", {"image"})) - set(sample)
    if missing:
        raise UserError(
            f"--method {config.method} needs batch entries {sorted(missing)} that --data {config.data} does not "
            f"provide (available: {sorted(sample)}); temporal methods need --data dmc:TASK --sequence-length >= 2"
        )
    frames = sample["frames"].shape[1] if "frames" in sample else None
    try:
        method.validate_input(tuple(sample["image"].shape[1:]), num_frames=frames)
    except ValueError as err:
        raise UserError(
            f"--method {config.method} on --data {config.data} (--image-size {config.image_size}, "
            f"--sequence-length {config.sequence_length}): {one_line(err)}"
        ) from err


# ----------------------------------------------------------------------------------------- RNG states


def rng_state() -> dict:
    """This process's random number generator states (Python, NumPy, torch CPU and CUDA)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_states_of_all_processes(world: int) -> list[dict]:
    """``[rng_state() of rank 0, rank 1, ...]``; a collective when ``world > 1`` (every process calls it)."""
    if world == 1:
        return [rng_state()]
    states: list = [None] * world
    torch.distributed.all_gather_object(states, rng_state())
    return states


def read_checkpoint(path: Path) -> dict:
    """A checkpoint written by :meth:`Trainer.save`; an unreadable file is a :class:`UserError` naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise UserError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {one_line(err)[:160]}); it is truncated or "
            "not an scv-ssl-train checkpoint: restore it, or start a new run in another --out"
        ) from err
    keys = ("step", "method", "optimizer", "rng", "config")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise UserError(f"checkpoint {path} is not an scv-ssl-train checkpoint (it lacks {', '.join(keys)})")
    return state


# ----------------------------------------------------------------------------------------- data


def _batches(dataset: Dataset, config: TrainerConfig, rank: int, world: int, start_step: int):
    """Endless batches; the order depends only on (seed, epoch), so a resumed run sees the same data."""
    steps_per_epoch = max(1, len(dataset) // (config.batch_size * world))
    epoch, skip = divmod(start_step, steps_per_epoch)
    while True:
        # The loader's own generator also seeds its workers: iterating it leaves the global RNG (the
        # augmentations) untouched, so a resumed run draws what an uninterrupted one does.
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        if world > 1:
            sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=config.seed, drop_last=True)
            sampler.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                config.batch_size,
                sampler=sampler,
                drop_last=True,
                generator=gen,
                num_workers=config.num_workers,
            )
        else:
            loader = DataLoader(
                dataset, config.batch_size, shuffle=True, drop_last=True, generator=gen, num_workers=config.num_workers
            )
        for i, batch in enumerate(loader):
            if i >= skip:
                yield batch
        skip = 0
        epoch += 1


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if torch.is_tensor(v):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4 and v.is_floating_point():
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


def all_reduce_gradients(params: list[nn.Parameter], world: int) -> None:
    """Average the gradients of ``params`` over the ``world`` processes.

    Every process all-reduces one flat buffer holding every parameter (zeros where its gradient is
    ``None``) and one presence flag per parameter, so all processes run the same collective whatever
    their batch touched. A parameter with a gradient on some process gets the average (missing ones
    count as zero); one without a gradient anywhere keeps ``None``, so the optimiser skips it as it
    would in one process.
    """
    if not params:
        return
    present = [p.grad is not None for p in params]
    reference = params[0]
    flags = torch.tensor(present, dtype=reference.dtype, device=reference.device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params] + [flags])
    torch.distributed.all_reduce(flat)
    anywhere = (flat[-len(params) :] > 0).tolist()
    offset = 0
    for p, used in zip(params, anywhere):
        mean = flat[offset : offset + p.numel()].view_as(p) / world
        offset += p.numel()
        if not used:
            continue
        if p.grad is None:
            p.grad = mean.clone()
        else:
            p.grad.copy_(mean)


# ----------------------------------------------------------------------------------------- probe


def probe(encoder: nn.Module, config: TrainerConfig, device: torch.device) -> dict:
    """Linear probe (accuracy or R^2) and, for class labels, weighted k-NN accuracy on the test split."""
    train = load_dataset(config, "train")
    test = load_dataset(config, "test")
    train_x, train_y = extract_features(encoder, train, device=device)
    test_x, test_y = extract_features(encoder, test, device=device)
    if train_y.is_floating_point():
        return {"linear_probe_r2": linear_probe_regression(train_x, train_y, test_x, test_y)}
    return {
        "linear_probe_accuracy": linear_probe_classification(train_x, train_y, test_x, test_y),
        "knn_accuracy": knn_classify(train_x, train_y, test_x, test_y),
    }


# ----------------------------------------------------------------------------------------- logs


class TrainingLog:
    """Rank 0's ``train.csv`` (:class:`CsvLog`), TensorBoard scalars and progress bar.

    On resume from step ``start``, rows and events of steps ``>= start`` (written after the checkpoint by
    a killed launch) are dropped, so the logs continue without gaps or duplicates. The CSV's columns are
    fixed by its first row; keys a method logs only later go to TensorBoard alone.
    """

    def __init__(self, out: Path, start: int, total: int, desc: str) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.csv = CsvLog(out / "train.csv")
        if start > 0:
            self.csv.truncate_after(start - 1)
        self.writer = SummaryWriter(str(out / "tb"), purge_step=start if start > 0 else None)
        self.bar = tqdm(total=total, initial=start, desc=desc, dynamic_ncols=True)

    def row(self, step: int, time_s: float, logs: dict[str, float]) -> None:
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}")
        for k, v in logs.items():
            self.writer.add_scalar(f"train/{k}", v, step)
        row = {"step": step, "time_s": round(time_s, 3), **logs}
        columns = self.csv.fieldnames()
        self.csv.append(row if columns is None else {k: v for k, v in row.items() if k in columns})

    def close(self) -> None:
        self.bar.close()
        self.writer.close()


# ----------------------------------------------------------------------------------------- trainer


class Trainer:
    """One SSL run built from a :class:`TrainerConfig`.

    Construction checks everything that can be checked before training (the config, the run folder, a
    resumed run's saved settings and checkpoint, the data against the method), in that order, raising
    :class:`UserError` before any model is built where the check allows it; then builds data, method and
    optimiser, and restores the latest checkpoint when ``config.resume``. ``step`` trains one step,
    ``save`` checkpoints, ``resume`` restores, ``evaluate`` probes the frozen encoder, and ``fit`` runs
    the loop with logs and checkpoints. Under ``torchrun`` every process builds one; rank 0 writes.
    """

    def __init__(self, config: TrainerConfig) -> None:
        validate_config(config)
        self.rank, self.world, local_rank = distributed_context()
        self.device = resolve_device(config.device, self.world, local_rank)
        #: The config as run: device, precision, channels_last and threads resolved on this machine.
        self.config = self._resolved(config)
        self.out = Path(config.out)
        self.store = CheckpointStore(self.out / CHECKPOINTS)
        self._on_rank_0(self._prepare_run_folder)
        checkpoint = self._latest_checkpoint() if config.resume else None

        seed_everything(config.seed)  # identical initial weights on every process
        self.dataset = load_dataset(self.config, "train", config.sequence_length)
        self.method = self._build_method()
        self.params = [p for p in self.method.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.config, self.params)
        seed_everything(config.seed + self.rank)  # each process draws its own augmentations

        self.step_count = 0  # steps done; the index of the next step
        self.elapsed_s = 0.0  # training wall time of earlier launches of this run
        self._launch_t0: float | None = None
        self._batches = None
        self._saved_step: int | None = None
        if checkpoint is not None:
            self.resume(checkpoint)

    def _resolved(self, config: TrainerConfig) -> TrainerConfig:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        on_cuda = self.device.type == "cuda"
        return dataclasses.replace(
            config,
            device=str(self.device),
            precision=resolve_precision(config.precision, self.device),
            channels_last=on_cuda if config.channels_last is None else config.channels_last,
            threads=torch.get_num_threads(),
        )

    def _build_method(self) -> nn.Module:
        """Backbone and method, after checking from the method's class that the data can feed it."""
        from ssl_shared.methods import METHODS

        c = self.config
        sample = next(iter(DataLoader(self.dataset, batch_size=2)))
        method_cls = METHODS[c.method]
        check_data_feeds_method(c, method_cls, sample, len(self.dataset), self.world)
        options = method_config(c, dataset_kwargs(c, self.dataset))
        backbone = build_backbone(c, in_channels=sample["image"].shape[1])
        method = method_cls(backbone, c.feature_dim, config=options).to(self.device)
        check_built_method(c, method, sample)
        if self.world > 1 and self.device.type == "cuda":  # SyncBatchNorm runs on CUDA only; CPU processes
            method = nn.SyncBatchNorm.convert_sync_batchnorm(method)  # (gloo) keep their own statistics
        if c.channels_last:
            method = method.to(memory_format=torch.channels_last)
        if c.compile:
            if not isinstance(getattr(method, "backbone", None), nn.Module):
                raise UserError(f"--compile needs a method with a .backbone module; --method {c.method} has none")
            method.backbone.compile()  # in place: the hot path (heads are small); state_dict keys unchanged
        return method

    # --- run folder -----------------------------------------------------------------------------

    def _on_rank_0(self, action: Callable[[], None]) -> None:
        """Run ``action`` on rank 0; a :class:`UserError` it raises is raised on every process."""
        error = None
        if self.rank == 0:
            try:
                action()
            except UserError as err:
                if self.world == 1:
                    raise
                error = str(err)
        if self.world > 1:
            box = [error]
            torch.distributed.broadcast_object_list(box, src=0)
            if box[0] is not None:
                raise UserError(box[0])

    def _prepare_run_folder(self) -> None:
        """A new run needs a folder without one; a resume needs a checkpoint and the saved settings."""
        c = self.config
        prepare_run_dir(self.out, c.resume, self.store, RUN_MARKERS)
        if c.resume:
            saved_path = self.out / "config.json"
            if saved_path.is_file():
                saved, source = read_saved_config(saved_path), str(saved_path)
            else:  # killed between the first checkpoint and config.json
                latest = self.store.latest()
                saved, source = read_checkpoint(latest / CHECKPOINT_FILE)["config"], str(latest / CHECKPOINT_FILE)
            check_resume_config(saved, asdict(c), ignore=RESUME_MAY_CHANGE, source=source)

    @property
    def final_step(self) -> int:
        """The step the run ends at: ``steps``, or 0 for ``probe_only`` (the encoder as initialised)."""
        return 0 if self.config.probe_only else self.config.steps

    def _latest_checkpoint(self) -> dict:
        path = self.store.latest() / CHECKPOINT_FILE
        state = read_checkpoint(path)
        if len(state["rng"]) != self.world:
            raise UserError(
                f"checkpoint {path} was written by {len(state['rng'])} processes, this launch has {self.world}; "
                "resume with the same number of processes"
            )
        if state["step"] > self.config.steps:
            raise UserError(
                f"--steps {self.config.steps}: the checkpoint in {self.out} is at step {state['step']}; "
                f"allowed: --steps >= {state['step']}"
            )
        finished = self.out / "probe.json"
        if state["step"] >= self.final_step and finished.is_file():
            extend = "start a new run in another --out" if self.config.probe_only else "a larger --steps to extend it"
            raise UserError(
                f"--resume: the run in {self.out} is finished ({finished.name}, step {state['step']}); nothing to "
                f"resume; allowed: {extend}"
            )
        return state

    # --- the four operations --------------------------------------------------------------------

    def step(self) -> dict[str, float]:
        """Train step ``step_count``: schedule, forward, non-finite check, backward, all-reduce, update."""
        c, s = self.config, self.step_count
        if self._batches is None:
            self._batches = _batches(self.dataset, c, self.rank, self.world, s)
        lr = lr_at(s, c)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = _to_device(next(self._batches), self.device, c.channels_last)
        with autocast(c.precision, self.device):
            loss, logs = self.method.training_step(batch, step=s, total_steps=c.steps)
        self._check_finite(loss, s)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            all_reduce_gradients(self.params, self.world)
        self.optimizer.step()
        self.method.after_optimizer_step(s, c.steps)
        self.step_count = s + 1
        return {"loss": loss.item(), "lr": lr, **logs}

    def _check_finite(self, loss: torch.Tensor, step: int) -> None:
        """Stop before the update when the loss is NaN or inf on any process (all processes stop together)."""
        value = loss.detach().float().reshape(1).clone()
        if self.world > 1:
            torch.distributed.all_reduce(value)
            value /= self.world
        if not torch.isfinite(value).all():
            raise NonFiniteLossError("loss", float(value), step, where=f"method {self.config.method}")

    def save(self) -> None:
        """Checkpoint the state after ``step_count`` steps (a collective: every process calls it)."""
        rng = rng_states_of_all_processes(self.world)
        if self.rank == 0:
            state = {
                "step": self.step_count,
                "method": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "rng": rng,
                "config": asdict(self.config),
                "elapsed_s": self.training_time(),
            }
            with self.store.save(self.step_count) as folder:
                torch.save(state, folder / CHECKPOINT_FILE)
        self._saved_step = self.step_count

    def resume(self, checkpoint: dict | None = None) -> int:
        """Restore model, optimiser, step and this process's RNG from ``checkpoint`` (default: the latest
        in the run folder); returns the step. Each process draws its own augmentations, so each restores its
        own generators; model, optimiser, queues and memory banks are the same on every process and saved
        once (on CPU, where BatchNorm is not synchronised, rank 0's running statistics are saved)."""
        state = checkpoint if checkpoint is not None else self._latest_checkpoint()
        self.method.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"][self.rank])
        self.step_count = int(state["step"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self._launch_t0 = None
        self._batches = None  # the data order restarts at the restored step
        self._saved_step = self.step_count
        return self.step_count

    def evaluate(self) -> dict[str, float]:
        """Linear probe (and k-NN) of the frozen encoder on the data's train/test splits."""
        return probe(self.method.encoder(), self.config, self.device)

    # --- the loop -------------------------------------------------------------------------------

    def _start_launch(self) -> None:
        """First writes of a launch: a new run's step-0 checkpoint (so the folder is resumable from its first
        instant), then ``config.json`` (once per run) and this launch's record in ``launches.json``."""
        if self._saved_step is None:
            self.save()
        if self.rank == 0:
            (self.out / "probe.json").unlink(missing_ok=True)  # a finished run that a larger --steps extends
            if not (self.out / "config.json").exists():
                atomic_write_json(
                    self.out / "config.json", {**asdict(self.config), "method_config": self._method_config()}
                )
            record_launch(self.out, start_step=self.step_count, world_size=self.world)

    def _method_config(self) -> dict:
        config = getattr(self.method, "config", None)
        return asdict(config) if dataclasses.is_dataclass(config) else {}

    def training_time(self) -> float:
        """Wall time spent training this run, over all its launches (saved in checkpoints)."""
        running = time.perf_counter() - self._launch_t0 if self._launch_t0 is not None else 0.0
        return self.elapsed_s + running

    def fit(self) -> dict:
        """Train to ``steps`` (or ``stop_after`` more; none with ``probe_only``), logging and checkpointing;
        returns the last logs, and on rank 0 of a finished run also the probe scores, written to ``probe.json``
        after everything else (its presence means the run is finished)."""
        c = self.config
        self._launch_t0 = time.perf_counter()
        self._start_launch()
        start, final = self.step_count, self.final_step
        end = final if c.stop_after is None else min(final, start + c.stop_after)
        log = TrainingLog(self.out, start, final, c.method) if self.rank == 0 else None
        logs: dict[str, float] = {}
        try:
            while self.step_count < end:
                s = self.step_count
                logs = self.step()
                if log is not None:
                    log.bar.update(1)
                    if s % c.log_every == 0 or s == c.steps - 1:
                        log.row(s, self.training_time(), logs)
                if self.step_count % c.checkpoint_every == 0:
                    self.save()
            if self._saved_step != self.step_count:
                self.save()
            if end < final or self.rank != 0:
                return logs
            results = {**logs, "step": self.step_count, "wall_time_s": self.training_time()}
            if c.probe:
                scores = self.evaluate()
                for k, v in scores.items():
                    log.writer.add_scalar(f"probe/{k}", v, final)
                results.update(scores)
        finally:
            if log is not None:
                log.close()
        atomic_write_json(self.out / "probe.json", results)
        return results


def train(config: TrainerConfig) -> dict:
    """Train ``config.method`` on ``config.data``; returns final logs (and probe scores)."""
    return train_method(config)[1]


def train_method(config: TrainerConfig) -> tuple[nn.Module, dict]:
    """Like :func:`train`, also returning the trained method (on every process)."""
    trainer = Trainer(config)
    results = trainer.fit()
    return trainer.method, results


# ----------------------------------------------------------------------------------------- command line


def read_saved_config(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} cannot be read ({one_line(err)}); restore it or start a new run") from err
    if not isinstance(saved, dict):
        raise UserError(f"{path} does not hold a JSON object of settings; restore it or start a new run")
    return saved


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="scv-ssl-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shown = {f.name: getattr(TrainerConfig(), f.name) for f in dataclasses.fields(TrainerConfig)}
    shown.update(channels_last="on when on CUDA", threads="torch's default", stop_after="run to --steps")
    add_dataclass_options(parser, TrainerConfig, defaults=shown)
    parser.add_argument(
        "--bf16",
        dest="deprecated_bf16",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="deprecated: --bf16 is --precision bf16, --no-bf16 is --precision fp32",
    )
    return parser


def config_from_args(argv: Sequence[str] | None = None) -> TrainerConfig:
    """The run's settings: defaults < ``config.json`` of the run (with ``--resume``) < the flags given."""
    args = build_parser().parse_args(argv)
    given = explicit_values(args, TrainerConfig)
    if hasattr(args, "deprecated_bf16"):
        flag, alias = ("--bf16", "bf16") if args.deprecated_bf16 else ("--no-bf16", "fp32")
        if given.get("precision", alias) != alias:
            raise UserError(f"{flag} contradicts --precision {given['precision']}; give --precision alone")
        given["precision"] = alias
        sys.stderr.write(f"scv-ssl-train: {flag} is deprecated; use --precision {alias}\n")
    if given.get("resume"):
        saved_path = Path(given.get("out", TrainerConfig.out)) / "config.json"
        if saved_path.is_file():
            saved = read_saved_config(saved_path)
            given = {**{k: v for k, v in saved.items() if k not in PER_LAUNCH}, **given}
    return config_from_dict(given)


@command("scv-ssl-train")
def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for dmc:TASK data
    config = config_from_args(argv)
    reuse_freed_host_memory()  # no page faults for each step's activations (see ssl_shared.host_memory)
    results = train(config)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
