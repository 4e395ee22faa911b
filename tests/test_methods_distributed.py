"""Data-parallel training of the methods with cross-process state, checked against one process.

Two ``gloo`` processes on the CPU each take half of a global batch, run ``training_step``, average their
gradients with the trainer's :func:`ssl_shared.train.all_reduce_gradients`, step SGD and update their
queues and memory banks. The reference is one process that trains on the concatenated batch. Because the
trainer averages gradients over processes, the two runs agree when every loss is a mean over the global
batch: then the mean of the process losses is the reference loss and the averaged gradients are the
reference gradients. After every step the queues, memory banks and NPID/PIRL's normaliser ``Z`` must equal
the reference's on every process.

What is held fixed so the comparison is exact: the views are the identity (full-image crop, no flip,
jitter, grayscale or blur), PIRL's tiles fill their cells and its puzzle permutation is one fixed
shuffle, and BatchNorm layers use frozen statistics (BatchNorm is not synchronised across CPU
processes). Each process draws its own augmentations in real runs, so these per-sample draws could not
match the reference otherwise.
"""

from __future__ import annotations

import contextlib
import datetime
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from ssl_shared.methods import build_method
from ssl_shared.train import all_reduce_gradients

WORLD = 2
LOCAL = 4  # images per process; the global batch has WORLD * LOCAL
STEPS = 3
FEATURE_DIM = 8
NUM_SAMPLES = 12  # dataset size of the memory banks: rows are revisited across steps
IDENTITY_VIEWS = dict(
    crop_scale=(1.0, 1.0), flip_probability=0.0, jitter_strength=0.0, grayscale_probability=0.0, blur_probability=0.0
)
CASES = {
    "supcon": dict(gather_distributed=True, hidden_dim=8, projection_dim=8, views=IDENTITY_VIEWS),
    "npid": dict(num_samples=NUM_SAMPLES, num_negatives=16, embedding_dim=8, views=IDENTITY_VIEWS),
    "pirl": dict(num_samples=NUM_SAMPLES, num_negatives=16, embedding_dim=8, tile_fraction=1.0, views=IDENTITY_VIEWS),
    "moco_v2": dict(queue_size=20, hidden_dim=8, projection_dim=8, views=IDENTITY_VIEWS),
    "s4l": dict(num_classes=3),  # rotation pretext: all four rotations, no random draws
}
# Global labels per step (-1 = unlabelled). SupCon: the unlabelled samples sit at the same local
# positions on both processes. S4L: process 1 has no label at step 0, nobody at step 1, process 0 none at 2.
LABELS = {
    "supcon": [[0, -1, 1, -1, 0, -1, 2, -1]] * STEPS,
    "s4l": [[0, 1, -1, 2, -1, -1, -1, -1], [-1] * 8, [-1, -1, -1, -1, 2, -1, 0, -1]],
}
FIXED_PERMUTATION = [4, 0, 8, 2, 6, 1, 7, 3, 5]


class TinyNet(nn.Module):
    """Conv, tanh, global average pool, linear: no BatchNorm, any input size (PIRL's 5 x 5 tiles too)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, FEATURE_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def global_batch(name: str, step: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    batch = {
        "image": torch.rand(WORLD * LOCAL, 3, 16, 16, generator=g),
        "index": torch.randperm(NUM_SAMPLES, generator=g)[: WORLD * LOCAL],
        "label": torch.randint(0, 3, (WORLD * LOCAL,), generator=g),
    }
    if name in LABELS:
        batch["label"] = torch.tensor(LABELS[name][step])
    return batch


def fixed_permutations(batch: int, n: int, device=None, generator=None) -> torch.Tensor:
    return torch.tensor(FIXED_PERMUTATION, device=device).expand(batch, n).clone()


def stores(method: nn.Module) -> dict[str, torch.Tensor]:
    """The cross-process state of a method: memory bank and ``log Z``, or key queue."""
    out = {}
    if hasattr(method, "bank"):
        out["bank"] = method.bank.bank.clone()
        out["log_z"] = method.normaliser.log_z.clone()
    if hasattr(method, "queue"):
        out["queue"] = method.queue.keys.clone()
        out["queue_ptr"] = method.queue.ptr.clone()
    return out


def train(name: str, rank: int, world: int) -> dict:
    """STEPS SGD steps of ``name`` on this process's share of the global batches; a record of each step."""
    torch.manual_seed(0)  # the same initial weights, banks, queues and noise generators everywhere
    method = build_method(name, TinyNet(), FEATURE_DIM, **CASES[name])
    for module in method.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.5)
    patch = mock.patch("ssl_shared.methods.pirl.random_permutations", fixed_permutations)
    record: dict = {"loss": [], "grads": [], "stores": []}
    with patch if name == "pirl" else contextlib.nullcontext():
        for step in range(STEPS):
            size = WORLD * LOCAL // world
            batch = {k: v[rank * size : (rank + 1) * size] for k, v in global_batch(name, step).items()}
            loss, _ = method.training_step(batch, step, STEPS)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1:
                all_reduce_gradients(params, world)
            record["loss"].append(loss.detach())
            record["grads"].append({n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None})
            optimizer.step()
            method.after_optimizer_step(step, STEPS)
            record["stores"].append(stores(method))
    record["state"] = {k: v.clone() for k, v in method.state_dict().items() if torch.is_tensor(v)}
    return record


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=60)
    )
    try:
        for name in CASES:
            torch.save(train(name, rank, WORLD), Path(out_dir) / f"{name}_rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("ddp_methods")
    mp.spawn(_worker, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return {name: [torch.load(out / f"{name}_rank{r}.pt") for r in range(WORLD)] for name in CASES}


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_processes_equal_one_process_on_the_concatenated_batch(name, two_process_runs):
    ranks = two_process_runs[name]
    reference = train(name, rank=0, world=1)
    for step in range(STEPS):
        mean_loss = sum(r["loss"][step] for r in ranks) / WORLD
        torch.testing.assert_close(mean_loss, reference["loss"][step], msg=f"{name} loss at step {step}")
        for r, result in enumerate(ranks):
            expected = reference["grads"][step]
            assert result["grads"][step].keys() == expected.keys(), f"{name}: gradients present differ"
            for param, grad in expected.items():
                torch.testing.assert_close(
                    result["grads"][step][param], grad, msg=f"{name} gradient of {param} at step {step}, rank {r}"
                )
            for key, value in reference["stores"][step].items():
                torch.testing.assert_close(
                    result["stores"][step][key], value, msg=f"{name} {key} after step {step}, rank {r}"
                )
    for r, result in enumerate(ranks):
        for key, value in reference["state"].items():
            torch.testing.assert_close(result["state"][key], value, msg=f"{name} final {key}, rank {r}")
