"""One training loop for every SSL method: ``python -m ssl_shared.train --method simclr --data digits``.

The loop is method-agnostic: a method (``ssl_shared.methods``) turns a batch into a loss
(``training_step``) and updates its momentum encoders, queues or memory banks afterwards
(``after_optimizer_step``). The trainer adds what every run needs:

- device auto-selection; bf16 autocast and channels-last on CUDA; optional ``torch.compile`` of the backbone;
- multi-GPU / multi-node through ``torchrun`` (``torch.distributed``; gradients averaged across processes,
  BatchNorm synchronised on CUDA, each process reads its own shard of the data and draws its own
  augmentations; methods keep their queues and memory banks identical on every process);
- AdamW or SGD, linear warm-up then cosine learning-rate decay;
- TensorBoard and CSV logs, a tqdm progress bar, atomic checkpoints (with every process's RNG state) and
  ``--resume``;
- deterministic seeding (Python, NumPy, torch, the data order);
- a linear probe (and k-NN for class labels) of the frozen encoder at the end, written to ``probe.json``.

Bad input (unknown method, missing data, a batch without what the method needs, images too small for the
method) stops with a clear message before the first step.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from ssl_shared.data import build_dataset
from ssl_shared.device import get_device
from ssl_shared.encoders import SmallResNet, TorchvisionResNet
from ssl_shared.evaluation import (
    extract_features,
    knn_classify,
    linear_probe_classification,
    linear_probe_regression,
)
from ssl_shared.host_memory import reuse_freed_host_memory


@dataclass
class TrainerConfig:
    """Settings of one SSL run. Defaults are CPU-sized; paper-scale runs raise ``steps``/``batch_size``."""

    method: str = "simclr"
    data: str = "digits"  # see ssl_shared.data.build_dataset
    image_size: int = 32
    backbone: str = "small_resnet"  # small_resnet | resnet18 | resnet34 | resnet50
    feature_dim: int = 128
    widths: tuple[int, ...] = (32, 64, 128)  # small_resnet stage widths
    sequence_length: int = 1  # > 1 gives batch["frames"] for temporal methods (dmc data)
    steps: int = 500
    batch_size: int = 64
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    seed: int = 0
    device: str = "auto"
    bf16: bool | None = None  # None: on when on CUDA
    channels_last: bool | None = None  # None: on when on CUDA
    compile: bool = False
    num_workers: int = 0
    out: str = "runs/ssl"
    log_every: int = 10
    checkpoint_every: int = 200
    resume: bool = False
    stop_after: int | None = None  # end this invocation after N steps (checkpointed); --resume continues
    probe: bool = True
    method_kwargs: dict = field(default_factory=dict)


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


def build_backbone(config: TrainerConfig, in_channels: int) -> nn.Module:
    if config.backbone == "small_resnet":
        return SmallResNet(in_channels, config.feature_dim, widths=tuple(config.widths))
    if config.backbone.startswith("resnet"):
        return TorchvisionResNet(config.backbone, in_channels, config.feature_dim)
    raise ValueError(f"unknown backbone {config.backbone!r}; allowed: small_resnet, resnet18/34/50/101/152")


def build_optimizer(config: TrainerConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; allowed: adamw, sgd")


def lr_at(step: int, config: TrainerConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def dataset_kwargs(config: TrainerConfig, dataset: Dataset) -> dict:
    """Method options that follow from the data unless the user set them: memory banks and exemplar
    classes get one slot per dataset item; S4L's classifier gets the number of classes."""
    from ssl_shared.methods import METHODS

    kwargs = dict(config.method_kwargs)
    method_cls = METHODS[config.method]
    fields = getattr(method_cls.config_class, "__dataclass_fields__", {})
    if "index" in method_cls.required_inputs and "num_samples" in fields:
        kwargs.setdefault("num_samples", len(dataset))
    if "num_classes" in fields and hasattr(dataset, "num_classes"):
        kwargs.setdefault("num_classes", dataset.num_classes)
    return kwargs


def validate(config: TrainerConfig, method, sample: dict) -> None:
    """Stop before training when the data cannot feed the method."""
    missing = set(getattr(method, "required_inputs", {"image"})) - set(sample)
    if missing:
        raise ValueError(
            f"method {config.method!r} needs batch entries {sorted(missing)} that data {config.data!r} does not "
            f"provide (available: {sorted(sample)}); temporal methods need --data dmc:TASK --sequence-length >= 2"
        )
    if config.batch_size < getattr(method, "min_batch_size", 1):
        raise ValueError(
            f"method {config.method!r} needs batch_size >= {method.min_batch_size}, got {config.batch_size}"
        )
    frames = sample["frames"].shape[1] if "frames" in sample else None
    method.validate_input(tuple(sample["image"].shape[1:]), num_frames=frames)


# ----------------------------------------------------------------------------------------- checkpoints


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


def save_checkpoint(
    path: Path, method: nn.Module, optimizer: torch.optim.Optimizer, step: int, config, rng_states: list[dict]
) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact.

    ``rng_states`` holds one entry per process (:func:`rng_states_of_all_processes`): every process draws
    its own augmentations, so each resumes from its own generators. Model, optimiser, queues and memory
    banks are the same on every process and are saved once. (On CPU, where BatchNorm is not synchronised,
    each process keeps its own running statistics; they are only read in eval mode, and rank 0's are saved.)
    """
    state = {
        "step": step,
        "method": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "config": asdict(config),
        "rng": rng_states,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: Path, method: nn.Module, optimizer: torch.optim.Optimizer, rank: int = 0, world: int = 1
) -> int:
    """Restore the state saved by :func:`save_checkpoint` (this process's own generators); returns the step."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if len(state["rng"]) != world:
        raise ValueError(
            f"checkpoint {path} was written by {len(state['rng'])} processes, this run has {world}; "
            "resume with the same number of processes"
        )
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"][rank])
    return int(state["step"])


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
    train = build_dataset(config.data, "train", config.image_size)
    test = build_dataset(config.data, "test", config.image_size)
    train_x, train_y = extract_features(encoder, train, device=device)
    test_x, test_y = extract_features(encoder, test, device=device)
    if train_y.is_floating_point():
        return {"linear_probe_r2": linear_probe_regression(train_x, train_y, test_x, test_y)}
    return {
        "linear_probe_accuracy": linear_probe_classification(train_x, train_y, test_x, test_y),
        "knn_accuracy": knn_classify(train_x, train_y, test_x, test_y),
    }


# ----------------------------------------------------------------------------------------- loop


def train(config: TrainerConfig) -> dict:
    """Train ``config.method`` on ``config.data``; returns final logs (and probe scores)."""
    return train_method(config)[1]


def train_method(config: TrainerConfig) -> tuple[nn.Module, dict]:
    """Like :func:`train`, also returning the trained method (on every process)."""
    from ssl_shared.methods import METHODS, build_method

    if config.method not in METHODS:
        raise ValueError(f"unknown method {config.method!r}; available: {sorted(METHODS)}")
    rank, world, local_rank = distributed_context()
    device = get_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)  # object collectives (the per-process RNG states) use the current device
    on_cuda = device.type == "cuda"
    bf16 = on_cuda if config.bf16 is None else config.bf16
    channels_last = on_cuda if config.channels_last is None else config.channels_last
    seed_everything(config.seed)  # identical initial weights on every process

    dataset = build_dataset(config.data, "train", config.image_size, config.sequence_length)
    if len(dataset) < config.batch_size * world:
        raise ValueError(f"dataset has {len(dataset)} items, fewer than one batch of {config.batch_size * world}")
    sample = next(iter(DataLoader(dataset, batch_size=2)))
    backbone = build_backbone(config, in_channels=sample["image"].shape[1])
    method = build_method(config.method, backbone, config.feature_dim, **dataset_kwargs(config, dataset)).to(device)
    validate(config, method, sample)
    if world > 1 and on_cuda:  # SyncBatchNorm runs on CUDA only; CPU (gloo) processes keep local statistics
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    if config.compile:
        if not isinstance(getattr(method, "backbone", None), nn.Module):
            raise ValueError(f"--compile needs a method with a .backbone module; {config.method!r} has none")
        method.backbone = torch.compile(method.backbone)  # the hot path; heads are small
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = build_optimizer(config, params)
    seed_everything(config.seed + rank)  # each process draws its own augmentations

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    start = 0
    if config.resume and ckpt_path.exists():
        start = load_checkpoint(ckpt_path, method, optimizer, rank, world)
    if rank == 0:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))

    writer = csv_file = csv_writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
        csv_file = open(out / "train.csv", "a", newline="")
    logs: dict[str, float] = {}
    from tqdm import tqdm

    bar = tqdm(total=config.steps, initial=start, desc=config.method, disable=rank != 0, dynamic_ncols=True)
    batches = _batches(dataset, config, rank, world, start)
    t0 = time.time()
    try:
        end = config.steps if config.stop_after is None else min(config.steps, start + config.stop_after)
        for step in range(start, end):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
            batch = _to_device(next(batches), device, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, logs = method.training_step(batch, step=step, total_steps=config.steps)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {float(loss)} at step {step} of method {config.method!r}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                all_reduce_gradients(params, world)
            optimizer.step()
            method.after_optimizer_step(step, config.steps)
            logs = {"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"], **logs}
            bar.update(1)
            if rank == 0 and (step % config.log_every == 0 or step == config.steps - 1):
                bar.set_postfix(loss=f"{logs['loss']:.4f}")
                for k, v in logs.items():
                    writer.add_scalar(f"train/{k}", v, step)
                if csv_writer is None:
                    csv_writer = csv.DictWriter(csv_file, fieldnames=["step", "time_s", *logs], extrasaction="ignore")
                    if csv_file.tell() == 0:
                        csv_writer.writeheader()
                csv_writer.writerow({"step": step, "time_s": round(time.time() - t0, 3), **logs})
            if (step + 1) % config.checkpoint_every == 0:
                rng_states = rng_states_of_all_processes(world)
                if rank == 0:
                    save_checkpoint(ckpt_path, method, optimizer, step + 1, config, rng_states)
    finally:
        bar.close()
        if csv_file is not None:
            csv_file.close()
    rng_states = rng_states_of_all_processes(world)
    if rank == 0:
        save_checkpoint(ckpt_path, method, optimizer, end, config, rng_states)
    if end < config.steps:
        return method, logs
    if rank == 0:
        results = {**logs, "wall_time_s": time.time() - t0}
        if config.probe:
            results.update(probe(method.encoder(), config, device))
            for k, v in results.items():
                writer.add_scalar(f"probe/{k}", v, config.steps)
        writer.close()
        (out / "probe.json").write_text(json.dumps(results, indent=2))
        return method, results
    return method, logs


def parse_args(argv: list[str] | None = None) -> TrainerConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainerConfig()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if name == "method_kwargs":
            parser.add_argument(flag, type=json.loads, default={}, help="JSON dict of method config overrides")
        elif isinstance(value, bool) or value is None:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        elif isinstance(value, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=list(value))
        else:
            parser.add_argument(flag, type=type(value), default=value)
    args = parser.parse_args(argv)
    return TrainerConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in vars(args).items()})


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for dmc:TASK data
    config = parse_args(argv)
    from ssl_shared.methods import METHODS

    if config.method not in METHODS:
        raise SystemExit(f"error: unknown method {config.method!r}; available: {sorted(METHODS)}")
    reuse_freed_host_memory()  # no page faults for each step's activations (see ssl_shared.host_memory)
    results = train(config)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
