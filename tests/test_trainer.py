"""The generic SSL trainer: schedules, early errors, resume equivalence, multi-process training."""

import contextlib
import datetime
import math
import os
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import Dataset, default_collate
from torch.utils.data.distributed import DistributedSampler

from ssl_shared.data import build_dataset
from ssl_shared.errors import UserError
from ssl_shared.run_dir import CheckpointStore
from ssl_shared.train import Trainer, TrainerConfig, build_optimizer, lr_at, train, train_method

# fp32 pinned: precision "auto" turns bf16 autocast on for CPUs with AMX / AVX-512 BF16, and these tests
# compare exact numbers with references computed in fp32.
TINY = dict(
    data="digits",
    image_size=16,
    widths=(8, 16),
    feature_dim=16,
    batch_size=16,
    log_every=5,
    probe=False,
    precision="fp32",
)


def test_lr_schedule_warmup_then_cosine():
    cfg = TrainerConfig(lr=1.0, steps=110, warmup_steps=10)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(110, cfg) == pytest.approx(0.0)


def test_bad_inputs_fail_before_training(tmp_path):
    with pytest.raises(UserError, match="--method: unknown value 'no-such-method'"):
        train(TrainerConfig(method="no-such-method", out=str(tmp_path), **TINY))
    with pytest.raises(UserError, match="--data .*missing.* does not exist"):
        train(TrainerConfig(method="rotation", **{**TINY, "data": f"folder:{tmp_path / 'missing'}"}, out=str(tmp_path)))
    with pytest.raises(UserError, match="frames"):
        train(TrainerConfig(method="shuffle_and_learn", out=str(tmp_path), **TINY))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.json").exists()


def _final_weights(out) -> dict:
    return torch.load(CheckpointStore(out / "checkpoints").latest() / "checkpoint.pt", weights_only=False)["method"]


def test_resume_continues_exactly(tmp_path):
    full = tmp_path / "full"
    train(TrainerConfig(method="simclr", steps=6, checkpoint_every=100, out=str(full), **TINY))
    half = tmp_path / "half"
    # an interrupted run: it stops after 3 of its 6 steps, then --resume finishes it
    train(TrainerConfig(method="simclr", steps=6, stop_after=3, checkpoint_every=100, out=str(half), **TINY))
    state = torch.load(CheckpointStore(half / "checkpoints").latest() / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3
    train(TrainerConfig(method="simclr", steps=6, checkpoint_every=100, out=str(half), resume=True, **TINY))
    a, b = _final_weights(full), _final_weights(half)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=f"parameter {k} differs after resume")


# --- two processes (torchrun-style environment, gloo on the CPU) -----------------------------------
WORLD = 2


class TinyNet(nn.Module):
    """Conv, tanh, global average pool, linear: no BatchNorm, whose statistics CPU processes do not share."""

    def __init__(self, in_channels: int, feature_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


class PartlyLabelled(Dataset):
    """A dataset whose labels are kept for the indices in ``labelled`` only (-1 elsewhere)."""

    def __init__(self, base: Dataset, labelled: set[int]) -> None:
        self.base, self.labelled, self.num_classes = base, labelled, base.num_classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        item["label"] = torch.as_tensor(item["label"] if i in self.labelled else -1)
        return item


def _tiny_partly_labelled(labelled: set[int]) -> contextlib.ExitStack:
    """Make the trainer build a BatchNorm-free backbone and partly labelled digits."""
    stack = contextlib.ExitStack()
    stack.enter_context(
        mock.patch(
            "ssl_shared.train.build_backbone", lambda config, in_channels: TinyNet(in_channels, config.feature_dim)
        )
    )
    stack.enter_context(
        mock.patch(
            "ssl_shared.train.build_dataset",
            lambda spec, split="train", image_size=32, sequence_length=1: PartlyLabelled(
                build_dataset(spec, split, image_size, sequence_length), labelled
            ),
        )
    )
    return stack


def _init_process(rank: int, init_file: str) -> None:
    """What torchrun provides: the environment the trainer reads, and a process group (60 s timeout)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60)
    )


S4L_RUN = dict(method="s4l", steps=3, optimizer="sgd", lr=0.2, checkpoint_every=100, **TINY)


def _shards(dataset: Dataset, steps: int, batch_size: int) -> list[list[list[int]]]:
    """``[rank][step]`` -> dataset indices: each process reads its own DistributedSampler shard (epoch 0)."""
    shards = []
    for rank in range(WORLD):
        sampler = DistributedSampler(dataset, WORLD, rank, shuffle=True, seed=0, drop_last=True)
        sampler.set_epoch(0)
        order = list(sampler)
        shards.append([order[s * batch_size : (s + 1) * batch_size] for s in range(steps)])
    return shards


RESUME_KWARGS = {
    "supcon": dict(hidden_dim=32, gather_distributed=True),
    "npid": dict(embedding_dim=16, num_negatives=64),
    "pirl": dict(embedding_dim=16, num_negatives=64),
    "moco_v2": dict(projection_dim=16, hidden_dim=32, queue_size=48),
    "s4l": dict(),
}
BN_STATISTICS = ("running_mean", "running_var")


def _tensors(method: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in method.state_dict().items() if torch.is_tensor(v)}


def _two_process_worker(rank: int, init_file: str, out: str, labelled: set[int]) -> None:
    """Both 2-process workloads in one process group (starting processes costs more than the runs)."""
    _init_process(rank, init_file)
    try:
        with _tiny_partly_labelled(labelled):
            method, _ = train_method(TrainerConfig(out=f"{out}/s4l", **S4L_RUN))
        torch.save(method.state_dict(), f"{out}/s4l_rank{rank}.pt")
        results = {}
        for name, kwargs in RESUME_KWARGS.items():
            run = dict(method=name, steps=4, checkpoint_every=100, method_kwargs=kwargs, **TINY)
            full, _ = train_method(TrainerConfig(out=f"{out}/{name}/full", **run))
            dist.barrier()  # rank 0 has written its checkpoint before anyone reads the directory again
            train_method(TrainerConfig(out=f"{out}/{name}/half", stop_after=2, **run))
            dist.barrier()
            resumed, _ = train_method(TrainerConfig(out=f"{out}/{name}/half", resume=True, **run))
            dist.barrier()
            results[name] = {"full": _tensors(full), "resumed": _tensors(resumed)}
        torch.save(results, f"{out}/resume_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """The directory with both processes' results, the S4L shards and the labelled indices."""
    out = tmp_path_factory.mktemp("two_process_trainer")
    shards = _shards(build_dataset("digits", "train", TINY["image_size"]), S4L_RUN["steps"], TINY["batch_size"])
    labelled = set(shards[0][0][:3]) | set(shards[1][2][:2])
    mp.spawn(_two_process_worker, args=(str(out / "init"), str(out), labelled), nprocs=WORLD, join=True)
    return out, shards, labelled


def test_two_process_training_equals_one_process_on_the_global_batch(two_process_runs, tmp_path):
    """Two processes (each its own shard, gradients averaged) against one process that trains on the
    concatenation of both shards' batches, step by step. S4L with partly labelled batches: at step 0 only
    process 0 holds labels, at step 1 nobody, at step 2 only process 1; the supervised loss is a mean over
    the labelled samples of the global batch, so the one-process run is the reference."""
    out, shards, labelled = two_process_runs
    config = TrainerConfig(out=str(tmp_path / "reference"), **S4L_RUN)
    with _tiny_partly_labelled(labelled):  # the initial weights every process starts from
        method = Trainer(TrainerConfig(out=str(tmp_path / "init_weights"), **S4L_RUN)).method
    dataset = PartlyLabelled(build_dataset("digits", "train", TINY["image_size"]), labelled)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = build_optimizer(config, params)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        batch = default_collate([dataset[i] for i in shards[0][step] + shards[1][step]])
        assert int((batch["label"] != -1).sum()) == [3, 0, 2][step]
        loss, _ = method.training_step(batch, step, config.steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        method.after_optimizer_step(step, config.steps)

    expected = method.state_dict()
    for rank in range(WORLD):
        weights = torch.load(out / f"s4l_rank{rank}.pt")
        assert weights.keys() == expected.keys()
        for k, v in expected.items():
            torch.testing.assert_close(weights[k], v, msg=f"rank {rank}: {k} differs from the one-process run")


def test_two_process_resume_continues_exactly(two_process_runs):
    """An interrupted and resumed 2-process run ends where the uninterrupted one does, on both processes:
    each resumes its own random state (augmentations), and queues, memory banks and their noise
    generators are the same on both processes, so the single saved copy is right for both."""
    out = two_process_runs[0]
    ranks = [torch.load(out / f"resume_rank{r}.pt") for r in range(WORLD)]
    for name in RESUME_KWARGS:
        for rank, result in enumerate(ranks):
            full, resumed = result[name]["full"], result[name]["resumed"]
            assert full.keys() == resumed.keys()
            for k, v in full.items():
                if rank > 0 and k.endswith(BN_STATISTICS):
                    continue  # CPU processes keep their own BatchNorm statistics; the checkpoint has rank 0's
                torch.testing.assert_close(resumed[k], v, msg=f"{name}, rank {rank}: {k} differs after resume")
        stores = [k for k in ranks[0][name]["full"] if k.endswith(("bank.bank", "queue.queue", "normaliser.log_z"))]
        assert stores or name in ("supcon", "s4l")
        for k in stores:
            torch.testing.assert_close(ranks[1][name]["full"][k], ranks[0][name]["full"][k], msg=f"{name}: {k}")
