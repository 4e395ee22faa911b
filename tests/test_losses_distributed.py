"""Gradient-preserving all-gather in contrastive losses, checked with a 2-process CPU ``gloo`` group.

What "equal" means (see ``ssl_shared.losses.distributed``): the full batch is the concatenation of the
ranks' local batches in rank order. Each rank's loss is the mean over its *local* anchors against the
*gathered* candidates, so

* the average of the rank losses equals the single-process loss on the full batch, and
* the gradient a rank receives for its local inputs equals ``world_size`` times the full-batch gradient
  of those inputs (DistributedDataParallel then averages parameter gradients over ranks, which gives the
  full-batch gradient); a parameter shared by all ranks (the bilinear ``W``) gets the full-batch
  gradient as the average of the rank gradients.

``global_masked_mean`` (a mean over the selected entries of all ranks, which may select different numbers
of entries or none) obeys the same two rules.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import ssl_shared.losses as L

WORLD = 2
FULL = 8  # full batch; each rank holds FULL // WORLD rows


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    return {
        "z_a": randn(FULL, 5),
        "z_b": randn(FULL, 5),
        "q": randn(FULL, 4),
        "k": randn(FULL, 3),
        "w": randn(4, 3),
        "emb": randn(FULL, 4),
        # every positive of a rank-0 anchor lives on rank 1 and vice versa
        "labels": torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]),
        "values": randn(FULL),
        # rank 0 selects three values, rank 1 none: a local mean would weight the ranks wrongly
        "mask": torch.tensor([True, False, True, True, False, False, False, False]),
    }


def _losses(t: dict[str, torch.Tensor], gather: bool) -> dict[str, torch.Tensor]:
    """Forward + backward of each loss; returns the loss values and the input gradients."""
    leaves = {name: t[name].clone().requires_grad_(True) for name in ("z_a", "z_b", "q", "k", "w", "emb", "values")}
    out: dict[str, torch.Tensor] = {}
    losses = {
        "nt_xent": L.nt_xent_loss(leaves["z_a"], leaves["z_b"], 0.5, gather_distributed=gather),
        "info_nce": L.info_nce_loss(
            leaves["q"],
            leaves["k"],
            critic="bilinear",
            temperature=0.8,
            weight=leaves["w"],
            gather_distributed=gather,
        ),
        "supcon": L.supcon_loss(leaves["emb"], t["labels"], 0.3, gather_distributed=gather),
        # always global when distributed: the mean over the selected values of all ranks
        "masked_mean": L.distributed.global_masked_mean(leaves["values"] ** 2, t["mask"]),
    }
    for name, loss in losses.items():
        loss.backward()
        out[name] = loss.detach()
    for name, leaf in leaves.items():
        out[f"grad_{name}"] = leaf.grad.detach()
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        full = _inputs()
        n = FULL // WORLD
        local = {k: (v if k == "w" else v[rank * n : (rank + 1) * n]) for k, v in full.items()}
        assert L.is_distributed()
        torch.save(_losses(local, gather=True), Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gathered_losses_match_single_process_full_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    n = FULL // WORLD
    full = _losses(_inputs(), gather=False)

    local_only = [
        _losses({k: (v if k == "w" else v[r * n : (r + 1) * n]) for k, v in _inputs().items()}, gather=False)
        for r in range(WORLD)
    ]
    for name in ("nt_xent", "info_nce", "supcon", "masked_mean"):
        rank_mean = sum(r[name] for r in ranks) / WORLD
        torch.testing.assert_close(rank_mean, full[name], msg=name)
        # without the gather the ranks see only local negatives and the average differs
        local_mean = sum(r[name] for r in local_only) / WORLD
        assert not torch.allclose(local_mean, full[name]), name

    for name in ("z_a", "z_b", "q", "k", "emb", "values"):
        for r, result in enumerate(ranks):
            expected = WORLD * full[f"grad_{name}"][r * n : (r + 1) * n]
            torch.testing.assert_close(result[f"grad_{name}"], expected, msg=f"{name} rank {r}")

    shared_w = sum(r["grad_w"] for r in ranks) / WORLD
    torch.testing.assert_close(shared_w, full["grad_w"])
