"""Training loop for CUT / FastCUT / CycleGAN on an unaligned ``ROOT/trainA, trainB`` dataset.

One iteration = one batch of A images (a fresh permutation each epoch, the last partial batch dropped)
with randomly drawn B images, one ``model.train_step``. The learning rate follows the CUT/CycleGAN
``linear`` policy per epoch (:func:`linear_lr_factor`). As in the CUT code's unaligned dataset, the
random resize-and-crop is switched off in the decay epochs (``load_size = crop_size``, flips stay on).

Outputs in ``out/``: ``config.json``, ``losses.csv`` (every ``log_every`` iterations), ``monitor.csv``
(collapse monitor, every ``sample_every``), ``tb/`` (TensorBoard losses, monitor values and image grids),
``samples/iter_XXXXXXX.png`` (rows: fixed test images; columns: input | output | ground truth when the
test split has pairs), ``checkpoints/latest.pt`` (atomic: written to a temporary file then renamed),
``fid.csv`` (when Inception weights are given) and ``summary.json``.

Reproducibility and resume: every random draw of iteration ``t`` (crop, flip, B draw, patch locations,
FastCUT flip, image-pool draws) comes from generators reseeded from ``(seed, t)`` and the A order of
epoch ``e`` from ``(seed, e)``, so a run resumed from a checkpoint at iteration ``t`` continues exactly as
the uninterrupted run (tested). A non-finite loss stops the run with ``NonFiniteLossError`` naming the
iteration and the loss; the last checkpoint stays the last good state.

Collapse monitor (on a fixed batch of ``n_monitor`` test images spread over the sorted test set, values in
the [-1, 1] image range):

- ``identity_gap`` = mean |G(x) - x|. Identity collapse (output = input; FastCUT at lambda_NCE 10,
  CUT issue #94) is flagged when it falls below ``identity_threshold`` = 0.03 (1.5 % of the range,
  ~4 grey levels of 255).
- ``spread_ratio`` = (mean over pixels of the std of G(x) across the batch) / (the same for x). Mode
  collapse (every output the same picture, CUT issues #178, #181) is flagged below ``spread_threshold`` =
  0.1. Both warnings start after ``monitor_warmup`` (5 %) of the iterations, since an untrained
  generator's outputs are nearly constant.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

from cut_translation.data import PairedTestDataset, UnpairedImageDataset
from cut_translation.models import MODEL_NAMES, build_model, make_config
from ssl_shared.device import get_device

CHECKPOINT_NAME = "latest.pt"


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the iteration and the loss."""


@dataclass
class TrainConfig:
    """Run settings (data, length, logging); model hyperparameters live in the model config."""

    model: str = "cut"
    data_root: str = ""
    out: str = "runs/cut"
    iters: int | None = None  # None: (n_epochs + n_epochs_decay) epochs, as the reference
    batch_size: int = 1  # CUT code default; the authors recommend 1
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    sample_every: int = 200
    checkpoint_every: int = 500
    eval_every: int = 0  # FID every N iterations (needs inception_weights); 0 = only at the end
    inception_weights: str | None = None
    n_monitor: int = 4
    identity_threshold: float = 0.03
    spread_threshold: float = 0.1
    monitor_warmup: float = 0.05
    crop_only_in_decay: bool = True  # CUT unaligned_dataset.py: load_size = crop_size when epoch > n_epochs
    max_dataset_size: int | None = None
    model_overrides: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"model must be one of {MODEL_NAMES}, got {self.model!r}")
        if self.iters is not None and self.iters < 1:
            raise ValueError(f"iters must be >= 1, got {self.iters}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("log_every", "sample_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        if self.n_monitor < 2:
            raise ValueError(f"n_monitor must be >= 2 (the spread needs two images), got {self.n_monitor}")


def linear_lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """CUT/CycleGAN ``linear`` policy, 0-based ``epoch``: ``1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)``.

    Constant 1 for epochs ``0 .. n_epochs - 1``, then linear towards 0 (reaching ``1 / (n_epochs_decay + 1)``
    in the last epoch ``n_epochs + n_epochs_decay - 1``).
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1))


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of every random draw of one iteration (a fixed mixing of run seed and iteration)."""
    return (seed * 1_000_003 + iteration * 7_919 + 17) % (2**63)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of the A images used in ``epoch``."""
    gen = torch.Generator().manual_seed((seed * 1_000_033 + epoch * 104_729 + 3) % (2**63))
    return torch.randperm(n, generator=gen)


def atomic_torch_save(obj: object, path: Path) -> None:
    """Write ``obj`` to ``path.tmp`` then rename over ``path`` (no half-written checkpoint on a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, torch.nn.Module]:
    """Read a checkpoint written by :class:`Trainer`; returns ``(checkpoint dict, model with its weights)``."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / CHECKPOINT_NAME if (path / "checkpoints").is_dir() else path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if not isinstance(ckpt, dict) or "model_name" not in ckpt:
        raise ValueError(f"{path} is not a cut_translation checkpoint")
    model = build_model(ckpt["model_name"], make_config(ckpt["model_name"], **ckpt["model_config"]))
    model.load_state_dict(ckpt["model_state"])
    return ckpt, model.to(device)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1]."""
    return (x.clamp(-1, 1) + 1) / 2


def spread_indices(length: int, n: int) -> list[int]:
    """``min(n, length)`` indices spread evenly over ``range(length)`` (sorted file names group similar images)."""
    count = min(n, length)
    return [i * length // count for i in range(count)]


def collapse_stats(inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    """``identity_gap`` = mean |G(x) - x|; ``spread_ratio`` = batch-std of outputs / batch-std of inputs."""
    gap = (outputs - inputs).abs().mean().item()
    out_spread = outputs.std(dim=0).mean().item()
    in_spread = inputs.std(dim=0).mean().item()
    return {"identity_gap": gap, "output_spread": out_spread, "spread_ratio": out_spread / max(in_spread, 1e-8)}


class Trainer:
    """Builds data and model from a :class:`TrainConfig`, trains, logs, checkpoints and resumes."""

    def __init__(self, config: TrainConfig, resume: bool = False) -> None:
        self.config = config
        c = config
        self.out = Path(c.out)
        self.device = get_device(c.device)
        ckpt_path = self.out / "checkpoints" / CHECKPOINT_NAME
        self.checkpoint = None
        if resume:
            if not ckpt_path.is_file():
                raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
            self.checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
            if self.checkpoint["model_name"] != c.model:
                raise ValueError(
                    f"--resume: checkpoint {ckpt_path} is a {self.checkpoint['model_name']!r} run, not {c.model!r}"
                )
            self.model_config = make_config(c.model, **self.checkpoint["model_config"])
        else:
            self.model_config = make_config(c.model, **c.model_overrides)
        # Data first: every data error surfaces before a model is built or a step is taken.
        self.dataset = UnpairedImageDataset(
            c.data_root, "train", load_size=c.load_size, crop_size=c.crop_size, flip=c.flip,
            max_size=c.max_dataset_size,
        )
        self.iters_per_epoch = len(self.dataset) // c.batch_size
        if self.iters_per_epoch < 1:
            raise ValueError(f"batch_size {c.batch_size} is larger than the dataset ({len(self.dataset)} images)")
        mc = self.model_config
        self.total_iters = c.iters or (mc.n_epochs + mc.n_epochs_decay) * self.iters_per_epoch
        self.monitor_batch = self._monitor_batch()
        self.model = build_model(c.model, self.model_config).to(self.device)
        self.start_iter = 0
        self.fid_history: list[dict] = []
        if self.checkpoint is not None:
            self.model.load_state_dict(self.checkpoint["model_state"])
            self.model.load_extra_state(self.checkpoint["extra"])
            self.start_iter = self.checkpoint["iteration"]
            self.fid_history = self.checkpoint.get("fid_history", [])

    def _monitor_batch(self) -> dict[str, torch.Tensor]:
        """Fixed images for grids and the collapse monitor: test pairs if available, else test/train A."""
        c = self.config
        root = Path(c.data_root)
        n = c.n_monitor
        try:
            paired = PairedTestDataset(root, "test", size=c.crop_size)
            items = [paired[i] for i in spread_indices(len(paired), n)]
            return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}
        except (FileNotFoundError, ValueError):
            pass
        phase = "test" if (root / "testA").is_dir() and (root / "testB").is_dir() else "train"
        ds = UnpairedImageDataset(root, phase, load_size=c.crop_size, crop_size=c.crop_size, flip=False, serial=True)
        items = [ds[i] for i in spread_indices(len(ds), n)]
        return {"A": torch.stack([it["A"] for it in items])}

    def batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (A, B) batch of ``iteration`` (deterministic given the seed)."""
        c = self.config
        epoch, pos = divmod(iteration, self.iters_per_epoch)
        order = epoch_order(c.seed, epoch, len(self.dataset))
        self.dataset.reseed(iteration_seed(c.seed, iteration))
        items = [self.dataset[int(i)] for i in order[pos * c.batch_size : (pos + 1) * c.batch_size]]
        real_a = torch.stack([it["A"] for it in items]).to(self.device)
        real_b = torch.stack([it["B"] for it in items]).to(self.device)
        return real_a, real_b

    def prepare_iteration(self, iteration: int) -> float:
        """Set the epoch's learning rate and preprocessing and reseed the model's generator; returns the lr."""
        c, mc = self.config, self.model_config
        epoch = iteration // self.iters_per_epoch
        lr = mc.lr * linear_lr_factor(epoch, mc.n_epochs, mc.n_epochs_decay)
        self.model.set_lr(lr)
        decay = epoch >= mc.n_epochs
        if c.crop_only_in_decay:
            self.dataset.set_load_size(c.crop_size if decay else c.load_size)
        self.model.generator.manual_seed(iteration_seed(c.seed, iteration) ^ 0x5DEECE66D)
        return lr

    def step(self, iteration: int) -> dict[str, float]:
        """Run iteration ``iteration`` (0-based); raises :class:`NonFiniteLossError` on a NaN/inf loss."""
        lr = self.prepare_iteration(iteration)
        real_a, real_b = self.batch(iteration)
        losses = self.model.train_step(real_a, real_b)
        for name, value in losses.items():
            if not math.isfinite(value):
                raise NonFiniteLossError(f"iteration {iteration + 1}: loss {name} = {value} (run stopped)")
        losses["lr"] = lr
        return losses

    @torch.no_grad()
    def translate_monitor(self) -> torch.Tensor:
        return self.model.translator(self.monitor_batch["A"].to(self.device)).cpu()

    def save_checkpoint(self, iteration: int) -> None:
        state = {
            "model_name": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(self.config),
            "iteration": iteration,
            "model_state": self.model.state_dict(),
            "extra": self.model.extra_state(),
            "fid_history": self.fid_history,
        }
        atomic_torch_save(state, self.out / "checkpoints" / CHECKPOINT_NAME)

    def sample_and_monitor(self, iteration: int, writer: SummaryWriter) -> dict[str, float]:
        """Write the image grid and return (and log) the collapse monitor at ``iteration`` (1-based)."""
        c = self.config
        fake = self.translate_monitor()
        real = self.monitor_batch["A"]
        columns = [real, fake] + ([self.monitor_batch["B"]] if "B" in self.monitor_batch else [])
        grid = make_grid(to_unit(torch.stack(columns, 1).flatten(0, 1)), nrow=len(columns), padding=2)
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        save_image(grid, self.out / "samples" / f"iter_{iteration:07d}.png")
        writer.add_image("samples/input_output_truth", grid, iteration)
        stats = collapse_stats(real, fake)
        for k, v in stats.items():
            writer.add_scalar(f"monitor/{k}", v, iteration)
        if iteration >= c.monitor_warmup * self.total_iters:
            if stats["identity_gap"] < c.identity_threshold:
                msg = (f"iteration {iteration}: identity collapse? mean |G(x)-x| = {stats['identity_gap']:.4f} "
                       f"< {c.identity_threshold} (output ~ input; FastCUT with lambda_NCE 10 is known to do this)")
                warnings.warn(msg, stacklevel=2)
                tqdm.write("WARNING " + msg)
            if stats["spread_ratio"] < c.spread_threshold:
                msg = (f"iteration {iteration}: mode collapse? output spread / input spread = "
                       f"{stats['spread_ratio']:.4f} < {c.spread_threshold} (all outputs look alike)")
                warnings.warn(msg, stacklevel=2)
                tqdm.write("WARNING " + msg)
        return stats

    def evaluate_fid(self, iteration: int, writer: SummaryWriter) -> dict | None:
        """FID/KID of G(testA) vs testB, when Inception weights were given."""
        c = self.config
        if not c.inception_weights:
            return None
        from cut_translation.metrics import fid_kid

        test = UnpairedImageDataset(c.data_root, "test", load_size=c.crop_size, crop_size=c.crop_size)
        with torch.no_grad():
            fakes = torch.cat([
                self.model.translator(torch.stack([test[i]["A"] for i in range(s, min(s + 8, len(test.paths_a)))])
                                      .to(self.device)).cpu()
                for s in range(0, len(test.paths_a), 8)
            ])
        reals = torch.stack([test[i]["B"] for i in range(len(test.paths_b))])  # serial: item i holds B[i]
        scores = fid_kid(to_unit(reals), to_unit(fakes), weights_path=c.inception_weights)
        record = {"iteration": iteration, "fid": float(scores["fid"]), "kid": float(scores.get("kid", float("nan")))}
        self.fid_history.append(record)
        writer.add_scalar("eval/fid", record["fid"], iteration)
        append_csv(self.out / "fid.csv", record)
        return record

    def fid_summary(self) -> dict:
        """Last and best FID, named as such (the reference paper's selection is ambiguous)."""
        if not self.fid_history:
            return {}
        best = min(self.fid_history, key=lambda r: r["fid"])
        last = self.fid_history[-1]
        return {
            "fid_last": last["fid"], "fid_last_iteration": last["iteration"],
            "fid_best": best["fid"], "fid_best_iteration": best["iteration"],
        }

    def train(self) -> dict:
        """Train from ``start_iter`` to ``total_iters``; returns the summary also written to summary.json."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.json", json.dumps(
            {"train": asdict(c), "model": self.model_config.to_dict(), "total_iters": self.total_iters,
             "iters_per_epoch": self.iters_per_epoch}, indent=2))
        for name in ("losses.csv", "monitor.csv", "fid.csv"):  # drop rows logged after the checkpoint
            truncate_csv(self.out / name, self.start_iter)
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.start_iter + 1 if self.start_iter else None)
        last_losses: dict[str, float] = {}
        monitor: dict[str, float] = {}
        start_time = time.time()
        self.model.train()
        progress = tqdm(range(self.start_iter, self.total_iters), initial=self.start_iter, total=self.total_iters,
                        desc=f"{c.model}", dynamic_ncols=True)
        for iteration in progress:
            losses = self.step(iteration)
            done = iteration + 1
            last_losses = losses
            if done % c.log_every == 0 or done == self.total_iters:
                append_csv(self.out / "losses.csv", {"iteration": done, **losses})
                for k, v in losses.items():
                    writer.add_scalar(f"loss/{k}" if k != "lr" else "lr", v, done)
                progress.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k != "lr"})
            if done % c.sample_every == 0 or done == self.total_iters:
                monitor = self.sample_and_monitor(done, writer)
                append_csv(self.out / "monitor.csv", {"iteration": done, **monitor})
            if c.eval_every and done % c.eval_every == 0 and done != self.total_iters:
                self.evaluate_fid(done, writer)
            if done % c.checkpoint_every == 0 or done == self.total_iters:
                self.save_checkpoint(done)
        if c.inception_weights and not any(r["iteration"] == self.total_iters for r in self.fid_history):
            self.evaluate_fid(self.total_iters, writer)
            self.save_checkpoint(self.total_iters)
        writer.close()
        summary = {
            "model": c.model, "iterations": self.total_iters, "resumed_from": self.start_iter,
            "wall_seconds_this_session": time.time() - start_time,
            "last_losses": last_losses, "collapse_monitor": monitor, **self.fid_summary(),
        }
        atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
        return summary


def append_csv(path: Path, row: dict) -> None:
    """Append ``row`` to a CSV file, writing the header when the file is new."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def truncate_csv(path: Path, max_iteration: int) -> None:
    """Keep only the rows of ``path`` whose ``iteration`` is <= ``max_iteration`` (used on resume)."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return
    kept = [r for r in rows if int(r["iteration"]) <= max_iteration]
    if len(kept) == len(rows):
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)

