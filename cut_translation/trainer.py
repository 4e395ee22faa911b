"""Training loop for CUT / FastCUT / CycleGAN on an unaligned ``ROOT/trainA, trainB`` dataset.

One iteration = one batch of A images (a fresh permutation each data epoch, the last partial batch
dropped) with randomly drawn B images, one ``model.train_step``.

Learning-rate schedule (:class:`LrSchedule`): the CUT/CycleGAN ``linear`` policy, ``n_epochs`` schedule
epochs at the constant rate, then ``n_epochs_decay`` of linear decay (:func:`linear_lr_factor`). Without
``iters`` a schedule epoch is one pass over trainA, as in the reference code. With ``iters`` the schedule
epochs are scaled to span exactly ``iters`` iterations (same proportion ``n_epochs : n_epochs_decay``), so
a short budget still decays and a long one never runs at a zero rate. As in the CUT code's unaligned
dataset, the random resize-and-crop is switched off in the decay epochs (``load_size = crop_size``,
flips stay on).

Run folder ``out/`` (every file survives a SIGKILL at any instant; see :mod:`ssl_shared.run_dir`):
``config.json`` (resolved settings, rewritten at each start), ``launches.json`` (command, commit,
versions and hardware of each launch), ``losses.csv`` (every ``log_every`` iterations), ``monitor.csv``
(collapse monitor, every ``sample_every``), ``fid.csv`` (when Inception weights are given), ``tb/``
(TensorBoard), ``samples/iter_XXXXXXX.png`` (rows: fixed test images; columns: input | output | ground
truth when the test split has pairs), ``checkpoints/`` (:mod:`cut_translation.checkpoint`) and
``summary.json``, written last (after the final checkpoint): its presence means the run is finished.

A new run refuses a folder that holds one; ``resume=True`` continues from the latest checkpoint and
refuses settings that differ from the saved ones, except :data:`CHANGEABLE_ON_RESUME`, and refuses a
finished run unless a larger ``iters`` extends it (``summary.json`` is removed until the new end). The CSV logs
are cut back to the checkpoint's iteration and TensorBoard purges later events, so a resumed run's logs
continue without gaps or duplicates.

Precision (``precision``): ``bf16`` runs the forward passes of the networks under bf16 autocast, with fp32
losses, weights, gradients and Adam states (see :mod:`cut_translation.models.cut`); ``auto`` resolves to
``bf16`` where the device has bf16 matrix units (:func:`ssl_shared.precision.resolve_precision`), else
``fp32``. ``config.json`` and the checkpoints record the resolved value, and a resume refuses a different
resolved precision (a checkpoint that records none trained in fp32). Sample grids, the collapse monitor and
FID translate in fp32.

Reproducibility: ``seed`` fixes the initial weights, and every random draw of iteration ``t`` (crop,
flip, B draw, patch locations, FastCUT flip, image-pool draws) comes from generators reseeded from
``(seed, t)`` and the A order of data epoch ``e`` from ``(seed, e)``, so a run resumed from a checkpoint
continues exactly as the uninterrupted run (tested, also after SIGKILL). A non-finite loss stops the
run with :class:`~ssl_shared.errors.NonFiniteLossError` before the optimizer step; the last checkpoint
is the last good state.

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

import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from cut_translation.checkpoint import (
    LEGACY_FILE,
    STATE_FILE,
    checkpoint_store,
    read_meta,
    torch_load,
    write_checkpoint,
)
from cut_translation.data import PairedTestDataset, UnpairedImageDataset, check_sizes
from cut_translation.models import MODEL_NAMES, build_model, make_config, model_spec
from cut_translation.models.config import TranslationConfig
from ssl_shared.cli import check_choice, check_positive, flag_name
from ssl_shared.device import get_device
from ssl_shared.errors import UserError
from ssl_shared.precision import PRECISIONS, resolve_precision
from ssl_shared.provenance import record_launch
from ssl_shared.run_dir import CheckpointStore, CsvLog, atomic_write_json, check_resume_config, prepare_run_dir

#: Files whose presence means a folder already holds a run (besides a checkpoint).
RUN_MARKERS = ("config.json", "launches.json", "losses.csv", "summary.json", f"checkpoints/{LEGACY_FILE}")
#: How ``scv-cut-train --help`` shows defaults that are not plain values.
DEFAULTS_SHOWN = {
    "data": "required for a new run",
    "out": "required",
    "iters": "n_epochs + n_epochs_decay passes over trainA",
    "threads": "torch's choice",
    "inception_weights": "$CUT_INCEPTION_WEIGHTS for a new run, else no FID",
    "max_dataset_size": "all images",
}
#: Settings a resumed run may change: the iteration budget, where it runs and how often it logs.
CHANGEABLE_ON_RESUME = ("iters", "device", "threads", "log_every", "sample_every", "checkpoint_every", "eval_every")
LOGS = ("losses", "monitor", "fid")
#: The precision of a checkpoint whose settings record none: runs without the setting trained in fp32.
UNRECORDED_PRECISION = "fp32"


@dataclass
class TrainConfig:
    """Run settings of ``scv-cut-train`` (data, length, logging); model hyperparameters live in the model config.

    Defaults follow the CUT code's ``base_options.py`` / ``train_options.py`` (Park et al. 2020,
    arXiv:2007.15651). Every field is a ``scv-cut-train`` flag whose help is the trailing comment.
    """

    model: str = field(default="cut", metadata={"help": "translation model", "choices": lambda: MODEL_NAMES})
    data: str = ""  # dataset root with trainA/ and trainB/ (testA/ and testB/ optional)
    out: str = ""  # run folder: config, logs, samples, checkpoints
    iters: int | None = None  # iterations to run; the learning-rate schedule is scaled to span them
    batch_size: int = 1  # images per iteration (the authors recommend 1)
    load_size: int = 286  # images are resized to LOAD x LOAD before the random crop
    crop_size: int = 256  # side of the random crop: a multiple of 4, at most the load size
    flip: bool = True  # random horizontal flips of the training images
    seed: int = 0  # fixes the initial weights and every random draw of the run
    device: str = "auto"  # auto (CUDA when present), cpu, cuda or cuda:N
    precision: str = field(
        default="auto",
        metadata={
            "choices": PRECISIONS,
            "help": "bf16: autocast of the G / D / MLP-head forward passes (losses, weights and Adam states stay "
            "fp32); auto: bf16 where the device has bf16 matrix units (CUDA with bf16, CPUs with AMX or "
            "AVX-512 BF16), else fp32. The run records the resolved value",
        },
    )
    threads: int | None = None  # torch CPU threads
    log_every: int = 10  # a losses.csv row every N iterations
    sample_every: int = 200  # an image grid and the collapse monitor every N iterations
    checkpoint_every: int = 500  # a checkpoint every N iterations (and at the end)
    eval_every: int = 0  # FID every N iterations (needs inception weights); 0: only at the end
    inception_weights: str | None = None  # InceptionV3 FID weights file for FID/KID
    n_monitor: int = 4  # fixed test images in the sample grids and the collapse monitor
    identity_threshold: float = 0.03  # warn of identity collapse below this mean |G(x) - x|
    spread_threshold: float = 0.1  # warn of mode collapse below this output/input spread ratio
    monitor_warmup: float = 0.05  # fraction of the run before collapse warnings start
    crop_only_in_decay: bool = True  # CUT unaligned_dataset.py: load size = crop size in the decay epochs
    max_dataset_size: int | None = None  # use at most N images (sorted by name) per domain

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODEL_NAMES)
        check_choice("precision", self.precision, PRECISIONS)
        if self.iters is not None:
            check_positive("iters", self.iters)
        for name in ("batch_size", "log_every", "sample_every", "checkpoint_every"):
            check_positive(name, getattr(self, name))
        for name in ("eval_every", "seed"):
            check_positive(name, getattr(self, name), allow_zero=True)
        for name in ("threads", "max_dataset_size"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        check_sizes(self.load_size, self.crop_size)
        if self.n_monitor < 2:
            raise UserError(f"--n-monitor: got {self.n_monitor}; allowed: an integer >= 2 (the spread needs two)")
        for name in ("identity_threshold", "spread_threshold"):
            if not getattr(self, name) >= 0:
                raise UserError(f"{flag_name(name)}: got {getattr(self, name)}; allowed: a number >= 0")
        if not 0 <= self.monitor_warmup <= 1:
            raise UserError(f"--monitor-warmup: got {self.monitor_warmup}; allowed: a fraction in [0, 1]")
        if self.eval_every and not self.inception_weights:
            raise UserError(
                f"--eval-every {self.eval_every} needs --inception-weights (or $CUT_INCEPTION_WEIGHTS): "
                "FID needs the InceptionV3 weights file"
            )


def linear_lr_factor(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """CUT/CycleGAN ``linear`` policy, 0-based ``epoch``: ``1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)``.

    Constant 1 for epochs ``0 .. n_epochs - 1``, then linear towards 0 (reaching ``1 / (n_epochs_decay + 1)``
    in the last epoch ``n_epochs + n_epochs_decay - 1``).
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1))


@dataclass(frozen=True)
class LrSchedule:
    """The ``linear`` policy laid over ``total_iters`` iterations.

    With ``E = n_epochs + n_epochs_decay``, 0-based iteration ``t`` lies in schedule epoch
    ``e(t) = floor(t * E / total_iters)`` and runs at ``lr * linear_lr_factor(e(t), n_epochs, n_epochs_decay)``.
    When ``total_iters = E * iters_per_epoch`` (no ``--iters``), ``e(t)`` is the data epoch ``t // iters_per_epoch``,
    the reference schedule. The decay epochs start at iteration ``ceil(n_epochs * total_iters / E)``.
    """

    total_iters: int
    n_epochs: int
    n_epochs_decay: int

    def __post_init__(self) -> None:
        if self.total_iters < 1 or self.n_epochs < 0 or self.n_epochs_decay < 0 or self.epochs < 1:
            raise ValueError(f"invalid schedule {self}")

    @property
    def epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    def epoch(self, iteration: int) -> int:
        """Schedule epoch of 0-based ``iteration``."""
        return iteration * self.epochs // self.total_iters

    def factor(self, iteration: int) -> float:
        """Learning-rate multiplier of 0-based ``iteration``."""
        return linear_lr_factor(self.epoch(iteration), self.n_epochs, self.n_epochs_decay)

    def in_decay(self, iteration: int) -> bool:
        return self.epoch(iteration) >= self.n_epochs

    @property
    def decay_start(self) -> int:
        """The first 0-based iteration of the decay epochs (``total_iters`` when there are none)."""
        return -(-self.n_epochs * self.total_iters // self.epochs)

    def describe(self, lr: float) -> str:
        """One line, with 1-based iterations as in the logs."""
        start, total = self.decay_start, self.total_iters
        parts = []
        if start > 0:
            parts.append(f"lr {lr:g} constant for iterations 1-{start}")
        if start < total:
            parts.append(f"linear decay over iterations {start + 1}-{total} (crop-only from {start + 1})")
        return "; ".join(parts)


def iteration_seed(seed: int, iteration: int) -> int:
    """Seed of every random draw of one iteration (a fixed mixing of run seed and iteration)."""
    return (seed * 1_000_003 + iteration * 7_919 + 17) % (2**63)


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The permutation of the A images used in ``epoch``."""
    gen = torch.Generator().manual_seed((seed * 1_000_033 + epoch * 104_729 + 3) % (2**63))
    return torch.randperm(n, generator=gen)


def resolve_device(name: str) -> torch.device:
    """``ssl_shared.device.get_device`` with its errors as one-line ``UserError`` naming ``--device``."""
    try:
        return get_device(name)
    except ValueError as err:
        raise UserError(f"--device {name}: {err}") from err


# ----------------------------------------------------------------------------------------- run folder


def open_run_dir(out: Path, resume: bool) -> CheckpointStore:
    """Check ``out`` before any work (see :func:`ssl_shared.run_dir.prepare_run_dir`), remove leftovers of
    killed writes and return the run's checkpoint store."""
    store = checkpoint_store(out)
    legacy = store.root / LEGACY_FILE
    if store.latest() is None:
        if resume and legacy.is_file():
            raise UserError(
                f"--resume: {legacy} is a single-file checkpoint of an earlier version; scv-cut-translate and "
                "scv-cut-evaluate read it, but resuming needs a run started with this version: choose another --out"
            )
        held = [m for m in RUN_MARKERS if (out / m).exists()]
        if held and not legacy.is_file():
            raise UserError(
                f"--out {out} holds a run that stopped before its first checkpoint ({held[0]}), so nothing can "
                "be resumed: delete that folder or choose another --out"
            )
    prepare_run_dir(out, resume, store, RUN_MARKERS)
    for leftover in out.glob(".*.tmp"):  # temporary files of atomic writes a kill interrupted
        if leftover.is_file():
            leftover.unlink()
    return store


def _flat_settings(train: Mapping[str, Any], model_config: Mapping[str, Any]) -> dict[str, Any]:
    """Run and model settings keyed by flag (``--crop-size``, ``--ngf``); nested configs flattened."""
    flat = {flag_name(k): v for k, v in train.items() if k != "out"}
    for key, value in model_config.items():
        if isinstance(value, Mapping):
            for sub, sub_value in value.items():
                name = flag_name(sub)
                flat[f"{key}.{sub}" if name in flat else name] = sub_value
        else:
            flat[flag_name(key)] = value
    return flat


def run_precision(train: Mapping[str, Any]) -> str:
    """The precision run settings ``train`` resolve to on this machine (``auto`` by the device's bf16 units)."""
    return resolve_precision(train.get("precision", "auto"), resolve_device(train.get("device", "auto")))


def saved_train_config(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's run settings (:data:`UNRECORDED_PRECISION` when they record no precision)."""
    return {"precision": UNRECORDED_PRECISION, **meta["train_config"]}


def check_against_saved(meta: Mapping[str, Any], train: Mapping[str, Any], model_config: Mapping[str, Any]) -> None:
    """``UserError`` naming every setting of a resumed run that differs from its checkpoint's, except
    :data:`CHANGEABLE_ON_RESUME` (paths count as equal when they name the same file; the precision is
    compared as resolved on this machine)."""
    saved = _flat_settings({**saved_train_config(meta), "model": meta["model"]}, meta["model_config"])
    current = _flat_settings({**train, "precision": run_precision(train)}, model_config)
    for key in ("--data", "--inception-weights"):
        a, b = saved.get(key), current.get(key)
        if a and b and Path(a).resolve() == Path(b).resolve():
            current[key] = a
    check_resume_config(
        saved, current, ignore=[flag_name(n) for n in CHANGEABLE_ON_RESUME], source="the run's checkpoint"
    )


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resume_configuration(
    meta: Mapping[str, Any], train_values: Mapping[str, Any], model_values: Mapping[str, Any]
) -> tuple[TrainConfig, TranslationConfig]:
    """Settings of a resumed run: the checkpoint's (``meta``), with ``train_values`` / ``model_values`` (what the
    user gave) on top; refuses values that differ from the saved ones except :data:`CHANGEABLE_ON_RESUME`."""
    known = {f.name for f in fields(TrainConfig)}
    train = {k: v for k, v in saved_train_config(meta).items() if k in known}
    train.update(train_values)
    model = _merge(meta["model_config"], model_values)
    check_against_saved(meta, train, model)
    config = TrainConfig(**train)
    return config, make_config(config.model, **model)


# ----------------------------------------------------------------------------------------- monitor helpers


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


# ----------------------------------------------------------------------------------------- trainer


class Trainer:
    """Checks the run folder and the data, builds the model, trains, logs, checkpoints and resumes.

    ``model_config`` defaults to the preset of ``config.model`` (new run) or the checkpoint's (resume).
    Everything the user can get wrong is checked here, before the model is built: the run folder (a new
    run never overwrites one; a resume needs a checkpoint and the saved settings), the data, the
    Inception weights.
    """

    def __init__(self, config: TrainConfig, model_config: TranslationConfig | None = None, resume: bool = False):
        self.config = config
        self.out = Path(config.out)
        created = not self.out.exists()
        try:
            self._setup(model_config, resume)
        except UserError:
            if created and self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()  # a refused new run leaves no empty run folder behind
            raise

    def _setup(self, model_config: TranslationConfig | None, resume: bool) -> None:
        self.device = resolve_device(self.config.device)
        #: The settings as run: ``precision`` resolved on this device.
        self.config = c = replace(self.config, precision=resolve_precision(self.config.precision, self.device))
        self.store = open_run_dir(self.out, resume)
        self.meta: dict[str, Any] | None = None
        state = None
        if resume:
            latest = self.store.latest()
            self.meta = read_meta(latest, flag="--resume")
            if model_config is None:
                model_config = make_config(self.meta["model"], **self.meta["model_config"])
            check_against_saved(self.meta, asdict(c), model_config.to_dict())
            if c.iters is not None and c.iters < self.meta["iteration"]:
                raise UserError(
                    f"--iters {c.iters}: the checkpoint is at iteration {self.meta['iteration']}; "
                    "allowed: at least that many"
                )
            state = torch_load(latest / STATE_FILE, flag="--resume")
        self.model_config = model_config if model_config is not None else make_config(c.model)
        expected = model_spec(c.model).config_class
        if not isinstance(self.model_config, expected):
            raise TypeError(f"model {c.model!r} needs a {expected.__name__}, got {type(self.model_config).__name__}")
        mc = self.model_config
        # Data next: every data error surfaces before a model is built or a step is taken.
        self.dataset = UnpairedImageDataset(
            c.data, "train", load_size=c.load_size, crop_size=c.crop_size, flip=c.flip, max_size=c.max_dataset_size
        )
        self.iters_per_epoch = len(self.dataset) // c.batch_size
        if self.iters_per_epoch < 1:
            raise UserError(
                f"--batch-size {c.batch_size}: larger than the dataset ({len(self.dataset)} images per epoch in "
                f"{c.data}); allowed: at most {len(self.dataset)}"
            )
        self.schedule = LrSchedule(
            c.iters or (mc.n_epochs + mc.n_epochs_decay) * self.iters_per_epoch, mc.n_epochs, mc.n_epochs_decay
        )
        finished = (self.out / "summary.json").is_file()
        if self.meta is not None and finished and self.meta["iteration"] >= self.total_iters:
            raise UserError(
                f"--resume: the run in {self.out} is finished (summary.json, iteration {self.meta['iteration']} of "
                f"{self.total_iters}); nothing to resume; allowed: a larger --iters to continue it"
            )
        self.inception = None
        if c.inception_weights:
            from cut_translation.inception import load_feature_extractor

            self.inception = load_feature_extractor(c.inception_weights)
        self.monitor_batch = self._monitor_batch()
        self.model = build_model(c.model, mc, seed=c.seed, precision=c.precision).to(self.device)
        self.start_iter = 0
        self.fid_history: list[dict] = []
        if self.meta is not None:
            try:
                self.model.load_state_dict(state["model_state"])
                self.model.load_extra_state(state["extra"])
            except (KeyError, TypeError, RuntimeError, ValueError) as err:
                raise UserError(f"--resume: {latest / STATE_FILE} does not fit the saved model config ({err})") from err
            self.start_iter = int(self.meta["iteration"])
            self.fid_history = list(self.meta.get("fid_history", []))

    @property
    def total_iters(self) -> int:
        return self.schedule.total_iters

    def _monitor_batch(self) -> dict[str, torch.Tensor]:
        """Fixed images for grids and the collapse monitor: test pairs if available, else test/train A."""
        c = self.config
        root = Path(c.data)
        n = c.n_monitor
        try:
            paired = PairedTestDataset(root, "test", size=c.crop_size)
            items = [paired[i] for i in spread_indices(len(paired), n)]
            return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}
        except ValueError:
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
        """Set the iteration's learning rate and preprocessing and reseed the model's generator; returns the lr."""
        c = self.config
        lr = self.model_config.lr * self.schedule.factor(iteration)
        self.model.set_lr(lr)
        if c.crop_only_in_decay:
            self.dataset.set_load_size(c.crop_size if self.schedule.in_decay(iteration) else c.load_size)
        self.model.generator.manual_seed(iteration_seed(c.seed, iteration) ^ 0x5DEECE66D)
        return lr

    def step(self, iteration: int) -> dict[str, float]:
        """Run 0-based ``iteration``; a NaN/inf loss raises ``NonFiniteLossError`` before the optimizer step."""
        lr = self.prepare_iteration(iteration)
        real_a, real_b = self.batch(iteration)
        losses = self.model.train_step(real_a, real_b, step=iteration + 1)
        losses["lr"] = lr
        return losses

    @torch.no_grad()
    def translate_monitor(self) -> torch.Tensor:
        return self.model.translator(self.monitor_batch["A"].to(self.device)).cpu()

    def save(self, iteration: int) -> None:
        meta = {
            "model": self.config.model,
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(self.config),
            "iteration": iteration,
            "fid_history": self.fid_history,
        }
        state = {"model_state": self.model.state_dict(), "extra": self.model.extra_state()}
        write_checkpoint(self.store, iteration, meta, state)

    def sample_and_monitor(self, iteration: int, writer: Any) -> dict[str, float]:
        """Write the image grid and return (and log) the collapse monitor at ``iteration`` (1-based)."""
        from torchvision.utils import make_grid, save_image

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
                msg = (
                    f"iteration {iteration}: identity collapse? mean |G(x)-x| = {stats['identity_gap']:.4f} "
                    f"< {c.identity_threshold} (output ~ input; FastCUT with lambda_NCE 10 is known to do this)"
                )
                warnings.warn(msg, stacklevel=2)
                tqdm.write("WARNING " + msg)
            if stats["spread_ratio"] < c.spread_threshold:
                msg = (
                    f"iteration {iteration}: mode collapse? output spread / input spread = "
                    f"{stats['spread_ratio']:.4f} < {c.spread_threshold} (all outputs look alike)"
                )
                warnings.warn(msg, stacklevel=2)
                tqdm.write("WARNING " + msg)
        return stats

    def evaluate_fid(self, iteration: int, writer: Any, log: CsvLog) -> dict | None:
        """FID/KID of G(testA) vs testB, when Inception weights were given."""
        if self.inception is None:
            return None
        from cut_translation.metrics import fid_kid

        c = self.config
        test = UnpairedImageDataset(c.data, "test", load_size=c.crop_size, crop_size=c.crop_size)
        n_a = len(test.paths_a)
        with torch.no_grad():
            fakes = torch.cat(
                [
                    self.model.translator(
                        torch.stack([test[i]["A"] for i in range(s, min(s + 8, n_a))]).to(self.device)
                    ).cpu()
                    for s in range(0, n_a, 8)
                ]
            )
        reals = torch.stack([test[i]["B"] for i in range(len(test.paths_b))])  # serial: item i holds B[i]
        scores = fid_kid(to_unit(reals), to_unit(fakes), extractor=self.inception)
        record = {"iteration": iteration, "fid": float(scores["fid"]), "kid": float(scores.get("kid", float("nan")))}
        self.fid_history.append(record)
        writer.add_scalar("eval/fid", record["fid"], iteration)
        log.append(record)
        return record

    def fid_summary(self) -> dict:
        """Last and best FID, named as such (the reference paper's selection is ambiguous)."""
        if not self.fid_history:
            return {}
        best = min(self.fid_history, key=lambda r: r["fid"])
        last = self.fid_history[-1]
        return {
            "fid_last": last["fid"],
            "fid_last_iteration": last["iteration"],
            "fid_best": best["fid"],
            "fid_best_iteration": best["iteration"],
        }

    def resolved_config(self) -> dict:
        """What ``config.json`` records: every setting as used, the schedule and the device."""
        s = self.schedule
        return {
            "train": asdict(self.config),
            "model_name": self.config.model,
            "model": self.model_config.to_dict(),
            "total_iters": s.total_iters,
            "iters_per_epoch": self.iters_per_epoch,
            "schedule": {
                "schedule_epochs": s.epochs,
                "iters_per_schedule_epoch": s.total_iters / s.epochs,
                "decay_start_iteration": s.decay_start + 1,
            },
            "train_images": {"A": len(self.dataset.paths_a), "B": len(self.dataset.paths_b)},
            "device": str(self.device),
            "torch_threads": torch.get_num_threads(),
            "resumed_from": self.start_iter,
        }

    def fit(self) -> dict:
        """Train from ``start_iter`` to ``total_iters``; returns the summary also written to summary.json."""
        from torch.utils.tensorboard import SummaryWriter

        c = self.config
        total = self.total_iters
        (self.out / "summary.json").unlink(missing_ok=True)  # written again when this launch reaches the end
        record_launch(self.out, resumed_from=self.start_iter, device=str(self.device))
        atomic_write_json(self.out / "config.json", self.resolved_config())
        logs = {name: CsvLog(self.out / f"{name}.csv", step_key="iteration") for name in LOGS}
        for log in logs.values():  # drop rows logged after the checkpoint (and a torn last line)
            log.truncate_after(self.start_iter)
        tqdm.write(f"{c.model}: {total} iterations; {self.schedule.describe(self.model_config.lr)}")
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.start_iter + 1 if self.start_iter else None)
        last_losses: dict[str, float] = {}
        monitor: dict[str, float] = {}
        start_time = time.time()
        self.model.train()
        try:
            progress = tqdm(
                range(self.start_iter, total), initial=self.start_iter, total=total, desc=c.model, dynamic_ncols=True
            )
            for iteration in progress:
                losses = self.step(iteration)
                done = iteration + 1
                last_losses = losses
                if done % c.log_every == 0 or done == total:
                    logs["losses"].append({"iteration": done, **losses})
                    for k, v in losses.items():
                        writer.add_scalar(f"loss/{k}" if k != "lr" else "lr", v, done)
                    progress.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k != "lr"})
                if done % c.sample_every == 0 or done == total:
                    monitor = self.sample_and_monitor(done, writer)
                    logs["monitor"].append({"iteration": done, **monitor})
                if self.inception is not None and (done == total or (c.eval_every and done % c.eval_every == 0)):
                    self.evaluate_fid(done, writer, logs["fid"])
                if done % c.checkpoint_every == 0 or done == total:
                    writer.flush()  # TensorBoard events up to the checkpoint survive a kill (later ones are purged)
                    self.save(done)
        finally:
            writer.close()
        summary = {
            "model": c.model,
            "iterations": total,
            "resumed_from": self.start_iter,
            "wall_seconds_this_session": time.time() - start_time,
            "last_losses": last_losses,
            "collapse_monitor": monitor,
            **self.fid_summary(),
        }
        atomic_write_json(self.out / "summary.json", summary)  # last: the run is finished
        return summary
